"""Recording overhead per ``create``: the recorded client against the bare SDK, same run.

    python bench/bench_record.py                 # depths 10 and 10,000, SQLite
    python bench/bench_record.py --depths 10 1000 --samples 300 --db postgresql+psycopg://postgres@127.0.0.1/test

Both clients talk to one local sandbox. For each measured depth D the archive holds a
chain of D turns: D-1 earlier turns saved through the recorder's own save path
(``records.row_from_exchange`` + ``store.save``, no HTTP, so 10,000 turns take seconds),
then one real interaction on the sandbox recorded as their child. ``--samples`` pairs of
calls then branch off that head with ``previous_interaction_id`` (bare and recorded,
alternating which goes first so drift and the SDK's own GC pauses hit both alike): same
payload, same server work; the archive links each recorded one under a D-turn chain.
(The sandbox itself only holds the head, so its own per-call cost does not grow with D.)
Reported per depth:

* bare / recorded medians of the whole ``create`` (µs) and their ratio;
* paired diff = median of (recorded − bare) over the pairs: it carries the SDK's GC
  pauses (several ms, landing on whichever call triggers them) and scheduler noise;
* added on the call path = the time spent in convostore's own code inside each recorded
  ``create`` (the wrapper, the transport seam, building the row, saving it), timed on
  both sides of each convostore layer around the SDK's ``create`` and ``send``: the
  figure the target is about (p50 <= 150 µs; p99 shown too). The row is built on the
  calling thread and handed to the store's background writer, which saves it off the
  call path;
* row + hand-off = the recorder's hook alone (``Recorder.on_exchange``);
* pre-check = ``resume.plan`` (through ``Recorder.resumed``) before sending a turn with
  ``previous_interaction_id``, which spares the doomed round trip of a chain the archive
  knows is gone (``record(..., resume=False)`` skips it).

"Flat" means the added cost at depth 10,000 matches the one at depth 10: the hot path
does no chain walk (the store links a turn by its parent's id, one indexed lookup).
"""

from __future__ import annotations

import argparse
import contextlib
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

MODEL = "gemini-3-flash-preview"


def _p99(values: list[float]) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))]


def _fmt(us: float) -> str:
    return f"{us:9.0f}"


