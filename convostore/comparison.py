"""Replay runs against their originals: per run totals, per conversation scores, per turn answers.

A comparison covers every conversation its runs replayed. It reads the store one
conversation at a time (the source chain, then each run's answers to it) and keeps only
what the totals and the worst-first list need: the turn-by-turn view of a conversation
is read again when a report asks for it (``Comparison.conversations()``), so memory stays
flat in the number of conversations.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any, Protocol

import orjson

from . import wire
from .errors import ConvostoreError, NotFoundError
from .prices import PriceTable, load_prices
from .replaying import ReplayRun, _run_from_row, _turns_of, source_head

if TYPE_CHECKING:  # pragma: no cover
    from .store import Store

ORIGINAL = "original"
#: Conversations read per round trip (one chains query, one answers query).
CHUNK = 100
#: The JSON shape's version (README, "compare --format json"); bumped on any breaking change.
JSON_VERSION = 1


class Scorer(Protocol):
    """Grades replayed answers against the originals (``convostore.judging.Judge``)."""

    requests: int
    cached: int

    model: str

    def grade(self, items: Sequence[tuple[str, str, str, str | None, str | None]]) -> list[tuple[float | None, str | None]]:
        """Per (question, original, replayed answer, run id, replayed id): a 0..1 score and a one-line reason."""
        ...


@dataclass
class Answer:
    """One model's answer to one source turn."""

    id: str | None
    text: str
    status: str  # completed | diverged | failed | missing | (any stored status)
    latency_ms: float | None = None
    tokens: int | None = None  # total, as the API counted it
    similarity: float | None = None  # to the original answer, 0..1
    model: str | None = None
    input_tokens: int | None = None
    output_tokens: int | None = None
    thought_tokens: int | None = None
    cached_tokens: int | None = None
    cost_usd: float | None = None  # None: unknown (model not in the price table)
    judge_score: float | None = None
    judge_reason: str | None = None

    @property
    def length(self) -> int:
        return len(self.text)

    @property
    def answered(self) -> bool:
        return self.status not in ("failed", "missing")

    @property
    def score(self) -> float | None:
        """The judge's score when there is one, else the word similarity."""
        return self.judge_score if self.judge_score is not None else self.similarity

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "model": self.model,
            "status": self.status,
            "text": self.text,
            "length": self.length,
            "latency_ms": self.latency_ms,
            "input_tokens": self.input_tokens,
            "output_tokens": self.output_tokens,
            "thought_tokens": self.thought_tokens,
            "cached_tokens": self.cached_tokens,
            "total_tokens": self.tokens,
            "cost_usd": self.cost_usd,
            "similarity": self.similarity,
            "judge_score": self.judge_score,
            "judge_reason": self.judge_reason,
        }


@dataclass
class TurnComparison:
    index: int
    source_id: str
    input_text: str
    original: Answer
    replays: dict[str, Answer] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {
            "index": self.index,
            "source_id": self.source_id,
            "input_text": self.input_text,
            "original": self.original.to_dict(),
            "replays": {k: v.to_dict() for k, v in self.replays.items()},
        }


def _mean(values: Sequence[float]) -> float | None:
    return round(sum(values) / len(values), 3) if values else None


def _percentile(values: Sequence[float], q: float) -> float | None:
    """The ``q`` quantile (0..1) by linear interpolation, as numpy's default does."""
    if not values:
        return None
    ordered = sorted(values)
    pos = (len(ordered) - 1) * q
    lo, hi = math.floor(pos), math.ceil(pos)
    return round(ordered[lo] + (ordered[hi] - ordered[lo]) * (pos - lo), 3)


