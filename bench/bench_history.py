"""How long does history() take to rebuild a long chain? (issue 4: 1,000 turns < 10 ms, 10,000 < 100 ms)

    python bench/bench_history.py [--turns 1000 10000] [--repeat 5]

Chains are saved straight into a fresh SQLite file (as the recorder would save them),
then rebuilt; the figure is the median of --repeat rebuilds.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from convostore.rebuild import history  # noqa: E402
from convostore.records import row_from_exchange  # noqa: E402
from convostore.store import Store  # noqa: E402

USER = "[turn {i}] Please summarise the quarterly numbers and list the three biggest risks."
REPLY = "Revenue grew 4% quarter on quarter while operating costs were flat. " * 6


def build(store: Store, turns: int) -> str:
    prev = None
    now = datetime.now(timezone.utc)
    for i in range(turns):
        iid = f"v1_bench_{turns}_{i}"
        request = {"model": "gemini-2.5-flash", "input": USER.format(i=i)}
        if prev:
            request["previous_interaction_id"] = prev
        response = {"id": iid, "status": "completed", "model": "gemini-2.5-flash",
                    "steps": [{"type": "model_output", "content": [{"type": "text", "text": REPLY}]}]}
        store.save(row_from_exchange(request, response, api_version="v1", recorded_at=now))
        prev = iid
    return prev  # type: ignore[return-value]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--turns", type=int, nargs="+", default=[1000, 10000])
    ap.add_argument("--repeat", type=int, default=5)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        store = Store(str(Path(tmp) / "bench.db"))
        print(f"{'turns':>8} {'build s':>9} {'history ms':>11} {'per turn µs':>12} {'chain ms':>9}")
        for n in args.turns:
            t0 = time.perf_counter()
            head = build(store, n)
            build_s = time.perf_counter() - t0
            samples, chain_samples = [], []
            for _ in range(args.repeat):
                t0 = time.perf_counter()
                store.chain(head)
                chain_samples.append(time.perf_counter() - t0)
                t0 = time.perf_counter()
                h = history(store, head)
                samples.append(time.perf_counter() - t0)
            assert h.turns == n
            med = statistics.median(samples)
            print(f"{n:>8} {build_s:>9.2f} {med * 1000:>11.2f} {med / n * 1e6:>12.2f} {statistics.median(chain_samples) * 1000:>9.2f}")
        store.close()


if __name__ == "__main__":
    main()
