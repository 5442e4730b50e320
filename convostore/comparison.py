"""A conversation and its replay runs, side by side, turn by turn."""

from __future__ import annotations

import difflib
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from .errors import ConvostoreError, NotFoundError
from .replaying import ReplayRun, _run_from_row, source_head, source_turns

if TYPE_CHECKING:  # pragma: no cover
    from .store import Store


@dataclass
class Answer:
    """One model's answer to one source turn."""

    id: str | None
    text: str
    status: str
    latency_ms: float | None = None
    tokens: int | None = None
    similarity: float | None = None  # to the original answer, 0..1

    @property
    def length(self) -> int:
        return len(self.text)

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "text": self.text,
            "status": self.status,
            "latency_ms": self.latency_ms,
            "tokens": self.tokens,
            "similarity": self.similarity,
            "length": self.length,
        }


@dataclass
class TurnComparison:
    index: int
    source_id: str
    input_text: str
    original: Answer
    replays: dict[str, Answer] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return {
            "index": self.index,
            "source_id": self.source_id,
            "input_text": self.input_text,
            "original": self.original.to_json(),
            "replays": {k: v.to_json() for k, v in self.replays.items()},
        }


@dataclass
class Comparison:
    """Per turn, the original and each run's answer; per run, totals and means."""

    head_id: str
    original_model: str | None
    runs: list[ReplayRun]
    turns: list[TurnComparison]

    def totals(self) -> dict[str, dict[str, Any]]:
        out: dict[str, dict[str, Any]] = {}
        columns: list[tuple[str, list[Answer]]] = [("original", [t.original for t in self.turns])]
        columns += [(r.id, [t.replays[r.id] for t in self.turns if r.id in t.replays]) for r in self.runs]
        for key, answers in columns:
            lat = [a.latency_ms for a in answers if a.latency_ms is not None]
            tok = [a.tokens for a in answers if a.tokens is not None]
            sim = [a.similarity for a in answers if a.similarity is not None]
            out[key] = {
                "turns": len(answers),
                "diverged": sum(a.status == "diverged" for a in answers),
                "failed": sum(a.status == "failed" for a in answers),
                "missing": sum(a.status == "missing" for a in answers),
                "total_tokens": sum(tok),
                "mean_latency_ms": round(sum(lat) / len(lat), 1) if lat else None,
                "mean_length": round(sum(a.length for a in answers) / len(answers), 1) if answers else None,
                "mean_similarity": round(sum(sim) / len(sim), 3) if sim else None,
            }
        return out

    def to_json(self) -> dict[str, Any]:
        return {
            "head_id": self.head_id,
            "original_model": self.original_model,
            "runs": [r.to_json() for r in self.runs],
            "turns": [t.to_json() for t in self.turns],
            "totals": self.totals(),
        }


def similarity(a: str, b: str) -> float:
    """Word-level similarity, 0..1: cheap, deterministic, good enough to rank changes."""
    if not a and not b:
        return 1.0
    return round(difflib.SequenceMatcher(None, a.split(), b.split(), autojunk=False).ratio(), 3)


def _answer(row: Any, original_text: str | None) -> Answer:
    status = row.status or "unknown"
    if (row.labels or {}).get("replay_verdict") == "diverged":
        status = "diverged"
    text = row.output_text or ""
    return Answer(
        id=row.id,
        text=text,
        status=status,
        latency_ms=row.latency_ms,
        tokens=row.total_tokens,
        similarity=None if original_text is None else similarity(original_text, text),
    )


def _resolve(store: "Store", refs: tuple[str, ...]) -> tuple[str, list[ReplayRun]]:
    runs: list[ReplayRun] = []
    head: str | None = None
    for ref in refs:
        try:
            run = _run_from_row(store.get_run(ref))
        except NotFoundError:
            run = None
        if run is not None:
            runs.append(run)
            head = head or run.heads[0]
            continue
        row = store.get(ref)
        if row.replay_run_id:  # a replayed turn: compare its run with its source
            run = _run_from_row(store.get_run(row.replay_run_id))
            runs.append(run)
            head = head or run.heads[0]
            continue
        source = source_head(store, ref)
        found = [
            _run_from_row(r) for r in store.list_runs()
            if r.source_conversation_id == source.conversation_id
        ]
        # The newest run over this conversation names the chain to compare.
        if found and head is None:
            head = found[0].heads[0]
            runs.extend(r for r in found if r.heads[0] == head)
        head = head or source.id
    if head is None:
        raise ConvostoreError("nothing to compare")
    return head, runs


def compare(store: "Store", *refs: str) -> Comparison:
    """Compare a conversation with its replays.

    ``refs`` are run ids or interaction ids: an interaction names its source chain,
    whose replay runs are found from it; run ids pick runs explicitly.
    """
    head, runs = _resolve(store, refs)
    turns = source_turns(store, head)
    by_run: dict[str, dict[str, Any]] = {}
    for run in runs:
        rows: dict[str, Any] = {}
        for row in store.list(replay_run_id=run.id):
            prev = rows.get(row.source_id)
            # Keep the completed answer over a failed attempt of the same turn.
            if prev is None or (prev.status == "failed" and row.status != "failed"):
                rows[row.source_id] = row
        by_run[run.id] = rows
    out: list[TurnComparison] = []
    from . import wire

    for turn in turns:
        src = turn.source
        original = Answer(
            id=src.id,
            text=src.output_text or "",
            status=src.status or "unknown",
            latency_ms=src.latency_ms,
            tokens=src.total_tokens,
        )
        tc = TurnComparison(turn.index, src.id, wire.input_text(turn.inputs), original)
        for run in runs:
            row = by_run[run.id].get(src.id)
            tc.replays[run.id] = _answer(row, original.text) if row is not None else Answer(None, "", "missing")
        out.append(tc)
    return Comparison(head_id=head, original_model=turns[-1].source.model if turns else None, runs=runs, turns=out)
