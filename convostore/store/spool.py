"""The durable spool: where writes wait, on local disk, while the database cannot take them.

Each process appends to a file of its own (``<pid>-<random>.jsonl``, mode 0600) in the
archive's spool directory: ``<archive>.spool/`` beside a SQLite file, or a directory per
server URL under the user data directory for PostgreSQL. One line per write operation
(``{"seq": n, "op": "save", "row": {...}}``), appended and fsynced before it counts as
durable; ``{"done": n}`` lines mark the prefix already committed to the database. The
owner holds an exclusive ``flock`` on its file for as long as it lives, so a file whose
lock can be taken belongs to a process that died: the next ``Store`` open (or
``convostore db flush``) writes its operations and deletes it. Replaying twice is
harmless: rows are keyed by id.
"""

from __future__ import annotations

import fcntl
import hashlib
import os
import uuid
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import orjson
from sqlalchemy.engine import make_url

#: Row keys holding datetimes (JSON has none: they come back from the spool as text).
TIME_KEYS = ("created", "updated", "recorded_at", "expires_at")


def spool_dir(url: str) -> Path:
    """Where the spool files of the archive at ``url`` live."""
    if url.startswith("sqlite"):
        database = make_url(url).database or "convostore.db"
        return Path(database + ".spool")
    import platformdirs

    safe = make_url(url).render_as_string(hide_password=True)
    digest = hashlib.sha256(safe.encode()).hexdigest()[:16]
    return Path(platformdirs.user_data_dir("convostore", appauthor=False)) / "spool" / digest


def encode(op: dict[str, Any]) -> bytes:
    """One spool line."""
    return orjson.dumps(op, default=str) + b"\n"


def decode(line: bytes) -> dict[str, Any] | None:
    """One operation back, times as datetimes; None for a torn (half-written) last line."""
    try:
        op = orjson.loads(line)
    except orjson.JSONDecodeError:
        return None
    if not isinstance(op, dict):
        return None
    for key in ("row", "fields"):
        values = op.get(key)
        if isinstance(values, dict):
            for name in TIME_KEYS:
                if isinstance(values.get(name), str):
                    values[name] = datetime.fromisoformat(values[name])
    return op


def read_ops(path: Path) -> list[dict[str, Any]]:
    """The operations of one spool file not yet marked done, in order."""
    ops: list[dict[str, Any]] = []
    done = 0
    with open(path, "rb") as fh:
        for line in fh:
            op = decode(line)
            if op is None:
                continue
            if "done" in op:
                done = max(done, int(op["done"]))
            else:
                ops.append(op)
    ops.sort(key=lambda op: int(op.get("seq", 0)))  # one writer appends in order; a guard all the same
    return [op for op in ops if int(op.get("seq", 0)) > done]


class SpoolFile:
    """This process's own spool file, created on first use and locked while we live."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.path: Path | None = None
        self._fd: int | None = None
        self._pid = os.getpid()

    def _open(self) -> int:
        if self._fd is None or self._pid != os.getpid():
            self.directory.mkdir(mode=0o700, parents=True, exist_ok=True)
            self.path = self.directory / f"{os.getpid()}-{uuid.uuid4().hex[:12]}.jsonl"
            fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o600)
            fcntl.flock(fd, fcntl.LOCK_EX)
            self._fd, self._pid = fd, os.getpid()
        return self._fd

    def append(self, ops: list[dict[str, Any]]) -> None:
        """Append and fsync: once this returns, the operations survive a crash."""
        fd = self._open()
        data = b"".join(encode(op) for op in ops)
        while data:
            written = os.write(fd, data)
            data = data[written:]
        os.fsync(fd)

    def mark_done(self, seq: int) -> None:
        """Operations up to ``seq`` are in the database (no fsync: losing it only replays)."""
        if self._fd is not None and self._pid == os.getpid():
            os.write(self._fd, encode({"done": seq}))

    def clear(self) -> None:
        """Everything spooled is committed: start the file afresh."""
        if self._fd is not None and self._pid == os.getpid():
            os.ftruncate(self._fd, 0)

    def close(self, *, remove: bool) -> None:
        if self._fd is not None and self._pid == os.getpid():
            if remove and self.path is not None:
                try:
                    self.path.unlink()
                except FileNotFoundError:
                    pass
            os.close(self._fd)
        self._fd = None

    def forget(self) -> None:
        """In a forked child: drop the parent's descriptor (its lock stays the parent's)."""
        if self._fd is not None and self._pid != os.getpid():
            try:
                os.close(self._fd)
            except OSError:
                pass
            self._fd = None


def orphans(directory: Path) -> Iterator[tuple[Path, int]]:
    """Spool files whose owner died, each locked for the caller: ``(path, fd)``.

    The caller replays the file, then ``release(path, fd, remove=True)``.
    """
    try:
        names = sorted(os.listdir(directory))
    except (FileNotFoundError, NotADirectoryError):
        return
    for name in names:
        if not name.endswith(".jsonl"):
            continue
        path = directory / name
        try:
            fd = os.open(path, os.O_RDWR | os.O_CLOEXEC)
        except FileNotFoundError:
            continue
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)  # a live process's own spool: its writer will get to it
            continue
        if not path.exists():  # replayed and removed by someone else meanwhile
            os.close(fd)
            continue
        yield path, fd


def release(path: Path, fd: int, *, remove: bool) -> None:
    if remove:
        try:
            path.unlink()
        except FileNotFoundError:
            pass
    os.close(fd)


def pending_files(directory: Path) -> int:
    """How many spool files (live or orphaned) hold operations."""
    try:
        return sum(1 for p in directory.glob("*.jsonl") if p.stat().st_size > 0)
    except OSError:
        return 0