@contextlib.contextmanager
def _sandbox(mode: str, sandbox_cls: type):  # type: ignore[no-untyped-def]
    """The sandbox's base URL, served from a child process or a thread of this one."""
    if mode == "thread":
        with sandbox_cls() as sb:
            yield sb.base_url
        return
    proc = subprocess.Popen(
        [sys.executable, "-m", "convostore", "sandbox", "--port", "0"], stdout=subprocess.PIPE, text=True
    )
    try:
        line = proc.stdout.readline().strip() if proc.stdout else ""
        if not line.startswith("http"):
            raise RuntimeError(f"the sandbox did not start: {line!r}")
        yield line
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def _instrument(client, attach):  # type: ignore[no-untyped-def]
    """Attach recording to ``client`` with timers around the SDK's own functions.

    Returns a list that gets, per ``create``, the time spent in convostore's code on the
    call path: (recorded create - the SDK's create inside it) + (recorded send - the
    HTTP send inside it). Timers sit on both sides of each convostore layer, so what
    the SDK and the network take is subtracted exactly, call by call.
    """
    api = client._api_client
    inner_send = api._httpx_client.send
    inner_create = client.interactions.create
    acc = {"inner_create": 0.0, "outer_send": 0.0, "inner_send": 0.0}

    def timed(fn, key):  # type: ignore[no-untyped-def]
        def wrapper(*a, **k):  # type: ignore[no-untyped-def]
            t0 = time.perf_counter()
            try:
                return fn(*a, **k)
            finally:
                acc[key] += time.perf_counter() - t0

        return wrapper

    api._httpx_client.send = timed(inner_send, "inner_send")
    client.interactions.__dict__["create"] = timed(inner_create, "inner_create")
    attach(client)
    recorded_create = client.interactions.create
    api._httpx_client.send = timed(api._httpx_client.send, "outer_send")
    times: list[float] = []

    def timed_outer_create(*a, **k):  # type: ignore[no-untyped-def]
        for key in acc:
            acc[key] = 0.0
        t0 = time.perf_counter()
        try:
            return recorded_create(*a, **k)
        finally:
            outer = time.perf_counter() - t0
            times.append((outer - acc["inner_create"]) + (acc["outer_send"] - acc["inner_send"]))

    client.interactions.__dict__["create"] = timed_outer_create
    return times


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--depths", type=int, nargs="+", default=[10, 10_000], help="chain depths to measure at")
    parser.add_argument("--samples", type=int, default=300, help="bare/recorded call pairs per depth")
    parser.add_argument("--db", default=None, help="store URL or path (default: a fresh SQLite file)")
    parser.add_argument(
        "--sandbox",
        choices=["process", "thread"],
        default="process",
        help="run the sandbox in its own process (default: no GIL shared with the client) or a thread",
    )
    args = parser.parse_args(argv)

    from google import genai
    from google.genai import types

    from convostore.records import row_from_exchange
    from convostore.recorder import annotate, record
    from convostore.recording.core import Recorder
    from convostore.sandbox import Sandbox
    from convostore.store import Store

    # Time spent inside the recorder's seam callback, per exchange.
    hook_times: list[float] = []
    original = Recorder.on_exchange

    def timed(self, ex, call):  # type: ignore[no-untyped-def]
        t0 = time.perf_counter()
        try:
            return original(self, ex, call)
        finally:
            hook_times.append(time.perf_counter() - t0)

    Recorder.on_exchange = timed  # type: ignore[method-assign]

    # Time spent in the resume pre-check (does the archive already know prev is gone?).
    pre_times: list[float] = []
    original_pre = Recorder.resumed

    def timed_pre(*a, **k):  # type: ignore[no-untyped-def]
        t0 = time.perf_counter()
        try:
            return original_pre(*a, **k)
        finally:
            pre_times.append(time.perf_counter() - t0)

    Recorder.resumed = timed_pre  # type: ignore[method-assign]

    tmp = tempfile.TemporaryDirectory(prefix="convostore-bench-")
    url = args.db or str(Path(tmp.name) / "bench.db")
    store = Store(url)
    rows: list[tuple[int, dict[str, float]]] = []
    with _sandbox(args.sandbox, Sandbox) as base_url:
        opts = types.HttpOptions(base_url=base_url)
        bare = genai.Client(api_key="bench-key", http_options=opts)
        recorded = genai.Client(api_key="bench-key", http_options=opts)
        self_times = _instrument(recorded, lambda c: record(c, store=store))

        # warm both paths (imports, connection pools, first-statement compilation)
        for i in range(20):
            bare.interactions.create(model=MODEL, input=f"warm {i}")
            recorded.interactions.create(model=MODEL, input=f"warm {i}")
        fill_times: list[float] = []
        for depth in args.depths:
            prev = None
            for i in range(depth - 1):  # the archive's earlier turns, via the recorder's save path
                t0 = time.perf_counter()
                request = {"model": MODEL, "input": f"depth {depth} turn {i}: tell me more"}
                if prev:
                    request["previous_interaction_id"] = prev
                response = {
                    "id": f"bench-{depth}-{i:06d}",
                    "status": "completed",
                    "model": MODEL,
                    "steps": [{"type": "model_output", "content": [{"type": "text", "text": f"Answer {i}. " * 20}]}],
                    "usage": {"total_tokens": 100},
                }
                store.save_quiet(
                    row_from_exchange(request, response, api_version="v1", recorded_at=datetime.now(timezone.utc))
                )
                fill_times.append(time.perf_counter() - t0)
                prev = response["id"]
            with annotate(parent_id=prev) if prev else contextlib.nullcontext():
                head = recorded.interactions.create(model=MODEL, input=f"head of the {depth}-turn chain").id
            assert len(store.chain(head)) == depth, (len(store.chain(head)), depth)
            bare_t: list[float] = []
            rec_t: list[float] = []
            diffs: list[float] = []
            hook_times.clear()
            pre_times.clear()
            self_times.clear()
            for i in range(args.samples):
                text = f"branch {i} at depth {depth}"
                # alternate which goes first, so drift and the SDK's own GC pauses hit both alike
                order = (bare, recorded) if i % 2 == 0 else (recorded, bare)
                took = {}
                for c in order:
                    t0 = time.perf_counter()
                    c.interactions.create(model=MODEL, input=text, previous_interaction_id=head)
                    took[c] = time.perf_counter() - t0
                bare_t.append(took[bare])
                rec_t.append(took[recorded])
                diffs.append(took[recorded] - took[bare])
            b = statistics.median(bare_t) * 1e6
            r = statistics.median(rec_t) * 1e6
            store.flush(60)  # the background writer catches up between depths
            rows.append((depth, {
                "bare": b, "recorded": r, "diff": statistics.median(diffs) * 1e6, "ratio": r / b,
                "self": statistics.median(self_times) * 1e6, "self99": _p99(self_times) * 1e6,
                "hook": statistics.median(hook_times) * 1e6, "pre": statistics.median(pre_times) * 1e6,
            }))
    Recorder.on_exchange = original  # type: ignore[method-assign]
    Recorder.resumed = original_pre  # type: ignore[method-assign]

    backend = "postgresql" if url.startswith("postgres") else "sqlite"
    print(
        f"\nRecording overhead per create ({backend}, {args.samples} pairs per depth, "
        f"sandbox on loopback in a {args.sandbox})\n"
    )
    print("| depth | bare µs | recorded µs | ratio | paired diff µs | added on the call path µs p50 | p99 | of which row + hand-off µs | resume pre-check µs |")
    print("|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for depth, f in rows:
        print(
            f"| {depth:,} | {_fmt(f['bare'])} | {_fmt(f['recorded'])} | {f['ratio']:.2f} | {_fmt(f['diff'])} "
            f"| {_fmt(f['self'])} | {_fmt(f['self99'])} | {_fmt(f['hook'])} | {_fmt(f['pre'])} |"
        )
    if fill_times:
        k = min(500, len(fill_times))
        print(
            f"\nFilling the archive (row + save per turn, no HTTP): first {k} median "
            f"{statistics.median(fill_times[:k]) * 1e6:.0f} µs, last {k} median "
            f"{statistics.median(fill_times[-k:]) * 1e6:.0f} µs"
        )
    target_ok = all(f["self"] <= 150 for _, f in rows)
    print(
        "\n'added on the call path' is the time spent in convostore's own code inside each recorded"
        "\ncreate (wrapper + seam + row + save), timed around the SDK's functions; 'paired diff' is"
        "\nthe median of (recorded - bare) over alternating pairs, which also carries the SDK's"
        "\nGC pauses (several ms, landing on whichever call triggers them) and scheduler noise."
    )
    print(f"Target p50 <= 150 µs added on the call path at every depth: {'met' if target_ok else 'NOT met'}")
    tmp.cleanup()
    return 0


if __name__ == "__main__":
    sys.exit(main())
