"""A comparison rendered for people: terminal table, Markdown, JSON, or one HTML file.

The HTML report is self-contained (inline CSS and SVG, no scripts or fetches), so it
can be mailed, attached to a ticket or opened offline.
"""

from __future__ import annotations

import difflib
import html
import shutil
import textwrap
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import orjson

from .comparison import Answer, Comparison

if TYPE_CHECKING:  # pragma: no cover
    from .replaying import ReplayRun

FORMATS = ("table", "markdown", "json", "html")


def render(comparison: Comparison, format: str = "table") -> str:
    """The comparison in one of ``FORMATS``."""
    if format == "table":
        return _table(comparison)
    if format == "markdown":
        return _markdown(comparison)
    if format == "json":
        return orjson.dumps(comparison.to_json(), option=orjson.OPT_INDENT_2, default=str).decode()
    if format == "html":
        return _html(comparison)
    raise ValueError(f"format must be one of {FORMATS}, not {format!r}")


def _columns(c: Comparison) -> list[tuple[str, str]]:
    return [("original", c.original_model or "original")] + [(r.id, f"{r.model} ({r.mode})") for r in c.runs]


def _get(turn: Any, key: str) -> Answer:
    return turn.original if key == "original" else turn.replays[key]


def _fmt(value: Any, suffix: str = "") -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.0f}{suffix}" if value >= 10 else f"{value:.2f}{suffix}"
    return f"{value}{suffix}"