@dataclass
class Scores:
    """One column's (the original's or a run's) numbers over some turns."""

    turns: int = 0
    completed: int = 0
    failed: int = 0
    diverged: int = 0
    missing: int = 0
    input_tokens: int = 0
    output_tokens: int = 0
    thought_tokens: int = 0
    cached_tokens: int = 0
    total_tokens: int = 0
    cost_usd: float = 0.0
    unpriced: int = 0  # answered turns whose cost is unknown
    unpriced_models: set[str] = field(default_factory=set)
    latencies: list[float] = field(default_factory=list)
    similarities: list[float] = field(default_factory=list)
    judge_scores: list[float] = field(default_factory=list)
    lengths: int = 0

    def add(self, a: Answer) -> None:
        self.turns += 1
        if a.status == "failed":
            self.failed += 1
        elif a.status == "missing":
            self.missing += 1
        else:
            self.completed += 1
            if a.status == "diverged":
                self.diverged += 1
        self.input_tokens += a.input_tokens or 0
        self.output_tokens += a.output_tokens or 0
        self.thought_tokens += a.thought_tokens or 0
        self.cached_tokens += a.cached_tokens or 0
        self.total_tokens += a.tokens or 0
        self.lengths += a.length
        if a.cost_usd is not None:
            self.cost_usd += a.cost_usd
        elif a.id is not None and (a.tokens or a.input_tokens or a.output_tokens):
            self.unpriced += 1
            self.unpriced_models.add(a.model or "?")
        if a.latency_ms is not None:
            self.latencies.append(a.latency_ms)
        if a.similarity is not None:
            self.similarities.append(a.similarity)
        if a.judge_score is not None:
            self.judge_scores.append(a.judge_score)

    @property
    def cost(self) -> float | None:
        """USD, or None when any answered turn's model has no price."""
        return None if self.unpriced else round(self.cost_usd, 10)

    @property
    def score(self) -> float | None:
        """Mean judge score when judged, else mean similarity."""
        return _mean(self.judge_scores) if self.judge_scores else _mean(self.similarities)

    @property
    def lowest(self) -> float | None:
        values = self.judge_scores or self.similarities
        return min(values) if values else None

    def to_dict(self, *, conversations: int | None = None) -> dict[str, Any]:
        lat = self.latencies
        out: dict[str, Any] = {}
        if conversations is not None:
            out["conversations"] = conversations
        out.update({
            "turns": self.turns,
            "completed": self.completed,
            "failed": self.failed,
            "diverged": self.diverged,
            "missing": self.missing,
            "latency_ms": {"mean": _mean(lat), "median": _percentile(lat, 0.5), "p95": _percentile(lat, 0.95)},
            "tokens": {"input": self.input_tokens, "output": self.output_tokens, "thought": self.thought_tokens,
                       "cached": self.cached_tokens, "total": self.total_tokens},
            "cost_usd": self.cost,
            "cost_unknown_models": sorted(self.unpriced_models),
            "similarity": {"mean": _mean(self.similarities), "lowest": min(self.similarities) if self.similarities else None},
            "judge": {"mean": _mean(self.judge_scores), "lowest": min(self.judge_scores) if self.judge_scores else None},
            "score": self.score,
            "mean_length": round(self.lengths / self.turns, 1) if self.turns else None,
        })
        return out


@dataclass
class ConversationComparison:
    """One source conversation and each run's answers to it, turn by turn."""

    head_id: str
    original_model: str | None
    turns: list[TurnComparison]
    run_ids: list[str]

    @property
    def title(self) -> str:
        return self.turns[0].input_text if self.turns else ""

    def scores(self, key: str) -> Scores:
        s = Scores()
        for t in self.turns:
            a = t.original if key == ORIGINAL else t.replays.get(key)
            if a is not None:
                s.add(a)
        return s

    def summary(self) -> "ConversationSummary":
        return ConversationSummary(
            head_id=self.head_id,
            title=" ".join(self.title.split())[:200],
            turns=len(self.turns),
            original_model=self.original_model,
            runs={r: self.scores(r) for r in self.run_ids},
        )

    def to_dict(self) -> dict[str, Any]:
        return {"head_id": self.head_id, "original_model": self.original_model, "title": self.title,
                "turns": [t.to_dict() for t in self.turns]}


