"""Inline SVG charts, rendered on the server: no JavaScript, no chart library, no build step.

One chart per workload over the series window: a bar per night for what the batch path paid,
a point (joined by a line) for what the same tokens would have cost streaming without cache,
and the gap between them shaded as the saving. Every bar carries a ``<title>`` (the
browser's own tooltip) with the night's figures.
"""

from __future__ import annotations

import math
from datetime import date
from decimal import Decimal
from typing import Any

from markupsafe import Markup, escape

WIDTH, HEIGHT = 720, 220
LEFT, RIGHT, TOP, BOTTOM = 64, 12, 14, 30


def money(value: Any) -> str:
    """$ with as many decimals as small amounts need ("—" for no value)."""
    if value is None:
        return "—"
    v = float(value)
    a = abs(v)
    text = f"{a:,.0f}" if a >= 1000 else f"{a:,.2f}" if a >= 1 else f"{a:.4f}"
    return ("-$" if v < 0 else "$") + text


def axis_money(value: float) -> str:
    """An axis label: $ with no trailing zeros ($0.25, $0.025, $1.5)."""
    text = f"{value:,.6f}".rstrip("0").rstrip(".") if value < 1000 else f"{value:,.0f}"
    return "$" + text


def _nice_ceiling(value: float) -> float:
    """The smallest 1, 2, 2.5 or 5 × 10^n not below ``value`` (a readable axis top)."""
    if value <= 0:
        return 1.0
    base = 10 ** math.floor(math.log10(value))
    return next(step * base for step in (1, 2, 2.5, 5, 10) if step * base >= value * (1 - 1e-9))


def cost_chart(workload: str, nights: list[date], points: list[dict]) -> Markup:
    """The SVG for one workload; ``points`` are :func:`nightshift.ledger.dashboard.cost_series` rows."""
    by_night = {p["night"]: p for p in points}
    plot_w, plot_h = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM
    slot = plot_w / max(len(nights), 1)
    bar_w = max(slot * 0.62, 1.0)
    top = _nice_ceiling(max([_f(p["cost_usd"]) for p in points] + [_f(p["streaming_uncached_usd"]) for p in points]
                            + [0.0]) * 1.05)

    def y(value: float) -> float:
        return TOP + plot_h - plot_h * value / top

    parts = [
        (f'<svg class="chart" viewBox="0 0 {WIDTH} {HEIGHT}" width="100%" role="img" '
         f'xmlns="http://www.w3.org/2000/svg" aria-label="{escape(_aria(workload, nights, points))}">'),
    ]
    for fraction in (0, 0.5, 1):
        value = top * fraction
        parts.append(f'<line class="grid" x1="{LEFT}" x2="{WIDTH - RIGHT}" y1="{y(value):.1f}" y2="{y(value):.1f}"/>')
        parts.append(f'<text class="axis" x="{LEFT - 6}" y="{y(value) + 4:.1f}" text-anchor="end">'
                     f'{escape(axis_money(value))}</text>')
    line: list[tuple[float, float, str]] = []
    for index, night in enumerate(nights):
        x = LEFT + index * slot + (slot - bar_w) / 2
        cx = x + bar_w / 2
        if index % 7 == (len(nights) - 1) % 7:
            parts.append(f'<text class="axis" x="{cx:.1f}" y="{HEIGHT - 10}" text-anchor="middle">'
                         f'{escape(night.strftime("%b %d"))}</text>')
        point = by_night.get(night)
        if point is None:
            continue
        cost, streaming = _f(point["cost_usd"]), _f(point["streaming_uncached_usd"])
        title = escape(_title(night, point))
        parts.append(f'<g class="night" data-night="{night.isoformat()}"><title>{title}</title>')
        parts.append(f'<rect class="cost" x="{x:.1f}" y="{y(cost):.1f}" width="{bar_w:.1f}" '
                     f'height="{max(y(0) - y(cost), 0.5):.1f}"/>')
        if streaming > cost:
            parts.append(f'<rect class="saved" x="{x:.1f}" y="{y(streaming):.1f}" width="{bar_w:.1f}" '
                         f'height="{y(cost) - y(streaming):.1f}"/>')
        parts.append("</g>")
        line.append((cx, y(streaming), title))
    if len(line) > 1:
        parts.append(f'<polyline class="streaming-line" points="{" ".join(f"{a:.1f},{b:.1f}" for a, b, _ in line)}"/>')
    for cx, cy, title in line:
        parts.append(f'<circle class="streaming" cx="{cx:.1f}" cy="{cy:.1f}" r="3"><title>{title}</title></circle>')
    parts.append(f'<line class="baseline" x1="{LEFT}" x2="{WIDTH - RIGHT}" y1="{y(0):.1f}" y2="{y(0):.1f}"/>')
    parts.append("</svg>")
    return Markup("".join(parts))


def _f(value: Decimal | float | None) -> float:
    return float(value) if value is not None else 0.0


def _title(night: date, p: dict) -> str:
    pct = "" if p["savings_pct"] is None else f" ({float(p['savings_pct']):.1f}%)"
    runs = f", {p['runs']} runs" if p["runs"] != 1 else ""
    return (f"{night.isoformat()}{runs}: batch {money(p['cost_usd'])} · streaming {money(p['streaming_uncached_usd'])}"
            f" (with cache {money(p['streaming_cached_usd'])}) · saved {money(p['savings_usd'])}{pct}")


def _aria(workload: str, nights: list[date], points: list[dict]) -> str:
    if not points:
        return f"{workload}: no priced night between {nights[0]} and {nights[-1]}" if nights else workload
    paid = sum(_f(p["cost_usd"]) for p in points)
    streaming = sum(_f(p["streaming_uncached_usd"]) for p in points)
    return (f"{workload}: {len(points)} nights with cost between {nights[0]} and {nights[-1]}; "
            f"batch {money(paid)} against streaming {money(streaming)}")
