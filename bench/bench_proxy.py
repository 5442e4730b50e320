"""What `convostore proxy` adds: the same requests through the proxy and straight to the sandbox, one run.

    nice -n 10 python bench/bench_proxy.py                    # 32 clients, 20,000 requests each way
    nice -n 10 python bench/bench_proxy.py --requests 2000    # quicker

The sandbox (no added latency) and the proxy (archiving into a fresh SQLite file) each
run in their own process, started through the CLI as a user starts them. The client is
plain asyncio speaking HTTP/1.1 with keep-alive (no SDK, no httpx), so it is not the
bottleneck. Reported:

* **added latency per non-streamed create**: 32 clients, each alternating a request
  through the proxy and one straight to the sandbox, so both see the same machine and
  sandbox load; p50/p99 of each side and their differences (targets: p50 <= 1 ms,
  p99 <= 5 ms). Also with one client (no queueing: the proxy's own hop);
* **first streamed event**: time from sending a streamed create to the first `data:`
  line, through the proxy vs direct, alternating, with 32 clients and with one
  (target: <= 2 ms added);
* **requests per second** through one proxy process (32 clients, proxy only), next to
  the sandbox's own rate;
* **proxy RSS** after 1,000 proxied requests and at the end (flat is the target), and
  whether every proxied create reached the archive.

The machine is shared: the script prints `uptime` before and after; compare the two
sides of one run, not runs on different days.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sqlite3
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from urllib.parse import urlsplit

import orjson

MODEL = "gemini-2.5-flash"
KEY = "bench-key-not-stored"


class Conn:
    """One keep-alive HTTP/1.1 connection: just enough of the protocol for these two servers."""

    def __init__(self, host: str, port: int) -> None:
        self.host, self.port = host, port
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None

    async def _open(self) -> None:
        self.reader, self.writer = await asyncio.open_connection(self.host, self.port)

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
        self.reader = self.writer = None

    async def post(self, path: str, body: bytes, *, first_event: bool = False) -> tuple[int, float]:
        """POST; returns (status, seconds): to the whole body, or to the first SSE ``data:`` line."""
        if self.writer is None:
            await self._open()
        assert self.reader is not None and self.writer is not None
        head = (f"POST {path} HTTP/1.1\r\nHost: {self.host}:{self.port}\r\nContent-Type: application/json\r\n"
                f"x-goog-api-key: {KEY}\r\nContent-Length: {len(body)}\r\n\r\n").encode()
        t0 = time.perf_counter()
        self.writer.write(head + body)
        status, headers = await self._head()
        if first_event:
            line = b""
            while not line.startswith(b"data:"):
                line = await self._sse_line(headers)
            took = time.perf_counter() - t0
            self.close()  # the sandbox closes streams; both sides pay a new connection each time
            return status, took
        await self._body(headers)
        took = time.perf_counter() - t0
        if headers.get("connection") == "close":
            self.close()
        return status, took

    async def _head(self) -> tuple[int, dict[str, str]]:
        assert self.reader is not None
        raw = await self.reader.readuntil(b"\r\n\r\n")
        lines = raw.decode("latin-1").split("\r\n")
        status = int(lines[0].split(" ", 2)[1])
        headers = {}
        for line in lines[1:]:
            if ":" in line:
                k, v = line.split(":", 1)
                headers[k.strip().lower()] = v.strip()
        self._chunk_left = 0
        self._pending = b""
        return status, headers

    async def _body(self, headers: dict[str, str]) -> bytes:
        assert self.reader is not None
        if "content-length" in headers:
            return await self.reader.readexactly(int(headers["content-length"]))
        if headers.get("transfer-encoding") == "chunked":
            out = b""
            while True:
                size = int((await self.reader.readuntil(b"\r\n")).split(b";")[0], 16)
                if size == 0:
                    await self.reader.readuntil(b"\r\n")
                    return out
                out += await self.reader.readexactly(size)
                await self.reader.readexactly(2)
        return await self.reader.read()

    async def _sse_line(self, headers: dict[str, str]) -> bytes:
        """The next line of an event stream, chunked (the proxy) or not (the sandbox)."""
        assert self.reader is not None
        while b"\n" not in self._pending:
            if headers.get("transfer-encoding") == "chunked":
                size = int((await self.reader.readuntil(b"\r\n")).split(b";")[0], 16)
                if size == 0:
                    raise EOFError("stream ended before an event")
                self._pending += await self.reader.readexactly(size)
                await self.reader.readexactly(2)
            else:
                data = await self.reader.read(65536)
                if not data:
                    raise EOFError("stream ended before an event")
                self._pending += data
        line, self._pending = self._pending.split(b"\n", 1)
        return line


def _body(n: int, stream: bool = False) -> bytes:
    return orjson.dumps({"model": MODEL, "input": f"Hello, bench request {n}.", "stream": stream})


def _pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(len(ordered) * q))] * 1000


def _rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def _cpu_s(pid: int) -> float:
    """User + system CPU seconds a process has used so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _hostport(url: str) -> tuple[str, int]:
    parts = urlsplit(url)
    return parts.hostname or "127.0.0.1", parts.port or 80


