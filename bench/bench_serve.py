"""`convostore serve` under load: time to first byte of its pages, requests per second of its JSON API (issue 13).

    nice -n 10 python bench/bench_serve.py [--size 1000000] [--clients 16] [--requests 25] [--seconds 10]

The archive is bench_scale.py's (N/10 conversations x 10 turns, built once by
``convostore import`` and cached in ``bench/results/``), copied to ``serve-N.db`` with
one 100-turn conversation imported into it. ``convostore serve`` runs in a subprocess
(the real command, one uvicorn process); ``--clients`` concurrent clients (httpx,
keep-alive connections, one event loop) each send ``--requests`` requests per page after
a warm-up round, and the time to first byte of each response (request sent → first
body byte) is kept. Then the same clients hammer the JSON API for ``--seconds`` each.

Target, on the 1M archive with 16 clients: p95 time to first byte <= 100 ms for ``/``,
the 100-turn conversation and a search page. The client shares the machine with the
server: on a loaded 2-core machine its own CPU is part of every figure (said beside them).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import re
import shutil
import socket
import statistics
import subprocess
import sys
import time
from datetime import timedelta
from pathlib import Path
from typing import Any

import orjson

sys.path.insert(0, str(Path(__file__).resolve().parent))
import bench_scale  # noqa: E402 - the archive builder lives beside this file

RESULTS = bench_scale.RESULTS
LONG = 100  # turns of the long conversation
LONG_ID = "v1_long100t"  # its turns: v1_long100t0 .. v1_long100t99
TARGET_MS = 100.0


def long_conversation(path: Path) -> None:
    """One 100-turn conversation as convostore JSONL, recorded an hour before the archive's newest."""
    start = bench_scale.EPOCH - timedelta(hours=1)
    with open(path, "wb") as out:
        prev = None
        for t in range(LONG):
            iid = f"{LONG_ID}{t}"
            at = start + timedelta(seconds=20 * t)
            request: dict[str, Any] = {"model": bench_scale.MODELS[1], "input": f"[{t}] and the next step of the plan, please?"}
            if prev:
                request["previous_interaction_id"] = prev
            text = (f"Step {t}: review the **{bench_scale.WORDS[t % len(bench_scale.WORDS)]}** numbers, then\n\n"
                    "- check the supplier contracts\n- write down the three biggest risks\n\n`done` when finished.")
            response = {"id": iid, "status": "completed", "model": request["model"], "created": bench_scale._iso(at),
                        "steps": [{"type": "thought", "signature": "c2lnbmVk", "summary": [{"type": "text", "text": f"Planning step {t}"}]},
                                  {"type": "model_output", "content": [{"type": "text", "text": text}]}],
                        "usage": {"total_input_tokens": 30 + 60 * t, "total_output_tokens": 40, "total_tokens": 70 + 60 * t}}
            meta: dict[str, Any] = {"conversation_id": f"{LONG_ID}0", "link": "server" if prev else "root",
                                    "recorded_at": bench_scale._iso(at), "context_hash": f"long{t}", "status": "completed",
                                    "server_state": "live", "latency_ms": 1200.0, "expires_at": bench_scale._iso(at + timedelta(days=1))}
            if prev:
                meta["parent_id"] = prev
            out.write(orjson.dumps({"convostore": 1, "id": iid, "api_version": "v1", "request": request,
                                    "response": response, "meta": meta}, option=orjson.OPT_APPEND_NEWLINE))
            prev = iid


def archive(n: int) -> Path:
    """bench_scale's N archive plus the 100-turn conversation, as ``serve-N.db`` (built once)."""
    db = RESULTS / f"serve-{n}.db"
    done = RESULTS / f"serve-{n}.db.built"
    if db.exists() and done.exists():
        return db
    source, _ = bench_scale.archive(n, None, False)
    for suffix in ("", "-wal", "-shm"):
        Path(f"{db}{suffix}").unlink(missing_ok=True)
    for suffix in ("", "-wal"):  # no writer is open on it: the file and its WAL are the archive
        if Path(f"{source}{suffix}").exists():
            shutil.copyfile(f"{source}{suffix}", f"{db}{suffix}")
    extra = RESULTS / "serve-long.jsonl"
    long_conversation(extra)
    subprocess.run([sys.executable, "-m", "convostore", "--db", str(db), "import", str(extra)], check=True,
                   stdout=subprocess.DEVNULL)
    done.write_text("ok")
    return db


