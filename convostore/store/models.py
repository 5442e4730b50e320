"""The tables. JSON columns hold orjson text: byte-faithful (key order kept), same on both backends."""

from __future__ import annotations

from datetime import datetime
from typing import Optional

from sqlalchemy import BigInteger, Column, DateTime, Index, LargeBinary, Text, text
from sqlmodel import Field, SQLModel


def _ts(index: bool = False, nullable: bool = True) -> Column:  # type: ignore[type-arg]
    return Column(DateTime(timezone=True), index=index, nullable=nullable)


class Interaction(SQLModel, table=True):
    """One server interaction, continuation hop, or failed attempt."""

    __tablename__ = "interaction"
    __table_args__ = (
        Index("ix_interaction_conversation_recorded", "conversation_id", "recorded_at"),
        # Replay columns are NULL on recorded rows: index only the replayed ones (0002).
        Index("ix_interaction_replay_run_id", "replay_run_id",
              sqlite_where=text("replay_run_id IS NOT NULL"), postgresql_where=text("replay_run_id IS NOT NULL")),
        Index("ix_interaction_source_id", "source_id",
              sqlite_where=text("source_id IS NOT NULL"), postgresql_where=text("source_id IS NOT NULL")),
    )

    id: str = Field(primary_key=True)
    conversation_id: str  # indexed with recorded_at below
    parent_id: Optional[str] = Field(default=None, index=True)
    previous_interaction_id: Optional[str] = None
    link: Optional[str] = None
    model: Optional[str] = None
    agent: Optional[str] = None
    status: Optional[str] = None
    partial: bool = False
    store: bool = True
    background: bool = False
    stream: bool = False
    request_json: Optional[str] = Field(default=None, sa_type=Text)
    response_json: Optional[str] = Field(default=None, sa_type=Text)
    input_steps: Optional[str] = Field(default=None, sa_type=Text)
    output_steps: Optional[str] = Field(default=None, sa_type=Text)
    input_text: Optional[str] = Field(default=None, sa_type=Text)
    output_text: Optional[str] = Field(default=None, sa_type=Text)
    usage_json: Optional[str] = Field(default=None, sa_type=Text)
    input_tokens: Optional[int] = None
    output_tokens: Optional[int] = None
    total_tokens: Optional[int] = None
    created: Optional[datetime] = Field(default=None, sa_column=_ts())
    updated: Optional[datetime] = Field(default=None, sa_column=_ts())
    recorded_at: datetime = Field(sa_column=_ts(index=True, nullable=False))
    latency_ms: Optional[float] = None
    expires_at: Optional[datetime] = Field(default=None, sa_column=_ts())  # unindexed since 0008: expiring reads `conversation`
    server_state: Optional[str] = Field(default=None, index=True)
    labels: Optional[str] = Field(default=None, sa_type=Text)
    error: Optional[str] = Field(default=None, sa_type=Text)
    context_hash: Optional[str] = Field(default=None, index=True)
    hop_index: int = 0
    api_version: Optional[str] = None
    replay_run_id: Optional[str] = None  # partial index in __table_args__
    source_id: Optional[str] = None  # partial index in __table_args__
    # 0008: request, response (and input/output steps and usage where they do not derive
    # from those) packed in one value (store/packing.py); the JSON columns above are then
    # NULL. Rows with inline-media references, or written before 0008, use the columns.
    body: Optional[bytes] = Field(default=None, sa_type=LargeBinary)
    thought_tokens: Optional[int] = None  # 0008: from usage (0 when absent there); NULL: no usage
    cached_tokens: Optional[int] = None  # 0008: likewise


class Media(SQLModel, table=True):
    """Inline media (base64), kept once by content hash."""

    __tablename__ = "media"

    sha256: str = Field(primary_key=True)
    mime_type: Optional[str] = None
    data: str = Field(sa_type=Text)
    size: int = 0


class ReplayRun(SQLModel, table=True):
    """A replay of stored conversations on another model."""

    __tablename__ = "replay_run"

    id: str = Field(primary_key=True)
    source_conversation_id: Optional[str] = Field(default=None, index=True)
    source_head_id: Optional[str] = None
    model: Optional[str] = None
    agent: Optional[str] = None
    mode: str = "forced"
    settings: Optional[str] = Field(default=None, sa_type=Text)
    status: str = "running"
    created_at: datetime = Field(sa_column=_ts(nullable=False))
    finished_at: Optional[datetime] = Field(default=None, sa_column=_ts())
    summary: Optional[str] = Field(default=None, sa_type=Text)
    heartbeat_at: Optional[datetime] = Field(default=None, sa_column=_ts())  # 0007: a live replay writes it every few seconds


