"""The inventory as one self-contained HTML page: an inline SVG bar chart, no script, no external file.

Per feature two bars on one scale: monthly spend today, and after migration (batch + cache for
a batch candidate; unchanged for the rest), then the same for the total.
"""

from __future__ import annotations

import re
from decimal import Decimal
from html import escape

from nightshift.inventory.classify import Verdict
from nightshift.inventory.inventory import Inventory
from nightshift.inventory.render import money, percent, summary_lines, thresholds_line

WIDTH = 980
LABEL_WIDTH = 290
VALUE_WIDTH = 190
BAR_HEIGHT = 16
BAR_GAP = 4
GROUP_GAP = 18
TOP = 54
COLOURS = {"today": "#8d99a6", "after": "#2f8f5b", "unchanged": "#c4ccd4"}
VERDICT_COLOURS = {Verdict.BATCH: "#2f8f5b", Verdict.GRAY: "#b7860b", Verdict.LIVE: "#2a6f97"}


def render_chart(inv: Inventory) -> str:
    return PAGE.format(title="Nightshift batch migration inventory",
                       summary="".join(f"<p class=meta>{escape(line)}</p>" for line in summary_lines(inv)),
                       svg=svg_chart(inv), table=_table(inv), rules=escape(thresholds_line(inv)))


def svg_chart(inv: Inventory) -> str:
    totals = inv.totals
    priced = [f for f in inv.features if f.projection.priced]
    scale_max = max([totals.today_monthly, *(f.projection.today_monthly for f in priced)] or [Decimal(1)])
    scale_max = scale_max or Decimal(1)
    bar_area = WIDTH - LABEL_WIDTH - VALUE_WIDTH
    group_height = 2 * BAR_HEIGHT + BAR_GAP + GROUP_GAP

    def length(amount: Decimal) -> float:
        return round(float(amount / scale_max) * bar_area, 1)

    parts: list[str] = [
        f'<text x="{LABEL_WIDTH}" y="20" class="legend"><tspan fill="{COLOURS["today"]}">■</tspan> today '
        f'<tspan fill="{COLOURS["after"]}" dx="14">■</tspan> after migration (batch + cache) '
        f'<tspan fill="{COLOURS["unchanged"]}" dx="14">■</tspan> stays as it is (not a batch candidate)</text>',
        "",  # the axis, once the bottom is known
    ]
    y = TOP
    for f in inv.features:
        name = escape(f.feature)
        verdict = f.verdict
        parts.append(f'<text x="{LABEL_WIDTH - 10}" y="{y + BAR_HEIGHT - 3}" class="label">{name}</text>')
        parts.append(f'<text x="{LABEL_WIDTH - 10}" y="{y + 2 * BAR_HEIGHT + BAR_GAP - 3}" class="verdict" '
                     f'fill="{VERDICT_COLOURS[verdict]}">{escape(verdict.value)} · {f.requests:,} requests</text>')
        p = f.projection
        if not p.priced:
            models = ", ".join(repr(m) for m in p.unknown_models)
            parts.append(f'<text x="{LABEL_WIDTH + 8}" y="{y + BAR_HEIGHT + 2}" class="unpriced" '
                         f'data-feature="{name}">{escape(f"unpriced: model {models} is not in the price table")}'
                         f'</text>')
            y += group_height
            continue
        after = f.after_migration_monthly
        after_kind = "after" if verdict is Verdict.BATCH else "unchanged"
        parts.append(_bar("today", name, y, length(p.today_monthly), COLOURS["today"],
                          f"{f.feature}: today {money(p.today_monthly)} a month"))
        parts.append(_value(y, length(p.today_monthly), money(p.today_monthly)))
        y2 = y + BAR_HEIGHT + BAR_GAP
        note = (f"{money(after)} ({percent(p.saving_share)} less)" if verdict is Verdict.BATCH
                else f"{money(after)} (stays {verdict.value})")
        parts.append(_bar(f"after {after_kind}", name, y2, length(after), COLOURS[after_kind],
                          f"{f.feature}: after migration {note} a month"))
        parts.append(_value(y2, length(after), note))
        y += group_height

    y += 4
    parts.append(f'<line x1="10" y1="{y - GROUP_GAP / 2}" x2="{WIDTH - 10}" y2="{y - GROUP_GAP / 2}" class="rule"/>')
    parts.append(f'<text x="{LABEL_WIDTH - 10}" y="{y + BAR_HEIGHT - 3}" class="label total">total</text>')
    if totals.unpriced_features:
        parts.append(f'<text x="{LABEL_WIDTH - 10}" y="{y + 2 * BAR_HEIGHT + BAR_GAP - 3}" class="verdict">'
                     f'without {len(totals.unpriced_features)} unpriced</text>')
    parts.append(_bar("today total", "total", y, length(totals.today_monthly), COLOURS["today"],
                      f"total today {money(totals.today_monthly)} a month"))
    parts.append(_value(y, length(totals.today_monthly), money(totals.today_monthly)))
    y2 = y + BAR_HEIGHT + BAR_GAP
    total_note = f"{money(totals.after_migration_monthly)} ({percent(totals.saving_share)} less)"
    parts.append(_bar("after total", "total", y2, length(totals.after_migration_monthly), COLOURS["after"],
                      f"total after migration {total_note} a month"))
    parts.append(_value(y2, length(totals.after_migration_monthly), total_note))
    bottom = y + group_height
    parts[1] = f'<line x1="{LABEL_WIDTH}" y1="{TOP - 12}" x2="{LABEL_WIDTH}" y2="{bottom - GROUP_GAP}" class="axis"/>'
    body = "\n".join(parts)
    return (f'<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{bottom + 6}" '
            f'viewBox="0 0 {WIDTH} {bottom + 6}" role="img" aria-labelledby="chart-title">\n'
            f'<title id="chart-title">Monthly spend per feature, today and after migrating the batch candidates'
            f'</title>\n{body}\n</svg>')