async def side_by_side(direct: str, proxy: str, n: int, clients: int, proxy_pid: int,
                       stream: bool = False) -> dict[str, object]:
    """``n`` requests each way, ``clients`` at once, each client alternating the two targets."""
    lat: dict[str, list[float]] = {"direct": [], "proxy": []}
    errors: dict[str, int] = {"direct": 0, "proxy": 0}
    rss: dict[str, float] = {}
    counter = iter(range(n))
    done = {"proxy": 0}

    async def client(i: int) -> None:
        conns = {"direct": Conn(*_hostport(direct)), "proxy": Conn(*_hostport(proxy))}
        order = ["direct", "proxy"] if i % 2 else ["proxy", "direct"]
        for k in counter:
            for side in order:
                status, took = await conns[side].post("/v1/interactions", _body(k, stream), first_event=stream)
                if status != 200:
                    errors[side] += 1
                lat[side].append(took)
            done["proxy"] += 1
            if done["proxy"] == 1000:
                rss["at_1000"] = _rss_mib(proxy_pid)
            order.reverse()
        for conn in conns.values():
            conn.close()

    t0 = time.perf_counter()
    await asyncio.gather(*(client(i) for i in range(clients)))
    wall = time.perf_counter() - t0
    rss["at_end"] = _rss_mib(proxy_pid)
    return {"lat": lat, "errors": errors, "rss": rss, "wall": wall}


async def throughput(url: str, n: int, clients: int) -> tuple[float, int]:
    counter = iter(range(n))
    errors = 0

    async def client() -> None:
        nonlocal errors
        conn = Conn(*_hostport(url))
        for k in counter:
            status, _ = await conn.post("/v1/interactions", _body(k))
            errors += status != 200
        conn.close()

    t0 = time.perf_counter()
    await asyncio.gather(*(client() for _ in range(clients)))
    return n / (time.perf_counter() - t0), errors


