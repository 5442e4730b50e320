"""The tables. JSON columns hold orjson text: byte-faithful (key order kept), same on both backends."""

from __future__ import annotations

from datetime import datetime
from typing import Optional

from sqlalchemy import Column, DateTime, Index, Text, text
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
    expires_at: Optional[datetime] = Field(default=None, sa_column=_ts(index=True))
    server_state: Optional[str] = Field(default=None, index=True)
    labels: Optional[str] = Field(default=None, sa_type=Text)
    error: Optional[str] = Field(default=None, sa_type=Text)
    context_hash: Optional[str] = Field(default=None, index=True)
    hop_index: int = 0
    api_version: Optional[str] = None
    replay_run_id: Optional[str] = None  # partial index in __table_args__
    source_id: Optional[str] = None  # partial index in __table_args__


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
