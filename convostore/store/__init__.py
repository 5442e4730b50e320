"""The archive: every read and write of interactions, media and replay runs.

The store knows nothing of the SDK. Writes go through SQLAlchemy Core (no ORM objects
on the hot path); a save costs one parent lookup and one statement, whatever the
chain's length. Reads that could be large (listings, exports) stream.

One module per concern: ``base`` (open, migrate, connections, close), ``rows`` (row
encoding both ways), ``writer`` (save/merge, the SQLite fast path, batched writes),
``queries`` (every read), ``runs`` (replay runs), ``summary`` (the per-conversation
summary and counters the triggers keep), ``maintenance`` (optimize, analyze), ``removal`` (delete, purge).
``Store`` composes them.
"""

from __future__ import annotations

import os

from .rows import Node, Row, Run, Turn
# Encoding helpers, importable from here as before the split (tests compare the two write paths).
from .rows import _COLUMN_ORDER, _defaults, _encode, _sqlite_param, _sqlite_params  # noqa: F401
from .maintenance import Maintenance, OptimizeResult
from .removal import Removal, Removals
from .runs import Runs
from .summary import Conversation, ConversationPage
from .writer import Writer, Writes


class Store(Writes, Runs, Maintenance, Removals):
    """A convostore archive on SQLite (default) or PostgreSQL.

    ``url``: a SQLAlchemy URL or a file path; default ``$CONVOSTORE_DB``, else a file
    in the user data directory. The schema is migrated to head on open (under a lock),
    and writes that processes left spooled are written (``replay=False``: not now).
    ``busy_timeout``: seconds a SQLite write waits for another writer's lock (default
    ``$CONVOSTORE_BUSY_TIMEOUT``, else 30). The recorder's saves go through
    ``save_later`` (a background writer and a durable spool); ``flush()`` waits for them.
    """


def flush_spool(url: str | os.PathLike[str] | None = None) -> int:
    """Write what recorders left in the archive's spool (processes that ended while the
    database was locked or away); returns how many writes went in.

    Raises ``StoreError`` if the database still refuses them: they stay spooled. The same
    happens on its own at every ``Store`` open; this is for doing it now, and knowing.
    """
    with Store(url, replay=False) as store:
        return store.replay_spool()


__all__ = ["Store", "Node", "Row", "Run", "Turn", "Writer", "Conversation", "ConversationPage", "OptimizeResult", "flush_spool", "Removal"]
