"""Recording while the database is away: what the caller pays, and whether every row lands.

    python bench/bench_outage.py                      # every scenario at the issue's durations
    python bench/bench_outage.py --quick              # short outages, fewer rounds (a smoke run)
    python bench/bench_outage.py --only sqlite pg-silent

Scenarios (each a fresh archive; the sandbox serves from a thread of this process):

* ``sqlite``: another connection holds the archive under ``BEGIN EXCLUSIVE`` for
  ``--lock`` seconds (60) while ``--creates`` (1,000) recorded creates run, paced over
  the lock. Reported: the worst and p99 time convostore's own code added to a call (timed
  around the SDK's functions, as in bench_record.py), and the seconds from the lock's
  release until all rows are in the archive.
* ``pg-silent``: the same against PostgreSQL behind a TCP relay that stops forwarding
  bytes for ``--silent`` seconds (60); ``pg-refuse``: the relay refuses connections for
  ``--refuse`` seconds (30).
* ``loop``: 100 async creates on ``client.aio`` against a locked archive; the worst lag
  of a 1 ms ticker on the same event loop.
* ``kill``: ``--kills`` (20) times, a child records rows into a locked archive, waits
  until they are spooled and is killed with SIGKILL; the archive is reopened after the
  lock's release. Reported: rows acknowledged to the spool that are missing (0 wanted).
* ``opens``: ``--rounds`` (20) rounds of 16 processes opening one empty PostgreSQL
  schema at once. Reported: failed opens (0 wanted).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from contextlib import contextmanager
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from tests.outage import OPENER, SPOOLING_CHILD, locked  # noqa: E402

MODEL = "gemini-2.5-flash"
PG = os.environ.get("CONVOSTORE_TEST_PG", "postgresql+psycopg://postgres@127.0.0.1:5432/test")


@contextmanager
def _pg_schema():  # type: ignore[no-untyped-def]
    import psycopg

    admin = psycopg.connect(PG.replace("postgresql+psycopg://", "postgresql://"), autocommit=True)
    schema = f"bench_{uuid.uuid4().hex[:10]}"
    admin.execute(f"CREATE SCHEMA {schema}")
    try:
        yield f"{PG}?options=-csearch_path%3D{schema}"
    finally:
        admin.execute(f"DROP SCHEMA {schema} CASCADE")
        admin.close()


def _client(base_url: str):  # type: ignore[no-untyped-def]
    from google import genai
    from google.genai import types

    return genai.Client(api_key="bench-key", http_options=types.HttpOptions(base_url=base_url))


def _count(url: str, ids: list[str]) -> int:
    from convostore.store import Store

    with Store(url, replay=False) as s:
        return sum(1 for r in s.list(limit=None) if r.id in set(ids))


def _outage(base_url: str, url: str, creates: int, duration: float, start, stop) -> dict[str, float]:  # type: ignore[no-untyped-def]
    """Record ``creates`` calls paced over ``duration`` seconds of outage; then measure landing."""
    from bench_record import _instrument

    from convostore.recorder import record
    from convostore.store import Store

    store = Store(url)
    client = _client(base_url)
    added = _instrument(client, lambda c: record(c, store=store))
    for i in range(10):  # warm: connections, statements
        client.interactions.create(model=MODEL, input=f"warm {i}")
    store.flush(60)
    added.clear()
    ids: list[str] = []
    start()
    t0 = time.monotonic()
    for i in range(creates):
        ids.append(client.interactions.create(model=MODEL, input=f"during the outage {i}").id)
        pause = t0 + duration * (i + 1) / creates - time.monotonic()
        if pause > 0:
            time.sleep(pause)
    while time.monotonic() < t0 + duration:
        time.sleep(0.05)
    stop()
    released = time.monotonic()
    landed = store.flush(300)
    land_s = time.monotonic() - released
    stored = _count(url, ids)
    store.close()
    ordered = sorted(added)
    return {
        "worst_ms": ordered[-1] * 1e3,
        "p99_ms": ordered[int(len(ordered) * 0.99)] * 1e3,
        "p50_us": statistics.median(ordered) * 1e6,
        "land_s": land_s if landed else float("inf"),
        "stored": stored,
        "creates": creates,
    }


def bench_sqlite(base_url: str, args: argparse.Namespace) -> dict[str, float]:
    tmp = tempfile.mkdtemp(prefix="convostore-outage-")
    path = Path(tmp) / "archive.db"
    from convostore.store import Store

    Store(path).close()
    holder: list = []

    def start() -> None:
        cm = locked(path)
        cm.__enter__()
        holder.append(cm)

    def stop() -> None:
        holder.pop().__exit__(None, None, None)

    return _outage(base_url, str(path), args.creates, args.lock, start, stop)


def bench_pg(base_url: str, args: argparse.Namespace, mode: str) -> dict[str, float]:
    from tests.outage import Relay

    with _pg_schema() as url:
        relay = Relay()
        try:
            duration = args.silent if mode == "silent" else args.refuse
            start = relay.silent if mode == "silent" else relay.refuse
            return _outage(base_url, relay.url(url), args.creates, duration, start, relay.forward)
        finally:
            relay.close()


def bench_loop(base_url: str, args: argparse.Namespace) -> dict[str, float]:
    """Worst loop lag with recorded creates vs. the bare SDK's, same run, archive locked:
    the SDK itself builds pydantic models on the loop (hundreds of ms under load), so
    only the difference is convostore's."""
    from convostore.recorder import record
    from convostore.store import Store

    tmp = tempfile.mkdtemp(prefix="convostore-loop-")
    path = Path(tmp) / "archive.db"
    store = Store(path)
    arc = record(_client(base_url), store=store).aio
    bare = _client(base_url).aio

    async def lag_of(client) -> float:  # type: ignore[no-untyped-def]
        lag = 0.0
        done = False

        async def ticker() -> None:
            nonlocal lag
            while not done:
                t = time.perf_counter()
                await asyncio.sleep(0.001)
                lag = max(lag, time.perf_counter() - t - 0.001)

        tick = asyncio.create_task(ticker())
        await asyncio.gather(*(client.interactions.create(model=MODEL, input=f"async {i}") for i in range(100)))
        done = True
        await tick
        return lag

    async def main() -> tuple[float, float]:
        for i in range(5):
            await arc.interactions.create(model=MODEL, input=f"warm {i}")
            await bare.interactions.create(model=MODEL, input=f"warm {i}")
        store.flush(30)
        with locked(path):
            lags = [(await lag_of(bare), await lag_of(arc)) for _ in range(3)]
        return min(b for b, _ in lags), min(r for _, r in lags)

    bare_lag, rec_lag = asyncio.run(main())
    landed = store.flush(60)
    store.close()
    return {"bare_ms": bare_lag * 1e3, "lag_ms": rec_lag * 1e3, "landed": landed}


