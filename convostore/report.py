"""A comparison rendered for people: terminal table, Markdown, JSON, or one HTML file.

The HTML report is self-contained (inline CSS and SVG, no scripts, no fetches), so it
can be mailed, attached to a ticket or opened offline. It is written as it is read:
one conversation at a time (``write``), so a report over thousands of conversations
needs no more memory than one over ten.
"""

from __future__ import annotations

import difflib
import html
import io
import shutil
import textwrap
from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING, Any, TextIO

from .comparison import ORIGINAL, Answer, Comparison, ConversationComparison, Scores, TurnComparison

if TYPE_CHECKING:  # pragma: no cover
    from .replaying import ReplayRun

FORMATS = ("table", "markdown", "json", "html")
#: One colour per column (the original, then each run), in charts and legends.
COLORS = ("#555", "#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b", "#17becf")


def render(comparison: Comparison, format: str = "table", *, width: int | None = None) -> str:
    """The comparison in one of ``FORMATS``, as one string (see ``write`` to stream)."""
    out = io.StringIO()
    write(comparison, out, format, width=width)
    return out.getvalue()


def write(comparison: Comparison, out: TextIO, format: str = "table", *, width: int | None = None) -> None:
    """Write the comparison to ``out``; HTML streams conversation by conversation."""
    if format == "table":
        out.write(_table(comparison, width if width is not None else terminal_width()) + "\n")
    elif format == "markdown":
        out.write(_markdown(comparison))
    elif format == "json":
        out.write(comparison.to_json() + "\n")
    elif format == "html":
        _html(comparison, out)
    else:
        raise ValueError(f"format must be one of {FORMATS}, not {format!r}")


def _columns(c: Comparison) -> list[tuple[str, str]]:
    """(key, label) per column: the original, then each run (its id added when labels repeat)."""
    labels = [f"{r.model} ({r.mode})" for r in c.runs]
    cols = [(ORIGINAL, (c.original_model or "original") if c.focus is not None and len(c.heads) == 1 else "original")]
    for r, label in zip(c.runs, labels):
        cols.append((r.id, f"{label} {r.id}" if labels.count(label) > 1 else label))
    return cols


def _get(turn: TurnComparison, key: str) -> Answer | None:
    return turn.original if key == ORIGINAL else turn.replays.get(key)


def _fmt(value: Any, suffix: str = "") -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.0f}{suffix}" if value >= 10 else f"{value:.2f}{suffix}"
    return f"{value}{suffix}"


def usd(value: float | None) -> str:
    """A cost for people: "unknown" when it is, never a guess."""
    if value is None:
        return "cost unknown"
    if value == 0:
        return "$0"
    return f"${value:,.2f}" if value >= 1 else f"${value:.4f}" if value >= 0.0001 else f"${value:.2e}"


def _total_rows(c: Comparison) -> tuple[list[str], list[list[str]]]:
    totals = c.totals()
    judged = c.judge is not None
    headers = ["column", "convs", "turns", "done", "failed", "diverged", "ms mean", "p50", "p95",
               "in tok", "out tok", "thought", "cost", "sim mean", "sim min"]
    if judged:
        headers += ["judge mean", "judge min"]
    rows = []
    for key, label in _columns(c):
        t = totals[key]
        row = [label, str(t["conversations"]), str(t["turns"]), str(t["completed"]), str(t["failed"]),
               str(t["diverged"]), _fmt(t["latency_ms"]["mean"]), _fmt(t["latency_ms"]["median"]),
               _fmt(t["latency_ms"]["p95"]), str(t["tokens"]["input"]), str(t["tokens"]["output"]),
               str(t["tokens"]["thought"]), usd(t["cost_usd"]), _fmt(t["similarity"]["mean"]),
               _fmt(t["similarity"]["lowest"])]
        if judged:
            row += [_fmt(t["judge"]["mean"]), _fmt(t["judge"]["lowest"])]
        rows.append(row)
    return headers, rows


