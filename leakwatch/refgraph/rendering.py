"""A graph as JSON, DOT or SVG (`render`); SVG through Graphviz's `dot`."""

from __future__ import annotations

import json
import shutil
import subprocess
from typing import Any

from leakwatch.errors import LeakwatchError, MissingTool
from leakwatch.refgraph.model import FROZEN_NOTE, Graph

DOT_ROOT_COLOURS = {"module": "#dbeafe", "class": "#e0e7ff", "thread": "#fef3c7", "task": "#fef3c7", "outside": "#fee2e2"}


def to_dot(graph: Graph) -> str:
    """Graphviz DOT: one chain of boxes per path signature, edges labelled, the accumulation
    point outlined in red. Labels hold only type names, sizes and edge names (already redacted)."""
    lines = [
        "digraph leakwatch {",
        "  rankdir=LR;",
        '  node [shape=box, style="rounded,filled", fillcolor="#f8fafc", fontname="Helvetica", fontsize=10];',
        '  edge [fontname="Helvetica", fontsize=9];',
        f"  label={_dot_label(f'{graph.target}: {graph.instances} live, {graph.sampled} sampled')}; labelloc=t;",
    ]
    for p_index, path in enumerate(graph.paths):
        prefix = f"p{p_index}_"
        for s_index, step in enumerate(path.steps):
            text = [step.type] + ([f"len {step.size}"] if step.size is not None else [])
            attrs = []
            if s_index == 0:
                text.insert(0, f"{path.root}: {path.root_name}" if path.root_name else path.root)
                if path.frozen:
                    text.append(FROZEN_NOTE.strip("()").split(":")[0])
                attrs.append(f'fillcolor="{DOT_ROOT_COLOURS.get(path.root, "#f8fafc")}"')
            if s_index == path.accumulation:
                attrs.append('color="#dc2626", penwidth=2')
            if s_index == len(path.steps) - 1:
                text.append(f"x{path.count}, signature {path.signature}")
            lines.append(f"  {prefix}{s_index} [label={_dot_label(*text)}{''.join(', ' + a for a in attrs)}];")
        for e_index, edge in enumerate(path.edges):
            lines.append(f"  {prefix}{e_index} -> {prefix}{e_index + 1} [label={_dot_label(edge)}];")
    lines.append("}")
    return "\n".join(lines) + "\n"


def _dot_label(*lines: str) -> str:
    """A quoted DOT string: each line escaped, joined by DOT's line break."""
    escaped = (line.replace("\\", "\\\\").replace('"', '\\"') for line in lines)
    return '"' + "\\n".join(escaped) + '"'


FORMATS = ("json", "dot", "svg")
SVG_TIMEOUT_SECONDS = 30.0


def check_format(format: str) -> None:  # noqa: A002 - the public word
    """Raise `LeakwatchError` unless `format` is one `render` draws."""
    if format not in FORMATS:
        raise LeakwatchError(f"format {format!r}: allowed: {', '.join(FORMATS)}")


def render(graph: Graph, format: str) -> dict[str, Any] | str | bytes:  # noqa: A002 - the public word
    """The graph as a JSON-ready dict ("json"), DOT text ("dot") or SVG bytes ("svg")."""
    check_format(format)
    if format == "json":
        return graph.to_dict()
    if format == "dot":
        return to_dot(graph)
    return to_svg(to_dot(graph))


def to_svg(dot_text: str, timeout: float = SVG_TIMEOUT_SECONDS) -> bytes:
    """SVG from Graphviz's `dot`; `MissingTool` (naming the Debian package) when it is not installed."""
    program = shutil.which("dot")
    if program is None:
        raise MissingTool("dot", "graphviz", "to draw SVG graphs (format='dot' needs nothing)")
    result = subprocess.run([program, "-Tsvg"], input=dot_text.encode(), capture_output=True, timeout=timeout, check=False)
    if result.returncode != 0:
        raise LeakwatchError(f"dot failed: {result.stderr.decode(errors='replace')[:500]}")
    return result.stdout


def as_bytes(rendered: Any) -> bytes:
    """A rendered graph as the bytes an HTTP answer or a file carries: JSON text for a dict."""
    if isinstance(rendered, dict):
        return json.dumps(rendered, indent=2).encode() + b"\n"
    if isinstance(rendered, str):
        return rendered.encode()
    return bytes(rendered)
