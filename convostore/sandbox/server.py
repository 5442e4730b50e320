"""An offline Interactions API server that the real google-genai SDK runs against unchanged.

Both generations: ``/v1`` speaks the current ``steps`` schema and its stream events;
``/v1beta`` the retired ``outputs`` schema of SDK 1.x. Standard library only (threads),
loopback by default. See ``convostore.sandbox.models`` for how the models answer.
"""

from __future__ import annotations

import base64
import itertools
import math
import re
import secrets
import socket
import sys
import threading
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

import orjson

from .. import wire
from ..errors import WireFormatError
from . import models

_PATH = re.compile(r"^/(v1|v1beta|v1alpha)/interactions(?:/([^/:]+))?(?:(/cancel|:cancel))?$")
_CODES = {400: "invalid_request", 401: "unauthenticated", 403: "permission_denied", 404: "not_found",
          409: "conflict", 413: "request_too_large", 429: "rate_limit_exceeded", 500: "internal",
          503: "unavailable"}

#: The largest request body the sandbox reads (``Sandbox(max_body=...)``): 32 MiB.
MAX_BODY = 32 * 1024 * 1024


def _now() -> str:
    return datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _new_id() -> str:
    raw = base64.urlsafe_b64encode(secrets.token_bytes(33)).decode().rstrip("=")
    return f"v1_{raw}"


