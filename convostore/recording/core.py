"""The recorder: HTTP exchanges (from ``transport``) → rows in the store.

One successful ``POST /interactions`` = one row; a continuation hop is its own row linked
to the hop before it; a retried attempt (429/5xx) is never a row; a ``create`` that
finally raises is one failed row. ``get`` refreshes a stored row, ``delete`` and a 404
mark its server state, ``cancel`` updates its status.

Store failures never break the application's call: they are logged on the ``convostore``
logger, or, with ``strict=True``, raised once the SDK call returns.
"""

from __future__ import annotations

import logging
import re
import uuid
from datetime import datetime, timezone
from typing import Any

import orjson

from . import sse
from .context import CURRENT_CALL, Call, current_annotations
from .transport import Exchange

log = logging.getLogger("convostore")

#: Row fields a later ``get``/``cancel`` may refresh on a stored row.
REFRESH_FIELDS = (
    "status",
    "response",
    "output_steps",
    "output_text",
    "usage",
    "input_tokens",
    "output_tokens",
    "total_tokens",
    "updated",
)


def _loads(raw: bytes) -> Any:
    if not raw:
        return None
    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError:
        return None


def _jsonable(value: Any) -> Any:
    """SDK kwargs (pydantic models, TypedDicts) as plain JSON values, for a failed attempt."""
    return orjson.loads(orjson.dumps(value, default=_default))


def _default(value: Any) -> Any:
    dump = getattr(value, "model_dump", None)
    if callable(dump):
        try:
            return dump(mode="json", exclude_none=True, by_alias=True)
        except TypeError:
            return dump()
    if isinstance(value, (set, tuple)):
        return list(value)
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    return repr(value)


def error_info(exc: BaseException) -> dict[str, Any]:
    """Message, code and HTTP status of an SDK exception (either generation)."""
    info: dict[str, Any] = {"type": type(exc).__name__, "message": str(exc)[:4000]}
    status = getattr(exc, "status_code", None) or getattr(exc, "code", None)
    if isinstance(status, int):
        info["status"] = status
    body = getattr(exc, "body", None)
    if isinstance(body, (bytes, str)):
        body = _loads(body.encode() if isinstance(body, str) else body)
    if isinstance(body, dict):
        err = body.get("error", body)
        if isinstance(err, dict):
            if err.get("message"):
                info["message"] = str(err["message"])[:4000]
            code = err.get("code") or err.get("status")
            if code is not None:
                info["code"] = code
    return info


