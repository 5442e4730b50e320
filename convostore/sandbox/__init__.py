"""The offline Interactions API: the ground the tests, the demo and users' own CI stand on.

    with Sandbox(retention=3600, latency=50) as sb:
        client = genai.Client(api_key="any", http_options=types.HttpOptions(base_url=sb.base_url))
        ...
        sb.expire()          # forget everything, as the real service does after 1 or 55 days
        sb.fail(503, 2)      # the next two requests answer 503
        sb.requests          # the create bodies received, in order
        sb.advance(3601)     # the sandbox's clock moves on: retention passes without sleeping
        sb.settle()          # background=true work finishes now, not after background_delay
        sb.hold(after=2)     # two more creates answered, later ones wait for sb.release()
        sb.hold_streams(3)   # streams send 3 events, then wait for sb.release()

Also over HTTP for tools outside the process: ``POST /_sandbox/expire[?id=]``,
``GET /_sandbox/requests``, ``POST /_sandbox/fail?status=503&count=2``.
"""

from __future__ import annotations

import threading
from typing import Any

from .server import MAX_BODY, SandboxState, make_server


class Sandbox:
    """A sandbox server on a free loopback port, in a background thread."""

    def __init__(
        self,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        retention: float | None = None,
        latency: float = 0,
        background_delay: float = 0.2,
        max_body: int = MAX_BODY,
    ) -> None:
        """``max_body``: request bodies past this many bytes are refused with 413 (32 MiB)."""
        self.state = SandboxState(retention, latency, background_delay, max_body)
        self._server = make_server(host, port, self.state)
        self._thread: threading.Thread | None = None

    @property
    def base_url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}"

    def start(self) -> "Sandbox":
        self._thread = threading.Thread(target=self.serve_forever, name="convostore-sandbox", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self.state.release()  # no handler thread left waiting at a hold() gate
        self._server.shutdown()
        self._server.server_close()

    def serve_forever(self) -> None:
        # Checked for stop() every 0.05 s, not socketserver's 0.5 s: each test's sandbox
        # would otherwise cost it a quarter second on average to shut down.
        self._server.serve_forever(poll_interval=0.05)

    def __enter__(self) -> "Sandbox":
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.stop()

    def expire(self, id: str | None = None) -> int:  # noqa: A002 - the API's word
        """Forget one interaction, or all: ``previous_interaction_id`` then fails as on the real service."""
        return self.state.expire(id)

    def fail(self, status: int, count: int = 1, *, retry_after: float = 0) -> None:
        """Answer the next ``count`` requests with ``status`` (429 carries ``Retry-After``)."""
        self.state.fail(status, count, retry_after)

    @property
    def background_delay(self) -> float:
        """Seconds a ``background=true`` interaction runs before it completes on its own."""
        return self.state.background_delay

    @background_delay.setter
    def background_delay(self, seconds: float) -> None:
        self.state.background_delay = seconds

    def advance(self, seconds: float) -> None:
        """Move the sandbox's clock forward: ``retention`` counts on it, so a test ages
        interactions past retention at once instead of sleeping."""
        self.state.advance(seconds)

    def settle(self, timeout: float = 30) -> None:
        """Finish every pending ``background=true`` interaction now (a cancelled one stays
        cancelled): a test's deterministic stand-in for waiting ``background_delay``."""
        if not self.state.settle(timeout):
            raise TimeoutError(f"background work still running after {timeout}s")

    def hold(self, after: int = 0) -> None:
        """Answer ``after`` more creates, then keep each later create waiting until
        ``release()``: a test can stop a client at an exact turn (``held`` counts them)."""
        self.state.hold(after)

    def hold_streams(self, events: int) -> None:
        """Streamed responses send their first ``events`` events, then wait until ``release()``:
        a test sees whether the events before the pause reach its client on their own
        (a proxy that buffered the stream would hold them back too)."""
        self.state.hold_streams(events)

    def release(self) -> None:
        """Let every held create and stream through, and stop holding."""
        self.state.release()

    @property
    def held(self) -> int:
        """How many creates have waited at the ``hold`` gate so far."""
        with self.state.lock:
            return self.state.held

    @property
    def requests(self) -> list[dict[str, Any]]:
        """The create request bodies received, in order."""
        with self.state.lock:
            return list(self.state.requests)

    @property
    def calls(self) -> list[tuple[str, str]]:
        """Every API call received as (method, path), in order."""
        with self.state.lock:
            return list(self.state.calls)

    @property
    def log(self) -> list[dict[str, Any]]:
        """Per create: the model, and whether the thought signatures sent back were its own."""
        with self.state.lock:
            return list(self.state.log)


__all__ = ["Sandbox"]