class ImportJournal(SQLModel, table=True):
    """What a SQLite import has committed so far (it commits in bounded batches), so a
    failed or killed import can be undone: ``job`` (its owner, ``host pid``), ``rows``
    (a rowid range it inserted), ``run`` (a replay run it added), ``replaced`` (the
    export line of a stored row it replaced). Empty unless an import is running."""

    __tablename__ = "import_journal"

    seq: Optional[int] = Field(default=None, primary_key=True)
    import_id: str = Field(index=True)
    kind: str
    lo: Optional[int] = None
    hi: Optional[int] = None
    ref: Optional[str] = Field(default=None, sa_type=Text)


class Conversation(SQLModel, table=True):
    """One row per conversation, kept exact by triggers on ``interaction`` (migration 0005).

    What listing, filtering and ``expiring`` need without reading the conversation's
    turns: its first words, size, newest turn (``head_*``) and newest live turn
    (``live_*``: the one a continuation names, and when the server forgets it).
    """

    __tablename__ = "conversation"
    __table_args__ = (
        Index("ix_conversation_updated", "updated_at", "id"),
        Index("ix_conversation_live_expires", "live_expires_at",
              sqlite_where=text("live_expires_at IS NOT NULL"), postgresql_where=text("live_expires_at IS NOT NULL")),
    )

    id: str = Field(primary_key=True)
    replay: bool = False
    turns: int = 0
    tokens: int = Field(default=0, sa_type=BigInteger)
    first_id: Optional[str] = None
    first_input: Optional[str] = Field(default=None, sa_type=Text)
    started_at: Optional[datetime] = Field(default=None, sa_column=_ts())
    updated_at: Optional[datetime] = Field(default=None, sa_column=_ts())
    head_id: Optional[str] = None
    model: Optional[str] = None
    status: Optional[str] = None
    server_state: Optional[str] = None
    labels: Optional[str] = Field(default=None, sa_type=Text)
    live_turns: int = 0
    live_head_id: Optional[str] = None
    live_expires_at: Optional[datetime] = Field(default=None, sa_column=_ts())
    live_at: Optional[datetime] = Field(default=None, sa_column=_ts())


class InteractionCount(SQLModel, table=True):
    """Interactions and tokens by (model, status, server state), kept exact by triggers
    (migration 0005): ``stats`` sums a few rows instead of scanning the archive.

    NULL is stored as ''. ``slot`` is 0 on SQLite (one writer at a time); on PostgreSQL
    it is the writing backend's pid, so concurrent transactions (an import and the
    recorders) never wait on one another's counter rows; ``db optimize`` folds them.
    """

    __tablename__ = "interaction_count"

    slot: int = Field(default=0, primary_key=True)
    model: str = Field(default="", primary_key=True)
    status: str = Field(default="", primary_key=True)
    server_state: str = Field(default="", primary_key=True)
    n: int = Field(default=0, sa_type=BigInteger)
    tokens: int = Field(default=0, sa_type=BigInteger)
    input_tokens: int = Field(default=0, sa_type=BigInteger)
    output_tokens: int = Field(default=0, sa_type=BigInteger)
    # 0008: what cost needs, exact under every write (Store.usage reads these): rows with
    # usage, their thought and cached tokens; the same sums for prompts past
    # LONG_CONTEXT_TOKENS, which the price table bills at its long-context rates.
    calls: int = Field(default=0, sa_type=BigInteger)
    thought_tokens: int = Field(default=0, sa_type=BigInteger)
    cached_tokens: int = Field(default=0, sa_type=BigInteger)
    long_calls: int = Field(default=0, sa_type=BigInteger)
    long_input: int = Field(default=0, sa_type=BigInteger)
    long_output: int = Field(default=0, sa_type=BigInteger)
    long_thought: int = Field(default=0, sa_type=BigInteger)
    long_cached: int = Field(default=0, sa_type=BigInteger)


class SummaryBulk(SQLModel, table=True):
    """SQLite only: holds a row while a bulk import's transaction is open; the import
    counts its own rows into the summary tables a batch at a time, so the insert
    trigger stands aside (``summary.begin_bulk``). Empty otherwise."""

    __tablename__ = "summary_bulk"

    id: int = Field(default=1, primary_key=True)


class BodyBackfill(SQLModel, table=True):
    """While rows stored before 0008 are being packed into ``body`` (``store/repack.py``,
    in batches): the last id done, so an interrupted pass resumes there. Gone when done."""

    __tablename__ = "body_backfill"

    id: int = Field(default=1, primary_key=True)
    after: str = Field(sa_type=Text)
