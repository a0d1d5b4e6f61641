"""The HTML page at the server's root: the current suspects, a small chart of each one's growth,
and a link to its referrer graph. Rendered on the server from the latest `Report`, with no
script and no outside resource; every piece of text from the heap is HTML-escaped."""

from __future__ import annotations

import html
import os
import time
from collections.abc import Sequence

from leakwatch.config import Config
from leakwatch.model import Report, Suspect, human

CHART_WIDTH = 160
CHART_HEIGHT = 36
REFRESH_SECONDS = 10

STYLE = """
body{font:14px/1.4 system-ui,sans-serif;margin:1.5em;color:#0f172a}
h1{font-size:1.3em;margin:0 0 .2em}
p.meta{color:#475569;margin:0 0 1em}
table{border-collapse:collapse;width:100%}
th,td{text-align:left;padding:.35em .6em;border-bottom:1px solid #e2e8f0;vertical-align:middle}
th{background:#f8fafc;font-weight:600}
td.key{font-family:ui-monospace,monospace;word-break:break-all}
td.num{text-align:right;white-space:nowrap}
svg.chart polyline{fill:none;stroke:#dc2626;stroke-width:1.5}
p.none{color:#15803d}
"""


def render_page(report: Report, config: Config, pid: int | None = None) -> str:
    """The whole page, as text."""
    pid = os.getpid() if pid is None else pid
    rows = "\n".join(_row(s, report, config) for s in report.suspects)
    if report.suspects:
        body = (
            '<table id="suspects"><thead><tr><th>kind</th><th>what</th><th>now</th><th>holds</th><th>growth</th>'
            "<th>confidence</th><th>growing since</th><th>history</th><th>held by</th></tr></thead>\n"
            f"<tbody>\n{rows}\n</tbody></table>"
        )
    else:
        said = report.summary()
        body = f'<p class="none" id="no-suspects">{html.escape(said[0].upper() + said[1:])}.</p>'
    when = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(report.time)) if report.time else "not yet"
    candidates = len(report.candidates)
    return (
        "<!DOCTYPE html>\n"
        '<html lang="en"><head><meta charset="utf-8">'
        f'<meta http-equiv="refresh" content="{REFRESH_SECONDS}">'
        f"<title>leakwatch: {len(report.suspects)} suspected (pid {pid})</title>"
        f"<style>{STYLE}</style></head><body>\n"
        f"<h1>leakwatch, process {pid}</h1>\n"
        f'<p class="meta">{report.samples} samples, the latest at {html.escape(when)}; '
        f"{candidates} growing but not yet confirmed; tracing {html.escape(report.tracing)}. "
        '<a href="metrics">metrics</a> · <a href="api/suspects">report as JSON</a></p>\n'
        f"{body}\n</body></html>\n"
    )


GRAPH_KINDS = ("type", "site")  # what a graph can follow; process memory no object holds


def _row(s: Suspect, report: Report, config: Config) -> str:
    since = time.strftime("%H:%M:%S", time.localtime(s.since)) if s.since else ""
    if s.kind in GRAPH_KINDS and config.graphs:
        link = f'<a class="graph" href="api/graph?suspect={html.escape(s.id)}&amp;format=svg">graph</a>'
    elif s.kind in GRAPH_KINDS:
        link = '<span title="start leakwatch with graphs=true">graphs off</span>'
    else:
        link = ""
    cells = [
        html.escape(s.kind),
        f'<td class="key" title="id {html.escape(s.id)}">{html.escape(s.key)}{_detail(s)}</td>',
        f'<td class="num">{html.escape(human(s.current, s.unit))}</td>',
        _holds(s),
        f'<td class="num">+{html.escape(human(s.growth_per_second * 60, s.unit))}/min</td>',
        f'<td class="num">{s.confidence:.3f}</td>',
        html.escape(since),
        chart(report.trends.get(s.id, ())),
        link,
    ]
    tds = "".join(c if c.startswith("<td") else f"<td>{c}</td>" for c in cells)
    return f'<tr data-id="{html.escape(s.id)}">{tds}</tr>'


def _holds(s: Suspect) -> str:
    """The memory the suspect's objects hold, with its 95% bound, once measured."""
    r = s.retained
    if r is None:
        text = "not measured yet" if s.kind in GRAPH_KINDS else ""
        return f'<td class="num retained">{text}</td>'
    title = f"deep size of {r.samples} sampled objects, scaled to all; measured in {r.seconds:.2f} s"
    shown = f"{human(r.bytes, 'bytes')} ± {human(r.error_bytes, 'bytes')}"
    return f'<td class="num retained" title="{html.escape(title)}">{html.escape(shown)}</td>'


def _detail(s: Suspect) -> str:
    """Under the suspect's key: where its objects are allocated and, when that is in a
    library, the application's line that called it; and its detail (which worker, whether its
    tasks are stranded)."""
    lines = []
    if s.sites:
        lines.append("allocated at " + ", ".join(s.sites))
    if s.user_line:
        lines.append(f"called from {s.user_line}")
    if s.detail:
        lines.append(s.detail)
    return "".join(f'<br><small class="detail">{html.escape(line)}</small>' for line in lines)


def chart(points: Sequence[tuple[float, float]]) -> str:
    """A small inline SVG line of the points, scaled to fit; empty with fewer than two."""
    if len(points) < 2:
        return ""
    t0, t1 = points[0][0], points[-1][0]
    lo = min(v for _, v in points)
    hi = max(v for _, v in points)
    span_t = (t1 - t0) or 1.0
    span_v = (hi - lo) or 1.0
    coords = " ".join(
        f"{(t - t0) / span_t * (CHART_WIDTH - 2) + 1:.1f},{CHART_HEIGHT - 1 - (v - lo) / span_v * (CHART_HEIGHT - 2):.1f}"
        for t, v in points
    )
    return (
        f'<svg class="chart" width="{CHART_WIDTH}" height="{CHART_HEIGHT}" viewBox="0 0 {CHART_WIDTH} {CHART_HEIGHT}" '
        f'role="img" aria-label="growth over time"><polyline points="{coords}"/></svg>'
    )
