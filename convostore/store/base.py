"""A store's lifecycle: URL resolution, migration on open, the engines and the
connections every other part of the store borrows (``_begin`` for writes, ``_connect``
for reads that never take SQLite's write lock), and close."""

from __future__ import annotations

import logging
import os
import threading
from datetime import datetime
from typing import Any, Self

from sqlalchemy import text
from sqlalchemy.engine import Engine, make_url
from sqlalchemy.exc import SQLAlchemyError

from ..errors import StoreError
from . import engine as _engine
from . import repack as _repack
from .background import BackgroundWriter
from .rows import _LinkRow

log = logging.getLogger("convostore")


class StoreBase:
    """What every part of ``Store`` shares: the URL, the engines, the caches, the lock."""

    def __init__(
        self,
        url: str | os.PathLike[str] | None = None,
        *,
        retention: Any = "paid",
        migrate: bool = True,
        replay: bool = True,
        busy_timeout: float | None = None,
    ) -> None:
        self.url = _engine.resolve_url(url)
        self.busy_timeout = _engine.busy_timeout(busy_timeout)
        self.retention = retention
        self.dialect = "sqlite" if self.url.startswith("sqlite") else "postgresql"
        # The recorder's SQLite fast path writes through one driver connection of its
        # own, taken from the pool once: threads of this process queue on this lock
        # (woken at once) rather than on SQLite's busy handler (which polls and sleeps).
        self._lock = threading.Lock()
        self._fast: Any = None  # (pid, pooled connection) for _save_sqlite_fast
        self._reader: Engine | None = None
        self._status: dict[str, tuple[str | None, datetime | None]] = {}
        self._links: dict[str, _LinkRow] = {}  # id -> what _link needs of it, for rows saved here
        self._bg: BackgroundWriter | None = None  # the recorder's queue (save_later), made on first use
        self._bg_engine: Engine | None = None  # PostgreSQL: the background writer's own connections
        self._bg_conn: Any = None
        self._engine: Engine | None = _engine.create(self.url, busy=self.busy_timeout)
        try:
            with _engine.reader(self._engine).connect() as conn:  # opening reads: no write lock
                conn.execute(text("SELECT 1"))
            if migrate and _engine.current_revision(self._engine) != _engine.SCHEMA_HEAD:
                _engine.upgrade(self._engine)
        except SQLAlchemyError as exc:
            self._engine.dispose()
            self._engine = None
            raise StoreError(f"cannot open database {self.display_url}: {_reason(exc)}") from exc
        if migrate:
            self._repack_quietly()
        if replay:
            self._replay_quietly()

    def _repack_quietly(self) -> None:
        """Pack rows stored before schema 0008 (resumable batches; see ``repack``). An
        archive that refuses writes (a read-only file) reads them as they are."""
        try:
            if _repack.pending(self.engine):
                _repack.run(self.engine, self.dialect)
        except SQLAlchemyError as exc:
            log.warning("convostore: rows from before schema 0008 not packed yet (%s); they read as before", _reason(exc))

    def _replay_quietly(self) -> None:
        """Write what dead processes left spooled; a database that still refuses waits for later."""
        try:
            self.replay_spool()
        except Exception as exc:  # noqa: BLE001 - the rows stay spooled for the next open or `db flush`
            log.warning("convostore: spooled writes not written yet (%s); they stay spooled", exc)

    def replay_spool(self) -> int:  # pragma: no cover - defined by the write side
        raise NotImplementedError

    # --- lifecycle -----------------------------------------------------------------

    @property
    def display_url(self) -> str:
        return make_url(self.url).render_as_string(hide_password=True)

    @property
    def path(self) -> str | None:
        """The SQLite file, if this store is one."""
        return make_url(self.url).database if self.dialect == "sqlite" else None

    def __repr__(self) -> str:
        return f"Store({self.display_url!r})"

    def close(self) -> None:
        """Flush queued writes (a bounded wait, then the rest stays spooled) and release the database."""
        if self._bg is not None:
            self._bg.close()
            self._bg = None
        if self._bg_conn is not None:
            try:
                self._bg_conn.close()
            except Exception:  # noqa: BLE001 - a dead connection
                pass
            self._bg_conn = None
        if self._bg_engine is not None:
            self._bg_engine.dispose()
            self._bg_engine = None
        with self._lock:
            if self._fast is not None and self._fast[0] == os.getpid():
                self._fast[1].close()  # back to the pool, which dispose() then closes
            self._fast = None
        if self._engine is not None:
            self._engine.dispose()
            self._engine = None
            self._reader = None

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    @property
    def engine(self) -> Engine:
        if self._engine is None:
            raise StoreError(f"the store {self.display_url} is closed")
        return self._engine

    def upgrade(self) -> str:
        """Apply pending migrations; returns the schema revision."""
        try:
            _engine.upgrade(self.engine)
            _repack.run(self.engine, self.dialect)
            return _engine.current_revision(self.engine) or ""
        except SQLAlchemyError as exc:
            raise StoreError(f"cannot upgrade {self.display_url}: {_reason(exc)}") from exc

    def _begin(self) -> Any:
        try:
            return self.engine.begin()
        except SQLAlchemyError as exc:
            raise StoreError(f"cannot write to {self.display_url}: {_reason(exc)}") from exc

    def _connect(self) -> Any:
        """A connection for reads: on SQLite it does not take the write lock."""
        try:
            if self._reader is None:
                self._reader = _engine.reader(self.engine)
            return self._reader.connect()
        except SQLAlchemyError as exc:
            raise StoreError(f"cannot read {self.display_url}: {_reason(exc)}") from exc


def _reason(exc: BaseException) -> str:
    orig = getattr(exc, "orig", None)
    msg = str(orig or exc).strip().splitlines()[0] if str(orig or exc).strip() else type(exc).__name__
    return msg