def bench_kill(base_url: str, args: argparse.Namespace) -> dict[str, float]:
    from convostore.store import Store

    missing = acknowledged = 0
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    for _ in range(args.kills):
        path = Path(tempfile.mkdtemp(prefix="convostore-kill-")) / "archive.db"
        Store(path).close()
        with locked(path):
            child = subprocess.Popen(
                [sys.executable, "-c", SPOOLING_CHILD, str(path), base_url, "20"], stdin=subprocess.PIPE, stdout=subprocess.PIPE, env=env
            )
            ids = json.loads(child.stdout.readline())  # type: ignore[union-attr]
            child.send_signal(signal.SIGKILL)
            child.wait()
        acknowledged += len(ids)
        with Store(path) as s:  # the open writes the dead child's spool
            stored = {r.id for r in s.list(limit=None)}
        missing += len(set(ids) - stored)
    return {"kills": args.kills, "acknowledged": acknowledged, "missing": missing}


def bench_opens(args: argparse.Namespace) -> dict[str, float]:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    failures = opens = 0
    errors: list[str] = []
    for _ in range(args.rounds):
        with _pg_schema() as url:
            procs = [
                subprocess.Popen([sys.executable, "-c", OPENER, url], stdin=subprocess.PIPE, stderr=subprocess.PIPE, env=env)
                for _ in range(16)
            ]
            for p in procs:
                p.stdin.write(b"go\n")  # type: ignore[union-attr]
                p.stdin.flush()  # type: ignore[union-attr]
            for p in procs:
                _, err = p.communicate(timeout=600)
                opens += 1
                if p.returncode != 0:
                    failures += 1
                    errors.append(err.decode().strip().splitlines()[-1])
    return {"opens": opens, "failures": failures, "first_error": errors[0] if errors else ""}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--only", nargs="+", choices=["sqlite", "pg-silent", "pg-refuse", "loop", "kill", "opens"], help="scenarios to run (default: all)")
    parser.add_argument("--creates", type=int, default=1000, help="recorded creates per outage")
    parser.add_argument("--lock", type=float, default=60.0, help="seconds the SQLite archive stays locked")
    parser.add_argument("--silent", type=float, default=60.0, help="seconds PostgreSQL stays silent")
    parser.add_argument("--refuse", type=float, default=30.0, help="seconds PostgreSQL refuses connections")
    parser.add_argument("--kills", type=int, default=20, help="SIGKILL rounds")
    parser.add_argument("--rounds", type=int, default=20, help="rounds of 16 concurrent first opens")
    parser.add_argument("--quick", action="store_true", help="short outages (5 s), 200 creates, 3 kills, 2 rounds")
    args = parser.parse_args(argv)
    if args.quick:
        args.creates, args.lock, args.silent, args.refuse, args.kills, args.rounds = 200, 5.0, 5.0, 5.0, 3, 2
    only = set(args.only or ["sqlite", "pg-silent", "pg-refuse", "loop", "kill", "opens"])

    import logging

    logging.basicConfig(level=logging.ERROR)
    from convostore.sandbox import Sandbox

    results: list[tuple[str, str]] = []
    with Sandbox() as sb:
        if "sqlite" in only:
            r = bench_sqlite(sb.base_url, args)
            results.append((f"SQLite locked {args.lock:.0f} s, {r['creates']} creates", _outage_line(r)))
        if "pg-silent" in only:
            r = bench_pg(sb.base_url, args, "silent")
            results.append((f"PostgreSQL silent {args.silent:.0f} s, {r['creates']} creates", _outage_line(r)))
        if "pg-refuse" in only:
            r = bench_pg(sb.base_url, args, "refuse")
            results.append((f"PostgreSQL refusing {args.refuse:.0f} s, {r['creates']} creates", _outage_line(r)))
        if "loop" in only:
            r = bench_loop(sb.base_url, args)
            results.append((
                "event-loop lag, 100 concurrent async creates, archive locked (best of 3)",
                f"worst lag recorded {r['lag_ms']:.1f} ms vs bare SDK {r['bare_ms']:.1f} ms "
                f"(convostore's share {r['lag_ms'] - r['bare_ms']:.1f} ms); rows landed: {r['landed']}",
            ))
        if "kill" in only:
            r = bench_kill(sb.base_url, args)
            results.append((f"SIGKILL with rows spooled × {r['kills']}", f"{r['missing']} missing of {r['acknowledged']} acknowledged"))
    if "opens" in only:
        r = bench_opens(args)
        results.append((f"16 processes × {args.rounds} rounds, first opens of an empty PostgreSQL schema", f"{r['failures']} failed of {r['opens']} {r['first_error']}".rstrip()))
    print("\n| scenario | result |\n|---|---|")
    for name, line in results:
        print(f"| {name} | {line} |")
    return 0


def _outage_line(r: dict[str, float]) -> str:
    return (
        f"added per call: worst {r['worst_ms']:.2f} ms, p99 {r['p99_ms']:.2f} ms, p50 {r['p50_us']:.0f} µs; "
        f"all rows in {r['land_s']:.2f} s after release ({r['stored']} of {r['creates']})"
    )


if __name__ == "__main__":
    sys.exit(main())