@contextmanager
def _serve(argv: list[str], url_of: str) -> Iterator[tuple[str, int]]:
    """A convostore command in its own process; its URL from its first stdout line."""
    proc = subprocess.Popen([sys.executable, "-m", "convostore", *argv], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    try:
        line = proc.stdout.readline().strip() if proc.stdout else ""
        url = line if url_of == "line" else line.split(" on ", 1)[-1].split(" ->", 1)[0]
        if not url.startswith("http"):
            err = proc.stderr.read() if proc.stderr and proc.poll() is not None else ""
            raise RuntimeError(f"{argv[0]} did not start: {line!r} {err}")
        yield url, proc.pid
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def _uptime() -> str:
    return subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip()


def _archived(db: Path) -> int:
    with sqlite3.connect(db) as con:
        count: int = con.execute("SELECT count(*) FROM interaction").fetchone()[0]
        return count


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--requests", type=int, default=20_000, help="non-streamed creates each way (default 20,000)")
    parser.add_argument("--clients", type=int, default=32, help="concurrent clients (default 32)")
    parser.add_argument("--streams", type=int, default=1000, help="streamed creates each way (default 1,000)")
    parser.add_argument("--sequential", type=int, default=1000, help="creates each way with one client (default 1,000)")
    args = parser.parse_args(argv)

    print(f"load before: {_uptime()}")
    with tempfile.TemporaryDirectory(prefix="convostore-bench-proxy-") as tmp:
        db = Path(tmp) / "proxy.db"
        with _serve(["sandbox", "--port", "0"], "line") as (sandbox, sandbox_pid), \
             _serve(["--db", str(db), "proxy", "--upstream", sandbox, "--port", "0"], "proxy") as (proxy, pid):
            print(f"sandbox {sandbox} · proxy {proxy} (pid {pid}, archive {db})")
            asyncio.run(side_by_side(sandbox, proxy, 200, 8, pid))  # warm both: imports, pools, pages
            rss_start = _rss_mib(pid)

            res = asyncio.run(side_by_side(sandbox, proxy, args.requests, args.clients, pid))
            lat = res["lat"]  # type: ignore[index]
            d50, p50 = _pct(lat["direct"], 0.5), _pct(lat["proxy"], 0.5)  # type: ignore[index]
            d99, p99 = _pct(lat["direct"], 0.99), _pct(lat["proxy"], 0.99)  # type: ignore[index]
            print(f"\nnon-streamed create, {args.clients} clients, {args.requests:,} each way, alternating "
                  f"({res['wall']:.1f} s, errors {res['errors']}):")
            print(f"  direct p50 {d50:.2f} ms  p99 {d99:.2f} ms")
            print(f"  proxy  p50 {p50:.2f} ms  p99 {p99:.2f} ms")
            print(f"  added  p50 {p50 - d50:+.2f} ms (target <= 1)  p99 {p99 - d99:+.2f} ms (target <= 5)")

            seq = asyncio.run(side_by_side(sandbox, proxy, args.sequential, 1, pid))
            slat = seq["lat"]  # type: ignore[index]
            s50d, s50p = _pct(slat["direct"], 0.5), _pct(slat["proxy"], 0.5)  # type: ignore[index]
            s99d, s99p = _pct(slat["direct"], 0.99), _pct(slat["proxy"], 0.99)  # type: ignore[index]
            print(f"\none client, {args.sequential:,} each way: direct p50 {s50d:.2f} / p99 {s99d:.2f} ms, "
                  f"proxy p50 {s50p:.2f} / p99 {s99p:.2f} ms: added p50 {s50p - s50d:+.2f}, p99 {s99p - s99d:+.2f} ms")

            st = asyncio.run(side_by_side(sandbox, proxy, args.streams, args.clients, pid, stream=True))
            stl = st["lat"]  # type: ignore[index]
            f50d, f50p = _pct(stl["direct"], 0.5), _pct(stl["proxy"], 0.5)  # type: ignore[index]
            f99d, f99p = _pct(stl["direct"], 0.99), _pct(stl["proxy"], 0.99)  # type: ignore[index]
            print(f"\nfirst streamed event, {args.clients} clients, {args.streams:,} each way (errors {st['errors']}): "
                  f"direct p50 {f50d:.2f} / p99 {f99d:.2f} ms, proxy p50 {f50p:.2f} / p99 {f99p:.2f} ms: "
                  f"added p50 {f50p - f50d:+.2f} ms (target <= 2), p99 {f99p - f99d:+.2f} ms")

            st1 = asyncio.run(side_by_side(sandbox, proxy, args.sequential, 1, pid, stream=True))
            s1 = st1["lat"]  # type: ignore[index]
            g50d, g50p = _pct(s1["direct"], 0.5), _pct(s1["proxy"], 0.5)  # type: ignore[index]
            g99d, g99p = _pct(s1["direct"], 0.99), _pct(s1["proxy"], 0.99)  # type: ignore[index]
            print(f"first streamed event, one client, {args.sequential:,} each way: direct p50 {g50d:.2f} / p99 "
                  f"{g99d:.2f} ms, proxy p50 {g50p:.2f} / p99 {g99p:.2f} ms: added p50 {g50p - g50d:+.2f} ms, "
                  f"p99 {g99p - g99d:+.2f} ms")

            n = max(1000, args.requests // 4)
            cpu0 = _cpu_s(pid)
            rps_proxy, e1 = asyncio.run(throughput(proxy, n, args.clients))
            proxy_cpu = (_cpu_s(pid) - cpu0) / n * 1000
            cpu0 = _cpu_s(sandbox_pid)
            rps_direct, e2 = asyncio.run(throughput(sandbox, n, args.clients))
            sandbox_cpu = (_cpu_s(sandbox_pid) - cpu0) / n * 1000
            print(f"\nthroughput, {args.clients} clients, {n:,} creates: through the proxy {rps_proxy:,.0f}/s, "
                  f"sandbox direct {rps_direct:,.0f}/s (errors {e1}, {e2}); CPU per create: proxy process "
                  f"{proxy_cpu:.2f} ms (forwarding + recording + archive writes), sandbox {sandbox_cpu:.2f} ms")

            rss = res["rss"]  # type: ignore[index]
            print(f"\nproxy RSS: {rss_start:.1f} MiB warm · {rss.get('at_1000', float('nan')):.1f} MiB after 1,000 "
                  f"proxied · {rss['at_end']:.1f} MiB after {args.requests:,} · "
                  f"{_rss_mib(pid):.1f} MiB after everything")
            proxied = 200 + args.requests + 2 * args.sequential + args.streams + n
        # the proxy has exited (flushing its writer): count what it archived
        print(f"archived {_archived(db):,} interactions of {proxied:,} proxied creates")
    print(f"load after: {_uptime()}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
