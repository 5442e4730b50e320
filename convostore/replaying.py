"""Re-running stored conversations against another model, turn by turn.

**forced** mode: at turn k the target gets the original conversation's history up to
turn k (as ``history`` builds it, thought signatures dropped for another model) plus
the original user input of turn k, so every answer is comparable with the original.
**free** mode: the target answers the original user inputs in order and builds its
own conversation (chained on the server, or rebuilt from the archive when stateless).

Every replayed turn is an ordinary recorded interaction, tagged with the run and the
source turn it answers, so an interrupted run knows exactly what is already done.
"""

from __future__ import annotations

import functools
import logging
import os
import socket
import threading
import time
import uuid
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, as_completed, wait
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any

import orjson

from . import wire
from .direct import DirectSender
from .errors import ConvostoreError, NotFoundError
from .rebuild import add_turn, turn_steps

if TYPE_CHECKING:  # pragma: no cover
    from .store import Store

log = logging.getLogger("convostore")

MODES = ("forced", "free")
RETRY_STATUSES = frozenset({408, 409, 429, 500, 502, 503, 504})


@dataclass
class ReplayRun:
    """A replay run as stored: what was asked, and how it went."""

    id: str
    model: str
    mode: str
    status: str
    heads: list[str]
    settings: dict[str, Any]
    created_at: datetime | None = None
    finished_at: datetime | None = None
    summary: dict[str, Any] = field(default_factory=dict)
    heartbeat_at: datetime | None = None

    def to_dict(self) -> dict[str, Any]:
        """The run as plain JSON-safe values (times as ISO 8601 strings)."""
        return {
            "id": self.id,
            "model": self.model,
            "mode": self.mode,
            "status": self.status,
            "heads": self.heads,
            "settings": self.settings,
            "created_at": _iso(self.created_at),
            "finished_at": _iso(self.finished_at),
            "heartbeat_at": _iso(self.heartbeat_at),
            "summary": self.summary,
        }

    def to_json(self) -> str:
        """``to_dict()`` as a JSON string."""
        return orjson.dumps(self.to_dict()).decode()


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value is not None else None


@dataclass
class _Turn:
    source: Any  # the stored source row (a turn's first hop)
    inputs: list[dict[str, Any]]
    index: int
    position: int = 0  # the source row's place in the chain (hops included)


@dataclass
class _Outcome:
    source_id: str
    replay_id: str | None
    verdict: str  # ok | diverged | failed | skipped
    latency_ms: float | None = None


@dataclass
class _Answer:
    id: str
    output_steps: list[dict[str, Any]]


def _now() -> datetime:
    return datetime.now(timezone.utc)


def heartbeat_interval() -> float:
    """Seconds between a live replay's heartbeats (``CONVOSTORE_HEARTBEAT_S``, default 5)."""
    try:
        return max(0.05, float(os.environ.get("CONVOSTORE_HEARTBEAT_S", "5")))
    except ValueError:
        return 5.0


def _owner() -> dict[str, Any]:
    return {"host": socket.gethostname(), "pid": os.getpid()}


def _alive(row: Any, now: datetime | None = None) -> bool:
    """A ``running`` run whose heartbeat (or, before any, its start) is recent enough to be live.

    On the machine that runs it, a process that is gone settles it at once.
    """
    owner = (row.settings or {}).get("owner") or {}
    if owner.get("host") == socket.gethostname() and isinstance(owner.get("pid"), int):
        try:
            os.kill(owner["pid"], 0)
        except ProcessLookupError:
            return False
        except OSError:
            pass  # exists, owned by someone else
    beat = getattr(row, "heartbeat_at", None) or row.created_at
    if beat is None:
        return False
    return bool(((now or _now()) - beat).total_seconds() < 4 * heartbeat_interval())


