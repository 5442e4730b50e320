"""Replay runs: create, update, get and list the ``replay_run`` rows."""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any

import orjson
from sqlalchemy import delete, insert, select, update

from ..errors import NotFoundError
from .base import StoreBase
from .rows import R, T, Run, _RUN_JSON, _dumps, _utc


class Runs(StoreBase):
    """The replay-run side of ``Store``."""

    def create_run(self, **values: Any) -> Run:
        values = {k: (_dumps(v) if k in _RUN_JSON else v) for k, v in values.items() if k in R.c}
        values.setdefault("created_at", datetime.now(timezone.utc))
        with self._begin() as conn:
            conn.execute(insert(R).values(**values))
        return self.get_run(values["id"])

    def update_run(self, run_id: str, **values: Any) -> Run:
        values = {k: (_dumps(v) if k in _RUN_JSON else v) for k, v in values.items() if k in R.c and k != "id"}
        with self._begin() as conn:
            if conn.execute(update(R).where(R.c.id == run_id).values(**values)).rowcount == 0:
                raise NotFoundError(f"no replay run {run_id!r}")
        return self.get_run(run_id)

    def _run(self, r: Any) -> Run:
        m = dict(r._mapping)
        for k in _RUN_JSON:
            m[k] = orjson.loads(m[k]) if m[k] else {}
        for k in ("created_at", "finished_at", "heartbeat_at"):
            m[k] = _utc(m.get(k))
        return Run(**m)

    def get_run(self, run_id: str) -> Run:
        with self._connect() as conn:
            r = conn.execute(select(R).where(R.c.id == run_id)).first()
        if r is None:
            raise NotFoundError(f"no replay run {run_id!r}")
        return self._run(r)

    def list_runs(self) -> list[Run]:
        with self._connect() as conn:
            return [self._run(r) for r in conn.execute(select(R).order_by(R.c.created_at.desc(), R.c.id.desc())).all()]

    def delete_run(self, run_id: str) -> int:
        """Remove a run and every interaction recorded for it, in one transaction; the rows removed."""
        with self._begin() as conn:
            removed = conn.execute(delete(T).where(T.c.replay_run_id == run_id)).rowcount
            if conn.execute(delete(R).where(R.c.id == run_id)).rowcount == 0:
                raise NotFoundError(f"no replay run {run_id!r}")
        return int(removed)

