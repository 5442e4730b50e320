"""Replay throughput and resumability (issue 5).

    python bench/bench_replay.py [--conversations 100] [--turns 5] [--latency 50]

Records N conversations against a sandbox with LATENCY ms per call, replays them all
(forced mode by default; --modes forced free) at concurrency 1, 4 and 16, through the direct
sender and the SDK (--paths), and prints run time and speed-up. Then a run
is interrupted partway and resumed with ``resume_run``; the sandbox's request log shows
how many turns were sent in all (target: each turn exactly once).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from google import genai  # noqa: E402
from google.genai import types  # noqa: E402

import convostore  # noqa: E402
from convostore.replaying import replay  # noqa: E402


class Interrupt(Exception):
    pass


class _SandboxProcess:
    """The sandbox in its own process, so its work does not share the client's GIL."""

    def __init__(self, latency: float) -> None:
        self.latency = latency

    def __enter__(self) -> "_SandboxProcess":
        import subprocess

        self.proc = subprocess.Popen([sys.executable, "-m", "convostore", "sandbox", "--latency", str(self.latency)],
                                     stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
        self.base_url = self.proc.stdout.readline().strip()  # type: ignore[union-attr]
        return self

    def __exit__(self, *exc: object) -> None:
        self.proc.terminate()
        self.proc.wait(10)

    @property
    def requests(self) -> list:
        import urllib.request

        import orjson

        with urllib.request.urlopen(self.base_url + "/_sandbox/requests") as resp:
            return orjson.loads(resp.read())["requests"]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--conversations", type=int, default=100)
    ap.add_argument("--turns", type=int, default=5)
    ap.add_argument("--latency", type=float, default=50)
    ap.add_argument("--concurrency", type=int, nargs="+", default=[1, 4, 16])
    ap.add_argument("--modes", nargs="+", choices=["forced", "free"], default=["forced"],
                    help="replay modes to time (free: one conversation's turns wait on each other)")
    ap.add_argument("--paths", nargs="+", choices=["direct", "sdk"], default=["direct", "sdk"],
                    help="how turns are sent: raw wire JSON on the client's connection (the default "
                    "in replay()), or the SDK's interactions.create; both measured in the same run")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp, _SandboxProcess(args.latency) as sb:
        store = convostore.Store(str(Path(tmp) / "replay.db"))
        client = convostore.record(genai.Client(api_key="bench", http_options=types.HttpOptions(base_url=sb.base_url)), store=store)

        def conversation(c: int) -> str:
            prev = None
            for t in range(args.turns):
                kwargs = {"previous_interaction_id": prev} if prev else {}
                prev = client.interactions.create(model="gemini-2.5-flash", input=f"conversation {c} turn {t}: my name is N{c}", **kwargs).id
            return prev  # type: ignore[return-value]

        with ThreadPoolExecutor(16) as pool:
            heads = list(pool.map(conversation, range(args.conversations)))
        total = args.conversations * args.turns
        print(f"{args.conversations} conversations x {args.turns} turns, sandbox latency {args.latency:.0f} ms")
        print(f"{'mode':>6} {'path':>6} {'concurrency':>11} {'seconds':>8} {'turns/s':>8} {'speed-up':>9} {'efficiency':>10}")
        for mode in args.modes:
            for path in args.paths:
                base = None
                for c in args.concurrency:
                    t0 = time.perf_counter()
                    run = replay(store, heads, model="gemini-2.5-pro", mode=mode, client=client, concurrency=c,
                                 direct=path == "direct")
                    elapsed = time.perf_counter() - t0
                    assert run.summary["verdicts"].get("ok") == total, run.summary
                    if c == 1:
                        base = elapsed
                    speed = (base / elapsed) if base else float("nan")
                    print(f"{mode:>6} {path:>6} {c:>11} {elapsed:>8.2f} {total / elapsed:>8.1f} {speed:>9.2f} "
                          f"{speed / c:>10.2f}", flush=True)

        # Interrupted, then resumed: count what the sandbox received.
        before = len(sb.requests)
        stop_after = total // 3

        def progress(done: int, _total: int) -> None:
            if done >= stop_after:
                raise Interrupt

        try:
            replay(store, heads, model="gemini-2.5-lite", client=client, concurrency=4, progress=progress)
        except Interrupt:
            pass
        run_id = store.list_runs()[0].id
        done = len({r.source_id for r in store.list(replay_run_id=run_id) if r.status == "completed"})
        run = replay(store, resume_run=run_id, client=client, concurrency=4)
        sent = len(sb.requests) - before
        print(f"interrupted after {done} completed turns; resumed run {run.status}: {sent} turns sent for {total} turns "
              f"({sent - total} sent twice)")
        store.close()


if __name__ == "__main__":
    main()
