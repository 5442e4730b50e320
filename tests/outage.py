"""Outages a test (or a benchmark) controls: a TCP relay in front of PostgreSQL, an
outside lock on a SQLite archive, and the child scripts that record or open under them.

The relay: forward, go silent, refuse.

``silent()`` keeps every connection open but forwards no byte (a server that stopped
answering: the kernel still accepts and acknowledges); bytes received meanwhile flow
once ``forward()`` is called again. ``refuse()`` closes the listening socket and every
relayed connection (connection refused), ``forward()`` listens again on the same port.
"""

from __future__ import annotations

import socket
import sqlite3
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


@contextmanager
def locked(path: Path | str) -> Iterator[None]:
    """Another writer holds the archive's write lock (as a long import would)."""
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("BEGIN EXCLUSIVE")
    try:
        yield
    finally:
        conn.execute("ROLLBACK")
        conn.close()


#: A child that records ``n`` creates (argv: archive, sandbox URL, n), waits until they
#: are all in its spool, prints their ids as JSON and waits to be killed.
SPOOLING_CHILD = """
import json, sys, time
import convostore
from google import genai
from google.genai import types
from convostore.store import Store
from convostore.store.spool import read_ops, spool_dir

path, base_url, n = sys.argv[1], sys.argv[2], int(sys.argv[3])
store = Store(path)
client = genai.Client(api_key="test-key", http_options=types.HttpOptions(base_url=base_url))
rc = convostore.record(client, store=store)
ids = [rc.interactions.create(model="gemini-2.5-flash", input=f"Turn {i}.").id for i in range(n)]
end = time.monotonic() + 120
while time.monotonic() < end:
    spooled = set()
    for f in spool_dir(store.url).glob("*.jsonl"):
        spooled |= {op["id"] for op in read_ops(f)}
    if spooled >= set(ids):
        break
    time.sleep(0.01)
print(json.dumps(ids), flush=True)
sys.stdin.read()
"""

#: A child that opens (and so migrates) the archive named by argv[1] once a line arrives
#: on stdin: imports done first, so the opens race.
OPENER = "import sys; from convostore.store import Store; sys.stdin.readline(); Store(sys.argv[1], replay=False).close()"


class Relay:
    def __init__(self, target: tuple[str, int] = ("127.0.0.1", 5432)) -> None:
        self.target = target
        self._flowing = threading.Event()
        self._flowing.set()
        self._lock = threading.Lock()
        self._conns: list[socket.socket] = []
        self._listener: socket.socket | None = None
        self.port = 0
        self._listen()

    def _listen(self) -> None:
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(("127.0.0.1", self.port))
        sock.listen(128)
        self.port = sock.getsockname()[1]
        self._listener = sock
        threading.Thread(target=self._accept, args=(sock,), daemon=True).start()

    def url(self, base: str) -> str:
        """``base`` (a postgresql URL on 127.0.0.1:5432) pointed at the relay instead."""
        return base.replace("127.0.0.1:5432", f"127.0.0.1:{self.port}")

    def _accept(self, listener: socket.socket) -> None:
        while True:
            try:
                client, _ = listener.accept()
            except OSError:
                return
            try:
                upstream = socket.create_connection(self.target)
            except OSError:
                client.close()
                continue
            with self._lock:
                self._conns += [client, upstream]
            for src, dst in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pump, args=(src, dst), daemon=True).start()

    def _pump(self, src: socket.socket, dst: socket.socket) -> None:
        try:
            while True:
                data = src.recv(65536)
                self._flowing.wait()  # silent: hold what arrived
                if not data:
                    break
                dst.sendall(data)
        except OSError:
            pass
        for s in (src, dst):
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    def silent(self) -> None:
        self._flowing.clear()

    def refuse(self) -> None:
        if self._listener is not None:
            try:
                self._listener.shutdown(socket.SHUT_RDWR)  # wakes accept(); stops listening
            except OSError:
                pass
            self._listener.close()
            self._listener = None
        with self._lock:
            conns, self._conns = self._conns, []
        for s in conns:
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            s.close()
        self._flowing.set()

    def forward(self) -> None:
        if self._listener is None:
            self._listen()
        self._flowing.set()

    def close(self) -> None:
        self.refuse()
