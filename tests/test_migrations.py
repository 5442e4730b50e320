"""The schema: models and migrations agree, on both backends, from a wheel too."""

from __future__ import annotations

import subprocess
import sys
import zipfile
from pathlib import Path

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory

from convostore.store import engine as store_engine
from convostore.store.models import SQLModel

ROOT = Path(__file__).resolve().parents[1]


def test_models_and_migrations_agree(store):
    with store.engine.connect() as conn:
        ctx = MigrationContext.configure(conn, opts={"include_object": store_engine.include_object, "compare_type": True})
        assert compare_metadata(ctx, SQLModel.metadata) == []


def test_schema_head_matches_the_scripts(store):
    with store.engine.connect() as conn:
        script = ScriptDirectory.from_config(store_engine.alembic_config(conn))
    assert script.get_current_head() == store_engine.SCHEMA_HEAD
    assert store_engine.current_revision(store.engine) == store_engine.SCHEMA_HEAD


def test_migrations_run_from_a_built_wheel(tmp_path):
    """A non-editable install finds its migrations inside the package."""
    out = tmp_path / "dist"
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(out), str(ROOT)], check=True, timeout=300)
    wheel = next(out.glob("convostore-*.whl"))
    names = zipfile.ZipFile(wheel).namelist()
    assert "convostore/_migrations/env.py" in names
    assert any(n.startswith("convostore/_migrations/versions/0001") for n in names)
    site = tmp_path / "site"
    zipfile.ZipFile(wheel).extractall(site)
    code = (
        "import sys; from convostore.store import Store, engine;"
        "s = Store(sys.argv[1]); print(engine.migrations_dir()); print(engine.current_revision(s.engine))"
    )
    proc = subprocess.run([sys.executable, "-c", code, str(tmp_path / "w.db")], cwd=tmp_path, capture_output=True, text=True,
                          env={"PYTHONPATH": str(site), "PATH": "/usr/bin:/bin"}, timeout=120)
    assert proc.returncode == 0, proc.stderr
    where, rev = proc.stdout.split()
    assert where.startswith(str(site)) and rev == store_engine.SCHEMA_HEAD


def test_an_archive_at_0001_upgrades_in_place_and_keeps_its_rows(tmp_path):
    """Opening an older archive migrates it; the replay indexes become partial and still serve lookups."""
    import sqlite3

    from alembic import command
    from sqlalchemy import create_engine

    from convostore.records import row_from_exchange
    from convostore.store import Store

    path = tmp_path / "old.db"
    engine = create_engine(f"sqlite:///{path}")
    with engine.begin() as conn:
        command.upgrade(store_engine.alembic_config(conn), "0001")
    engine.dispose()
    raw = sqlite3.connect(path)
    assert "WHERE" not in raw.execute("SELECT sql FROM sqlite_master WHERE name = 'ix_interaction_replay_run_id'").fetchone()[0]
    raw.close()

    from datetime import datetime, timezone

    from tests.test_repack import legacy_insert

    # A row as convostore wrote it at 0001 (JSON text columns).
    legacy_insert(engine, row_from_exchange(
        {"model": "m", "input": "kept"}, {"id": "old-1", "status": "completed"}, api_version="v1",
        recorded_at=datetime.now(timezone.utc), extra={"replay_run_id": "run-1", "source_id": "s-1"}))
    engine.dispose()

    store = Store(path)
    assert store_engine.current_revision(store.engine) == store_engine.SCHEMA_HEAD
    assert store.get("old-1").input_text == "kept"
    assert [r.id for r in store.list(replay_run_id="run-1")] == ["old-1"]
    store.close()
    raw = sqlite3.connect(path)
    sql = raw.execute("SELECT sql FROM sqlite_master WHERE name = 'ix_interaction_replay_run_id'").fetchone()[0]
    plan = " ".join(str(r) for r in raw.execute("EXPLAIN QUERY PLAN SELECT id FROM interaction WHERE replay_run_id = 'run-1'"))
    raw.close()
    assert "IS NOT NULL" in sql and "ix_interaction_replay_run_id" in plan
