"""Click parameter types shared by the commands: ids, durations and dates, checked before any work."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from typing import Any

import click

from .failures import one_line

#: Longer than any id the API or convostore makes; past it, an "id" is a paste accident.
MAX_ID_LENGTH = 256


class InteractionId(click.ParamType):
    """An interaction id or a prefix of one: printable, no spaces, at most MAX_ID_LENGTH characters."""

    name = "id"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> str:
        text = str(value)
        if not text:
            self.fail("an interaction id cannot be empty", param, ctx)
        if len(text) > MAX_ID_LENGTH:
            self.fail(f"not an interaction id: {len(text):,} characters (ids are at most {MAX_ID_LENGTH})", param, ctx)
        if not text.isprintable() or any(c.isspace() for c in text):
            self.fail(f"not an interaction id: {one_line(repr(text), 80)}", param, ctx)
        return text


class Duration(click.ParamType):
    """A window like 12h, 2d, 1w, seconds, or `free`/`paid`: the same parser as `retention=`."""

    name = "duration"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> timedelta:
        from ..records import retention_delta

        if isinstance(value, timedelta):
            return value
        try:
            delta = retention_delta(str(value))
        except (ValueError, OverflowError):
            self.fail(f"not a duration: {one_line(repr(value), 80)} (use e.g. 12h, 2d, 1w)", param, ctx)
        if delta < timedelta(0):
            self.fail(f"a duration cannot be negative: {value!r}", param, ctx)
        return delta


class Date(click.ParamType):
    """YYYY-MM-DD or an ISO timestamp (UTC unless it says otherwise), or a duration ago (`30d`)."""

    name = "date"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> datetime:
        if isinstance(value, datetime):
            return value
        text = str(value).strip()
        try:
            parsed = datetime.fromisoformat(text)
        except ValueError:
            try:
                return datetime.now(timezone.utc) - Duration().convert(text, param, ctx)
            except click.BadParameter:
                self.fail(f"not a date: {one_line(repr(value), 80)} (use YYYY-MM-DD, an ISO time, or an age like 30d)", param, ctx)
        return parsed if parsed.tzinfo else parsed.replace(tzinfo=timezone.utc)


INTERACTION_ID = InteractionId()
DURATION = Duration()
DATE = Date()
