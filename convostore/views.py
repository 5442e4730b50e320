"""What the CLI's ``--json`` prints and ``convostore serve``'s ``/api`` returns.

One function per command, so the two can never drift apart: the CLI prints these
objects (listings one per line), the web API sends the same objects (listings as one
array). Values are plain JSON types except datetimes, which ``dumps`` writes as
ISO 8601 (orjson's own format, as the CLI always printed them).
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

import orjson

if TYPE_CHECKING:  # pragma: no cover
    from .prices import PriceTable
    from .store import Store


def dumps(obj: Any, *, indent: bool = False) -> bytes:
    """JSON as the CLI prints it (datetimes ISO 8601; anything else orjson cannot take as ``str``)."""
    return orjson.dumps(obj, option=orjson.OPT_INDENT_2 if indent else 0, default=str)


def interaction(store: "Store", interaction_id: str) -> dict[str, Any]:
    """``show ID --json``: the row's fields plus its steps and usage."""
    row = store.get(interaction_id)
    return row.to_json_dict() | {"input_steps": row.input_steps, "output_steps": row.output_steps, "usage": row.usage}


def interactions(
    store: "Store",
    *,
    limit: int | None = 50,
    conversation: str | None = None,
    model: str | None = None,
    status: str | None = None,
    since: datetime | None = None,
) -> Iterator[dict[str, Any]]:
    """``list --json``: interactions newest first (``conversation``: any interaction of it)."""
    cid = store.get(conversation).conversation_id if conversation else None
    for row in store.list(conversation=cid, model=model, status=status, since=since, limit=limit or None):
        yield row.to_json_dict()


def conversations(store: "Store", **filters: Any) -> dict[str, Any]:
    """``conversations --json``: one page (``items``) and the cursor of the next (``next``)."""
    page = store.list_conversations(**filters)
    return {"items": [c.to_json_dict() for c in page.items], "next": page.next}


def chain(store: "Store", interaction_id: str) -> list[dict[str, Any]]:
    """``chain ID --json``: the chain ending at the interaction, root first."""
    return [row.to_json_dict() for row in store.chain(interaction_id)]


def tree(store: "Store", interaction_id: str) -> list[dict[str, Any]]:
    """``tree ID --json``: the whole conversation, parents before children, with ``depth``."""
    return [row.to_json_dict() | {"depth": row.depth} for row in store.tree(interaction_id)]


def search(store: "Store", text: str, *, limit: int = 20, order: str = "relevance") -> list[dict[str, Any]]:
    """``search TEXT --json``."""
    return [row.to_json_dict() for row in store.search(text, limit=limit, order=order)]


def stats(store: "Store", prices: "PriceTable | None" = None) -> dict[str, Any]:
    """``stats --json``: the counters, plus cost per model under ``prices`` (default: shipped/$CONVOSTORE_PRICES)."""
    from .prices import cost_summary, load_prices

    out = store.stats()
    out["cost"] = cost_summary(prices or load_prices(), store.usage())
    return out


def history(store: "Store", interaction_id: str, *, model: str | None = None, format: str = "steps") -> dict[str, Any]:
    """``history ID --json``: the stateless input (and settings) that continues the chain."""
    from .rebuild import history as rebuild

    return rebuild(store, interaction_id, model=model, format=format).to_json()  # type: ignore[arg-type]


def runs(store: "Store", prices: "PriceTable | None" = None) -> list[dict[str, Any]]:
    """``runs --json``: replay runs, newest first, each with its ``cost_usd``."""
    from .prices import load_prices
    from .replaying import list_runs, run_costs

    costs = run_costs(store, prices or load_prices())
    return [{**run.to_dict(), "cost_usd": costs.get(run.id)} for run in list_runs(store)]


def expiring(store: "Store", within: str | timedelta = "2d") -> Iterator[dict[str, Any]]:
    """``expiring --json``: conversations whose server state ends within the window, soonest first."""
    from .resume import expiring as soon

    for item in soon(store, within):
        yield dict(item.__dict__)


__all__ = ["dumps", "interaction", "interactions", "conversations", "chain", "tree", "search", "stats", "history", "runs", "expiring"]
