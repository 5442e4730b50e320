"""The background writer: the recorder's saves leave the caller's thread.

``submit`` puts a write operation (save a row, update fields, mark a server state) in an
ordered in-memory queue and returns: no database work on the calling thread or the
event loop. Two daemon threads own it:

- the *writer* applies operations in order against the database, one at a time (each
  its own short transaction), retrying with backoff while the database is locked,
  slow or unreachable;
- the *spooler* appends every operation not committed within ``spool_after`` seconds
  to this process's spool file (``spool.py``) and fsyncs it: from then on it survives a
  crash. It also aborts a database call stuck past ``write_timeout`` (a server that
  stopped answering) by shutting its socket down, so the writer can retry.

Operations stay visible to reads (``view``) until committed: a chain continued right
after its last turn was recorded, or while the database is away, resumes from them.
"""

from __future__ import annotations

import atexit
import logging
import os
import socket
import threading
import time
import weakref
from collections import deque
from typing import TYPE_CHECKING, Any

from . import spool as _spool

if TYPE_CHECKING:  # pragma: no cover
    from .writer import Writes

log = logging.getLogger("convostore")

#: Seconds an operation may wait for the database before it is spooled to disk.
SPOOL_AFTER = 0.1
#: Seconds one database call may take before the spooler aborts it.
WRITE_TIMEOUT = 15.0
#: Seconds a write may wait before the spool's warning is logged (a failure logs at once).
WARN_AFTER = 5.0
#: Longest pause between two attempts while the database is failing.
MAX_BACKOFF = 0.5
#: Seconds ``Store.close()`` / interpreter exit wait for the database before leaving the rest spooled.
CLOSE_TIMEOUT = 5.0

_LIVE: "weakref.WeakSet[BackgroundWriter]" = weakref.WeakSet()


