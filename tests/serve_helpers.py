"""Running ``convostore serve``'s app for tests: uvicorn in a thread on a free loopback port.

    with running_app(store) as base_url:      # "http://127.0.0.1:PORT"
        httpx.get(base_url + "/")

Real HTTP through uvicorn (not Starlette's in-process TestClient), so headers,
streaming and shutdown behave as they do for a person.
"""

from __future__ import annotations

import contextlib
import socket
import threading
from collections.abc import Iterator
from typing import Any

import uvicorn

from convostore.serve import create_app


class _Server(uvicorn.Server):
    def __init__(self, config: uvicorn.Config) -> None:
        super().__init__(config)
        self.ready = threading.Event()

    async def startup(self, sockets: Any = None) -> None:
        await super().startup(sockets)
        self.ready.set()

    def install_signal_handlers(self) -> None:  # a thread cannot; the test stops it
        pass


@contextlib.contextmanager
def running_app(store: Any, **kwargs: Any) -> Iterator[str]:
    """The app over ``store`` (``create_app`` keywords) served until the block ends."""
    app = create_app(store, **kwargs)
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    server = _Server(uvicorn.Config(app, log_level="warning", access_log=False, lifespan="off", timeout_graceful_shutdown=3))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    try:
        if not server.ready.wait(30):
            raise RuntimeError("the app did not start within 30 s")
        yield f"http://127.0.0.1:{port}"
    finally:
        app.state.stopping.set()
        server.should_exit = True
        thread.join(15)
        sock.close()


XSS = ("<script>alert(1)</script>", "<img src=x onerror=alert(1)>", "</textarea><script>alert(2)</script>",
       "[click me](javascript:alert(3))")


def png(width: int = 24, height: int = 24, seed: int = 7) -> bytes:
    """A real PNG (noisy RGB pixels, so its base64 is past the 1 KiB the store splits into `media`)."""
    import random
    import struct
    import zlib

    rnd = random.Random(seed)
    raw = b"".join(b"\x00" + bytes(rnd.randrange(256) for _ in range(width * 3)) for _ in range(height))

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b"")


def fill_archive(client: Any) -> dict[str, str]:
    """Conversations recorded through a real (recorded) SDK client on the sandbox:

    - ``root``/``t2``/``t3``: a thinking model's conversation (thoughts with signatures);
      ``alt``: a second branch from ``root``;
    - ``image``: a turn whose input holds a PNG (stored once in `media`);
    - ``call``/``result``: a function call and its result;
    - ``xss``, ``xss1``..: a conversation whose turns each say one payload of ``XSS``, which the
      sandbox repeats in its answer (rendered as Markdown).
    """
    import base64

    ids: dict[str, str] = {}
    create = client.interactions.create
    ids["root"] = create(model="gemini-3-pro", input="Hello, my name is Ada.").id
    ids["t2"] = create(model="gemini-3-pro", input="I like chess.", previous_interaction_id=ids["root"]).id
    ids["t3"] = create(model="gemini-3-pro", input="What is my name?", previous_interaction_id=ids["t2"]).id
    ids["alt"] = create(model="gemini-2.5-flash", input="Another path: what do I like?", previous_interaction_id=ids["root"]).id
    image = base64.b64encode(png()).decode()
    ids["image"] = create(model="gemini-2.5-flash", input=[{"type": "text", "text": "What is in this picture?"},
                                                           {"type": "image", "data": image, "mime_type": "image/png"}]).id
    tools = [{"type": "function", "name": "get_weather", "description": "weather",
              "parameters": {"type": "object", "properties": {"city": {"type": "string"}}}}]
    ids["call"] = create(model="gemini-2.5-flash", input="use get_weather for Paris", tools=tools).id
    ids["result"] = create(model="gemini-2.5-flash", previous_interaction_id=ids["call"], tools=tools,
                           input=[{"type": "function_result", "name": "get_weather", "call_id": "c1", "result": {"temp": "21C"}}]).id
    prev = None
    for i, payload in enumerate(XSS):  # one turn each: the sandbox repeats up to 120 characters
        prev = create(model="gemini-2.5-flash", input=f"{payload} <b>bold</b>", previous_interaction_id=prev).id
        ids["xss" if i == 0 else f"xss{i}"] = prev
    return ids
