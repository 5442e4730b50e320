"""Fixtures: real stores on disk (SQLite) and on the local PostgreSQL server.

PostgreSQL tests are required in CI (``CONVOSTORE_REQUIRE_PG=1``, set by .ci/run) and
skipped elsewhere when no server answers on 127.0.0.1:5432.
"""

from __future__ import annotations

import os
import uuid

import pytest

from convostore.store import Store

PG_BASE = os.environ.get("CONVOSTORE_TEST_PG", "postgresql+psycopg://postgres@127.0.0.1:5432/test")


def _pg_admin():
    import psycopg

    dsn = PG_BASE.replace("postgresql+psycopg://", "postgresql://")
    try:
        return psycopg.connect(dsn, autocommit=True, connect_timeout=15)
    except psycopg.OperationalError as exc:
        if os.environ.get("CONVOSTORE_REQUIRE_PG"):
            pytest.fail(f"PostgreSQL is required (CONVOSTORE_REQUIRE_PG=1) but unreachable: {exc}")
        pytest.skip(f"no PostgreSQL server on {PG_BASE} ({exc}); start one (user postgres, trust, database test) or point CONVOSTORE_TEST_PG at yours; CONVOSTORE_REQUIRE_PG=1 makes this a failure, as in CI")


def pg_url(schema: str) -> str:
    return f"{PG_BASE}?options=-csearch_path%3D{schema}"


@pytest.fixture
def pg_schema():
    """A fresh PostgreSQL schema, dropped afterwards."""
    admin = _pg_admin()
    schema = f"t_{uuid.uuid4().hex[:12]}"
    admin.execute(f"CREATE SCHEMA {schema}")
    try:
        yield schema
    finally:
        admin.execute(f"DROP SCHEMA {schema} CASCADE")
        admin.close()


@pytest.fixture
def sqlite_store(tmp_path):
    s = Store(tmp_path / "archive.db")
    yield s
    s.close()


@pytest.fixture
def pg_store(pg_schema):
    s = Store(pg_url(pg_schema))
    yield s
    s.close()


@pytest.fixture(params=["sqlite", "postgres"])
def store(request):
    return request.getfixturevalue("sqlite_store" if request.param == "sqlite" else "pg_store")
