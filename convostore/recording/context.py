"""Per-call context: which SDK call an HTTP exchange belongs to, and caller annotations.

Both live in ``contextvars`` so they follow a thread and an asyncio task without
locks: the transport hook reads them to attribute each exchange to the ``create``/``get``
call that caused it, and ``annotate`` lets replay and resume label what gets recorded.
"""

from __future__ import annotations

import contextvars
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

#: Row fields ``annotate`` may set.
ANNOTATION_FIELDS = frozenset({"labels", "replay_run_id", "source_id", "parent_id", "conversation_id", "link"})

_ANNOTATIONS: contextvars.ContextVar[dict[str, Any] | None] = contextvars.ContextVar(
    "convostore_annotations", default=None
)
CURRENT_CALL: contextvars.ContextVar[Call | None] = contextvars.ContextVar("convostore_call", default=None)


@contextmanager
def annotate(**fields: Any) -> Iterator[dict[str, Any]]:
    """Merge ``fields`` into every row recorded inside the block (this thread / task only).

    Nested blocks merge: inner fields win, ``labels`` dicts are merged key by key.
    """
    unknown = set(fields) - ANNOTATION_FIELDS
    if unknown:
        raise TypeError(f"annotate() got unknown field(s): {', '.join(sorted(unknown))}")
    outer = _ANNOTATIONS.get() or {}
    merged = {**outer, **fields}
    if "labels" in fields and isinstance(outer.get("labels"), dict) and isinstance(fields["labels"], dict):
        merged["labels"] = {**outer["labels"], **fields["labels"]}
    token = _ANNOTATIONS.set(merged)
    try:
        yield merged
    finally:
        _ANNOTATIONS.reset(token)


def current_annotations() -> dict[str, Any]:
    """The annotations in force here (a fresh dict, safe to change)."""
    return dict(_ANNOTATIONS.get() or {})


@dataclass
class Call:
    """One SDK method call and the HTTP exchanges it made (hops, retries)."""

    op: str  # create | get | delete | cancel
    annotations: dict[str, Any]
    stream: bool = False
    hop_ids: list[str] = field(default_factory=list)
    last_request: bytes | None = None
    last_api_version: str | None = None
    failures: list[BaseException] = field(default_factory=list)
    recorded: int = 0
    #: Stream events handed to the caller so far (all hops): tells a stream read to its
    #: end from one abandoned early, whatever the network had already delivered.
    events_read: int = 0
    counting: bool = False
    #: The token the last hop answered with (``requires_continuation``): a proxy, which
    #: sees each hop as its own request, finds the call the next hop continues by it.
    continuation_token: str | None = None

    def restart(self, annotations: dict[str, Any]) -> None:
        """The call's request was replaced (a rebuilt chain): what it records from now on
        carries ``annotations``, and hops and the remembered request start over."""
        self.annotations = {**self.annotations, **annotations}
        self.hop_ids.clear()
        self.last_request = None