def _table(c: Comparison) -> str:
    cols = _columns(c)
    width = max(24, min(48, 100 // max(1, len(cols))))
    lines: list[str] = []
    header = "  ".join(f"{label[:width]:<{width}}" for _, label in cols)
    lines.append(f"{'turn':<5} {header}")
    lines.append("-" * len(lines[0]))
    for t in c.turns:
        lines.append(f"{t.index + 1:<5} user: {t.input_text[: width * len(cols)]}")
        wrapped = [textwrap.wrap(_get(t, k).text or "(no answer)", width)[:4] or [""] for k, _ in cols]
        for row in range(max(len(w) for w in wrapped)):
            cells = [f"{(w[row] if row < len(w) else ''):<{width}}" for w in wrapped]
            lines.append(f"{'':<5} " + "  ".join(cells))
        meta = []
        for k, _ in cols:
            a = _get(t, k)
            sim = "" if a.similarity is None else f" sim {a.similarity:.2f}"
            meta.append(f"{'[' + a.status + sim + ' ' + _fmt(a.latency_ms, 'ms') + ' ' + _fmt(a.tokens, 't') + ']':<{width}}")
        lines.append(f"{'':<5} " + "  ".join(meta))
    lines.append("")
    totals = c.totals()
    for k, label in cols:
        t = totals[k]
        lines.append(
            f"{label}: {t['turns']} turns, mean latency {_fmt(t['mean_latency_ms'], ' ms')}, "
            f"tokens {t['total_tokens']}, mean similarity {_fmt(t['mean_similarity'])}, "
            f"diverged {t['diverged']}, failed {t['failed']}"
        )
    return "\n".join(lines)


def _md_cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", "<br>")


def _markdown(c: Comparison) -> str:
    cols = _columns(c)
    out = [f"# Comparison of {c.head_id}", ""]
    out.append("| turn | user | " + " | ".join(label for _, label in cols) + " |")
    out.append("|---|---|" + "---|" * len(cols))
    for t in c.turns:
        cells = []
        for k, _ in cols:
            a = _get(t, k)
            extra = f" _({a.status}" + ("" if a.similarity is None else f", sim {a.similarity:.2f}") + ")_"
            cells.append(_md_cell(a.text) + extra)
        out.append(f"| {t.index + 1} | {_md_cell(t.input_text)} | " + " | ".join(cells) + " |")
    out += ["", "## Totals", "", "| run | turns | mean latency (ms) | tokens | mean similarity | diverged | failed |", "|---|---|---|---|---|---|---|"]
    totals = c.totals()
    for k, label in cols:
        t = totals[k]
        out.append(
            f"| {_md_cell(label)} | {t['turns']} | {_fmt(t['mean_latency_ms'])} | {t['total_tokens']} | "
            f"{_fmt(t['mean_similarity'])} | {t['diverged']} | {t['failed']} |"
        )
    return "\n".join(out) + "\n"


def _word_diff(original: str, other: str) -> str:
    """``other`` with the words that differ from ``original`` marked."""
    a, b = original.split(), other.split()
    parts: list[str] = []
    for op, _, _, j1, j2 in difflib.SequenceMatcher(None, a, b, autojunk=False).get_opcodes():
        chunk = html.escape(" ".join(b[j1:j2]))
        if not chunk:
            continue
        parts.append(chunk if op == "equal" else f"<ins>{chunk}</ins>")
    return " ".join(parts)


def _chart(c: Comparison, metric: str, title: str) -> str:
    """A small inline SVG line chart of ``metric`` per turn, one line per column."""
    cols = _columns(c)
    series = [[getattr(_get(t, k), metric) for t in c.turns] for k, _ in cols]
    values = [v for s in series for v in s if v is not None]
    w, h, pad = 360, 140, 28
    n = max(1, len(c.turns) - 1)
    top = max(values) if values else 1
    top = top or 1
    colors = ["#555", "#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e"]
    parts = [f'<svg class="chart" viewBox="0 0 {w} {h}" width="{w}" height="{h}" role="img" aria-label="{title}">']
    parts.append(f'<text x="{pad}" y="14" class="ct">{html.escape(title)} (max {_fmt(float(top))})</text>')
    parts.append(f'<line x1="{pad}" y1="{h - pad}" x2="{w - 8}" y2="{h - pad}" stroke="#999"/>')
    for i, s in enumerate(series):
        pts = [
            f"{pad + (w - pad - 8) * j / n:.1f},{h - pad - (h - pad - 24) * (v / top):.1f}"
            for j, v in enumerate(s)
            if v is not None
        ]
        if pts:
            color = colors[i % len(colors)]
            parts.append(f'<polyline fill="none" stroke="{color}" stroke-width="2" points="{" ".join(pts)}"/>')
            for p in pts:
                x, y = p.split(",")
                parts.append(f'<circle cx="{x}" cy="{y}" r="3" fill="{color}"/>')
    for j in range(len(c.turns)):
        parts.append(f'<text x="{pad + (w - pad - 8) * j / n:.1f}" y="{h - 10}" class="ax">{j + 1}</text>')
    parts.append("</svg>")
    return "".join(parts)


_CSS = """
body{font:14px/1.45 system-ui,sans-serif;margin:24px;color:#222}
table{border-collapse:collapse;width:100%;table-layout:fixed}
td,th{border:1px solid #ddd;padding:6px 8px;vertical-align:top;text-align:left}
th{background:#f4f4f4}
.user{color:#555;font-style:italic}
ins{background:#fff3b0;text-decoration:none}
.meta{color:#777;font-size:12px;display:block;margin-top:4px}
.diverged{background:#fde8e8}.failed,.missing{background:#eee}
.chart{margin:8px 16px 8px 0;border:1px solid #eee}.ct{font-size:11px}.ax{font-size:9px;fill:#777}
.legend span{display:inline-block;margin-right:14px}
"""


def _html(c: Comparison) -> str:
    cols = _columns(c)
    colors = ["#555", "#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e"]
    rows = []
    for t in c.turns:
        cells = []
        for k, _ in cols:
            a = _get(t, k)
            body = html.escape(a.text) if k == "original" else _word_diff(t.original.text, a.text)
            sim = "" if a.similarity is None else f" · similarity {a.similarity:.2f}"
            meta = f"{a.status}{sim} · {_fmt(a.latency_ms, ' ms')} · {_fmt(a.tokens)} tokens · {a.length} chars"
            cells.append(f'<td class="{html.escape(a.status)}">{body or "<em>(no answer)</em>"}<span class="meta">{html.escape(meta)}</span></td>')
        rows.append(
            f'<tr class="turn" data-turn="{t.index + 1}"><th>{t.index + 1}</th>'
            f'<td class="user">{html.escape(t.input_text)}</td>{"".join(cells)}</tr>'
        )
    totals = c.totals()
    total_rows = "".join(
        f"<tr><td>{html.escape(label)}</td><td>{totals[k]['turns']}</td><td>{_fmt(totals[k]['mean_latency_ms'])}</td>"
        f"<td>{totals[k]['total_tokens']}</td><td>{_fmt(totals[k]['mean_similarity'])}</td>"
        f"<td>{totals[k]['diverged']}</td><td>{totals[k]['failed']}</td></tr>"
        for k, label in cols
    )
    legend = "".join(f'<span style="color:{colors[i % len(colors)]}">■ {html.escape(label)}</span>' for i, (_, label) in enumerate(cols))
    head = "".join(f"<th>{html.escape(label)}</th>" for _, label in cols)
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>convostore comparison {html.escape(c.head_id)}</title>
<style>{_CSS}</style></head><body>
<h1>Comparison of {html.escape(c.head_id)}</h1>
<p>{len(c.turns)} turns; original model {html.escape(c.original_model or "?")}; {len(c.runs)} replay run(s). Words that differ from the original are <ins>highlighted</ins>.</p>
<div class="legend">{legend}</div>
<div>{_chart(c, "latency_ms", "latency (ms) per turn")}{_chart(c, "tokens", "tokens per turn")}</div>
<table id="turns"><thead><tr><th style="width:3em">turn</th><th>user</th>{head}</tr></thead>
<tbody>{"".join(rows)}</tbody></table>
<h2>Totals</h2>
<table id="totals"><thead><tr><th>run</th><th>turns</th><th>mean latency (ms)</th><th>tokens</th><th>mean similarity</th><th>diverged</th><th>failed</th></tr></thead>
<tbody>{total_rows}</tbody></table>
</body></html>
"""


# -- plain-text tables ---------------------------------------------------------------

ELLIPSIS = "…"


def terminal_width(default: int = 100) -> int:
    """The terminal's width in columns (``COLUMNS`` wins; ``default`` when not a terminal)."""
    return max(40, shutil.get_terminal_size((default, 24)).columns)


def cut(text: str, width: int) -> str:
    """``text`` on one line, at most ``width`` characters, a cut marked with ``…``."""
    flat = " ".join(text.split())
    if len(flat) <= width:
        return flat
    return flat[: max(0, width - 1)] + ELLIPSIS if width > 0 else ""


def text_table(headers: Sequence[str], rows: Sequence[Sequence[str]], width: int | None = None,
               right: Sequence[int] = ()) -> str:
    """Rows under headers in aligned columns that fit ``width`` (the terminal's by default).

    When the natural widths do not fit, the widest column gives up characters first,
    down to 4; every cut cell ends with ``…``. Columns listed in ``right`` align right.
    """
    width = terminal_width() if width is None else width
    cells = [[cut(str(c), 10_000) for c in r] for r in rows]
    widths = [max([len(h)] + [len(r[i]) for r in cells]) for i, h in enumerate(headers)]
    gap = 2
    while sum(widths) + gap * (len(widths) - 1) > width:
        i = max(range(len(widths)), key=lambda k: widths[k])
        if widths[i] <= 4:
            break
        widths[i] -= 1

    def line(values: Sequence[str]) -> str:
        out = []
        for i, v in enumerate(values):
            v = cut(v, widths[i])
            out.append(v.rjust(widths[i]) if i in right else v.ljust(widths[i]))
        return (" " * gap).join(out).rstrip()

    return "\n".join([line(headers), line(["-" * w for w in widths]), *(line(r) for r in cells)])


def runs_table(runs: Sequence["ReplayRun"], width: int | None = None) -> str:
    """Replay runs, one line each: what ran, how it went."""
    if not runs:
        return "no replay runs"
    rows = []
    for run in runs:
        s = run.summary or {}
        v = s.get("verdicts") or {}
        rows.append([
            run.id,
            f"{run.created_at:%Y-%m-%d %H:%M}" if run.created_at else "-",
            run.status,
            f"{run.model} ({run.mode})",
            str(s.get("conversations", len(run.heads))),
            str(s.get("turns", "-")),
            str(v.get("ok", 0)),
            str(v.get("diverged", 0)),
            str(v.get("failed", 0)),
        ])
    headers = ["run", "created", "status", "model", "convs", "turns", "ok", "diverged", "failed"]
    return text_table(headers, rows, width, right=(4, 5, 6, 7, 8))
