"""Jinja2 with autoescaping on for every template, the filters the pages share, and
the HTML response helper. Stored text reaches a page only through ``{{ }}`` (escaped)
or through ``rich_text.markdown`` (CommonMark, raw HTML off)."""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any

import jinja2
from starlette.requests import Request
from starlette.responses import HTMLResponse

from ..report import usd
from .rich_text import markdown

_ENV = jinja2.Environment(
    loader=jinja2.PackageLoader("convostore.serve", "templates"),
    autoescape=True,  # every template, whatever its name
    undefined=jinja2.StrictUndefined,
    trim_blocks=True,
    lstrip_blocks=True,
)


def when(value: datetime | None) -> str:
    """A stored time for people, in UTC to the minute."""
    return f"{value.astimezone(timezone.utc):%Y-%m-%d %H:%M} UTC" if value else "-"


def until(value: datetime | None, now: datetime | None = None) -> str:
    """How soon ``value`` comes ("in 3 h", "in 2 d", "passed")."""
    if value is None:
        return "-"
    seconds = (value - (now or datetime.now(timezone.utc))).total_seconds()
    if seconds <= 0:
        return "passed"
    for unit, size in (("d", 86400), ("h", 3600), ("min", 60)):
        if seconds >= size:
            return f"in {seconds / size:.0f} {unit}"
    return "in <1 min"


def short(text: str | None, width: int = 80) -> str:
    flat = " ".join((text or "").split())
    return flat if len(flat) <= width else flat[: width - 1] + "…"


def number(value: Any) -> str:
    return f"{value:,}" if isinstance(value, int) else "-" if value is None else str(value)


_ENV.filters.update(when=when, until=until, short=short, usd=usd, number=number, markdown=markdown)


def page_text(request: Request, name: str, **context: Any) -> str:
    """Template ``name`` rendered as a full page (``request`` gives the templates the current URL)."""
    return _ENV.get_template(name).render(request=request, **context)


def page(request: Request, name: str, status: int = 200, **context: Any) -> HTMLResponse:
    """Template ``name`` as a full page response."""
    return HTMLResponse(page_text(request, name, **context), status_code=status, headers={"cache-control": "no-store"})


def fragment(name: str, **context: Any) -> str:
    """Render a template that is part of a page (live updates send these)."""
    return _ENV.get_template(name).render(**context)