@dataclass
class ConversationSummary:
    """A conversation's line in the worst-first list: its scores per run, no texts."""

    head_id: str
    title: str
    turns: int
    original_model: str | None
    runs: dict[str, Scores]

    def badness(self) -> tuple[int, int, float]:
        """Sort key, worst first: failed or missing turns, then diverged, then the lowest score."""
        lost = max((s.failed + s.missing for s in self.runs.values()), default=0)
        diverged = max((s.diverged for s in self.runs.values()), default=0)
        lowest = min((s.lowest for s in self.runs.values() if s.lowest is not None), default=1.0)
        return (-lost, -diverged, lowest)

    def to_dict(self) -> dict[str, Any]:
        return {
            "head_id": self.head_id,
            "title": self.title,
            "turns": self.turns,
            "original_model": self.original_model,
            "runs": {
                k: {
                    "completed": s.completed, "failed": s.failed, "diverged": s.diverged, "missing": s.missing,
                    "score": s.score, "lowest": s.lowest,
                    "similarity": _mean(s.similarities), "judge": _mean(s.judge_scores),
                    "mean_latency_ms": _mean(s.latencies), "cost_usd": s.cost,
                }
                for k, s in self.runs.items()
            },
        }


class Comparison:
    """Runs compared with their originals over every conversation they replayed.

    ``totals()`` per column (``"original"`` and each run id), ``summaries`` (one per
    conversation, worst first), ``focus`` (the conversation shown turn by turn, when
    one was named or the runs cover only one), ``conversations()`` (every conversation,
    turn by turn, read again from the store one at a time).
    """

    def __init__(self, store: "Store", runs: list[ReplayRun], heads: list[str], *, prices: PriceTable,
                 judge: Scorer | None = None, focus_head: str | None = None) -> None:
        self.store = store
        self.runs = runs
        self.heads = heads
        self.prices = prices
        self.judge = judge
        self._totals: dict[str, Scores] = {ORIGINAL: Scores(), **{r.id: Scores() for r in runs}}
        self._conversations: dict[str, int] = {r.id: 0 for r in runs}
        self.summaries: list[ConversationSummary] = []
        self.focus: ConversationComparison | None = None
        for conv in self._read_all():
            for key, total in self._totals.items():
                if key == ORIGINAL or key in conv.run_ids:
                    for t in conv.turns:
                        a = t.original if key == ORIGINAL else t.replays.get(key)
                        if a is not None:
                            total.add(a)
            for r in conv.run_ids:
                self._conversations[r] += 1
            self.summaries.append(conv.summary())
            if conv.head_id == focus_head or (focus_head is None and len(heads) == 1):
                self.focus = conv
        self.summaries.sort(key=ConversationSummary.badness)

    # -- reading ----------------------------------------------------------------

    def _runs_of(self, head: str) -> list[ReplayRun]:
        return [r for r in self.runs if head in r.heads]

    def _read_all(self) -> Iterator[ConversationComparison]:
        return self._read(self.heads)

    def _read(self, heads: Sequence[str]) -> Iterator[ConversationComparison]:
        """Conversations in ``heads`` order, read ``CHUNK`` at a time: two queries per chunk."""
        for i in range(0, len(heads), CHUNK):
            yield from self._read_chunk(heads[i : i + CHUNK])

    def conversation(self, head_id: str) -> ConversationComparison:
        """One conversation turn by turn, read from the store (and judged, when a judge is set)."""
        return next(iter(self._read_chunk([head_id])))

    def _read_chunk(self, heads: Sequence[str]) -> list[ConversationComparison]:
        chains = self.store.chains(heads)
        keys = [f"replay:{run.id}:{h}" for h in heads for run in self._runs_of(h)]
        answers: dict[str, dict[str, Any]] = {k: {} for k in keys}
        if keys:  # every run's answers to these conversations in one read
            for row in self.store.list(conversation=keys, oldest_first=True):
                best = answers.get(row.conversation_id)
                if best is None or row.link == "judge" or row.source_id is None:
                    continue
                prev = best.get(row.source_id)
                # The completed answer over a failed attempt; the last continuation hop over earlier ones.
                if prev is None or prev.status == "failed" or row.status != "failed":
                    best[row.source_id] = row
        out: list[ConversationComparison] = []
        for head in heads:
            if head not in chains:
                raise NotFoundError(f"no interaction {head!r} in {self.store.display_url}")
            runs = self._runs_of(head)
            turns = _turns_of(chains[head])
            rows: list[TurnComparison] = []
            for turn in turns:
                src = turn.source
                original = self._answer(src, None)
                tc = TurnComparison(turn.index, src.id, wire.input_text(turn.inputs), original)
                for run in runs:
                    got = answers[f"replay:{run.id}:{head}"].get(src.id)
                    tc.replays[run.id] = self._answer(got, original.text) if got is not None else Answer(None, "", "missing", model=run.model)
                rows.append(tc)
            out.append(ConversationComparison(head, turns[-1].source.model if turns else None, rows, [r.id for r in runs]))
        if self.judge is not None:
            self._grade([t for conv in out for t in conv.turns])
        return out

    def _answer(self, row: Any, original_text: str | None) -> Answer:
        status = row.status or "unknown"
        if (row.labels or {}).get("replay_verdict") == "diverged":
            status = "diverged"
        text = row.output_text or ""
        usage = row.usage or {}
        thought = usage.get("total_thought_tokens", usage.get("thought_tokens"))
        cached = usage.get("total_cached_tokens", usage.get("cached_tokens"))
        cost = None
        if status != "failed":
            cost = self.prices.cost(row.model, input_tokens=row.input_tokens, output_tokens=row.output_tokens,
                                    thought_tokens=thought, cached_tokens=cached)
        return Answer(
            id=row.id,
            text=text,
            status=status,
            latency_ms=row.latency_ms,
            tokens=row.total_tokens,
            similarity=None if original_text is None or status == "failed" else similarity(original_text, text),
            model=row.model,
            input_tokens=row.input_tokens,
            output_tokens=row.output_tokens,
            thought_tokens=thought,
            cached_tokens=cached,
            cost_usd=cost,
        )

    def _grade(self, turns: list[TurnComparison]) -> None:
        assert self.judge is not None
        todo: list[tuple[TurnComparison, str]] = [
            (t, k) for t in turns for k, a in t.replays.items() if a.answered and a.text and t.original.text
        ]
        grades = self.judge.grade([(t.input_text, t.original.text, t.replays[k].text, k, t.replays[k].id) for t, k in todo])
        for (t, k), (score, reason) in zip(todo, grades):
            t.replays[k].judge_score, t.replays[k].judge_reason = score, reason

    def conversations(self) -> Iterator[ConversationComparison]:
        """Every conversation, turn by turn, worst first, read a chunk at a time."""
        return self._read([s.head_id for s in self.summaries])

    # -- numbers ----------------------------------------------------------------

    @property
    def head_id(self) -> str:
        """The conversation in focus (or the first covered)."""
        return self.focus.head_id if self.focus is not None else (self.heads[0] if self.heads else "")

    @property
    def original_model(self) -> str | None:
        return self.focus.original_model if self.focus is not None else None

    @property
    def turns(self) -> list[TurnComparison]:
        """The focused conversation's turns (empty when several conversations and none named)."""
        return self.focus.turns if self.focus is not None else []

    def scores(self) -> dict[str, Scores]:
        """Per column (``"original"``, then each run id): the running totals."""
        return self._totals

    def totals(self) -> dict[str, dict[str, Any]]:
        """Per column: conversations, turns, verdicts, latency, tokens, cost, scores (JSON-safe)."""
        out = {ORIGINAL: self._totals[ORIGINAL].to_dict(conversations=len(self.heads))}
        for r in self.runs:
            out[r.id] = self._totals[r.id].to_dict(conversations=self._conversations[r.id])
        return out

    def to_dict(self) -> dict[str, Any]:
        """The documented JSON shape (README, ``compare --format json``): plain values only."""
        return {
            "version": JSON_VERSION,
            "runs": [r.to_dict() for r in self.runs],
            "judge": self.judge.model if self.judge is not None else None,
            "prices": {"taken": self.prices.taken, "source": self.prices.source},
            "totals": self.totals(),
            "conversations": [s.to_dict() for s in self.summaries],
            "conversation": self.focus.to_dict() if self.focus is not None else None,
        }

    def to_json(self) -> str:
        """``to_dict()`` as an indented JSON string."""
        return orjson.dumps(self.to_dict(), option=orjson.OPT_INDENT_2).decode()


