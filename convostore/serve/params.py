"""Query parameters checked the way the CLI checks its options: a bad value is a 400
with one line saying what was expected, never a traceback."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime, timedelta
from typing import Any

import click

from ..errors import ConvostoreError


class BadRequest(ConvostoreError):
    """A query parameter the app cannot use (answered with 400)."""


def _convert(kind: Any, value: str, name: str) -> Any:
    try:
        return kind.convert(value, None, None)
    except click.BadParameter as exc:
        raise BadRequest(f"{name}: {exc.format_message()}") from None


def date(query: Mapping[str, str], name: str) -> datetime | None:
    """YYYY-MM-DD, an ISO time or an age (``30d``), as the CLI's ``--since`` takes it."""
    from ..cli.params import DATE

    value = query.get(name, "").strip()
    return _convert(DATE, value, name) if value else None


def duration(query: Mapping[str, str], name: str, default: str) -> timedelta:
    from ..cli.params import DURATION

    value: timedelta = _convert(DURATION, query.get(name, "").strip() or default, name)
    return value


def integer(query: Mapping[str, str], name: str, default: int, lo: int, hi: int) -> int:
    raw = query.get(name, "").strip()
    if not raw:
        return default
    try:
        value = int(raw)
    except ValueError:
        raise BadRequest(f"{name} must be a whole number, not {raw[:40]!r}") from None
    if not lo <= value <= hi:
        raise BadRequest(f"{name} must be between {lo} and {hi}, not {value}")
    return value


def text(query: Mapping[str, str], name: str) -> str | None:
    value = query.get(name, "").strip()
    return value or None


def choice(query: Mapping[str, str], name: str, choices: tuple[str, ...]) -> str:
    value = query.get(name, "").strip() or choices[0]
    if value not in choices:
        raise BadRequest(f"{name} must be one of {', '.join(choices)}, not {value[:40]!r}")
    return value


def conversation_filters(query: Mapping[str, str]) -> dict[str, Any]:
    """The ``conversations`` filters of a page or API request (``Store.list_conversations`` keywords)."""
    return {
        "after": text(query, "after"),
        "model": text(query, "model"),
        "status": text(query, "status"),
        "server_state": text(query, "server_state"),
        "label": text(query, "label"),
        "since": date(query, "since"),
        "until": date(query, "until"),
    }
