"""Stored text made safe to put into Markdown: it reads as the words it is, never as markup.

Model output is untrusted: a reply that starts with ``## `` must not become a heading of
the export, and ``<script>`` must not reach a browser that renders the file. Every
character CommonMark or GitHub's tables would interpret is backslash-escaped (any ASCII
punctuation may be, by the spec), ``&``/``<``/``>`` become entities, and line-start
markers (headings, quotes, lists, setext underlines, indented code) are neutralised.
"""

from __future__ import annotations

import re

# Inline punctuation with a meaning somewhere in CommonMark or GFM (emphasis, code, links,
# tables, strikethrough, raw HTML via the entities below). `#`, `+`, `-`, `=`, `.`, `)`,
# `!` only matter at a line's start, handled by _LINE_START.
_INLINE = re.compile(r"([\\`*_\[\]{}|~])")
_LINE_START = re.compile(r"^(#|>|\+|-|=|\d+(?=[.)]))")
_NEWLINES = re.compile(r"\r\n|\r|\n")


def _entities(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def inline(text: str) -> str:
    """One line of text (newlines collapsed to spaces) safe anywhere inline."""
    return _INLINE.sub(r"\\\1", _entities(" ".join(_NEWLINES.split(text))))


def _line(line: str) -> str:
    body = line.lstrip(" \t")
    pad = "&nbsp;" * (len(line) - len(body))  # leading blanks would start a code block
    escaped = _INLINE.sub(r"\\\1", _entities(body))
    match = _LINE_START.match(escaped)
    if match:
        marker = match.group(1)
        if marker.isdigit():  # "1. " / "1) " would start an ordered list
            end = match.end()
            escaped = escaped[:end] + "\\" + escaped[end:]
        else:
            escaped = "\\" + escaped
    return pad + escaped


def block(text: str, *, hard_breaks: bool = True) -> str:
    """Multi-line text as one paragraph: its lines kept (hard breaks), none read as markup.

    Blank lines are kept as a hard break too, so the text cannot end the paragraph and
    start a new block (a heading, a list) of its own.
    """
    lines = [_line(line) for line in _NEWLINES.split(text)]
    sep = "  \n" if hard_breaks else "\n"
    return sep.join(line if line else "&nbsp;" for line in lines)


def cell(text: str) -> str:
    """Text for a GFM table cell: inline-escaped, `|` escaped, line breaks as ``<br>``."""
    return "<br>".join(_INLINE.sub(r"\\\1", _entities(line)) for line in _NEWLINES.split(text))


def code(text: str) -> str:
    """Text as an inline code span, whatever backticks it holds."""
    flat = " ".join(_NEWLINES.split(text))
    longest = max((len(m) for m in re.findall(r"`+", flat)), default=0)
    fence = "`" * (longest + 1)
    pad = " " if flat.startswith("`") or flat.endswith("`") or not flat.strip() else ""
    return f"{fence}{pad}{flat}{pad}{fence}"
