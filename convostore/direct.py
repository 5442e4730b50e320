"""Interactions ``create`` as raw wire JSON, sent through a recorded client's own connection.

Why replay does not go through ``client.interactions.create``: the replayer already
holds every turn as wire-format steps (``history`` builds them from the archive), and
the 2.0+ SDK turns each call into freshly built pydantic models before sending it and
after receiving it (``create_model`` per call: about 10 ms of CPU here, against 50 ms
of network wait). That caps a replay at a handful of calls in flight per core, and
re-validating stored steps could also drop step types the installed SDK does not know.

So the body goes out as it is, through the SDK client's own httpx client: the same
base URL, API version and key the application configured (``GOOGLE_GEMINI_BASE_URL``
included), and the same ``send`` the recorder watches, so every exchange is recorded
exactly like an SDK call. Continuation hops are followed the way the SDK does it.
Clients this cannot serve the same way (Vertex AI credentials, the retired 1.x SDK,
an unrecorded client) get ``None`` from :meth:`DirectSender.for_client`, and replay
falls back to the SDK's ``create``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import orjson

from .recording.context import CURRENT_CALL, Call, current_annotations

#: Continuation hops one create may take before we call it a loop.
MAX_HOPS = 64


class DirectHTTPError(Exception):
    """A non-2xx answer: carries what replay's retry logic reads (status, headers, body)."""

    def __init__(self, status_code: int, body: bytes, headers: Mapping[str, str]) -> None:
        self.status_code = status_code
        self.headers = headers
        self.body = body
        message = body.decode("utf-8", "replace")[:500]
        try:
            err = orjson.loads(body).get("error", {})
            message = err.get("message") or message
        except (orjson.JSONDecodeError, AttributeError):
            pass
        super().__init__(f"{status_code}: {message}")


class DirectTransportError(Exception):
    """The request never got an answer (refused, reset, timed out): worth another try."""

    transient = True


def _is_transport_error(exc: BaseException) -> bool:
    # httpx and the 3.x SDK's httpx2 each have their own TransportError base class.
    return any(c.__name__ == "TransportError" for c in type(exc).__mro__)


class DirectSender:
    """Sends ``POST /{version}/interactions`` bodies as JSON; see the module docstring."""

    def __init__(self, http: Any, url: str, headers: dict[str, str], recorder: Any) -> None:
        self.http = http
        self.url = url
        self.headers = headers
        self.recorder = recorder

    @classmethod
    def for_client(cls, client: Any) -> "DirectSender | None":
        """A sender for a recorded Gemini API client (2.0+ SDK, API key), else None."""
        recorder = getattr(client, "_convostore_recorder", None)
        api = getattr(client, "_api_client", None)
        if recorder is None or api is None or getattr(api, "vertexai", False):
            return None
        interactions = getattr(client, "interactions", None)
        if interactions is None or ".genai._interactions" in type(interactions).__module__:
            return None  # the retired 1.x client speaks the `outputs` schema
        key = getattr(api, "api_key", None)
        http = getattr(api, "_httpx_client", None)
        options = getattr(api, "_http_options", None)
        base_url = getattr(options, "base_url", None)
        version = getattr(options, "api_version", None)
        if not (key and http is not None and base_url and version):
            return None
        headers = {k.lower(): v for k, v in dict(getattr(options, "headers", None) or {}).items() if isinstance(v, str)}
        headers.update({"x-goog-api-key": key, "content-type": "application/json", "accept": "application/json"})
        return cls(http, f"{str(base_url).rstrip('/')}/{version}/interactions", headers, recorder)

    def _post(self, body: dict[str, Any]) -> dict[str, Any]:
        request = self.http.build_request("POST", self.url, content=orjson.dumps(body), headers=self.headers)
        try:
            response = self.http.send(request)
        except Exception as exc:
            if _is_transport_error(exc):
                raise DirectTransportError(f"{type(exc).__name__}: {exc}") from exc
            raise
        raw = response.read()
        if not 200 <= response.status_code < 300:
            raise DirectHTTPError(response.status_code, raw, response.headers)
        try:
            answer = orjson.loads(raw)
        except orjson.JSONDecodeError:
            raise DirectHTTPError(response.status_code, raw, response.headers) from None
        if not isinstance(answer, dict) or not answer.get("id"):
            raise DirectHTTPError(response.status_code, raw, response.headers)
        return answer

    def create(self, body: dict[str, Any]) -> dict[str, Any]:
        """One ``create``: the interaction as JSON, merged over continuation hops like the SDK
        merges them (the final hop's ``id`` and status, every hop's steps).

        Recorded under the caller's ``annotate`` block like an SDK call; each
        continuation hop is its own row, linked to the hop before it. Raises
        :class:`DirectHTTPError` and records nothing for a failed attempt: the caller
        retries, and records the failure with :meth:`record_failure` once it gives up.
        """
        call = Call("create", current_annotations())
        token = CURRENT_CALL.set(call)
        try:
            body = self._resumed(call, body)
            try:
                answer = self._post(body)
            except DirectHTTPError as exc:
                again = self._resumed(call, body, after=exc)
                if again is body:
                    raise
                body = again
                answer = self._post(body)
            hops = 0
            steps = list(answer.get("steps") or [])
            while answer.get("status") == "requires_continuation" and answer.get("continuation_token"):
                hops += 1
                if hops > MAX_HOPS:
                    raise DirectHTTPError(502, b"more than %d continuation hops" % MAX_HOPS, {})
                hop = {**body, "continuation_token": answer["continuation_token"]}
                if body.get("store", True) is not False:
                    hop["previous_interaction_id"] = answer["id"]  # the token's owner; input is on the server
                    hop.pop("input", None)
                answer = self._post(hop)
                steps += answer.get("steps") or []
            # Like the SDK: the final hop's fields, the steps of every hop in order.
            return {**answer, "steps": steps} if hops else answer
        finally:
            CURRENT_CALL.reset(token)

    def _resumed(self, call: Call, body: dict[str, Any], after: BaseException | None = None) -> dict[str, Any]:
        """``body`` rebuilt from the archive when its ``previous_interaction_id`` is gone:
        the recorded client's own decision (``convostore.resume.plan`` before sending,
        ``resume.after_error`` after a 400/404 that says so)."""
        rebuilt = self.recorder.resumed(call, body, "steps", after)
        return body if rebuilt is None else rebuilt

    def record_failure(self, exc: BaseException, body: dict[str, Any]) -> None:
        """One failed row for a turn that could not be sent (after the caller's retries)."""
        call = Call("create", current_annotations())
        call.last_request = orjson.dumps(body)
        call.last_api_version = self.url.rsplit("/", 2)[-2]
        self.recorder.record_failure(call, exc, body)