def _totals_by_metric(c: Comparison) -> tuple[list[str], list[list[str]]]:
    """The totals turned on their side: one row per figure, one column per run (fits a terminal)."""
    headers, rows = _total_rows(c)
    return ["", *(r[0] for r in rows)], [[h, *(r[i] for r in rows)] for i, h in enumerate(headers) if i]


def _run_cell(s: Scores | None) -> str:
    if s is None:
        return "-"
    parts = [f"{_fmt(s.score)} (min {_fmt(s.lowest)})"]
    if s.failed or s.missing:
        parts.append(f"failed {s.failed + s.missing}")
    if s.diverged:
        parts.append(f"diverged {s.diverged}")
    return ", ".join(parts)


def _conversation_rows(c: Comparison) -> tuple[list[str], list[list[str]]]:
    cols = _columns(c)[1:]
    headers = ["conversation", "turns", "first message", *(label for _, label in cols)]
    rows = [[s.head_id, str(s.turns), s.title, *(_run_cell(s.runs.get(k)) for k, _ in cols)] for s in c.summaries]
    return headers, rows


def _turn_table(c: Comparison, conv: ConversationComparison, width: int) -> list[str]:
    cols = _columns(c)
    gap = 2
    col_w = max(12, (width - 6 - gap * (len(cols) - 1)) // max(1, len(cols)))
    lines = [f"{'turn':<5} " + (" " * gap).join(cut(label, col_w).ljust(col_w) for _, label in cols)]
    lines.append("-" * min(width, len(lines[0])))
    for t in conv.turns:
        lines.append(f"{t.index + 1:<5} " + cut("user: " + t.input_text, width - 6))
        wrapped = []
        for k, _ in cols:
            a = _get(t, k)
            text = (a.text if a is not None else "") or "(no answer)"
            w = textwrap.wrap(" ".join(text.split()), col_w) or [""]
            if len(w) > 4:
                w = w[:4]
                w[3] = cut(w[3] + " " + ELLIPSIS, col_w) if len(w[3]) < col_w - 1 else w[3][: col_w - 1] + ELLIPSIS
            wrapped.append(w)
        for row in range(max(len(w) for w in wrapped)):
            lines.append(f"{'':<5} " + (" " * gap).join((w[row] if row < len(w) else "").ljust(col_w) for w in wrapped).rstrip())
        meta = []
        for k, _ in cols:
            a = _get(t, k)
            if a is None:
                meta.append("".ljust(col_w))
                continue
            score = "" if a.similarity is None else f" sim {a.similarity:.2f}"
            if a.judge_score is not None:
                score += f" judge {a.judge_score:.2f}"
            meta.append(cut(f"[{a.status}{score} {_fmt(a.latency_ms, 'ms')} {_fmt(a.tokens, 't')}]", col_w).ljust(col_w))
        lines.append(f"{'':<5} " + (" " * gap).join(meta).rstrip())
    return lines


def _table(c: Comparison, width: int) -> str:
    lines: list[str] = []
    if c.focus is not None:
        lines += _turn_table(c, c.focus, width)
        lines.append("")
    if len(c.heads) > 1:
        lines.append(f"{len(c.heads)} conversations, worst first:")
        headers, rows = _conversation_rows(c)
        lines.append(text_table(headers, rows, width=width, right=(1,), flex=(2, 0, *range(3, len(headers)))))
        lines.append("")
    headers, rows = _totals_by_metric(c)
    lines.append(text_table(headers, rows, width=width, right=tuple(range(1, len(headers))), flex=tuple(range(1, len(headers)))))
    return "\n".join(lines)


def md_cell(text: str) -> str:
    """``text`` safe inside a Markdown table cell: no pipe, line break or HTML gets through."""
    text = text.replace("\\", "\\\\").replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    text = text.replace("|", "\\|").replace("\r\n", "\n").replace("\r", "\n")
    return text.replace("\n", "<br>")


def _md_table(headers: Sequence[str], rows: Sequence[Sequence[str]]) -> list[str]:
    out = ["| " + " | ".join(md_cell(h) for h in headers) + " |", "|" + "---|" * len(headers)]
    out += ["| " + " | ".join(md_cell(str(v)) for v in r) + " |" for r in rows]
    return out


def _markdown(c: Comparison) -> str:
    cols = _columns(c)
    title = c.focus.head_id if c.focus is not None else f"{len(c.heads)} conversations"
    out = [f"# Comparison of {md_cell(title)}", ""]
    if c.focus is not None:
        headers = ["turn", "user", *(label for _, label in cols)]
        rows = []
        for t in c.focus.turns:
            cells = []
            for k, _ in cols:
                a = _get(t, k)
                if a is None:
                    cells.append("")
                    continue
                extra = a.status + ("" if a.similarity is None else f", sim {a.similarity:.2f}")
                if a.judge_score is not None:
                    extra += f", judge {a.judge_score:.2f}"
                cells.append(f"{a.text} _({extra})_")
            rows.append([str(t.index + 1), t.input_text, *cells])
        out += [*_md_table(headers, rows), ""]
    if len(c.heads) > 1:
        out += ["## Conversations (worst first)", "", *_md_table(*_conversation_rows(c)), ""]
    out += ["## Totals", "", *_md_table(*_totals_by_metric(c)), ""]
    if c.prices.taken:
        out += [f"Prices per 1M tokens as of {md_cell(c.prices.taken)}; \"cost unknown\" for models without one.", ""]
    return "\n".join(out)


# -- HTML ----------------------------------------------------------------------------


def _word_diff(original: str, other: str) -> str:
    """``other`` with the words that differ from ``original`` marked (escaped HTML)."""
    a, b = original.split(), other.split()
    parts: list[str] = []
    for op, _, _, j1, j2 in difflib.SequenceMatcher(None, a, b, autojunk=False).get_opcodes():
        chunk = html.escape(" ".join(b[j1:j2]))
        if not chunk:
            continue
        parts.append(chunk if op == "equal" else f"<ins>{chunk}</ins>")
    return " ".join(parts)


def _histogram(title: str, series: list[tuple[str, list[float]]], lo: float, hi: float, bins: int, unit: str) -> str:
    """An inline SVG histogram: one outline per series over shared bins."""
    w, h, pad = 420, 170, 32
    span = (hi - lo) or 1.0
    counts = []
    for _, values in series:
        c = [0] * bins
        for v in values:
            c[min(bins - 1, max(0, int((v - lo) / span * bins)))] += 1
        counts.append(c)
    top = max((max(c) for c in counts if c), default=0) or 1
    bw = (w - pad - 8) / bins
    parts = [f'<svg class="chart" viewBox="0 0 {w} {h}" width="{w}" height="{h}" role="img" aria-label="{html.escape(title)}">',
             f'<text x="{pad}" y="14" class="ct">{html.escape(title)} (tallest bin {top})</text>',
             f'<line x1="{pad}" y1="{h - pad}" x2="{w - 8}" y2="{h - pad}" stroke="#999"/>']
    for i, c in enumerate(counts):
        color = COLORS[i % len(COLORS)]
        pts = []
        for j, n in enumerate(c):
            y = h - pad - (h - pad - 24) * n / top
            pts += [f"{pad + j * bw:.1f},{y:.1f}", f"{pad + (j + 1) * bw:.1f},{y:.1f}"]
        parts.append(f'<polyline fill="none" stroke="{color}" stroke-width="2" points="{" ".join(pts)}"/>')
    for j in (0, bins // 2, bins):
        parts.append(f'<text x="{pad + j * bw:.1f}" y="{h - 14}" class="ax">{_fmt(lo + span * j / bins)}{unit}</text>')
    parts.append("</svg>")
    return "".join(parts)


#: The comparison's styles: inline in the report file, served as /static/report.css by
#: ``convostore serve`` (whose pages allow no inline style), so both look the same.
CSS = """
body{font:14px/1.45 system-ui,sans-serif;margin:24px;color:#222}
.comparison table{border-collapse:collapse;width:100%;table-layout:fixed;margin-bottom:12px}
td,th{border:1px solid #ddd;padding:4px 8px;vertical-align:top;text-align:left;overflow-wrap:anywhere}
th{background:#f4f4f4}
.user{color:#555;font-style:italic}
ins{background:#fff3b0;text-decoration:none}
.meta{color:#777;font-size:12px;display:block;margin-top:4px}
.diverged{background:#fde8e8}.failed,.missing{background:#eee}
.chart{margin:8px 16px 8px 0;border:1px solid #eee}.ct{font-size:11px}.ax{font-size:9px;fill:#777}
.legend span{display:inline-block;margin-right:14px}
section.conversation{margin-top:28px;border-top:2px solid #ccc}
#totals td,#conversations td{font-variant-numeric:tabular-nums}
th.narrow{width:3em}th.count{width:4em}
""" + "".join(f".legend .c{i}{{color:{color}}}" for i, color in enumerate(COLORS)) + "\n"


def _html_turns(c: Comparison, conv: ConversationComparison, cols: list[tuple[str, str]]) -> str:
    rows = []
    for t in conv.turns:
        cells = []
        for k, _ in cols:
            a = _get(t, k)
            if a is None:
                cells.append('<td class="missing"></td>')
                continue
            body = html.escape(a.text) if k == ORIGINAL else _word_diff(t.original.text, a.text)
            meta = f"{a.status}"
            if a.similarity is not None:
                meta += f" · similarity {a.similarity:.2f}"
            if a.judge_score is not None:
                meta += f" · judge {a.judge_score:.2f}: {a.judge_reason or ''}"
            meta += f" · {_fmt(a.latency_ms, ' ms')} · {_fmt(a.tokens)} tokens · {usd(a.cost_usd)}"
            cells.append(f'<td class="{html.escape(a.status)}">{body or "<em>(no answer)</em>"}'
                         f'<span class="meta">{html.escape(meta)}</span></td>')
        rows.append(f'<tr class="turn" data-turn="{t.index + 1}"><th>{t.index + 1}</th>'
                    f'<td class="user">{html.escape(t.input_text)}</td>{"".join(cells)}</tr>')
    head = "".join(f"<th>{html.escape(label)}</th>" for _, label in cols)
    return (f'<table class="turns"><thead><tr><th class="narrow">turn</th><th>user</th>{head}</tr></thead>'
            f'<tbody>{"".join(rows)}</tbody></table>')


def _title(c: Comparison) -> str:
    if c.focus is not None and len(c.heads) == 1:
        return f"Comparison of {c.focus.head_id}"
    return f"Comparison of {len(c.heads)} conversations"


def _html(c: Comparison, out: TextIO) -> None:
    """The self-contained report file: the styles inline, then the body ``serve`` shows too."""
    out.write(f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>convostore: {html.escape(_title(c))}</title>
<style>{CSS}</style></head><body>
""")
    write_html_body(c, out)
    out.write("</body></html>\n")


def write_html_body(c: Comparison, out: TextIO) -> None:
    """The comparison as HTML without a document around it (``html_body``), written to ``out``."""
    for chunk in html_body(c):
        out.write(chunk)


def html_body(c: Comparison) -> Iterator[str]:
    """The comparison as HTML without a document around it, conversation by conversation:
    the report file's body and ``convostore serve``'s /runs/ID page, which streams it
    (one renderer). No inline style or script: the styles are ``CSS``, by class."""
    cols = _columns(c)
    scores = c.scores()
    title = _title(c)
    legend = "".join(f'<span class="c{i % len(COLORS)}">■ {html.escape(label)}</span>' for i, (_, label) in enumerate(cols))
    latencies = [(label, scores[k].latencies) for k, label in cols]
    every = [v for _, vs in latencies for v in vs]
    lat_svg = _histogram("latency distribution (ms)", latencies, 0.0, max(every, default=1.0), 24, "")
    sims = [(label, scores[k].similarities) for k, label in cols]
    sim_svg = _histogram("similarity to the original", sims, 0.0, 1.0, 20, "")
    headers, rows = _total_rows(c)
    totals = "".join("<tr>" + "".join(f"<td>{html.escape(v)}</td>" for v in r) + "</tr>" for r in rows)
    prices = f"Prices per 1M tokens as of {html.escape(c.prices.taken)}. " if c.prices.taken else ""
    yield f"""<div class="comparison" data-testid="comparison">
<h1>{html.escape(title)}</h1>
<p>{len(c.heads)} conversation(s); {len(c.runs)} replay run(s){'; judged by ' + html.escape(c.judge.model) if c.judge is not None else ''}. {prices}Words that differ from the original are <ins>highlighted</ins>.</p>
<div class="legend">{legend}</div>
<h2>Totals</h2>
<table id="totals"><thead><tr>{"".join(f"<th>{html.escape(h)}</th>" for h in headers)}</tr></thead><tbody>{totals}</tbody></table>
<div>{lat_svg}{sim_svg}</div>
<h2>Conversations, worst first</h2>
<table id="conversations"><thead><tr><th class="narrow">#</th><th>conversation</th><th class="count">turns</th><th>first message</th>{"".join(f"<th>{html.escape(label)}</th>" for _, label in cols[1:])}</tr></thead><tbody>
"""
    for i, s in enumerate(c.summaries):
        cells = "".join(f"<td>{html.escape(_run_cell(s.runs.get(k)))}</td>" for k, _ in cols[1:])
        yield (f'<tr class="conv"><td>{i + 1}</td><td><a href="#c{i + 1}">{html.escape(s.head_id)}</a></td>'
               f"<td>{s.turns}</td><td>{html.escape(s.title)}</td>{cells}</tr>\n")
    yield "</tbody></table>\n"
    for i, conv in enumerate(c.conversations()):
        yield (f'<section class="conversation" id="c{i + 1}"><h3>{i + 1}. {html.escape(conv.head_id)}'
               f' <small>({html.escape(conv.original_model or "?")})</small></h3>'
               f"{_html_turns(c, conv, cols)}<p><a href=\"#conversations\">back to the list</a></p></section>\n")
    yield "</div>\n"


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
               right: Sequence[int] = (), flex: Sequence[int] | None = None) -> str:
    """Rows under headers in aligned columns that fit ``width`` (the terminal's by default).

    When the natural widths do not fit, the widest of the ``flex`` columns (all, by
    default) gives up characters first, down to 6, then any column down to 4; every
    cut cell ends with ``…``. Columns listed in ``right`` align right.
    """
    width = terminal_width() if width is None else width
    cells = [[cut(str(c), 10_000) for c in r] for r in rows]
    widths = [max([len(h)] + [len(r[i]) for r in cells]) for i, h in enumerate(headers)]
    gap = 2
    for candidates, floor in ((list(flex) if flex is not None else list(range(len(widths))), 6), (list(range(len(widths))), 4)):
        while sum(widths) + gap * (len(widths) - 1) > width:
            i = max(candidates, key=lambda k: widths[k])
            if widths[i] <= floor:
                break
            widths[i] -= 1

    def line(values: Sequence[str]) -> str:
        out = []
        for i, v in enumerate(values):
            v = cut(v, widths[i])
            out.append(v.rjust(widths[i]) if i in right else v.ljust(widths[i]))
        return (" " * gap).join(out).rstrip()

    return "\n".join([line(headers), line(["-" * w for w in widths]), *(line(r) for r in cells)])


def runs_table(runs: Sequence["ReplayRun"], width: int | None = None, costs: dict[str, float | None] | None = None) -> str:
    """Replay runs, one line each: what ran, how it went, what it cost (``costs`` by run id)."""
    if not runs:
        return "no replay runs"
    rows = []
    for run in runs:
        s = run.summary or {}
        v = s.get("verdicts") or {}
        rows.append([
            run.id,
            f"{run.created_at:%m-%d %H:%M}" if run.created_at else "-",
            run.status,
            f"{run.model} ({run.mode})",
            str(s.get("conversations", len(run.heads))),
            str(s.get("turns", "-")),
            str(v.get("ok", 0)),
            str(v.get("diverged", 0)),
            str(v.get("failed", 0)),
            usd((costs or {}).get(run.id)),
        ])
    headers = ["run", "created", "status", "model", "convs", "turns", "ok", "diverged", "failed", "cost"]
    return text_table(headers, rows, width, right=(4, 5, 6, 7, 8, 9), flex=(3, 2))
