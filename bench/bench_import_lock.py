"""How long a recorder waits while a large import runs (issue 12: imports never block
recorders for long).

    python bench/bench_import_lock.py [--n 100000] [--db postgresql://postgres@127.0.0.1/test] [--bulk]

Imports an N-interaction file (``bench_scale``'s, 10-turn conversations) in a child
process while this process saves one recorded row every 5 ms through ``save_quiet``
(the save a recorder's background writer makes), and prints the saves' latency during
the import: p50, p99 and the longest, which is the longest time the import held the
lock a recorder needs (SQLite: a batch's transaction; PostgreSQL: none, unless the
import runs in bulk, which locks the table until COMMIT: ``--bulk``).
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from datetime import datetime, timezone
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from bench_scale import RESULTS, _pg, _pg_url, generate  # noqa: E402

from convostore.errors import StoreError  # noqa: E402
from convostore.records import row_from_exchange  # noqa: E402
from convostore.store import Store  # noqa: E402

_IMPORT = (
    "import sys; from convostore.store import Store; from convostore.archive import import_jsonl; "
    "url, path, bulk = sys.argv[1:]; s = Store(url); print('ready', flush=True); sys.stdin.readline(); "
    "print(import_jsonl(s, path, bulk=bulk == 'on').added, flush=True)"
)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=100_000, help="interactions in the imported file")
    ap.add_argument("--db", help="a PostgreSQL server URL (default: a SQLite file)")
    ap.add_argument("--bulk", action="store_true", help="PostgreSQL: import_jsonl(bulk=True)")

    args = ap.parse_args()
    RESULTS.mkdir(parents=True, exist_ok=True)
    dump = RESULTS / f"scale-{args.n}.jsonl"
    if not dump.exists():
        generate(args.n, dump)
    schema = f"lock_{uuid.uuid4().hex[:8]}"
    with tempfile.TemporaryDirectory() as tmp:
        if args.db:
            base = args.db.replace("postgresql://", "postgresql+psycopg://", 1)
            _pg(base, f"CREATE SCHEMA {schema}")
            url = _pg_url(base, schema)
        else:
            url = f"{tmp}/lock.db"
        try:
            run(url, dump, 'on' if args.bulk else 'off')
        finally:
            if args.db:
                _pg(base, f"DROP SCHEMA {schema} CASCADE")


def run(url: str, dump: Path, bulk: str) -> None:
    store = Store(url)
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    child = subprocess.Popen([sys.executable, "-c", _IMPORT, url, str(dump), bulk], stdin=subprocess.PIPE,
                             stdout=subprocess.PIPE, text=True, env=env)
    assert child.stdout is not None and child.stdin is not None
    child.stdout.readline()  # the child's store is open (migrated): start
    child.stdin.write("go\n")
    child.stdin.flush()
    waits: list[float] = []
    errors = 0
    t0 = time.perf_counter()
    k = 0
    while child.poll() is None:
        k += 1
        row = row_from_exchange({"model": "m", "input": f"during the import {k}"},
                                {"id": f"rec_{k}", "status": "completed", "model": "m"},
                                api_version="v1", recorded_at=datetime.now(timezone.utc))
        s0 = time.perf_counter()
        try:
            store.save_quiet(row)
        except StoreError:
            errors += 1
        waits.append((time.perf_counter() - s0) * 1000)
        time.sleep(0.005)
    seconds = time.perf_counter() - t0
    added = child.stdout.read().strip()
    waits.sort()
    p99 = waits[int(len(waits) * 0.99) - 1] if len(waits) >= 100 else waits[-1]
    print(f"{'PostgreSQL' if '+psycopg' in url else 'SQLite'} bulk={bulk}: imported {added} in {seconds:.1f} s; "
          f"{len(waits)} saves meanwhile: p50 {statistics.median(waits):.1f} ms, p99 {p99:.1f} ms, "
          f"longest {waits[-1]:.0f} ms, {errors} refused; load average {os.getloadavg()[0]:.1f}")
    store.close()


if __name__ == "__main__":
    main()
