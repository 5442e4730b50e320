"""Keeping a large archive fast: planner statistics, the search index, free space.

``optimize`` is ``convostore db optimize``. ``analyze`` runs after a large import so a
PostgreSQL server with autovacuum off (or not yet woken) plans the next queries from
the archive's real size instead of an empty table's.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from sqlalchemy.exc import SQLAlchemyError

from ..errors import StoreError
from . import summary
from .base import StoreBase

if TYPE_CHECKING:  # pragma: no cover
    from . import Store

#: An import that adds at least this many rows refreshes the planner's statistics.
ANALYZE_AFTER = 10_000
_TABLES = ("interaction", "conversation", "interaction_count", "media", "replay_run")


@dataclass
class OptimizeResult:
    """What ``optimize`` did, and the archive's size before and after (SQLite file or
    PostgreSQL tables, bytes)."""

    analyzed: bool
    search_index_merged: bool
    vacuumed: bool
    counters_folded: int
    bytes_before: int | None
    bytes_after: int | None
    seconds: float


def _size(store: "Store", conn: Any) -> int | None:
    if store.dialect == "sqlite":
        path = store.path
        if not path or not os.path.exists(path):
            return None
        return sum(os.path.getsize(p) for p in (path, path + "-wal") if os.path.exists(p))
    names = ", ".join(f"'{t}'" for t in _TABLES)
    return int(conn.exec_driver_sql(
        f"SELECT coalesce(sum(pg_total_relation_size(c.oid)), 0) FROM pg_class c WHERE c.oid IN "
        f"(SELECT to_regclass(n) FROM unnest(ARRAY[{names}]) n)"
    ).scalar() or 0)


def _fts_tables(driver: Any) -> list[str]:
    """SQLite's FTS5 tables over the archive (whatever their name)."""
    rows = driver.execute(
        "SELECT name FROM sqlite_master WHERE type = 'table' AND sql LIKE 'CREATE VIRTUAL TABLE%' AND lower(sql) LIKE '%fts5%'"
    ).fetchall()
    return [r[0] for r in rows]


def optimize(store: "Store", *, vacuum: bool = False) -> OptimizeResult:
    """Refresh the planner's statistics, merge the full-text index's segments, fold
    PostgreSQL's per-backend counters; with ``vacuum``, also give free pages back to
    the file system (SQLite rewrites the file: it takes the write lock for a while)."""
    started = time.perf_counter()
    folded = 0
    merged = False
    try:
        if store.dialect == "sqlite":
            raw = store.engine.raw_connection()
            try:
                driver: Any = raw.driver_connection
                before = _size(store, None)
                for name in _fts_tables(driver):
                    driver.execute(f"INSERT INTO {name}({name}) VALUES ('optimize')")
                    merged = True
                driver.execute("ANALYZE")
                if vacuum:
                    driver.execute("VACUUM")
                driver.execute("PRAGMA wal_checkpoint(TRUNCATE)")
                after = _size(store, None)
            finally:
                raw.close()
        else:
            with store.engine.begin() as conn:
                before = _size(store, conn)
                folded = summary.fold_counters(conn)
            with store.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
                verb = "VACUUM (ANALYZE)" if vacuum else "ANALYZE"
                for table in _TABLES:
                    conn.exec_driver_sql(f"{verb} {table}")
                after = _size(store, conn)
    except SQLAlchemyError as exc:
        raise StoreError(f"cannot optimize {store.display_url}: {exc.__class__.__name__}: {getattr(exc, 'orig', exc)}") from exc
    return OptimizeResult(analyzed=True, search_index_merged=merged, vacuumed=vacuum, counters_folded=folded,
                          bytes_before=before, bytes_after=after, seconds=time.perf_counter() - started)


def analyze(store: "Store") -> None:
    """Refresh the planner's statistics (PostgreSQL ``ANALYZE``; SQLite ``PRAGMA optimize``).

    Called after a large import, so a server with autovacuum off still plans well."""
    try:
        if store.dialect == "sqlite":
            with store.engine.begin() as conn:
                conn.exec_driver_sql("PRAGMA optimize")
        else:
            with store.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
                for table in _TABLES:
                    conn.exec_driver_sql(f"ANALYZE {table}")
    except SQLAlchemyError as exc:
        raise StoreError(f"cannot analyze {store.display_url}: {getattr(exc, 'orig', exc)}") from exc


class Maintenance(StoreBase):
    """``Store.optimize`` and ``Store.analyze``."""

    def optimize(self, *, vacuum: bool = False) -> OptimizeResult:
        """Planner statistics, the search index's segments, PostgreSQL's counters; ``vacuum``
        also gives free space back. See ``convostore db optimize``."""
        return optimize(self, vacuum=vacuum)  # type: ignore[arg-type]

    def analyze(self) -> None:
        """Refresh the planner's statistics (after a large import)."""
        analyze(self)  # type: ignore[arg-type]