class Recorder:
    """Turns observed exchanges into rows. One per recorded client."""

    def __init__(
        self,
        store: Any,
        *,
        strict: bool = False,
        resume: bool = True,
        retention: Any = None,
        labels: dict[str, Any] | list[str] | None = None,
    ) -> None:
        from ..records import row_from_exchange

        self.store = store
        self.strict = strict
        self.resume = resume
        self.retention = retention if retention is not None else getattr(store, "retention", "paid")
        self.labels = labels
        self._row = row_from_exchange
        #: The client's API key(s): scrubbed from a failed attempt's row (an error message
        #: may quote what it was given). Held in memory only, never written.
        self.secrets: set[str] = set()

    # --- transport callbacks ------------------------------------------------------------

    def before_send(self, body: bytes, kind: tuple[str, str, str | None]) -> tuple[Call | None, int]:
        """The call an attempt belongs to (and how many stream events it had handed out).

        Also remembers the request, for a failed attempt's record.
        """
        call = CURRENT_CALL.get()
        if call is not None and call.op == kind[0]:
            call.last_request = body
            call.last_api_version = kind[1]
        return call, (call.events_read if call is not None else 0)

    def on_exchange(self, ex: Exchange, ctx: tuple[Call | None, int] | None) -> None:
        """Record one exchange; never raises (see ``_failed``)."""
        call, base = ctx if ctx is not None else (None, 0)
        if call is not None and call.op != ex.op:
            call = None  # e.g. a GET the SDK makes to resume a stream inside create()
        try:
            handler = getattr(self, "_on_" + ex.op)
            handler(ex, call, base)
        except Exception as exc:  # noqa: BLE001 - recording must not break the call
            self._failed(exc, call)

    # --- errors ---------------------------------------------------------------------------

    def _failed(self, exc: BaseException, call: Call | None) -> None:
        if self.strict and call is not None:
            call.failures.append(exc)
        elif self.strict:
            log.error("recording failed: %s", exc, exc_info=exc)
        else:
            log.warning("recording failed, the call goes on unrecorded: %s", exc)

    def raise_failures(self, call: Call) -> None:
        """``strict=True``: re-raise the first store failure of a finished call."""
        if call.failures:
            exc = call.failures[0]
            call.failures.clear()
            from ..errors import StoreError

            if isinstance(exc, StoreError):
                raise exc
            raise StoreError(f"recording failed: {exc}") from exc

    # --- rows -----------------------------------------------------------------------------

    def _extra(self, call: Call | None, hop_index: int) -> dict[str, Any]:
        extra = dict(call.annotations) if call is not None else current_annotations()
        if self.labels:
            labels = extra.get("labels")
            if isinstance(self.labels, dict) and isinstance(labels, dict):
                extra["labels"] = {**self.labels, **labels}
            elif labels is None:
                extra["labels"] = self.labels
        if hop_index and call is not None and call.hop_ids:
            extra["parent_id"] = call.hop_ids[-1]
            extra["link"] = "continuation"
        return extra

    def _build(
        self,
        request: dict[str, Any],
        response: dict[str, Any] | None,
        ex: Exchange | None,
        call: Call | None,
        *,
        api_version: str,
        hop_index: int = 0,
        partial: bool = False,
        error: dict[str, Any] | None = None,
        extra: dict[str, Any] | None = None,
    ) -> dict[str, Any]:
        return self._row(
            request,
            response,
            api_version=api_version,
            recorded_at=datetime.now(timezone.utc),
            latency_ms=ex.latency_ms if ex is not None else None,
            stream=ex.stream if ex is not None else bool(call and call.stream),
            error=error,
            hop_index=hop_index,
            partial=partial,
            retention=self.retention,
            extra=extra if extra is not None else self._extra(call, hop_index),
        )

    def _response(self, ex: Exchange, call: Call | None = None, base: int = 0) -> tuple[dict[str, Any] | None, bool]:
        """The response body (assembled for a stream) and whether it is partial.

        A stream is partial when the caller stopped reading before its last event; it is
        then assembled from the events the caller read (what the application saw).
        """
        if not ex.stream:
            body = _loads(ex.response_body)
            return (body if isinstance(body, dict) else None), False
        events, done = sse.parse_events(ex.response_body)
        body, terminal = sse.assemble_events(events, done)
        if call is not None and call.counting and not ex.complete:
            read = call.events_read - base
            if read >= len(events) and terminal:
                return body, False  # read to the last event, closed before the end of bytes
            return sse.assemble_events(events[: max(read, 1)])[0], True
        return body, not (ex.complete or terminal)

    def _save(self, row: dict[str, Any]) -> None:
        """Hand the row to the store's background writer and go on (the hot path); with
        ``strict=True``, insert or merge before returning, so a failure raises."""
        later = None if self.strict else getattr(self.store, "save_later", None)
        if later is not None:
            later(row)
            return
        quiet = getattr(self.store, "save_quiet", None)
        if quiet is not None:
            quiet(row)
        else:
            self.store.save(row)

    # --- handlers -------------------------------------------------------------------------

    def _on_create(self, ex: Exchange, call: Call | None, base: int = 0) -> None:
        if not 200 <= ex.status < 300:
            return  # a retried or failing attempt: the call's outcome decides
        response, partial = self._response(ex, call, base)
        if response is None or not response.get("id"):
            return
        request = _loads(ex.request_body)
        if not isinstance(request, dict):
            request = {}
        hop_index = len(call.hop_ids) if call is not None else 0
        row = self._build(request, response, ex, call, api_version=ex.api_version, hop_index=hop_index, partial=partial)
        if partial:
            row["partial"] = True
            row["status"] = "incomplete"
        self._save(row)
        if call is not None:
            call.hop_ids.append(row["id"])
            call.recorded += 1
            token = response.get("continuation_token")
            call.continuation_token = token if isinstance(token, str) else None

    def _refresh(self, ex: Exchange, call: Call | None, response: dict[str, Any]) -> None:
        """A later view of an interaction (GET, cancel): update it in place, or add it.

        A GET body carries the turn's input ahead of its outputs; the outputs are split
        off by the stored row's own input (what the turn sent), so a rebuilt or
        self-managed turn's re-sent history never lands in its outputs.
        """
        iid = str(response.get("id") or ex.interaction_id or "")
        stored = self._stored_row(iid)
        if stored is None:
            row = self._build({}, response, ex, call, api_version=ex.api_version, extra=self._extra(call, 0))
            row["server_state"] = "live"
            self._save(row)
            return
        row = self._row(
            {},
            response,
            api_version=ex.api_version,
            recorded_at=datetime.now(timezone.utc),
            retention=self.retention,
            sent_input=list(stored.input_steps or []),
        )
        fields = {k: row[k] for k in REFRESH_FIELDS if k in row and row[k] is not None}
        fields["server_state"] = "live"
        if fields.get("status") not in (None, "in_progress", "queued"):
            fields["partial"] = False  # the server's full view replaces an abandoned stream's
        outputs = fields.get("output_steps")
        if outputs is not None and outputs != (stored.output_steps or []):
            # A finished background turn or a completed stream: a stateless call that
            # re-sends these outputs must still find this turn by its context hash.
            fields["context_hash"] = self._context_hash(stored, outputs)
        self._update(iid, fields)

    def _update(self, iid: str, fields: dict[str, Any]) -> None:
        """Like ``_save``: queued behind the saves before it, unless ``strict``."""
        later = None if self.strict else getattr(self.store, "update_later", None)
        if later is not None:
            later(iid, fields)
        else:
            self.store.update(iid, **fields)

    def _context_hash(self, stored: Any, outputs: list[dict[str, Any]]) -> str | None:
        """``stored``'s context hash with ``outputs`` as its outputs (as ``Store.save`` links)."""
        from .. import wire

        inputs = list(stored.input_steps or [])
        if not stored.output_steps and stored.context_hash:
            return wire.context_hash(stored.context_hash, outputs)  # the hash rolls on
        base = None
        if stored.parent_id and not wire.split_history(inputs)[0]:
            parent = self._stored_row(stored.parent_id)
            if parent is None:
                unchanged: str | None = stored.context_hash
                return unchanged
            base = parent.context_hash
        return wire.context_hash(base, inputs + list(outputs))

    def _stored_row(self, iid: str) -> Any:
        """The stored row with this exact id, or None."""
        from ..errors import NotFoundError

        try:
            row = self.store.get(iid)
        except NotFoundError:
            return None
        return row if row.id == iid else None

    def _on_get(self, ex: Exchange, call: Call | None, base: int = 0) -> None:
        if ex.status == 404 and ex.interaction_id:
            self._mark_gone(ex.interaction_id)
            return
        if not 200 <= ex.status < 300:
            return
        response, partial = self._response(ex)
        if response is None or partial or not (response.get("id") or ex.interaction_id):
            return
        self._refresh(ex, call, response)

    def _on_cancel(self, ex: Exchange, call: Call | None, base: int = 0) -> None:
        if not 200 <= ex.status < 300:
            return
        response, _ = self._response(ex)
        if isinstance(response, dict) and (response.get("id") or ex.interaction_id):
            self._refresh(ex, call, response)

    def _on_delete(self, ex: Exchange, call: Call | None, base: int = 0) -> None:
        if 200 <= ex.status < 300 and ex.interaction_id:
            self._mark(ex.interaction_id, "deleted")
        elif ex.status == 404 and ex.interaction_id:
            self._mark_gone(ex.interaction_id)

    def _mark_gone(self, iid: str) -> None:
        """A 404 for an interaction: the server forgot it (``expired``), unless the
        archive saw it deleted, which says more and stays."""
        try:
            status = self.store.server_status(iid)
        except Exception:  # noqa: BLE001 - no state to keep: mark it as before
            status = None
        if status is not None and status[0] == "deleted":
            return
        self._mark(iid, "expired")

    def _mark(self, iid: str, state: str) -> None:
        from ..errors import NotFoundError

        if not self.strict and getattr(self.store, "update_later", None) is not None:
            self.store.update_later(iid, {"server_state": state})  # an id not stored is skipped
            return
        try:
            self.store.mark_server_state(iid, state)
        except NotFoundError:
            pass  # not ours to track

    # --- resume ---------------------------------------------------------------------------

    def resumed(self, call: Call, body: dict[str, Any], fmt: str = "steps", exc: BaseException | None = None) -> dict[str, Any] | None:
        """The body to send instead of ``body`` (SDK kwargs or wire JSON), or None to send
        it, or raise ``exc``, as it is.

        The decision is ``convostore.resume``'s (``plan`` before sending, ``after_error``
        once ``exc`` came back); here it is applied to the call: a rebuilt call's rows
        are linked ``rebuilt`` to the chain it continues. The recorded ``create`` and
        direct replay both come through here.
        """
        if not (self.resume and body.get("previous_interaction_id")):
            return None
        from .. import resume
        from ..rebuild import Format

        form: Format = "turns" if fmt == "turns" else "steps"
        if exc is None:
            decided: resume.Plan | None = resume.plan(self.store, body, format=form)
        else:
            decided = resume.after_error(self.store, body, exc, format=form, on_store_error=lambda e: self._failed(e, call))
        if decided is None or not decided.rebuilt:
            return None
        call.restart(decided.annotations())
        return decided.body

    # --- failed attempts --------------------------------------------------------------------

    def record_failure(
        self, call: Call, exc: BaseException, kwargs: dict[str, Any], *, secrets: set[str] | None = None
    ) -> None:
        """A ``create`` that raised: one row with the error, id ``local-<uuid>``.

        ``secrets``: this call's own credentials (a proxied request's key), scrubbed too.
        """
        try:
            request = _loads(call.last_request) if call.last_request else None
            if not isinstance(request, dict):
                request = _jsonable({k: v for k, v in kwargs.items() if k not in _CALL_ONLY_KWARGS})
            hop_index = len(call.hop_ids)
            extra = self._extra(call, hop_index)
            extra["id"] = f"local-{uuid.uuid4()}"
            extra["status"] = "failed"
            row = self._build(
                request,
                None,
                None,
                call,
                api_version=call.last_api_version or "v1",
                hop_index=hop_index,
                error=error_info(exc),
                extra=extra,
            )
            row["id"] = extra["id"]
            row["status"] = "failed"
            scrub = secret_forms(self.secrets | (secrets or set())) | _call_secrets(kwargs)
            if scrub:
                for key in ("request", "error"):
                    row[key] = _redact(row[key], scrub)
            self._save(row)
        except Exception as store_exc:  # noqa: BLE001
            if self.strict:
                log.error("could not record a failed attempt: %s", store_exc)
            else:
                log.warning("could not record a failed attempt: %s", store_exc)


