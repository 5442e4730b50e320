"""`compare` over whole runs: time per format, memory, HTML size, and the judge's cache (issue 10).

    python bench/bench_compare.py [--sizes 100 1000] [--turns 5] [--judge-conversations 100]

Writes 3 replay runs over N conversations of TURNS turns straight into a SQLite archive
(tests/synthetic_runs.py: the rows replay would have written), then times
``compare`` + rendering as table, JSON and HTML (best of --repeat), and measures the
peak Python heap of each (tracemalloc, a separate pass) so 100 and 1,000 conversations
can be set side by side. Last, ``compare --judge sandbox-judge`` twice over a smaller
archive through an in-process sandbox: the second pass must send 0 requests.
"""

from __future__ import annotations

import argparse
import io
import os
import sys
import tempfile
import time
import tracemalloc
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from google import genai  # noqa: E402
from google.genai import types  # noqa: E402

import convostore  # noqa: E402
from convostore.comparison import compare  # noqa: E402
from convostore.judging import SANDBOX_JUDGE, Judge  # noqa: E402
from convostore.report import write  # noqa: E402
from convostore.store import Store  # noqa: E402
from tests.synthetic_runs import seed  # noqa: E402


def _once(store: Store, runs: list[str], fmt: str) -> tuple[float, int]:
    out = io.StringIO()
    start = time.perf_counter()
    write(compare(store, *runs), out, fmt, width=120)
    return time.perf_counter() - start, len(out.getvalue().encode())


def _peak(store: Store, runs: list[str], fmt: str) -> float:
    tracemalloc.start()
    write(compare(store, *runs), open(os.devnull, "w", encoding="utf-8"), fmt, width=120)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    return peak / 2**20


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--sizes", type=int, nargs="+", default=[100, 1000])
    ap.add_argument("--turns", type=int, default=5)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--judge-conversations", type=int, default=100)
    args = ap.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="bench-compare-"))
    print(f"3 runs x N conversations x {args.turns} turns, SQLite; best of {args.repeat}")
    print(f"{'N':>6} {'table s':>8} {'json s':>8} {'html s':>8} {'html B/conv':>12} {'peak MiB table':>15} {'json':>6} {'html':>6}")
    for n in args.sizes:
        store = Store(tmp / f"n{n}.db")
        runs = seed(store, n, turns=args.turns)
        times = {}
        size = 0
        for fmt in ("table", "json", "html"):
            best = min(_once(store, runs, fmt) for _ in range(args.repeat))
            times[fmt] = best[0]
            if fmt == "html":
                size = best[1]
        peaks = {fmt: _peak(store, runs, fmt) for fmt in ("table", "json", "html")}
        print(f"{n:>6} {times['table']:>8.2f} {times['json']:>8.2f} {times['html']:>8.2f} {size / n:>12,.0f} "
              f"{peaks['table']:>15.1f} {peaks['json']:>6.1f} {peaks['html']:>6.1f}")
        store.close()

    n = args.judge_conversations
    store = Store(tmp / "judge.db")
    runs = seed(store, n, turns=args.turns)
    with convostore.Sandbox() as sb:
        client = convostore.record(genai.Client(api_key="sandbox", http_options=types.HttpOptions(base_url=sb.base_url)), store=store)
        for label in ("first", "second"):
            judge = Judge(store, SANDBOX_JUDGE, client=client)
            before = len(sb.requests)
            start = time.perf_counter()
            compare(store, *runs, judge=judge)
            print(f"judge, {label} compare over {n} conversations x 3 runs: {judge.requests} requests "
                  f"({len(sb.requests) - before} reached the sandbox), {time.perf_counter() - start:.2f} s")
    store.close()


if __name__ == "__main__":
    main()
