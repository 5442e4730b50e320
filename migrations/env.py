"""Alembic environment: configured programmatically by convostore.store.engine (no alembic.ini)."""

from __future__ import annotations

from alembic import context

from convostore.store.models import SQLModel

config = context.config
target_metadata = SQLModel.metadata


def _include_object(obj, name, type_, reflected, compare_to):  # type: ignore[no-untyped-def]
    # Full-text search objects are managed by hand in the migrations, not by the models.
    if type_ == "table" and name and name.startswith("interaction_fts"):  # incl. interaction_fts_state
        return False
    if type_ == "column" and name == "search_vector":
        return False
    if type_ == "index" and name == "ix_interaction_search":
        return False
    return True


def run_migrations_online() -> None:
    connection = config.attributes.get("connection")
    if connection is None:
        raise RuntimeError("convostore migrations run through convostore.store (Store.upgrade or `convostore db upgrade`)")
    context.configure(
        connection=connection,
        target_metadata=target_metadata,
        include_object=_include_object,
        render_as_batch=connection.dialect.name == "sqlite",
        compare_type=True,
    )
    with context.begin_transaction():
        context.run_migrations()


run_migrations_online()