class BackgroundWriter:
    """The ordered queue, its writer thread and its spooler thread (one per ``Store``)."""

    def __init__(self, store: "Writes", *, spool_after: float | None = None, write_timeout: float | None = None) -> None:
        self.store = store
        self.spool_after = SPOOL_AFTER if spool_after is None else spool_after
        self.write_timeout = WRITE_TIMEOUT if write_timeout is None else write_timeout
        self.spool = _spool.SpoolFile(_spool.spool_dir(store.url))
        self._cond = threading.Condition()
        self._file_lock = threading.Lock()  # spool file writes, truncation and done marks
        self._ops: dict[int, dict[str, Any]] = {}  # seq -> op, in order; removed once committed
        self._to_spool: deque[dict[str, Any]] = deque()  # ops not yet spooled, in order
        self._by_id: dict[str, list[dict[str, Any]]] = {}
        self._seq = 0
        self._spooled = 0  # highest seq appended to the spool
        self._spool_dirty = False  # the spool file holds operations not yet committed
        self._stopping = False
        self._busy: tuple[float, Any] | None = None  # (since, driver connection) of a DB call
        self.last_error: str | None = None
        self._warned = False
        self._pid = os.getpid()
        self._threads: list[threading.Thread] = []
        _LIVE.add(self)

    # --- the caller's side -----------------------------------------------------------

    def submit(self, op: dict[str, Any]) -> None:
        """Queue one operation; returns at once."""
        if self._pid != os.getpid():
            self._after_fork()
        with self._cond:
            if self._stopping:
                raise RuntimeError("the store is closed")
            self._seq += 1
            op["seq"] = self._seq
            op["t"] = time.monotonic()
            self._ops[self._seq] = op
            self._to_spool.append(op)
            self._by_id.setdefault(op["id"], []).append(op)
            if not self._threads:
                self._start()
            self._cond.notify_all()

    def view(self, iid: str) -> list[dict[str, Any]]:
        """The operations on ``iid`` not yet committed, oldest first."""
        with self._cond:
            return list(self._by_id.get(iid, ()))

    def pending(self) -> int:
        with self._cond:
            return len(self._ops)

    def flush(self, timeout: float | None = None) -> bool:
        """Wait until every queued operation is committed; False if ``timeout`` passed first."""
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._cond:
            while self._ops:
                left = None if deadline is None else deadline - time.monotonic()
                if left is not None and left <= 0:
                    return False
                self._cond.wait(left if left is not None else 1.0)
        return True

    def close(self, timeout: float = CLOSE_TIMEOUT) -> int:
        """Flush with a bounded wait, spool what is left, stop. Returns operations left spooled."""
        if self._pid != os.getpid():
            return 0
        self.flush(timeout)
        with self._cond:
            self._stopping = True
            self._cond.notify_all()
        for t in self._threads:  # the spooler first finishes what it is appending
            if t is not threading.current_thread():
                t.join(timeout=1.0)
        with self._cond:
            left = [op for op in self._to_spool if op["seq"] in self._ops]
            self._to_spool.clear()
        if left:
            self._append(left)
        with self._cond:
            remaining = len(self._ops)
            clean = not remaining and not self._spool_dirty
        self.spool.close(remove=clean)
        return remaining

    # --- threads ----------------------------------------------------------------------

    def _start(self) -> None:
        for target, name in ((self._write_loop, "convostore-writer"), (self._spool_loop, "convostore-spooler")):
            t = threading.Thread(target=target, name=name, daemon=True)
            t.start()
            self._threads.append(t)

    def _after_fork(self) -> None:
        """A forked child starts with an empty queue, no threads and a spool file of its own."""
        self._cond = threading.Condition()
        self._file_lock = threading.Lock()
        self._ops, self._by_id, self._threads, self._to_spool = {}, {}, [], deque()
        self._spooled, self._spool_dirty, self._busy = self._seq, False, None
        self.spool.forget()
        self._pid = os.getpid()

    def _next(self) -> dict[str, Any] | None:
        with self._cond:
            while not self._ops or self._stopping:
                if self._stopping:
                    return None
                self._cond.wait()
            return next(iter(self._ops.values()))

    def _write_loop(self) -> None:
        backoff = 0.01
        while True:
            op = self._next()
            if op is None:
                return
            try:
                self.store._apply(op, self)
            except Exception as exc:  # noqa: BLE001 - the database is away: keep it, retry
                self.last_error = f"{type(exc).__name__}: {exc}".splitlines()[0]
                if backoff >= MAX_BACKOFF:
                    log.debug("convostore: database write failed, retrying: %s", self.last_error)
                with self._cond:
                    if self._stopping:
                        return
                    self._cond.wait(backoff)
                backoff = min(backoff * 2, MAX_BACKOFF)
                continue
            backoff = 0.01
            self.last_error = None
            self._committed(op)

    def _committed(self, op: dict[str, Any]) -> None:
        seq = op["seq"]
        with self._cond:
            self._ops.pop(seq, None)
            same = self._by_id.get(op["id"])
            if same is not None:
                if op in same:
                    same.remove(op)
                if not same:
                    del self._by_id[op["id"]]
            self._cond.notify_all()
            touch = self._spool_dirty and seq <= self._spooled
        if touch:
            with self._file_lock:
                with self._cond:
                    clean = self._oldest() > self._spooled
                    if clean:
                        self._spool_dirty = False
                try:
                    if clean:
                        self.spool.clear()
                        if self._warned:
                            self._warned = False
                            log.info("convostore: the database answers again; spooled writes are in")
                    else:
                        self.spool.mark_done(seq)
                except OSError as exc:  # pragma: no cover - a replay later is harmless
                    log.debug("convostore: spool bookkeeping failed: %s", exc)

    def _spool_loop(self) -> None:
        while True:
            with self._cond:
                if self._stopping:
                    return
                now = time.monotonic()
                due: list[dict[str, Any]] = []
                queue = self._to_spool
                while queue and (queue[0]["seq"] not in self._ops or now - queue[0]["t"] >= self.spool_after):
                    op = queue.popleft()
                    if op["seq"] in self._ops:  # committed meanwhile: nothing to keep
                        due.append(op)
                if not due:
                    wait = (queue[0]["t"] + self.spool_after - now) if queue else None
                    busy = self._busy
                    if busy is not None:
                        stuck = busy[0] + self.write_timeout - now
                        wait = stuck if wait is None else min(wait, stuck)
                    if wait is None or wait > 0:
                        self._cond.wait(None if wait is None else max(wait, 0.001))
                        continue
            if due:
                self._append(due)
            self._abort_stuck()

    def _oldest(self) -> float:
        """The seq of the oldest operation not committed (infinity: none). Under ``_cond``."""
        return next(iter(self._ops), float("inf"))

    def _append(self, ops: list[dict[str, Any]]) -> None:
        lines = [{k: v for k, v in op.items() if k != "t"} for op in ops]
        with self._file_lock:
            try:
                self.spool.append(lines)
            except OSError as exc:
                log.error("convostore: cannot spool %d write(s) to %s: %s", len(ops), self.spool.directory, exc)
                return
            with self._cond:
                self._spooled = max(self._spooled, ops[-1]["seq"])
                self._spool_dirty = self._oldest() <= self._spooled
                clean = not self._spool_dirty
            if clean:  # all committed while we wrote: nothing to keep
                self.spool.clear()
        # Once per outage, not once per write; a database merely slow to answer (under
        # load) is no news to the application: said only once it failed or took 5 s.
        if not self._warned and (self.last_error or time.monotonic() - ops[0]["t"] > WARN_AFTER):
            self._warned = True
            log.warning(
                "convostore: the database is slow or away (%s); writes are spooled to %s until it answers",
                self.last_error or "no answer yet",
                self.spool.path,
            )

    def _abort_stuck(self) -> None:
        """Shut the socket of a database call stuck past ``write_timeout`` (it then raises)."""
        busy = self._busy
        if busy is None or time.monotonic() - busy[0] < self.write_timeout:
            return
        self._busy = None
        driver = busy[1]
        interrupt = getattr(driver, "interrupt", None)  # sqlite3
        if callable(interrupt):
            interrupt()
            return
        pgconn = getattr(driver, "pgconn", None)  # psycopg
        fd = getattr(pgconn, "socket", None)
        if isinstance(fd, int) and fd >= 0:
            try:
                sock = socket.socket(fileno=os.dup(fd))
                sock.shutdown(socket.SHUT_RDWR)
                sock.close()
                log.warning("convostore: a database call hung for %.0f s; its connection was closed", self.write_timeout)
            except OSError:
                pass

    def busy(self, driver: Any) -> None:
        """The writer is inside a database call on ``driver`` (None: it returned)."""
        self._busy = (time.monotonic(), driver) if driver is not None else None


def _close_all() -> None:
    """Interpreter exit: each store flushes with a bounded wait and spools the rest."""
    for bg in list(_LIVE):
        try:
            bg.close()
        except Exception as exc:  # noqa: BLE001 - exiting anyway
            log.error("convostore: could not flush at exit: %s", exc)


atexit.register(_close_all)