#: SDK call options that are not part of the request body.
_CALL_ONLY_KWARGS = frozenset(
    {"extra_headers", "extra_query", "extra_body", "timeout", "api_version", "automatic_continuation", "request"}
)

#: Headers and query parameters that carry credentials.
_SECRET_HEADERS = frozenset({"x-goog-api-key", "authorization", "x-api-key"})


def _call_secrets(kwargs: dict[str, Any]) -> set[str]:
    """Credentials passed per call (``extra_headers``, ``extra_query``, http options)."""
    found: set[str] = set()
    for name in ("extra_headers", "extra_query"):
        given = kwargs.get(name)
        if isinstance(given, dict):
            for key, value in given.items():
                if isinstance(value, str) and (str(key).lower() in _SECRET_HEADERS or str(key).lower() == "key"):
                    found.add(value)
                    if value.lower().startswith("bearer "):
                        found.add(value[7:].strip())
    config = kwargs.get("config")
    headers = getattr(getattr(config, "http_options", None), "headers", None)
    if isinstance(headers, dict):
        found |= _call_secrets({"extra_headers": headers})
    return secret_forms(found)


def secret_forms(secrets: set[str]) -> set[str]:
    """Each secret as an error message may quote it: as is, stripped, escaped (``repr`` of
    text or bytes: an illegal header value is quoted so), and its long printable runs."""
    forms: set[str] = set()
    for secret in secrets:
        forms |= {secret, secret.strip(), repr(secret)[1:-1], repr(secret.encode("utf-8", "replace"))[2:-1]}
        forms |= {part for part in re.split(r"[\s\x00-\x1f\x7f]+", secret) if len(part) >= 8}
    return {f for f in forms if len(f) >= 4}


def _redact(value: Any, secrets: set[str]) -> Any:
    """``value`` with every secret string replaced, however deep it sits."""
    if isinstance(value, str):
        for secret in sorted(secrets, key=len, reverse=True):
            if secret in value:
                value = value.replace(secret, "[redacted]")
        return value
    if isinstance(value, dict):
        return {k: _redact(v, secrets) for k, v in value.items()}
    if isinstance(value, list):
        return [_redact(v, secrets) for v in value]
    return value
