"""Tokens and cost per model per day, drawn as inline SVG (no chart library, no script):
stacked bars, one colour per model, as ``report.py`` draws its histograms."""

from __future__ import annotations

import html
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from markupsafe import Markup

from ..prices import PriceTable, usage_cost
from ..report import COLORS, usd


@dataclass
class Daily:
    """The stats page's chart and the table under it."""

    svg: Markup
    days: list[str]
    models: list[str]
    tokens: dict[tuple[str, str], int]  # (day, model) -> tokens
    cost: dict[str, float | None]  # day -> cost (None when a model used that day has no price)


def daily(usage: list[dict[str, Any]], prices: PriceTable, since: datetime, days: int) -> Daily:
    """``Store.usage(by_day=True)`` lines as a stacked bar chart of tokens per day."""
    day_names = [(since + timedelta(days=i)).strftime("%Y-%m-%d") for i in range(days)]
    models = sorted({str(u.get("model") or "-") for u in usage})
    tokens: dict[tuple[str, str], int] = {}
    cost: dict[str, float | None] = {}
    for u in usage:
        day, model = str(u.get("day")), str(u.get("model") or "-")
        tokens[(day, model)] = tokens.get((day, model), 0) + int(u.get("total") or 0)
        c = usage_cost(prices, u)
        prev = cost.get(day, 0.0)
        cost[day] = None if c is None or prev is None else prev + c
    w, h, pad, top_pad = 720, 220, 48, 24
    per_day = [sum(tokens.get((d, m), 0) for m in models) for d in day_names]
    top = max(per_day, default=0) or 1
    bw = (w - pad - 8) / max(1, len(day_names))
    parts = [f'<svg class="chart" data-testid="stats-chart" viewBox="0 0 {w} {h}" width="{w}" height="{h}" role="img" '
             f'aria-label="tokens per model per day">',
             f'<text x="{pad}" y="14" class="ct">tokens per model per day (tallest {top:,})</text>',
             f'<line x1="{pad}" y1="{h - pad}" x2="{w - 8}" y2="{h - pad}" stroke="#999"/>']
    for i, d in enumerate(day_names):
        y = float(h - pad)
        for j, m in enumerate(models):
            n = tokens.get((d, m), 0)
            if not n:
                continue
            bar = (h - pad - top_pad) * n / top
            y -= bar
            parts.append(f'<rect x="{pad + i * bw + 1:.1f}" y="{y:.1f}" width="{max(1.0, bw - 2):.1f}" height="{bar:.1f}" '
                         f'fill="{COLORS[j % len(COLORS)]}"><title>{html.escape(d)} {html.escape(m)}: {n:,} tokens</title></rect>')
    for i in sorted({0, len(day_names) // 2, len(day_names) - 1}):
        parts.append(f'<text x="{pad + i * bw:.1f}" y="{h - pad + 14}" class="ax">{html.escape(day_names[i][5:])}</text>')
    parts.append(f'<text x="4" y="{top_pad + 4}" class="ax">{top:,}</text><text x="4" y="{h - pad}" class="ax">0</text>')
    for j, m in enumerate(models):
        parts.append(f'<rect x="{pad + j * 150}" y="{h - 18}" width="10" height="10" fill="{COLORS[j % len(COLORS)]}"/>'
                     f'<text x="{pad + j * 150 + 14}" y="{h - 9}" class="ax">{html.escape(m)}</text>')
    parts.append("</svg>")
    return Daily(Markup("".join(parts)), day_names, models, tokens, cost)


__all__ = ["Daily", "daily", "usd"]
