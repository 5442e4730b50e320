"""Continuing a chain: by server state while it lives, by rebuilt history once it expired.

The resume decision, public and on wire-level ``create`` bodies (SDK ``create`` keyword
arguments have the same keys), so the recorder, direct replay and any other sender
(a proxy) make it in one place:

* ``plan(store, body)`` before sending: the body as given, or rebuilt from the archive
  when the archive already knows the server lost the chain (past its expiry estimate,
  ``store=False``, seen expired or deleted), saving the doomed round trip;
* ``after_error(store, body, exc)`` after a failed send: a rebuilt plan when the error
  says the server lost a chain the archive holds (the chain is marked ``expired``),
  else ``None``: the error is the caller's.

Nothing here talks HTTP itself. Expiry bookkeeping (``expiring``, ``refresh``) lives
here too, since the local expiry estimate is what lets a rebuild skip the round trip.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import TYPE_CHECKING, Any

from . import wire
from .rebuild import Format, History, history
from .records import retention_delta

if TYPE_CHECKING:  # pragma: no cover
    from .store import Store

log = logging.getLogger("convostore")

#: Server states that mean ``previous_interaction_id`` cannot work any more.
GONE_STATES = frozenset({"not_stored", "expired", "deleted"})

def _now() -> datetime:
    return datetime.now(timezone.utc)


# --- what the archive knows ------------------------------------------------------


def needs_rebuild(store: "Store", prev_id: str) -> bool:
    """True when the server cannot have ``prev_id`` any more, by what the archive knows.

    Saves the doomed round trip: a chain past its expiry estimate, one recorded with
    ``store=False``, or one already seen expired or deleted.
    """
    status = store.server_status(prev_id)
    if status is None:
        return False
    state, expires = status
    if state in GONE_STATES:
        return True
    return expires is not None and expires <= _now()


def is_lost_chain_error(exc: BaseException) -> bool:
    """The server's way of saying a ``previous_interaction_id`` is gone.

    An expired id has been seen to give 400 ``invalid_request`` "Invalid turn token",
    not only 404 ``not_found``. Both SDK generations put ``status_code`` on the error;
    an HTTP client's own error (httpx's ``raise_for_status``, in a proxy) has the
    status and the server's message on its ``response`` only.
    """
    response = getattr(exc, "response", None) or getattr(exc, "raw_response", None)
    status = getattr(exc, "status_code", None)
    if status is None:
        status = getattr(response, "status_code", None)
    if status == 404:
        return True
    if status == 400:
        text = f"{exc} {getattr(exc, 'body', '')} {_response_text(response)}".lower()
        return "invalid turn token" in text or "previous_interaction_id" in text
    return False


def _response_text(response: Any) -> str:
    try:
        text = getattr(response, "text", "")
    except Exception:  # noqa: BLE001 - a streamed body not read: the message is elsewhere
        return ""
    return text if isinstance(text, str) else ""


def rebuilt_kwargs(store: "Store", kwargs: dict[str, Any], *, format: Format = "steps") -> dict[str, Any]:
    """The caller's ``create`` arguments with the server-side chain replaced by its history.

    The caller's own ``system_instruction``, ``tools`` and ``generation_config`` win;
    where the caller gave none, the last stored turn's are carried over. ``format``
    is ``"turns"`` for the retired 1.x SDK.
    """
    return _rebuilt(store, kwargs, format)[0]


def _rebuilt(store: "Store", kwargs: dict[str, Any], format: Format) -> tuple[dict[str, Any], History]:
    out = dict(kwargs)
    prev_id = out.pop("previous_interaction_id")
    model = out.get("model")
    hist = history(store, prev_id, model=model, format="turns" if format == "turns" else "steps")
    new = wire.normalize_input(out.get("input"))
    out["input"] = hist.input + (wire.steps_to_turns(new) if format == "turns" else new)
    for key in ("system_instruction", "tools", "generation_config"):
        if key == "generation_config" and ("agent" in out or "agent_config" in out):
            continue
        if out.get(key) is None and getattr(hist, key) is not None:
            out[key] = getattr(hist, key)
    if "model" not in out and "agent" not in out and hist.model:
        out["model"] = hist.model
    return out, hist


# --- the decision: one place for every sender -------------------------------------


@dataclass(frozen=True)
class Plan:
    """What to send for one ``create``: ``body`` as given, or rebuilt from the archive.

    ``rebuilt_from`` is the ``previous_interaction_id`` whose chain was rebuilt (the
    new turn's parent), ``reason`` why, ``turns`` how many stored turns were re-sent.
    """

    body: dict[str, Any]
    rebuilt_from: str | None = None
    reason: str | None = None
    turns: int = 0

    @property
    def rebuilt(self) -> bool:
        return self.rebuilt_from is not None

    def annotations(self) -> dict[str, Any]:
        """Row fields for what this plan sends: a rebuilt turn is linked to the chain it continues."""
        return {"parent_id": self.rebuilt_from, "link": "rebuilt"} if self.rebuilt_from else {}


def plan(store: "Store", body: dict[str, Any], *, format: Format = "steps") -> Plan:
    """Before sending ``body``: rebuilt when the archive already knows the server lost
    its ``previous_interaction_id`` (see ``needs_rebuild``), else as given."""
    prev = body.get("previous_interaction_id")
    if not prev or not needs_rebuild(store, prev):
        return Plan(body)
    return _plan_rebuilt(store, body, format, "expired in the archive")


def after_error(
    store: "Store",
    body: dict[str, Any],
    exc: BaseException,
    *,
    format: Format = "steps",
    on_store_error: Callable[[BaseException], None] | None = None,
) -> Plan | None:
    """After sending ``body`` failed with ``exc``: a rebuilt plan when the server lost a
    chain the archive holds, else None (the error is the caller's to raise).

    The lost chain is marked ``expired`` first, so the next turn skips the round trip;
    a store failure there goes to ``on_store_error`` (default: logged) and the rebuild
    goes on.
    """
    prev = body.get("previous_interaction_id")
    if not prev or not is_lost_chain_error(exc) or not store.exists(prev):
        return None
    try:
        store.mark_server_state(prev, "expired")
    except Exception as store_exc:  # noqa: BLE001 - the rebuild matters more than the mark
        if on_store_error is None:
            log.warning("could not mark %s expired: %s", prev, store_exc)
        else:
            on_store_error(store_exc)
    return _plan_rebuilt(store, body, format, f"server said: {type(exc).__name__}")


def _plan_rebuilt(store: "Store", body: dict[str, Any], format: Format, why: str) -> Plan:
    prev = body["previous_interaction_id"]
    out, hist = _rebuilt(store, body, format)
    log.info("chain %s rebuilt from %d stored turns (%s)", prev, hist.turns, why)
    return Plan(out, rebuilt_from=prev, reason=why, turns=hist.turns)


# --- expiry ---------------------------------------------------------------------


@dataclass
class Expiring:
    """A conversation whose newest live turn the server forgets soon."""

    conversation_id: str
    head_id: str
    expires_at: datetime
    model: str | None
    turns: int


def expiring(store: "Store", within: str | timedelta = "2d") -> Iterator[Expiring]:
    """Conversations whose server state ends within ``within``, soonest first.

    A conversation's newest live turn (the one a continuation names as
    ``previous_interaction_id``) and its expiry are kept on its summary row, so this
    streams from an index: the first page costs the same at 10k or 1M interactions.
    """
    horizon = _now() + retention_delta(within)
    for head in store.expiring_heads(horizon):
        yield Expiring(head.conversation_id, head.head_id, head.expires_at, head.model, head.turns)


@dataclass
class RefreshResult:
    checked: int = 0
    live: int = 0
    gone: int = 0
    completed: int = 0


def refresh(store: "Store", client: Any, ids: list[str] | None = None) -> RefreshResult:
    """Re-read interactions from the server with ``get`` on a recorded client.

    The recorder updates each stored row from what ``get`` returns (background
    results, status, usage) and marks the ones the server no longer has.
    """
    result = RefreshResult()
    if ids is None:
        ids = [row.id for row in store.list(server_state="live")]
    for interaction_id in ids:
        before = store.get(interaction_id)
        result.checked += 1
        try:
            interaction = client.interactions.get(before.id)
        except Exception as exc:  # noqa: BLE001 - the SDK's own classes differ by generation
            if not is_lost_chain_error(exc):
                raise
            store.mark_server_state(before.id, "expired")
            result.gone += 1
            continue
        result.live += 1
        if before.status != "completed" and getattr(interaction, "status", None) == "completed":
            result.completed += 1
    return result


# --- continuing a chain ---------------------------------------------------------


def continue_chain(
    store: "Store",
    client: Any,
    interaction_id: str,
    text: str,
    *,
    model: str | None = None,
    stream: bool = False,
) -> Any:
    """Send ``text`` as the next turn after ``interaction_id`` on a recorded client.

    Server state is used while it lives; the recorder rebuilds the history from the
    archive once it is gone. Returns the interaction, or the event stream.
    """
    row = store.get(interaction_id)
    kwargs: dict[str, Any] = {"input": text, "previous_interaction_id": row.id}
    if model:
        kwargs["model"] = model
    elif row.agent:
        kwargs["agent"] = row.agent
    else:
        kwargs["model"] = row.model
    request = row.request or {}
    for key in ("system_instruction", "tools", "generation_config"):
        if request.get(key) is not None and not (key == "generation_config" and "agent" in kwargs):
            kwargs[key] = request[key]
    if stream:
        kwargs["stream"] = True
    return client.interactions.create(**kwargs)


def chat_head(store: "Store", *, latest: bool = False, interaction_id: str | None = None) -> str | None:
    """Where ``convostore chat`` picks up: a given chain's newest turn, the latest one, or nothing."""
    if interaction_id:
        row = store.get(interaction_id)
        if row.id == row.conversation_id:
            # A conversation id: continue its newest turn.
            rows = list(store.list(conversation=row.conversation_id, limit=1))
            return rows[0].id if rows else row.id
        return row.id
    if latest:
        rows = list(store.list(limit=1))
        return rows[0].id if rows else None
    return None
