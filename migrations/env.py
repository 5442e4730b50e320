"""Alembic environment: configured programmatically by convostore.store.engine (no alembic.ini)."""

from __future__ import annotations

from alembic import context

from convostore.store.engine import include_object
from convostore.store.models import SQLModel

config = context.config
target_metadata = SQLModel.metadata


def run_migrations_online() -> None:
    connection = config.attributes.get("connection")
    if connection is None:
        raise RuntimeError("convostore migrations run through convostore.store (Store.upgrade or `convostore db upgrade`)")
    context.configure(
        connection=connection,
        target_metadata=target_metadata,
        include_object=include_object,
        render_as_batch=connection.dialect.name == "sqlite",
        compare_type=True,
    )
    with context.begin_transaction():
        context.run_migrations()


run_migrations_online()