def similarity(a: str, b: str) -> float:
    """Word-level similarity, 0..1: twice the longest common word subsequence over both lengths.

    Deterministic, symmetric, 1.0 exactly when the words are the same. Computed
    bit-parallel (Hyyro's LCS, one big-integer step per word), some 30x faster than
    ``difflib`` on answer-sized texts, whose ratio it bounds from above.
    """
    x, y = a.split(), b.split()
    if not x and not y:
        return 1.0
    if len(x) < len(y):
        x, y = y, x
    masks: dict[str, int] = {}
    for i, word in enumerate(x):
        masks[word] = masks.get(word, 0) | (1 << i)
    full = (1 << len(x)) - 1
    v = full
    for word in y:
        u = v & masks.get(word, 0)
        v = ((v + u) | (v - u)) & full
    common = len(x) - bin(v).count("1")
    return round(2 * common / (len(x) + len(y)), 3)


def gate(
    comparison: Comparison,
    *,
    fail_under: float | None = None,
    max_failed: int | None = None,
    max_p95_latency_ms: float | None = None,
    max_cost_usd: float | None = None,
) -> list[str]:
    """The thresholds each run misses, one line each (empty: the gate passes).

    ``fail_under`` is the run's mean score (judge when judged, else similarity);
    ``max_failed`` counts failed and missing turns; an unknown cost misses ``max_cost_usd``.
    """
    missed: list[str] = []
    totals = comparison.scores()
    for run in comparison.runs:
        s = totals[run.id]
        name = f"{run.id} ({run.model})"
        if fail_under is not None and (s.score is None or s.score < fail_under):
            missed.append(f"{name}: score {_show(s.score)} is under {fail_under}")
        if max_failed is not None and s.failed + s.missing > max_failed:
            missed.append(f"{name}: {s.failed + s.missing} failed turns, more than {max_failed}")
        p95 = _percentile(s.latencies, 0.95)
        if max_p95_latency_ms is not None and (p95 is None or p95 > max_p95_latency_ms):
            missed.append(f"{name}: p95 latency {_show(p95)} ms is over {max_p95_latency_ms} ms")
        if max_cost_usd is not None:
            if s.cost is None:
                missed.append(f"{name}: cost unknown (no price for {', '.join(sorted(s.unpriced_models))}), cannot prove it is under ${max_cost_usd}")
            elif s.cost > max_cost_usd:
                missed.append(f"{name}: cost ${s.cost:.4f} is over ${max_cost_usd}")
    return missed


