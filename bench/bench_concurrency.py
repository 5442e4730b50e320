"""Many processes recording into one archive, and a process killed mid-write (issue 2).

    python bench/bench_concurrency.py [--procs 8] [--each 500] [--pg postgresql://postgres@127.0.0.1/test]

Eight processes each save 500 interactions (through ``Store.save_quiet``, the
recorder's path) into one SQLite file, then into PostgreSQL: all 4,000 must be there,
with no lock errors. Then a writer is SIGKILLed mid-stream: the file must pass
``PRAGMA integrity_check`` with every interaction it had reported saved present.
"""

from __future__ import annotations

import argparse
import signal
import sqlite3
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
WRITER = """
import sys
from datetime import datetime, timezone
sys.path.insert(0, {root!r})
from convostore.records import row_from_exchange
from convostore.store import Store
url, prefix, n = sys.argv[1], sys.argv[2], int(sys.argv[3])
s = Store(url)
for i in range(n):
    req = {{"model": "m", "input": f"{{prefix}} turn {{i}}"}}
    if i:
        req["previous_interaction_id"] = f"{{prefix}}-{{i-1}}"
    resp = {{"id": f"{{prefix}}-{{i}}", "status": "completed", "steps": [{{"type": "model_output", "content": [{{"type": "text", "text": "ok " * 50}}]}}]}}
    s.save_quiet(row_from_exchange(req, resp, api_version="v1", recorded_at=datetime.now(timezone.utc)))
    print(f"{{prefix}}-{{i}}", flush=True)
"""


def run_many(url: str, procs: int, each: int, script: Path) -> None:
    sys.path.insert(0, str(ROOT))
    from convostore.store import Store

    Store(url).close()  # migrate once, before the race
    t0 = time.perf_counter()
    ps = [subprocess.Popen([sys.executable, str(script), url, f"p{p}", str(each)], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True) for p in range(procs)]
    errors = [p.communicate()[1] for p in ps]
    elapsed = time.perf_counter() - t0
    failed = [e for p, e in zip(ps, errors) if p.returncode]
    store = Store(url)
    n = store.stats()["interactions"]
    store.close()
    kind = "postgresql" if url.startswith("postgres") else "sqlite"
    print(f"{kind:>10}: {procs} processes x {each}: {n} stored of {procs * each}, {len(failed)} failed processes, "
          f"{elapsed:.1f} s ({procs * each / elapsed:.0f}/s)" + (f"\n{failed[0][-500:]}" if failed else ""))


def kill_test(tmp: Path, script: Path) -> None:
    db = tmp / "killed.db"
    proc = subprocess.Popen([sys.executable, str(script), str(db), "k", "100000"], stdout=subprocess.PIPE, text=True)
    done = [proc.stdout.readline().strip() for _ in range(1000)]  # type: ignore[union-attr]
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    conn = sqlite3.connect(db)
    check = conn.execute("PRAGMA integrity_check").fetchone()[0]
    stored = {r[0] for r in conn.execute("SELECT id FROM interaction")}
    missing = [d for d in done if d not in stored]
    print(f"   SIGKILL: integrity_check={check}, {len(done)} reported saved, {len(missing)} missing, {len(stored)} in file")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--procs", type=int, default=8)
    ap.add_argument("--each", type=int, default=500)
    ap.add_argument("--pg", default="postgresql://postgres@127.0.0.1:5432/test")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp_:
        tmp = Path(tmp_)
        script = tmp / "writer.py"
        script.write_text(WRITER.format(root=str(ROOT)))
        run_many(str(tmp / "many.db"), args.procs, args.each, script)
        if args.pg:
            import psycopg

            schema = f"bench_{uuid.uuid4().hex[:8]}"
            with psycopg.connect(args.pg, autocommit=True) as admin:
                admin.execute(f"CREATE SCHEMA {schema}")
                try:
                    run_many(f"{args.pg}?options=-csearch_path%3D{schema}", args.procs, args.each, script)
                finally:
                    admin.execute(f"DROP SCHEMA {schema} CASCADE")
        kill_test(tmp, script)


if __name__ == "__main__":
    main()