def _bar(kind: str, feature: str, y: float, width: float, colour: str, title: str) -> str:
    return (f'<rect class="bar {kind}" data-feature="{feature}" x="{LABEL_WIDTH}" y="{y}" '
            f'width="{max(width, 1.0)}" height="{BAR_HEIGHT}" fill="{colour}"><title>{escape(title)}</title></rect>')


def _value(y: float, width: float, text: str) -> str:
    return f'<text x="{LABEL_WIDTH + max(width, 1.0) + 6}" y="{y + BAR_HEIGHT - 3}" class="value">{escape(text)}</text>'


def _code(text: str) -> str:
    """Escaped, with `backquoted` names set as code."""
    return re.sub(r"`([^`<>]+)`", r"<code>\1</code>", escape(text))


def _table(inv: Inventory) -> str:
    rows = []
    for f in inv.features:
        p = f.projection
        cells = ([money(p.today_monthly), money(p.batch_alone_monthly), money(p.batch_cache_monthly),
                  percent(p.saving_share)] if p.priced else ["unpriced", "—", "—", "—"])
        rows.append(f"<tr><td>{escape(f.feature)}</td><td class=n>{f.requests:,}</td><td>{escape(f.verdict.value)}</td>"
                    + "".join(f"<td class=n>{escape(c)}</td>" for c in cells)
                    + f"<td>{_code(f.classification.explanation)}"
                    + "".join(f"<br><small>{escape(n)}</small>" for n in
                              ([p.unpriced_reason] if p.unpriced_reason else []) + p.caching_notes)
                    + "</td></tr>")
    t = inv.totals
    rows.append(f"<tr class=total><td>total</td><td class=n>{inv.requests:,}</td><td>after migrating the batch "
                f"candidates</td><td class=n>{money(t.today_monthly)}</td><td class=n>{money(t.batch_alone_monthly)}"
                f"</td><td class=n>{money(t.after_migration_monthly)}</td><td class=n>{percent(t.saving_share)}</td>"
                f"<td>{escape('leaves out unpriced: ' + ', '.join(t.unpriced_features)) if t.unpriced_features else ''}"
                f"</td></tr>")
    return ("<table><thead><tr><th>feature</th><th>requests</th><th>verdict</th><th>today /mo</th>"
            "<th>batch alone /mo</th><th>batch + cache /mo</th><th>saving</th><th>why</th></tr></thead><tbody>"
            + "\n".join(rows) + "</tbody></table>")


PAGE = """<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>{title}</title>
<style>
body {{ font-family: system-ui, -apple-system, "Segoe UI", sans-serif; margin: 24px; color: #1d2733; }}
h1 {{ font-size: 20px; margin: 0 0 6px; }}
p.meta {{ margin: 2px 0; color: #5a6672; font-size: 13px; }}
svg {{ display: block; margin: 16px 0; }}
svg text {{ font-size: 13px; fill: #1d2733; }}
svg text.label {{ text-anchor: end; font-weight: 600; }}
svg text.total {{ font-size: 14px; }}
svg text.verdict {{ text-anchor: end; font-size: 11px; }}
svg text.value {{ font-size: 12px; fill: #3c4752; }}
svg text.unpriced {{ fill: #b3261e; font-size: 12px; }}
svg .axis {{ stroke: #5a6672; }}
svg .rule {{ stroke: #c4ccd4; }}
table {{ border-collapse: collapse; font-size: 13px; margin-top: 8px; }}
th, td {{ border-bottom: 1px solid #e1e5ea; padding: 5px 8px; text-align: left; vertical-align: top; }}
td.n {{ text-align: right; white-space: nowrap; }}
tr.total td {{ font-weight: 600; border-top: 2px solid #8d99a6; }}
small {{ color: #5a6672; }}
code {{ font-size: 12px; background: #eef1f4; padding: 0 3px; border-radius: 3px; }}
</style>
</head>
<body>
<h1>{title}</h1>
{summary}
{svg}
{table}
<p class=meta>{rules}</p>
</body>
</html>
"""
