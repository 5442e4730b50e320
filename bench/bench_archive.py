"""Export and import throughput on a large archive, and their peak memory (issue 2).

    python bench/bench_archive.py [--n 100000] [--db URL]

Builds an archive of N interactions (chains of 10 turns), then exports it to JSONL
and imports that file into a fresh store, each in its own process so its peak RSS is
its own. Target: >= 20,000 interactions/s each way, memory flat in N.
"""

from __future__ import annotations

import argparse
import resource
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from convostore.records import row_from_exchange  # noqa: E402
from convostore.store import Store  # noqa: E402

USER = "[turn {i}] Please summarise the quarterly numbers and list the three biggest risks."
REPLY = "Revenue grew 4% quarter on quarter while operating costs were flat. The three biggest risks are supplier concentration, currency exposure and churn."


def build(url: str, n: int) -> None:
    store = Store(url)
    now = datetime.now(timezone.utc)
    with store.writer() as w:
        for i in range(n):
            req = {"model": "gemini-2.5-flash", "input": USER.format(i=i)}
            if i % 10:
                req["previous_interaction_id"] = f"v1_{i - 1}"
            resp = {"id": f"v1_{i}", "status": "completed", "model": "gemini-2.5-flash", "created": "2026-11-24T12:00:00Z",
                    "steps": [{"type": "model_output", "content": [{"type": "text", "text": REPLY}]}],
                    "usage": {"total_input_tokens": 20, "total_output_tokens": 30, "total_tokens": 50}}
            w.save(row_from_exchange(req, resp, api_version="v1", recorded_at=now))
    store.close()


def phase(kind: str, url: str, path: str) -> None:
    from convostore.archive import export_jsonl, import_jsonl

    store = Store(url)
    t0 = time.perf_counter()
    if kind == "export":
        with open(path, "wb") as out:
            n = export_jsonl(store, out)
    else:
        n = import_jsonl(store, path).added
    elapsed = time.perf_counter() - t0
    rss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"{kind:>6}: {n:>8} interactions in {elapsed:6.2f} s = {n / elapsed:>8.0f}/s, peak RSS {rss_mb:.0f} MB")


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "--phase":
        phase(sys.argv[2], sys.argv[3], sys.argv[4])
        return
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, nargs="+", default=[10000, 100000])
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        for n in args.n:
            src, dst, dump = f"{tmp}/src{n}.db", f"{tmp}/dst{n}.db", f"{tmp}/dump{n}.jsonl"
            t0 = time.perf_counter()
            build(src, n)
            print(f"built {n} interactions in {time.perf_counter() - t0:.1f} s")
            for kind, url in (("export", src), ("import", dst)):
                subprocess.run([sys.executable, __file__, "--phase", kind, url, dump], check=True)


if __name__ == "__main__":
    main()