class ApiError(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


@dataclass
class Stored:
    """One interaction the sandbox keeps (unless ``store=false``)."""

    id: str
    model: str | None
    agent: str | None
    status: str
    context: list[dict[str, Any]]  # every step the model had seen, including this turn's input
    input_steps: list[dict[str, Any]]
    output_steps: list[dict[str, Any]]
    created: str
    updated: str
    usage: dict[str, int] | None
    previous_interaction_id: str | None
    continuation_token: str | None = None
    remaining_hops: int = 0
    final_steps: list[dict[str, Any]] = field(default_factory=list)
    stored_at: float = field(default_factory=time.monotonic)
    expired: bool = False
    deleted: bool = False
    events: list[tuple[int, dict[str, Any]]] = field(default_factory=list)
    api_version: str = "v1"


class SandboxState:
    """Everything the server knows; shared by its handler threads under one lock."""

    def __init__(
        self, retention: float | None, latency_ms: float, background_delay: float, max_body: int = MAX_BODY
    ) -> None:
        self.retention = retention
        self.max_body = max_body
        self.latency = latency_ms / 1000.0
        self.background_delay = background_delay
        self.lock = threading.RLock()
        self.interactions: dict[str, Stored] = {}
        self.tokens: dict[str, str] = {}  # continuation token -> interaction id
        self.requests: list[dict[str, Any]] = []
        self.calls: list[tuple[str, str]] = []
        self.log: list[dict[str, Any]] = []
        self.signatures: dict[str, str] = {}  # signature -> model that issued it
        self.failures: list[tuple[int, float]] = []
        self.event_ids = itertools.count(1)
        self.clock_offset = 0.0  # advance(): retention is judged on this clock, not the wall
        self.timers: list[tuple[threading.Timer, str]] = []
        self.gate_after: int | None = None  # hold(): creates past this count wait for release()
        self.stream_gate_after: int | None = None  # hold_streams(): events sent before a stream waits
        self.gate = threading.Event()
        self.gate.set()
        self.held = 0

    def now(self) -> float:
        """The sandbox's clock: monotonic time plus whatever ``advance`` added."""
        return time.monotonic() + self.clock_offset

    def advance(self, seconds: float) -> None:
        with self.lock:
            self.clock_offset += seconds

    def hold(self, after: int) -> None:
        with self.lock:
            self.gate_after = after
            self.gate.clear()

    def hold_streams(self, events: int) -> None:
        with self.lock:
            self.stream_gate_after = events
            self.gate.clear()

    def release(self) -> None:
        with self.lock:
            self.gate_after = None
            self.stream_gate_after = None
            self.gate.set()

    def wait_at_gate(self) -> None:
        """Called per create: past the ``hold`` count, wait until ``release``."""
        with self.lock:
            if self.gate_after is None:
                return
            if self.gate_after > 0:
                self.gate_after -= 1
                return
            self.held += 1
        self.gate.wait()

    def settle(self, timeout: float) -> bool:
        """Run every pending background job now (and wait for any already running);
        False if one is still running at ``timeout``."""
        deadline = time.monotonic() + timeout
        with self.lock:
            timers, self.timers = self.timers, []
        for timer, interaction_id in timers:
            timer.cancel()
            timer.join(max(0.0, deadline - time.monotonic()))
            self._finish_background(interaction_id)  # a no-op once finished or cancelled
        return not any(t.is_alive() for t, _ in timers)

    # -- lookups ------------------------------------------------------------

    def live(self, interaction_id: str) -> Stored | None:
        with self.lock:
            item = self.interactions.get(interaction_id)
            if item is None or item.expired or item.deleted:
                return None
            if self.retention is not None and self.now() - item.stored_at > self.retention:
                item.expired = True
                return None
            return item

    def expire(self, interaction_id: str | None = None) -> int:
        with self.lock:
            targets = [self.interactions[interaction_id]] if interaction_id in self.interactions else (
                [] if interaction_id else list(self.interactions.values())
            )
            for item in targets:
                item.expired = True
            return len(targets)

    def fail(self, status: int, count: int = 1, retry_after: float = 0) -> None:
        """Answer the next ``count`` API calls with ``status``; a status outside 400-599 is refused."""
        if not 400 <= status <= 599:
            raise ValueError(f"status must be an HTTP error status (400-599), got {status}")
        if count < 0 or not (math.isfinite(retry_after) and retry_after >= 0):
            raise ValueError("count and retry_after must not be negative")
        with self.lock:
            self.failures.extend([(status, retry_after)] * count)

    def next_failure(self) -> tuple[int, float] | None:
        with self.lock:
            return self.failures.pop(0) if self.failures else None

    # -- the model ----------------------------------------------------------

    def create(self, body: dict[str, Any], api_version: str) -> Stored:
        model = body.get("model")
        agent = body.get("agent")
        if not model and not agent:
            raise ApiError(400, "Either model or agent must be set.")
        if model and agent:
            raise ApiError(400, "Only one of model or agent may be set.")
        store = body.get("store", True) is not False
        if body.get("background") and not store:
            raise ApiError(400, "background=true requires store=true.")
        try:
            new_input = wire.normalize_input(body.get("input")) if body.get("input") is not None else []
        except WireFormatError as exc:
            raise ApiError(400, f"Invalid input: {exc}") from None
        prev_id = body.get("previous_interaction_id")
        token = body.get("continuation_token")
        history: list[dict[str, Any]] = []
        prev = None
        if prev_id:
            prev = self.live(prev_id)
            if prev is None:
                raise ApiError(400, f"Invalid turn token: {prev_id}")
            history = prev.context + prev.output_steps
        if token:
            owner_id = self.tokens.get(token)
            owner = self.live(owner_id) if owner_id else None
            if owner is None and not store:
                owner = self.interactions.get(owner_id or "")
            if owner is None:
                raise ApiError(400, f"Invalid continuation token: {token}")
            return self._hop(owner, body, api_version)
        if not new_input and not history:
            raise ApiError(400, "input is required.")
        context = history + new_input
        self._check_signatures(model or agent or "", new_input)
        name = model or agent or ""
        output, status = models.answer(name, context, body.get("tools"))
        for step in output:
            if step.get("type") == "thought":
                with self.lock:
                    self.signatures[step["signature"]] = name
        now = _now()
        item = Stored(
            stored_at=self.now(),
            id=_new_id(), model=model, agent=agent, status=status, context=context, input_steps=new_input,
            output_steps=output, created=now, updated=now, usage=models.usage(context, output),
            previous_interaction_id=prev_id, api_version=api_version,
        )
        hops = models.continuation_count(context)
        if hops and not body.get("background"):
            item.final_steps, item.remaining_hops = output, hops
            item.output_steps = [{"type": "model_output", "content": [{"type": "text", "text": f"[part 1 of {hops + 1}] "}]}]
            self._issue_token(item)
        if body.get("background"):
            item.final_steps, item.output_steps, item.status, item.usage = output, [], "in_progress", None
        with self.lock:
            self.interactions[item.id] = item  # kept even for store=false, but never served
            if not store:
                item.deleted = True
        if body.get("background"):
            # Started once the item is stored: with a zero delay the timer could run first.
            timer = threading.Timer(self.background_delay, self._finish_background, args=(item.id,))
            timer.daemon = True
            with self.lock:
                self.timers.append((timer, item.id))  # settle() runs it early
            timer.start()
        return item

    def _issue_token(self, item: Stored) -> None:
        item.status = "requires_continuation"
        item.continuation_token = "ct_" + secrets.token_urlsafe(12)
        with self.lock:
            self.tokens[item.continuation_token] = item.id

    def _hop(self, owner: Stored, body: dict[str, Any], api_version: str) -> Stored:
        done = owner.remaining_hops - 1
        total = len([1 for _ in range(owner.remaining_hops)])
        del total
        now = _now()
        item = Stored(
            stored_at=self.now(),
            id=_new_id(), model=owner.model, agent=owner.agent, status="completed", context=owner.context,
            input_steps=[], output_steps=owner.final_steps if done == 0 else [
                {"type": "model_output", "content": [{"type": "text", "text": "[continued] "}]}
            ], created=now, updated=now, usage=None, previous_interaction_id=body.get("previous_interaction_id"),
            api_version=api_version,
        )
        item.usage = models.usage(item.context, item.output_steps)
        if done > 0:
            item.final_steps, item.remaining_hops = owner.final_steps, done
            self._issue_token(item)
        with self.lock:
            self.interactions[item.id] = item
            if body.get("store", True) is False:
                item.deleted = True
        return item

    def _check_signatures(self, model: str, steps: list[dict[str, Any]]) -> None:
        seen = [str(s["signature"]) for s in steps if s.get("type") == "thought" and s.get("signature")]
        with self.lock:
            valid = all(self.signatures.get(sig) == model for sig in seen)
            self.log.append({"model": model, "signatures_seen": seen, "signatures_valid": valid})

    def _finish_background(self, interaction_id: str) -> None:
        with self.lock:
            item = self.interactions.get(interaction_id)
            if item is None or item.status != "in_progress":
                return
            item.output_steps, item.status = item.final_steps, "completed"
            for step in item.output_steps:
                if step.get("type") == "function_call":
                    item.status = "requires_action"
            item.usage = models.usage(item.context, item.output_steps)
            item.updated = _now()

    def cancel(self, interaction_id: str) -> Stored:
        item = self.live(interaction_id)
        if item is None:
            raise ApiError(404, f"Interaction {interaction_id} not found.")
        with self.lock:
            if item.status in ("in_progress", "queued"):
                item.status, item.updated = "cancelled", _now()
        return item


# --- rendering --------------------------------------------------------------------


def render(item: Stored, api_version: str, *, with_input: bool = False) -> dict[str, Any]:
    """The interaction as the API returns it: create (outputs only) or GET (with input)."""
    body: dict[str, Any] = {"id": item.id, "status": item.status}
    if item.model:
        body["model"] = item.model
    if item.agent:
        body["agent"] = item.agent
    if api_version == "v1beta":
        body["object"] = "interaction"
        body["role"] = "model"
        body["outputs"] = wire.steps_to_outputs(item.output_steps)
    else:
        body["steps"] = (item.input_steps if with_input else []) + item.output_steps
    body["created"], body["updated"] = item.created, item.updated
    if item.usage:
        body["usage"] = item.usage
    if item.previous_interaction_id and with_input:
        body["previous_interaction_id"] = item.previous_interaction_id
    if item.continuation_token and item.status == "requires_continuation":
        body["continuation_token"] = item.continuation_token
    return body


def stream_events(state: SandboxState, item: Stored, api_version: str) -> list[dict[str, Any]]:
    """The SSE events of a completed create, each with its own ``event_type`` and ``event_id``."""
    events: list[dict[str, Any]] = []
    head = {"id": item.id, "status": "in_progress", "created": item.created}
    if item.model:
        head["model"] = item.model
    if api_version == "v1beta":
        events.append({"event_type": "interaction.start", "interaction": {**head, "object": "interaction"}})
        for i, block in enumerate(wire.steps_to_outputs(item.output_steps)):
            if block.get("type") == "text":
                events.append({"event_type": "content.start", "index": i, "content": {"type": "text"}})
                for chunk in _chunks(block.get("text", "")):
                    events.append({"event_type": "content.delta", "index": i, "delta": {"type": "text", "text": chunk}})
            else:
                events.append({"event_type": "content.start", "index": i, "content": block})
            events.append({"event_type": "content.stop", "index": i})
        events.append({"event_type": "interaction.complete", "interaction": render(item, api_version)})
    else:
        events.append({"event_type": "interaction.created", "interaction": head})
        events.append({"event_type": "interaction.status_update", "interaction_id": item.id, "status": "in_progress"})
        for i, step in enumerate(item.output_steps):
            stype = step.get("type")
            if stype == "model_output":
                events.append({"event_type": "step.start", "index": i, "step": {"type": "model_output", "content": []}})
                for block in step.get("content", []):
                    if block.get("type") == "text":
                        for chunk in _chunks(block.get("text", "")):
                            events.append({"event_type": "step.delta", "index": i, "delta": {"type": "text", "text": chunk}})
            elif stype == "thought":
                events.append({"event_type": "step.start", "index": i, "step": {"type": "thought", "summary": step.get("summary", [])}})
                events.append({"event_type": "step.delta", "index": i, "delta": {"type": "thought_signature", "signature": step.get("signature")}})
            else:
                events.append({"event_type": "step.start", "index": i, "step": step})
            events.append({"event_type": "step.stop", "index": i})
        final = render(item, api_version)
        if item.status == "requires_continuation":
            events.append({"event_type": "interaction.status_update", "interaction_id": item.id,
                           "status": item.status, "continuation_token": item.continuation_token})
        events.append({"event_type": "interaction.completed", "interaction": final})
    for event in events:
        event["event_id"] = str(next(state.event_ids))
    return events


def _event_id(text: str) -> int:
    """``last_event_id`` as the event number it names; anything else is a 400."""
    if not text.strip():
        return 0
    try:
        return int(text)
    except ValueError:
        raise ApiError(400, f"Invalid last_event_id: {text[:40]!r}.") from None


def _chunks(text: str, size: int = 16) -> list[str]:
    return [text[i : i + size] for i in range(0, len(text), size)] or [""]


# --- HTTP ---------------------------------------------------------------------------


class Handler(BaseHTTPRequestHandler):
    server_version = "convostore-sandbox"
    protocol_version = "HTTP/1.1"
    state: SandboxState  # set on the subclass made per server

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - quiet by default
        pass

    def setup(self) -> None:
        super().setup()
        # Headers and body go out as separate writes: without this, Nagle's algorithm
        # and delayed ACKs add ~40 ms to every call on loopback.
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    # -- plumbing -----------------------------------------------------------

    def _send(self, status: int, body: Any, headers: dict[str, str] | None = None) -> None:
        data = orjson.dumps(body)
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        if self.close_connection:
            self.send_header("Connection", "close")
        self.end_headers()
        self.wfile.write(data)

    def _error(self, status: int, message: str, headers: dict[str, str] | None = None) -> None:
        self._send(status, {"error": {"message": message, "code": _CODES.get(status, "error")}}, headers)

    def _read_raw_body(self) -> bytes:
        """The request body, read whole; a bad or oversized ``Content-Length`` is refused first."""
        declared = self.headers.get("Content-Length")
        if declared is None:
            return b""
        if not declared.strip().isdigit():
            self.close_connection = True  # the stream can no longer be framed
            raise ApiError(400, f"Invalid Content-Length: {declared[:40]!r}.")
        length = int(declared)
        if length > self.state.max_body:
            self.close_connection = True  # the body is left unread
            raise ApiError(413, f"Request body of {length} bytes exceeds the sandbox limit of {self.state.max_body} bytes.")
        return self.rfile.read(length) if length else b""

    @staticmethod
    def _parse_json(raw: bytes) -> Any:
        if not raw:
            return {}
        try:
            return orjson.loads(raw)
        except orjson.JSONDecodeError:
            raise ApiError(400, "Invalid JSON payload received.") from None

    def _sse(self, events: list[dict[str, Any]]) -> None:
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.send_header("Cache-Control", "no-cache")
        self.send_header("Connection", "close")
        self.end_headers()
        self.close_connection = True
        with self.state.lock:
            pause_at = self.state.stream_gate_after
        try:
            for n, event in enumerate(events):
                if n == pause_at:
                    self.state.gate.wait()  # hold_streams(): the first events are out, the rest wait
                self.wfile.write(f"id: {event['event_id']}\n".encode() + b"data: " + orjson.dumps(event) + b"\n\n")
                self.wfile.flush()
            self.wfile.write(b"data: [DONE]\n\n")
            self.wfile.flush()
        except (BrokenPipeError, ConnectionResetError):
            pass  # the client stopped reading: fine

    def _authorized(self, query: dict[str, list[str]]) -> bool:
        """An API key header or ``?key=``, or a bearer token that is not empty."""
        if (self.headers.get("x-goog-api-key") or "").strip() or any(k.strip() for k in query.get("key", [])):
            return True
        scheme, _, token = (self.headers.get("authorization") or "").strip().partition(" ")
        return scheme.lower() == "bearer" and bool(token.strip())

    def _schema(self, path_version: str) -> str:
        """The generation to answer in: ``wire.request_schema`` (the proxy decides by it too)."""
        return wire.request_schema(path_version, self.headers.get("Api-Revision"), self.headers.get("x-goog-api-client"))

    # -- routing ------------------------------------------------------------

    def do_GET(self) -> None:  # noqa: N802
        self._route("GET")

    def do_POST(self) -> None:  # noqa: N802
        self._route("POST")

    def do_DELETE(self) -> None:  # noqa: N802
        self._route("DELETE")

    def _route(self, method: str) -> None:
        parts = urlsplit(self.path)
        query = parse_qs(parts.query)
        state = self.state
        try:
            raw = self._read_raw_body()  # read (or refused) for every method: keeps keep-alive framing
            if parts.path.startswith("/_sandbox/"):
                self._control(method, parts.path, query)
                return
            match = _PATH.match(parts.path)
            if not match:
                raise ApiError(404, f"No route for {method} {parts.path}")
            path_version, iid, cancel = match.groups()
            version = self._schema(path_version)
            body = self._parse_json(raw) if method == "POST" else None
            with state.lock:
                state.calls.append((method, parts.path))
                if method == "POST" and not iid:
                    state.requests.append(body if isinstance(body, dict) else {"_invalid": body})
            if not self._authorized(query):
                raise ApiError(401, "API key not valid. Please pass a valid API key.")
            failure = state.next_failure()
            if failure:
                status, retry_after = failure
                headers = {"Retry-After": f"{retry_after:g}"} if status == 429 else None
                self._error(status, "Injected failure from the sandbox.", headers)
                return
            if state.latency:
                time.sleep(state.latency)
            if method == "POST" and not iid:
                if not isinstance(body, dict):
                    raise ApiError(400, "The request body must be a JSON object.")
                state.wait_at_gate()
                item = state.create(body, version)
                if body.get("stream"):
                    events = stream_events(state, item, version)
                    item.events = [(int(e["event_id"]), e) for e in events]
                    self._sse(events)
                else:
                    self._send(200, render(item, version))
            elif method == "POST" and cancel:
                self._send(200, render(state.cancel(iid), version, with_input=True))
            elif method == "GET" and iid:
                got = state.live(iid)
                if got is None:
                    raise ApiError(404, f"Interaction {iid} not found.")
                item = got
                if query.get("stream", ["false"])[0] == "true":
                    after = _event_id((query.get("last_event_id") or ["0"])[0])
                    events = [e for n, e in item.events if n > after] or stream_events(state, item, version)
                    self._sse(events)
                else:
                    self._send(200, render(item, version, with_input=True))
            elif method == "DELETE" and iid:
                gone = state.live(iid)
                if gone is None:
                    raise ApiError(404, f"Interaction {iid} not found.")
                gone.deleted = True
                self._send(200, {})
            else:
                raise ApiError(404, f"No route for {method} {parts.path}")
        except ApiError as exc:
            try:
                self._error(exc.status, exc.message)
            except ConnectionError:
                self.close_connection = True
        except ConnectionError:  # BrokenPipe, ConnectionReset: the client went away
            self.close_connection = True

    def _control(self, method: str, path: str, query: dict[str, list[str]]) -> None:
        state = self.state
        if path == "/_sandbox/expire" and method == "POST":
            ids = query.get("id")
            self._send(200, {"expired": state.expire(ids[0] if ids else None)})
        elif path == "/_sandbox/requests" and method == "GET":
            with state.lock:
                self._send(200, {"requests": list(state.requests)})
        elif path == "/_sandbox/fail" and method == "POST":
            try:
                status = int(query.get("status", ["503"])[0])
                count = int(query.get("count", ["1"])[0])
                retry_after = float(query.get("retry_after", ["0"])[0])
            except ValueError:
                raise ApiError(400, "status, count and retry_after must be numbers") from None
            try:
                state.fail(status, count, retry_after)
            except ValueError as exc:
                raise ApiError(400, str(exc)) from None
            self._send(200, {"status": status, "count": count})
        else:
            raise ApiError(404, f"No sandbox control {method} {path}")


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 128

    def handle_error(self, request: Any, client_address: Any) -> None:
        """A client that went away (reset, broken pipe, timeout) is routine: no traceback."""
        if isinstance(sys.exc_info()[1], (ConnectionError, TimeoutError)):
            return
        super().handle_error(request, client_address)


def make_server(host: str, port: int, state: SandboxState) -> ThreadingHTTPServer:
    handler = type("BoundHandler", (Handler,), {"state": state})
    return _Server((host, port), handler)