def _show(value: float | None) -> str:
    return "none" if value is None else f"{value:g}"


# -- choosing what to compare ------------------------------------------------------


def _runs_for(store: "Store", row: Any) -> list[tuple[str, str]]:
    """(run id, head id) of every replay that answered source turn ``row``."""
    found: list[tuple[str, str]] = []
    for r in store.list(source_id=row.id):
        if r.replay_run_id and (r.conversation_id or "").startswith("replay:"):
            head = r.conversation_id.split(":", 2)[2]
            if (r.replay_run_id, head) not in found:
                found.append((r.replay_run_id, head))
    return found


def _get_run(store: "Store", run_id: str) -> ReplayRun | None:
    try:
        return _run_from_row(store.get_run(run_id))
    except NotFoundError:
        return None


def select_runs(store: "Store", *, source_model: str | None = None, since: datetime | None = None) -> list[ReplayRun]:
    """Runs started on or after ``since`` that replayed conversations of ``source_model``, oldest first."""
    out: list[ReplayRun] = []
    for row in reversed(store.list_runs()):
        run = _run_from_row(row)
        if since is not None and run.created_at is not None and run.created_at < since:
            continue
        if source_model is not None:
            try:
                model = store.get(run.heads[0]).model
            except NotFoundError:
                continue
            if model != source_model:
                continue
        out.append(run)
    return out


