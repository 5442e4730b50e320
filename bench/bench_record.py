"""Recording overhead per ``create``: the recorded client against the bare SDK, same run.

    python bench/bench_record.py                 # depths 10 and 10,000, SQLite
    python bench/bench_record.py --depths 10 1000 --samples 300 --db postgresql+psycopg://postgres@127.0.0.1/test

Both clients talk to one local sandbox. One chain is grown through the recorded client;
at each measured depth, ``--samples`` pairs of calls branch off the chain's head (a bare
one, then a recorded one, alternating so drift hits both alike): same depth, same
payload, same server work. Reported per depth:

* bare / recorded medians of the whole ``create`` (µs) and their ratio;
* added = recorded median − bare median (µs), the figure the target is about (< 500 µs);
* hook = the recorder's own time per call (building the row + ``store.save``), measured
  inside the seam, which is steadier than a difference of two noisy medians.

"Flat" means the added cost at depth 10,000 matches the one at depth 10: the hot path
does no chain walk (the store links a turn by its parent's id, one indexed lookup).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

MODEL = "gemini-3-flash-preview"


def _fmt(us: float) -> str:
    return f"{us:9.0f}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--depths", type=int, nargs="+", default=[10, 10_000], help="chain depths to measure at")
    parser.add_argument("--samples", type=int, default=300, help="bare/recorded call pairs per depth")
    parser.add_argument("--db", default=None, help="store URL or path (default: a fresh SQLite file)")
    args = parser.parse_args(argv)

    from google import genai
    from google.genai import types

    from convostore.recording.core import Recorder
    from convostore.recorder import record
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

    tmp = tempfile.TemporaryDirectory(prefix="convostore-bench-")
    url = args.db or str(Path(tmp.name) / "bench.db")
    store = Store(url)
    rows: list[tuple[int, dict[str, float]]] = []
    with Sandbox() as sb:
        opts = types.HttpOptions(base_url=sb.base_url)
        bare = genai.Client(api_key="bench-key", http_options=opts)
        recorded = record(genai.Client(api_key="bench-key", http_options=opts), store=store)

        # warm both paths (imports, connection pools, first-statement compilation)
        head = None
        for i in range(20):
            bare.interactions.create(model=MODEL, input=f"warm {i}")
            kw = {"previous_interaction_id": head} if head else {}
            head = recorded.interactions.create(model=MODEL, input=f"warm-up turn {i}", **kw).id
        depth = 20
        grow_times: list[float] = []
        for target in sorted(args.depths):
            while depth < target:
                t0 = time.perf_counter()
                head = recorded.interactions.create(
                    model=MODEL, input=f"turn {depth}: tell me more", previous_interaction_id=head
                ).id
                grow_times.append(time.perf_counter() - t0)
                depth += 1
                if depth % 2000 == 0:
                    print(f"  chain grown to {depth} turns", file=sys.stderr, flush=True)
            bare_t: list[float] = []
            rec_t: list[float] = []
            hook_times.clear()
            for i in range(args.samples):
                text = f"branch {i} at depth {depth}"
                t0 = time.perf_counter()
                bare.interactions.create(model=MODEL, input=text, previous_interaction_id=head)
                t1 = time.perf_counter()
                recorded.interactions.create(model=MODEL, input=text, previous_interaction_id=head)
                t2 = time.perf_counter()
                bare_t.append(t1 - t0)
                rec_t.append(t2 - t1)
            b = statistics.median(bare_t) * 1e6
            r = statistics.median(rec_t) * 1e6
            h = statistics.median(hook_times) * 1e6
            rows.append((depth, {"bare": b, "recorded": r, "added": r - b, "ratio": r / b, "hook": h}))
    Recorder.on_exchange = original  # type: ignore[method-assign]

    backend = "postgresql" if url.startswith("postgres") else "sqlite"
    print(f"\nRecording overhead per create ({backend}, {args.samples} pairs per depth, sandbox on loopback)\n")
    print("| depth | bare µs | recorded µs | added µs | ratio | hook µs (row + save) |")
    print("|---:|---:|---:|---:|---:|---:|")
    for depth, f in rows:
        print(
            f"| {depth:,} | {_fmt(f['bare'])} | {_fmt(f['recorded'])} | {_fmt(f['added'])} | {f['ratio']:.2f} | {_fmt(f['hook'])} |"
        )
    if grow_times:
        k = min(200, len(grow_times))
        print(
            f"\nGrowing the chain (recorded create per turn): first {k} median "
            f"{statistics.median(grow_times[:k]) * 1e6:.0f} µs, last {k} median "
            f"{statistics.median(grow_times[-k:]) * 1e6:.0f} µs"
        )
    target_ok = all(f["hook"] < 500 for _, f in rows)
    print(f"\nTarget < 500 µs added (hook) on every depth: {'met' if target_ok else 'NOT met'}")
    tmp.cleanup()
    return 0


if __name__ == "__main__":
    sys.exit(main())