def start_server(db: Path) -> tuple[subprocess.Popen[str], str]:
    """``convostore serve`` on a free port; returns once it has printed its URL."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = {**os.environ, "PYTHONPATH": str(bench_scale.ROOT)}
    proc = subprocess.Popen([sys.executable, "-m", "convostore", "--db", str(db), "serve", "--port", str(port)],
                            stdout=subprocess.PIPE, text=True, env=env)
    assert proc.stdout is not None
    line = proc.stdout.readline()  # "convostore serve: http://127.0.0.1:PORT/ ..."
    url = re.search(r"http://\S+", line)
    if not url:
        proc.kill()
        raise SystemExit(f"convostore serve did not start: {line!r}")
    return proc, url.group(0).rstrip("/")


async def _ttfb(client: Any, url: str) -> float:
    t0 = time.perf_counter()
    async with client.stream("GET", url) as response:
        chunks = response.aiter_raw()
        await chunks.__anext__()
        first = time.perf_counter() - t0
        async for _ in chunks:
            pass
        if response.status_code != 200:
            raise SystemExit(f"{url}: HTTP {response.status_code}")
    return first * 1000


async def page_load(base: str, paths: list[str], clients: int, requests: int) -> list[float]:
    """TTFB (ms) of ``requests`` GETs from each of ``clients`` concurrent clients, each
    taking the next of ``paths`` in turn (a search page asks for different words)."""
    import httpx

    async def one(i: int, client: httpx.AsyncClient) -> list[float]:
        await _ttfb(client, base + paths[i % len(paths)])  # warm-up: connection, caches
        return [await _ttfb(client, base + paths[(i * requests + k) % len(paths)]) for k in range(requests)]

    pool = [httpx.AsyncClient(timeout=60) for _ in range(clients)]
    try:
        results = await asyncio.gather(*(one(i, c) for i, c in enumerate(pool)))
    finally:
        await asyncio.gather(*(c.aclose() for c in pool))
    return [ms for r in results for ms in r]


async def api_rate(base: str, paths: list[str], clients: int, seconds: float) -> float:
    """Requests per second the JSON API answers, ``clients`` at once, each picking paths at random."""
    import httpx

    stop = time.perf_counter() + seconds
    counts = [0] * clients

    async def one(i: int, client: httpx.AsyncClient) -> None:
        rng = random.Random(i)
        while time.perf_counter() < stop:
            response = await client.get(base + rng.choice(paths))
            if response.status_code != 200:
                raise SystemExit(f"{response.url}: HTTP {response.status_code}")
            counts[i] += 1

    pool = [httpx.AsyncClient(timeout=60) for _ in range(clients)]
    t0 = time.perf_counter()
    try:
        await asyncio.gather(*(one(i, c) for i, c in enumerate(pool)))
    finally:
        await asyncio.gather(*(c.aclose() for c in pool))
    return sum(counts) / (time.perf_counter() - t0)


def cpu_ms(pid: int) -> float:
    """CPU time (user + system) the server process has used, ms: its own cost, whatever the load."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) * 1000 / os.sysconf("SC_CLK_TCK")


def pct(values: list[float], q: float) -> float:
    return statistics.quantiles(values, n=100, method="inclusive")[int(q) - 1]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--size", type=int, default=1_000_000, help="interactions in the archive (bench_scale's sizes)")
    ap.add_argument("--clients", type=int, default=16, help="concurrent clients")
    ap.add_argument("--requests", type=int, default=25, help="timed requests per client per page")
    ap.add_argument("--seconds", type=float, default=10, help="seconds of JSON API load")
    args = ap.parse_args()
    db = archive(args.size)
    conversations = args.size // bench_scale.TURNS
    rng = random.Random(7)
    pages = {  # (name, paths, target)
        "/ (conversations, first page)": ["/"],
        f"a {LONG}-turn conversation": [f"/conversations/{LONG_ID}0"],
        "search, a word in 1% of rows (relevance)": [f"/search?q=pct{k}" for k in range(100)],
        "search, a word in 1% of rows (newest)": [f"/search?q=pct{k}&order=newest" for k in range(100)],
        "search, a word in one row": [f"/search?q=rare{rng.randrange(conversations)}x3" for _ in range(100)],
        "a 10-turn conversation": [f"/conversations/v1_c{rng.randrange(conversations):07d}t0" for _ in range(100)],
    }
    api = [f"/api/interactions/v1_c{rng.randrange(conversations):07d}t{rng.randrange(9)}" for _ in range(200)]
    api += [f"/api/chain/v1_c{rng.randrange(conversations):07d}t8" for _ in range(50)]
    api += [f"/api/search?q=rare{rng.randrange(conversations)}x3" for _ in range(50)]
    api += ["/api/conversations?limit=50"] * 10
    proc, base = start_server(db)
    try:
        load = os.getloadavg()
        print(f"{args.size:,} interactions (SQLite, {db.stat().st_size / 2**30:.1f} GiB); {args.clients} clients; "
              f"load average {load[0]:.1f} {load[1]:.1f} {load[2]:.1f} on {os.cpu_count()} cores", flush=True)
        print(f"| page | TTFB p50 ms | p95 ms | max ms | server CPU ms/request | p95 <= {TARGET_MS:.0f} ms |")
        print("|---|---|---|---|---|---|")
        for name, paths in pages.items():
            cpu0 = cpu_ms(proc.pid)
            ms = asyncio.run(page_load(base, paths, args.clients, args.requests))
            cpu = (cpu_ms(proc.pid) - cpu0) / (args.clients * (args.requests + 1))
            p95 = pct(ms, 95)
            print(f"| {name} | {statistics.median(ms):.1f} | {p95:.1f} | {max(ms):.0f} | {cpu:.1f} | "
                  f"{'met' if p95 <= TARGET_MS else 'NOT met'} |", flush=True)
        rate = asyncio.run(api_rate(base, api, args.clients, args.seconds))
        print(f"\nJSON API (`/api/interactions/ID`, `/api/chain/ID` and `/api/search?q=` at random, `/api/conversations`): "
              f"{rate:,.0f} requests/s with {args.clients} clients")
        for path in ("/api/stats", "/stats"):
            ms = asyncio.run(page_load(base, [path], 1, 2))
            print(f"{path}: {statistics.median(ms):,.0f} ms, one client")
        print(f"load average after: {os.getloadavg()[0]:.1f}")
    finally:
        proc.terminate()
        proc.wait(10)


if __name__ == "__main__":
    main()