def _run_from_row(row: Any) -> ReplayRun:
    settings = dict(row.settings or {})
    status = row.status
    if status == "running" and not _alive(row):
        status = "interrupted"  # its process died without a word: see replay(resume_run=...)
    return ReplayRun(
        id=row.id,
        model=row.model,
        mode=row.mode,
        status=status,
        heads=list(settings.get("heads") or [row.source_head_id]),
        settings=settings,
        created_at=row.created_at,
        finished_at=row.finished_at,
        summary=dict(row.summary or {}),
        heartbeat_at=getattr(row, "heartbeat_at", None),
    )


def source_head(store: "Store", interaction_id: str) -> Any:
    """The turn a replay of ``interaction_id`` ends at.

    Any stored interaction names the chain that ends there; a conversation's root
    stands for its most recently recorded turn.
    """
    row = store.get(interaction_id)
    if row.replay_run_id:
        raise ConvostoreError(f"{row.id} is itself a replayed turn (run {row.replay_run_id}); replay its source instead")
    if row.id == row.conversation_id:
        latest = next(iter(store.list(conversation=row.id, replays=False, limit=1)), None)
        if latest is not None:
            return latest
    return row


def source_turns(store: "Store", head_id: str) -> list[_Turn]:
    """The user turns of the chain ending at ``head_id``, continuation hops folded in."""
    return _turns_of(store.chain(head_id))


def _turn_count(links: list[tuple[str, str | None]]) -> int:
    """How many user turns ``source_turns`` finds in a chain of ``(id, link)``."""
    return sum(1 for i, (_, link) in enumerate(links) if i == 0 or link != "continuation")


def _turns_of(chain: list[Any]) -> list[_Turn]:
    turns: list[_Turn] = []
    for i, row in enumerate(chain):
        if row.link == "continuation" and turns:
            continue
        inputs, _ = turn_steps(row, first=i == 0)
        turns.append(_Turn(source=row, inputs=inputs, index=len(turns), position=i))
    return turns


def _calls(steps: Iterable[dict[str, Any]]) -> list[tuple[str | None, Any]]:
    return [(s.get("name"), s.get("arguments")) for s in steps if s.get("type") == "function_call"]


def _skipped(source_id: str, replay_id: str) -> list[_Outcome]:
    """A turn an earlier attempt of this run already answered."""
    return [_Outcome(source_id, replay_id, "skipped")]


def _retry_after(exc: BaseException) -> float | None:
    headers = getattr(exc, "headers", None) or getattr(getattr(exc, "response", None), "headers", None)
    if headers is None:
        return None
    value = headers.get("retry-after")
    try:
        return float(value) if value is not None else None
    except ValueError:
        return None


def _status_of(exc: BaseException) -> int | None:
    status = getattr(exc, "status_code", None)
    if status is None:
        status = getattr(getattr(exc, "response", None), "status_code", None)
    return status