def compare(
    store: "Store",
    *refs: str,
    source_model: str | None = None,
    since: datetime | None = None,
    conversation: str | None = None,
    prices: PriceTable | None = None,
    judge: Scorer | None = None,
) -> Comparison:
    """Compare replay runs with their originals.

    ``refs`` are run ids (every conversation of those runs) or interaction ids (that
    conversation, with the runs that replayed it, or only the run ids also given).
    ``source_model``/``since`` pick runs by the original model and start date.
    ``conversation`` (any interaction of one) names the conversation shown turn by turn.
    """
    runs: list[ReplayRun] = []
    interactions: list[Any] = []
    for ref in refs:
        run = _get_run(store, ref)
        if run is not None:
            runs.append(run)
            continue
        row = store.get(ref)  # NotFoundError: a one-line error
        if row.replay_run_id:  # a replayed turn: its run, its conversation
            run = _get_run(store, row.replay_run_id)
            if run is not None:
                runs.append(run)
            head = (row.conversation_id or "").split(":", 2)[-1]
            interactions.append(store.get(head) if head and head != row.conversation_id else row)
            continue
        interactions.append(row)
    if source_model is not None or since is not None:
        runs += select_runs(store, source_model=source_model, since=since)
    runs = list({r.id: r for r in runs}.values())
    if not refs and source_model is None and since is None:
        raise ConvostoreError("nothing to compare: give run ids, an interaction id, or --source-model/--since")
    focus_head: str | None = None
    if interactions:
        heads = [_head_for(store, row, runs) for row in interactions]
        if not runs:  # the runs that replayed these conversations
            found = {run_id for row, head in zip(interactions, heads) for run_id, h in _runs_for(store, row) if h == head}
            runs = [r for r in (_get_run(store, i) for i in found) if r is not None]
            runs.sort(key=lambda r: (r.created_at.timestamp() if r.created_at else 0.0, r.id))
        runs = [r for r in runs if any(h in r.heads for h in heads)] or runs
        heads = list(dict.fromkeys(heads))
        focus_head = heads[0] if len(heads) == 1 else None
    else:
        if not runs:
            raise ConvostoreError("no replay runs matched")
        heads = list(dict.fromkeys(h for r in runs for h in r.heads))
    if conversation is not None:
        focus_head = _head_for(store, store.get(conversation), runs)
        if focus_head not in heads:
            raise ConvostoreError(f"{conversation} is not in the compared runs")
    return Comparison(store, runs, heads, prices=prices or load_prices(), judge=judge, focus_head=focus_head)


def _head_for(store: "Store", row: Any, runs: Iterable[ReplayRun]) -> str:
    """The replayed head (of ``runs``, else of any run) whose chain holds ``row``; else its own chain's head."""
    if row.replay_run_id and (row.conversation_id or "").startswith("replay:"):
        return str(row.conversation_id.split(":", 2)[2])
    wanted = {r.id for r in runs}
    pairs = _runs_for(store, row)
    head = source_head(store, row.id).id
    for run_id, h in pairs:
        if h == head and (not wanted or run_id in wanted):
            return h
    for run_id, h in pairs:  # newest first
        if not wanted or run_id in wanted:
            return h
    return str(head)


__all__ = ["Answer", "Comparison", "ConversationComparison", "ConversationSummary", "Scores", "Scorer",
           "TurnComparison", "compare", "gate", "select_runs", "similarity"]
