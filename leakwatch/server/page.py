"""The HTML page at the server's root: the current suspects, a small chart of each one's growth,
and a link to its referrer graph. Rendered on the server from the latest `Report`, with no
script and no outside resource; every piece of text from the heap is HTML-escaped."""

from __future__ import annotations

import html
import os
import time
from collections.abc import Sequence

from leakwatch.config import Config
from leakwatch.detector import RSS_TREND
from leakwatch.exporters.prometheus import memory_limit_eta
from leakwatch.model import Report, Suspect, human

CHART_WIDTH = 220
CHART_HEIGHT = 48
AXIS_WIDTH = 48  # left of the line: the value labels
AXIS_HEIGHT = 11  # under it: the time span
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
svg.chart text{font-size:9px;fill:#64748b}
svg.chart line.axis{stroke:#cbd5e1}
svg.chart line.limit{stroke:#0f172a;stroke-dasharray:3 2}
h2{font-size:1.1em;margin:1.5em 0 .3em}
p.none{color:#15803d}
"""


def render_page(report: Report, config: Config, pid: int | None = None, own_memory: bool = True) -> str:
    """The whole page, as text; `own_memory` False leaves out the process memory section (a
    pre-fork master's page merges its workers' reports, whose memory is each their own)."""
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
        f"{body}\n{memory_section(report) if own_memory else ''}</body></html>\n"
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
        f'<td class="num">{html.escape(human(s.current, s.unit))}{_since_baseline(s, report)}</td>',
        _holds(s),
        f'<td class="num">+{html.escape(human(s.growth_per_second * 60, s.unit))}/min</td>',
        f'<td class="num">{s.confidence:.3f}</td>',
        html.escape(since),
        chart(report.trends.get(s.id, ()), s.unit),
        link,
    ]
    tds = "".join(c if c.startswith("<td") else f"<td>{c}</td>" for c in cells)
    return f'<tr data-id="{html.escape(s.id)}">{tds}</tr>'


def _since_baseline(s: Suspect, report: Report) -> str:
    """A type suspect's growth since the start-up baseline (the baseline_file option)."""
    if s.kind != "type" or s.key not in report.baseline:
        return ""
    when = time.strftime("%H:%M:%S", time.localtime(report.baseline_at))
    grown = s.current - report.baseline[s.key]
    sign = "+" if grown >= 0 else "-"
    return f'<br><small class="baseline">{sign}{html.escape(human(abs(grown), s.unit))} since the baseline at {when}</small>'


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


def chart(points: Sequence[tuple[float, float]], unit: str = "objects", limit: float = 0.0) -> str:
    """A small inline SVG line of the points with its axes: the highest and lowest values (in
    `unit`) on the left, the time it spans below; `limit`, when given, as a dashed line the
    scale reaches up to. Empty with fewer than two points."""
    if len(points) < 2:
        return ""
    t0, t1 = points[0][0], points[-1][0]
    lo = min(v for _, v in points)
    hi = max([v for _, v in points] + ([limit] if limit > 0 else []))
    span_t = (t1 - t0) or 1.0
    span_v = (hi - lo) or 1.0
    left, width, height = AXIS_WIDTH, CHART_WIDTH - AXIS_WIDTH - 2, CHART_HEIGHT - AXIS_HEIGHT

    def y(v: float) -> float:
        return height - 1 - (v - lo) / span_v * (height - 2)

    coords = " ".join(f"{left + (t - t0) / span_t * width + 1:.1f},{y(v):.1f}" for t, v in points)
    labels = (
        f'<text x="{left - 3}" y="9" text-anchor="end">{html.escape(_short(hi, unit))}</text>'
        f'<text x="{left - 3}" y="{height - 1}" text-anchor="end">{html.escape(_short(lo, unit))}</text>'
        f'<text x="{CHART_WIDTH - 2}" y="{CHART_HEIGHT - 2}" text-anchor="end">'
        f"{html.escape(unit)}, last {html.escape(_span(span_t))}</text>"
        f'<line class="axis" x1="{left}" y1="0" x2="{left}" y2="{height}"/>'
        f'<line class="axis" x1="{left}" y1="{height}" x2="{CHART_WIDTH}" y2="{height}"/>'
    )
    if limit > 0:
        labels += f'<line class="limit" x1="{left}" y1="{y(limit):.1f}" x2="{CHART_WIDTH}" y2="{y(limit):.1f}"/>'
    return (
        f'<svg class="chart" width="{CHART_WIDTH}" height="{CHART_HEIGHT}" viewBox="0 0 {CHART_WIDTH} {CHART_HEIGHT}" '
        f'role="img" aria-label="{html.escape(unit)} over time">{labels}<polyline points="{coords}"/></svg>'
    )


def _short(value: float, unit: str) -> str:
    """A value for an axis label: 12.3k objects, 45.6 MiB."""
    if unit == "bytes":
        return human(value, "bytes")
    for suffix, size in (("M", 1e6), ("k", 1e3)):
        if abs(value) >= size:
            return f"{value / size:.1f}{suffix}"
    return f"{value:.0f}"


def _span(seconds: float) -> str:
    if seconds >= 5400:
        return f"{seconds / 3600:.1f} h"
    return f"{seconds / 60:.0f} min" if seconds >= 90 else f"{seconds:.0f} s"


def memory_section(report: Report) -> str:
    """The process's RSS: now, its limit, when it reaches the limit at its growth, and a chart."""
    rss = report.process.get("rss")
    if rss is None:
        return ""
    said = [f"RSS {human(rss, 'bytes')}"]
    if report.memory_limit > 0:
        said.append(f"limit {human(report.memory_limit, 'bytes')} ({100 * rss / report.memory_limit:.0f}% used)")
        eta = memory_limit_eta([report])
        said.append(f"reaches it in about {_span(eta)} at its growth over the last window" if eta else "not growing toward it")
    drawn = chart(report.trends.get(RSS_TREND, ()), "bytes", report.memory_limit)
    return f'<h2>Process memory</h2>\n<p id="rss">{html.escape("; ".join(said))}.</p>\n{drawn}\n'