class _Replayer:
    def __init__(
        self,
        store: "Store",
        client: Any,
        run: ReplayRun,
        *,
        max_attempts: int = 6,
        backoff: float = 0.5,
        on_turn: Callable[[], None] | None = None,
        direct: bool = True,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.store = store
        self.client = client
        self.direct = DirectSender.for_client(client) if direct else None
        self.run = run
        self.max_attempts = max_attempts
        self.backoff = backoff
        self.on_turn = on_turn
        self.sleep = sleep
        self.lock = threading.Lock()

    # -- sending ------------------------------------------------------------

    def _settings(self, source: Any) -> dict[str, Any]:
        request = source.request or {}
        out: dict[str, Any] = {}
        for key in ("system_instruction", "tools", "generation_config"):
            if request.get(key) is not None:
                out[key] = request[key]
        s = self.run.settings
        if s.get("system_instruction") is not None:
            out["system_instruction"] = s["system_instruction"]
        config = dict(out.get("generation_config") or {})
        if s.get("temperature") is not None:
            config["temperature"] = s["temperature"]
        for key, value in (s.get("overrides") or {}).items():
            if key.startswith("generation_config."):
                *parents, last = key.split(".")[1:]  # thinking_config.thinking_level: a nested field
                node = config
                for name in parents:  # copied on the way down: the stored request stays as it was
                    node[name] = node = dict(node.get(name) or {})
                node[last] = value
            elif value is None:
                out.pop(key, None)
            else:
                out[key] = value
        if config:
            out["generation_config"] = config
        return out

    def _send(self, kwargs: dict[str, Any], annotations: dict[str, Any]) -> "_Answer":
        """Send one turn (retrying 429/5xx): the interaction it made, as far as replay needs it."""
        from .recorder import annotate

        attempt = 0
        while True:
            attempt += 1
            try:
                with annotate(**annotations):
                    if self.direct is not None:
                        answer = self.direct.create(kwargs)
                        return _Answer(str(answer["id"]), wire.normalize_output(answer))
                    iid = str(self.client.interactions.create(**kwargs).id)
                return _Answer(iid, self.store.get(iid).output_steps or [])
            except Exception as exc:  # noqa: BLE001 - SDK error classes differ by generation
                status = _status_of(exc)
                transient = status in RETRY_STATUSES or getattr(exc, "transient", False)
                if not transient or attempt >= self.max_attempts:
                    if self.direct is not None:
                        with annotate(**annotations):
                            self.direct.record_failure(exc, kwargs)
                    raise
                delay = _retry_after(exc)
                if delay is None:
                    delay = self.backoff * (2 ** (attempt - 1))
                log.info("replay: %s, retrying in %.1fs", status or exc, delay)
                self.sleep(min(delay, 60.0))

    # -- one conversation ---------------------------------------------------

    def _kwargs(self, source: Any, inputs: list[dict[str, Any]], prev_replay: str | None = None) -> dict[str, Any]:
        kwargs: dict[str, Any] = {"input": inputs}
        if prev_replay:
            kwargs["previous_interaction_id"] = prev_replay
        kwargs["model"] = self.run.model
        kwargs.update(self._settings(source))
        if self.run.settings.get("store") is False:
            kwargs["store"] = False
        return kwargs

    def _turn(self, source: Any, kwargs: dict[str, Any], annotations: dict[str, Any]) -> tuple[_Outcome, "_Answer | None"]:
        """Send one replayed turn and judge it against its source turn."""
        started = time.perf_counter()
        try:
            replayed = self._send(kwargs, annotations)
        except Exception as exc:  # noqa: BLE001
            log.warning("replay of %s failed: %s", source.id, exc)
            if self.on_turn:
                self.on_turn()
            return _Outcome(source.id, None, "failed"), None
        latency = (time.perf_counter() - started) * 1000
        verdict = "ok"
        if _calls(replayed.output_steps or ()) != _calls(source.output_steps or ()):
            verdict = "diverged"
            labels = self.store.get(replayed.id).labels or {}
            self.store.update(replayed.id, labels={**labels, "replay_verdict": "diverged"})
        if self.on_turn:
            self.on_turn()
        return _Outcome(source.id, replayed.id, verdict, latency), replayed

    def _annotations(self, head_id: str, source: Any, parent: str | None) -> dict[str, Any]:
        return {
            "replay_run_id": self.run.id,
            "source_id": source.id,
            "conversation_id": f"replay:{self.run.id}:{head_id}",
            "parent_id": parent,
            "link": "replay",
        }

    def conversation(self, head_id: str, done: dict[str, Any]) -> list[_Outcome]:
        """free mode: one conversation, turn after turn, each on the target's own answers."""
        turns = source_turns(self.store, head_id)
        outcomes: list[_Outcome] = []
        prev_replay: str | None = None
        pending_call_ids: dict[str, str] = {}
        for turn in turns:
            source = turn.source
            if source.id in done:
                prev_replay = done[source.id].id
                pending_call_ids = self._call_map(source, done[source.id])
                outcomes.append(_Outcome(source.id, prev_replay, "skipped"))
                continue
            inputs = [self._remap_result(s, pending_call_ids) for s in self._inputs(turn)]
            outcome, replayed = self._turn(
                source, self._kwargs(source, inputs, prev_replay), self._annotations(head_id, source, prev_replay)
            )
            outcomes.append(outcome)
            if replayed is None or outcome.verdict == "diverged":
                break
            prev_replay = replayed.id
            pending_call_ids = self._call_map(source, replayed)
        return outcomes

    def forced_turns(self, head_id: str, done: dict[str, Any]) -> Iterator[Callable[[], list[_Outcome]]]:
        """forced mode: one task per turn, all independent (each gets the original history).

        The history is grown turn by turn from one read of the chain, and each task
        copies only its own prefix, lazily, as the scheduler asks for it. The replayed
        turns are chained to each other (``parent_id``) once the last of them lands.
        """
        chain = self.store.chain(head_id)
        turns = _turns_of(chain)
        links = _Links(self.store, len(turns))
        history: list[dict[str, Any]] = []
        grown = 0
        for turn in turns:
            source = turn.source
            while grown < turn.position:
                add_turn(history, chain[grown], self.run.model, first=grown == 0)
                grown += 1
            if source.id in done:
                links.landed(turn.index, done[source.id].id)
                yield functools.partial(_skipped, source.id, done[source.id].id)
                continue
            kwargs = self._kwargs(source, history + self._inputs(turn))
            annotations = self._annotations(head_id, source, None)

            def task(source: Any = source, kwargs: dict[str, Any] = kwargs, annotations: dict[str, Any] = annotations,
                     index: int = turn.index) -> list[_Outcome]:
                outcome, _ = self._turn(source, kwargs, annotations)
                links.landed(index, outcome.replay_id)
                return [outcome]

            yield task

    def _inputs(self, turn: _Turn) -> list[dict[str, Any]]:
        """A turn's own input for the target: a thought step in it (a conversation begun
        with a history) goes only back to the model that made it, as ``history`` does."""
        if turn.source.model == self.run.model:
            return turn.inputs
        return [s for s in turn.inputs if s.get("type") != "thought"]

    @staticmethod
    def _call_map(source: Any, replayed: Any) -> dict[str, str]:
        """The source's function call ids mapped to the target's, for supplying recorded results."""
        src = [s for s in source.output_steps or () if s.get("type") == "function_call"]
        dst = [s for s in replayed.output_steps or () if s.get("type") == "function_call"]
        return {a.get("id"): b.get("id") for a, b in zip(src, dst) if a.get("id") and b.get("id")}

    @staticmethod
    def _remap_result(step: dict[str, Any], call_ids: dict[str, str]) -> dict[str, Any]:
        if step.get("type") == "function_result" and step.get("call_id") in call_ids:
            return {**step, "call_id": call_ids[step["call_id"]]}
        return step


class _Links:
    """Chains a forced conversation's replayed turns in source order once all have landed."""

    def __init__(self, store: "Store", turns: int) -> None:
        self.store = store
        self.ids: list[str | None] = [None] * turns
        self.waiting = turns
        self.lock = threading.Lock()

    def landed(self, index: int, replay_id: str | None) -> None:
        with self.lock:
            self.ids[index] = replay_id
            self.waiting -= 1
            if self.waiting:
                return
        prev: str | None = None
        for rid in self.ids:
            if rid is None:
                prev = None  # a failed turn breaks the chain; the next one starts afresh
                continue
            if prev is not None:
                self.store.update(rid, parent_id=prev)
            prev = rid


def _completed_turns(store: "Store", run_id: str) -> dict[str, Any]:
    """Source turn id → its completed replay turn in this run (what a resume must not resend)."""
    done: dict[str, Any] = {}
    for row in store.list(replay_run_id=run_id):
        if row.source_id and row.status not in ("failed", "incomplete", "requires_continuation") and not row.partial:
            seen = done.get(row.source_id)
            if seen is None or (row.hop_index or 0) > (seen.hop_index or 0):
                done[row.source_id] = row  # a turn's answer is its last continuation hop
    return done


def _default_client(store: "Store") -> Any:
    from .client import make_client

    return make_client(store)


def replay(
    store: "Store",
    ids: str | Iterable[str] | None = None,
    *,
    model: str | None = None,
    mode: str = "forced",
    client: Any = None,
    concurrency: int = 4,
    temperature: float | None = None,
    system_instruction: str | None = None,
    overrides: dict[str, Any] | None = None,
    store_remote: bool = True,
    progress: Callable[[int, int], None] | None = None,
    resume_run: str | None = None,
    max_attempts: int = 6,
    backoff: float = 0.5,
    direct: bool = True,
    sleep: Callable[[float], None] = time.sleep,
) -> ReplayRun:
    """Replay the chains ending at ``ids`` on ``model``; returns the stored run.

    ``resume_run`` continues an interrupted run with its own settings, sending no
    turn that already has a completed answer in that run. ``direct`` (the default)
    sends the stored wire JSON through the client's own connection instead of the
    SDK's ``create`` (see ``convostore.direct``: same URL, key and recording, a tenth
    of the CPU); it falls back to ``create`` for clients it cannot serve.
    A 429/5xx is retried up to ``max_attempts`` times, after the server's
    ``Retry-After`` when it gives one, else ``backoff`` doubling; ``sleep`` does the
    waiting (a scheduler or a test passes its own clock).
    """
    if resume_run:
        run = _run_from_row(store.get_run(resume_run))
        if run.status == "running":
            raise ConvostoreError(f"run {run.id} is still running in another process (heartbeat within "
                                  f"{4 * heartbeat_interval():g} s); resume it once that process has stopped")
        if client is None:
            client = _default_client(store)
    else:
        if mode not in MODES:
            raise ValueError(f"mode must be one of {MODES}, not {mode!r}")
        if not model:
            raise ConvostoreError("replay needs a target model")
        if ids is None:
            raise ConvostoreError("nothing to replay: give interaction ids")
        id_list = [ids] if isinstance(ids, str) else list(ids)
        if not id_list:
            raise ConvostoreError("nothing to replay: no interactions matched")
        heads = [source_head(store, i).id for i in id_list]
        if client is None:  # before the run exists: no key means no orphan `running` run
            client = _default_client(store)
        settings = {
            "heads": heads,
            "temperature": temperature,
            "system_instruction": system_instruction,
            "overrides": overrides or {},
            "store": store_remote,
            "concurrency": concurrency,
        }
        first = store.get(heads[0])
        row = store.create_run(
            id=f"run-{uuid.uuid4().hex[:12]}",
            source_conversation_id=first.conversation_id,
            source_head_id=first.id,
            model=model,
            mode=mode,
            settings=settings,
            status="running",
            created_at=_now(),
        )
        run = _run_from_row(row)
    done = _completed_turns(store, run.id) if resume_run else {}
    total = sum(_turn_count(store.chain_links(h)) for h in run.heads)
    finished = [len(done)]
    lock = threading.Lock()

    def tick() -> None:
        with lock:
            finished[0] += 1
            if progress:
                progress(finished[0], total)

    if progress:
        progress(finished[0], total)
    store.update_run(run.id, status="running", heartbeat_at=_now(), settings={**run.settings, "owner": _owner()})
    beat = _Heartbeat(store, run.id)
    outcomes: list[_Outcome] = []
    started = time.perf_counter()
    status = "completed"
    try:
        worker = _Replayer(store, client, run, max_attempts=max_attempts, backoff=backoff, on_turn=tick, direct=direct, sleep=sleep)
        if run.mode == "forced":
            tasks: Iterator[Callable[[], list[_Outcome]]] = (
                t for head in run.heads for t in worker.forced_turns(head, done)
            )
        else:
            tasks = (functools.partial(worker.conversation, head, done) for head in run.heads)
        _run_bounded(tasks, max(1, concurrency), outcomes)
    except BaseException:
        status = "interrupted"
        raise
    finally:
        counts: dict[str, int] = {}
        for o in outcomes:
            counts[o.verdict] = counts.get(o.verdict, 0) + 1
        latencies = [o.latency_ms for o in outcomes if o.latency_ms is not None]
        summary = {
            "conversations": len(run.heads),
            "turns": total,
            "sent": sum(1 for o in outcomes if o.verdict != "skipped"),
            "verdicts": counts,
            "elapsed_s": round(time.perf_counter() - started, 3),
            "mean_latency_ms": round(sum(latencies) / len(latencies), 1) if latencies else None,
        }
        if status == "completed" and counts.get("failed"):
            status = "completed_with_failures"
        beat.stop()
        store.update_run(run.id, status=status, finished_at=_now(), summary=summary)
    return _run_from_row(store.get_run(run.id))


class _Heartbeat:
    """Writes ``heartbeat_at`` every ``heartbeat_interval()`` seconds, so a dead run shows as interrupted."""

    def __init__(self, store: "Store", run_id: str) -> None:
        self.store = store
        self.run_id = run_id
        self.stopped = threading.Event()
        self.thread = threading.Thread(target=self._beat, name=f"convostore-heartbeat-{run_id}", daemon=True)
        self.thread.start()

    def _beat(self) -> None:
        while not self.stopped.wait(heartbeat_interval()):
            try:
                self.store.update_run(self.run_id, heartbeat_at=_now())
            except Exception as exc:  # noqa: BLE001 - a missed beat must not stop the run
                log.warning("replay %s: heartbeat not written: %s", self.run_id, exc)

    def stop(self) -> None:
        self.stopped.set()
        self.thread.join()


def _run_bounded(tasks: Iterator[Callable[[], list[_Outcome]]], concurrency: int, outcomes: list[_Outcome]) -> None:
    """Run ``tasks`` with ``concurrency`` in flight, pulling new ones only as slots free up.

    Pulling lazily keeps memory flat for ``--all`` over a large archive; on an error or
    Ctrl-C the queued tasks are dropped and only the ones already sending finish.
    """
    pool = ThreadPoolExecutor(max_workers=concurrency)
    pending: set[Future[list[_Outcome]]] = set()
    try:
        for task in tasks:
            pending.add(pool.submit(task))
            if len(pending) >= concurrency * 2:
                finished, pending = wait(pending, return_when=FIRST_COMPLETED)
                for future in finished:
                    outcomes.extend(future.result())
        for future in as_completed(pending):
            outcomes.extend(future.result())
    finally:
        pool.shutdown(wait=True, cancel_futures=True)


def list_runs(store: "Store") -> list[ReplayRun]:
    """Every replay run, newest first."""
    return [_run_from_row(r) for r in store.list_runs()]


def get_run(store: "Store", run_id: str) -> ReplayRun:
    try:
        return _run_from_row(store.get_run(run_id))
    except NotFoundError:
        raise NotFoundError(f"no replay run {run_id!r}") from None


def delete_run(store: "Store", run_id: str) -> int:
    """Delete a run and the interactions it recorded (its replayed turns and judge calls); how many rows went.

    A run still running in another process is refused: its next turn would land in a run
    that no longer exists.
    """
    run = get_run(store, run_id)
    if run.status == "running":
        raise ConvostoreError(f"run {run_id} is still running in another process; delete it once that process has stopped")
    return store.delete_run(run_id)


def run_costs(store: "Store", prices: Any = None) -> dict[str, float | None]:
    """Each run's cost in USD (its replayed turns and judge calls), None when unknown."""
    from .prices import load_prices, usage_cost

    table = prices or load_prices()
    out: dict[str, float | None] = {}
    for u in store.usage(by_run=True):
        if u["run"] is None:
            continue
        cost = usage_cost(table, u)
        prev = out.get(u["run"], 0.0)
        out[u["run"]] = None if cost is None or prev is None else prev + cost
    return out
