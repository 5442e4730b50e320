"""Export and import throughput on a large archive, their peak memory, and the first
search after the import (issues 2, 8 and 12).

    python bench/bench_archive.py [--n 20000 100000] [--db postgresql+psycopg://postgres@127.0.0.1/test]

Builds an archive of N interactions (chains of 10 turns), then exports it to JSONL
and imports that file into a fresh store, each in its own process so its peak RSS is
its own; then a third process opens the imported archive and times its first
`search` for a rare word (one row) and a common one (every row: ranking cost, issue
12). Default: SQLite files in a temporary directory; with --db, a PostgreSQL server
(two fresh schemas per N, dropped afterwards). Targets: import >= 30,000/s on SQLite
and >= 20,000/s on PostgreSQL, export >= 60,000/s, peak RSS flat in N, first search
<= 200 ms.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
import uuid
from datetime import datetime, timezone
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from convostore.records import row_from_exchange  # noqa: E402
from convostore.store import Store  # noqa: E402

#: Interactions per second (issue 12), by phase and backend.
TARGETS = {("import", False): 30_000, ("import", True): 20_000, ("export", False): 60_000, ("export", True): 60_000}
SEARCH_TARGET_MS = 200
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
    if kind == "search":
        words = {"rare": path, "common": "risks"}
        out = {}
        for label, word in words.items():  # the first search of this process, then the common word
            t0 = time.perf_counter()
            hits = len(store.search(word, limit=20))
            out[label] = {"ms": (time.perf_counter() - t0) * 1000, "hits": hits}
        print(json.dumps(out))
        return
    t0 = time.perf_counter()
    if kind == "export":
        with open(path, "wb") as out:
            n = export_jsonl(store, out)
    else:
        n = import_jsonl(store, path).added
    elapsed = time.perf_counter() - t0
    rss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps({"n": n, "seconds": elapsed, "rss_mb": rss_mb}))


def _pg_schemas(base: str, names: list[str], drop: bool = False) -> None:
    import psycopg

    with psycopg.connect(base.replace("postgresql+psycopg://", "postgresql://"), autocommit=True) as conn:
        for name in names:
            conn.execute(f"DROP SCHEMA {name} CASCADE" if drop else f"CREATE SCHEMA {name}")


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "--phase":
        phase(sys.argv[2], sys.argv[3], sys.argv[4])
        return
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, nargs="+", default=[20000, 100000], help="archive sizes to run")
    ap.add_argument("--db", help="a PostgreSQL server URL (default: SQLite files)")
    args = ap.parse_args()
    pg = args.db is not None
    if pg and not args.db.startswith("postgresql"):
        ap.error("--db takes a postgresql:// URL (SQLite is the default)")
    print(f"backend: {'PostgreSQL ' + args.db if pg else 'SQLite'}")
    results: dict[str, list[tuple[int, float, float]]] = {"export": [], "import": []}
    searches: list[tuple[int, float, float]] = []
    with tempfile.TemporaryDirectory() as tmp:
        for n in args.n:
            dump = f"{tmp}/dump{n}.jsonl"
            schemas: list[str] = []
            if pg:
                schemas = [f"bench_{uuid.uuid4().hex[:10]}", f"bench_{uuid.uuid4().hex[:10]}"]
                _pg_schemas(args.db, schemas)
                sep = "&" if "?" in args.db else "?"
                src, dst = (f"{args.db}{sep}options=-csearch_path%3D{s}" for s in schemas)
            else:
                src, dst = f"sqlite:///{tmp}/src{n}.db", f"sqlite:///{tmp}/dst{n}.db"
            try:
                t0 = time.perf_counter()
                build(src, n)
                print(f"built {n} interactions in {time.perf_counter() - t0:.1f} s")
                for kind, url in (("export", src), ("import", dst)):
                    out = subprocess.run([sys.executable, __file__, "--phase", kind, url, dump], check=True,
                                         capture_output=True, text=True).stdout
                    r = json.loads(out.strip().splitlines()[-1])
                    rate = r["n"] / r["seconds"]
                    results[kind].append((n, rate, r["rss_mb"]))
                    print(f"{kind:>6}: {r['n']:>8} interactions in {r['seconds']:6.2f} s = {rate:>8.0f}/s, "
                          f"peak RSS {r['rss_mb']:.0f} MB")
                out = subprocess.run([sys.executable, __file__, "--phase", "search", dst, str(n - 1)], check=True,
                                     capture_output=True, text=True).stdout
                r = json.loads(out.strip().splitlines()[-1])
                searches.append((n, r["rare"]["ms"], r["common"]["ms"]))
                print(f"first search after the import: rare word {r['rare']['ms']:.1f} ms ({r['rare']['hits']} hit), "
                      f"then a common word {r['common']['ms']:.1f} ms (first 20 of {n})")
            finally:
                if schemas:
                    _pg_schemas(args.db, schemas, drop=True)
    print()
    for kind, runs in results.items():
        target = TARGETS[kind, pg]
        slowest = min(rate for _, rate, _ in runs)
        rss = ", ".join(f"{mb:.0f} MB at {n}" for n, _, mb in runs)
        verdict = "met" if slowest >= target else "NOT met"
        print(f"{kind}: slowest {slowest:,.0f}/s, target {target:,}/s {verdict}; peak RSS {rss}")
    worst = max(ms for _, ms, _ in searches)
    verdict = "met" if worst <= SEARCH_TARGET_MS else "NOT met"
    print(f"first search after an import (rare word): worst {worst:.1f} ms, target {SEARCH_TARGET_MS} ms {verdict}")


if __name__ == "__main__":
    main()
