"""Removing conversations from the archive, and from the server while it still holds them.

``delete`` and ``purge`` plan with the store (what goes, which of it the server may still
hold), delete on the server first when given a client (an interaction the server no
longer has counts as gone, not as a failure), then delete locally in one transaction.
A server failure stops before anything local is deleted, so running it again finishes
the job. The rules for what goes with a row are in ``convostore.store.removal``.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import TYPE_CHECKING, Any

from .store.removal import HasLaterTurnsError, Removal

if TYPE_CHECKING:  # pragma: no cover
    from .store import Store

__all__ = ["HasLaterTurnsError", "Removal", "delete", "purge"]


def delete(
    store: "Store", interaction_id: str, *, conversation: bool = False, client: Any = None, dry_run: bool = False
) -> Removal:
    """Delete an interaction (or with ``conversation=True`` its whole conversation) from the archive.

    ``client``: a ``genai.Client`` (recorded or not) to delete the live ones on the server too.
    """
    return _carry_out(lambda dry: store.delete(interaction_id, conversation=conversation, dry_run=dry), client, dry_run)


def purge(
    store: "Store", before: datetime, *, model: str | None = None, client: Any = None, dry_run: bool = False
) -> Removal:
    """Delete every conversation last active before ``before`` (only those on ``model`` if given)."""
    return _carry_out(lambda dry: store.purge(before, model=model, dry_run=dry), client, dry_run)


def _carry_out(step: Callable[[bool], Removal], client: Any, dry_run: bool) -> Removal:
    """Plan (a dry run), delete on the server when asked, then delete locally."""
    plan = step(True)
    if dry_run:
        return plan
    deleted, gone = _delete_on_server(client, plan.live) if client is not None else (0, 0)
    result = step(False)
    result.server_deleted, result.server_gone = deleted, gone
    return result


def _delete_on_server(client: Any, ids: list[str]) -> tuple[int, int]:
    """(deleted, already gone) for ``ids``; any other failure propagates."""
    deleted = gone = 0
    for iid in ids:
        try:
            client.interactions.delete(iid)
            deleted += 1
        except Exception as exc:
            if _status(exc) in (400, 404):  # expired or never there: nothing left to delete
                gone += 1
                continue
            raise
    return deleted, gone


def _status(exc: BaseException) -> int | None:
    for attr in ("status_code", "code"):
        value = getattr(exc, attr, None)
        if isinstance(value, int):
            return value
    return None
