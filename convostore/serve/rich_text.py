"""Stored model text as safe HTML: CommonMark with raw HTML off and links limited to
http, https and mailto. Everything a model wrote is data; nothing it wrote runs."""

from __future__ import annotations

from functools import lru_cache
from typing import Any

from markdown_it import MarkdownIt
from markupsafe import Markup

_SAFE_SCHEMES = ("http://", "https://", "mailto:")


def _validate_link(url: str) -> bool:
    return url.strip().lower().startswith(_SAFE_SCHEMES)


def _parser() -> MarkdownIt:
    md = MarkdownIt("commonmark", {"html": False, "linkify": False, "typographer": False})
    md.validateLink = _validate_link  # type: ignore[method-assign]
    md.disable("image")  # an image would be fetched from elsewhere: the page loads nothing from outside

    def link_open(renderer: Any, tokens: Any, idx: int, options: Any, env: Any) -> str:
        tokens[idx].attrSet("rel", "noopener noreferrer nofollow")
        return str(renderer.renderToken(tokens, idx, options, env))

    md.add_render_rule("link_open", link_open)
    return md


_MD = _parser()


def markdown(text: str | None) -> Markup:
    """``text`` (Markdown) as HTML safe to put in a page."""
    return _render(text or "")


@lru_cache(maxsize=4096)
def _render(text: str) -> Markup:
    # A pure function of the text: a page seen again (a reload, a live update) parses nothing twice.
    return Markup(_MD.render(text))
