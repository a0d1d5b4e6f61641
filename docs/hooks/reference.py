"""MkDocs hook: the reference pages' tables, generated from the code at every build.

A page holds a marker line such as ``<!-- reference: options -->``; `on_page_markdown` puts
in its place what ``SECTIONS[name]()`` renders from `leakwatch.config.OPTIONS`,
`leakwatch.exporters.prometheus.METRICS` (and its bounds) or `leakwatch.cli.build_parser()`.
So no table of options, metrics or commands is kept by hand: a new option shows on the next
build, and tests/unit/test_docs.py fails when one lacks its help.

The renderers import nothing from MkDocs, so a test can call them directly. They use only
the package's public names.
"""

from __future__ import annotations

import argparse
import functools
import html
import os
import re
import sys
from collections.abc import Callable
from typing import Any

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
DOCS = os.path.join(ROOT, "docs")
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)  # document the checkout beside these docs, whatever else is installed

from leakwatch.cli import build_parser  # noqa: E402
from leakwatch.config import OPTIONS, Config  # noqa: E402
from leakwatch.exporters.prometheus import (  # noqa: E402
    MAX_LABEL_LENGTH,
    METRICS,
    exposed_bytes_bound,
    exposed_series_bound,
)

MARKER = re.compile(r"^<!-- reference: ([\w-]+) -->[ \t]*$", re.M)
# argparse's help at 80 columns, as `COLUMNS=80 leakwatch --help` prints it.
HELP_WIDTH = 78
# Characters Markdown would read as markup in running text.
_MARKUP = re.compile(r"([\\`*_{}\[\]])")


def text(value: str) -> str:
    """Plain text as Markdown that renders it unchanged: HTML escaped, markup characters escaped."""
    return _MARKUP.sub(r"\\\1", html.escape(value, quote=False))


def cell(value: str) -> str:
    """Plain text for a table cell."""
    return text(value).replace("|", "\\|")


# --- options -------------------------------------------------------------------------------------


def default_shown(opt: Any) -> str:
    """An option's default in words: units, and the intervals a time option follows."""
    value = opt.default
    if value is None:
        return "unset"
    if opt.kind == "bool":
        return str(value).lower()
    if opt.kind == "bytes":
        for name, size in (("GiB", 1024**3), ("MiB", 1024**2), ("KiB", 1024)):
            if value and value % size == 0:
                return f"{value // size} {name}"
        return f"{value} bytes" if value else "0"
    if opt.intervals is not None:
        return f"{opt.intervals:g} intervals ({value:g} s)"
    if opt.kind == "seconds":
        return f"{value:g} s"
    if opt.kind == "str":
        return f'"{value}"'
    return str(value)


def options_markdown() -> str:
    """A table of every option (name, environment variable, default), then a section each with its help."""
    lines = ["| option | environment | default |", "|---|---|---|"]
    for opt in OPTIONS:
        lines.append(f"| [`{opt.name}`](#{opt.name}) | `{opt.env}` | {cell(default_shown(opt))} |")
    for opt in OPTIONS:
        lines += [
            "",
            f"## `{opt.name}`",
            "",
            text(opt.help),
            "",
            f"- environment: `{opt.env}`",
            f"- default: {text(default_shown(opt))}",
            f"- allowed: {text(opt.allowed())}",
        ]
    return "\n".join(lines) + "\n"


# --- metrics -------------------------------------------------------------------------------------


def metrics_markdown() -> str:
    """A table of every metric the collector can produce: name, type, labels, help."""
    lines = ["| metric | type | labels | meaning |", "|---|---|---|---|"]
    for m in METRICS:
        labels = ", ".join(f"`{label}`" for label in m.labels) or "-"
        lines.append(f"| `{m.name}` | {m.type} | {labels} | {cell(m.help)} |")
    return "\n".join(lines) + "\n"


def metric_bounds_markdown() -> str:
    """The cardinality bounds, with the figures the code keeps at the default options."""
    config = Config()
    return (
        "Cardinality is bounded whatever the heap holds: at most `max_suspect_series` suspects get "
        "labelled series (kinds take turns, fastest-growing first within a kind; the rest are counted "
        "in `leakwatch_suspects_omitted`), at most `top_k` types and `top_k` sites appear in the census "
        f"metrics, and a `key`, `type` or `site` label longer than {MAX_LABEL_LENGTH} characters is cut: "
        f"a type keeps its last {MAX_LABEL_LENGTH - 3} characters after `...` (the class survives), a site "
        "keeps its allocating frame (the file and line) and drops its callers. Keys that cut to the same "
        "label are added up into one series. Label values are type names, source locations, kinds and "
        "ids, never object reprs.\n\n"
        f"With the default options one scrape holds at most {exposed_series_bound(config)} leakwatch series "
        f"and {exposed_bytes_bound(config):,} bytes of leakwatch's own lines (`exposed_series_bound` and "
        "`exposed_bytes_bound` in `leakwatch.exporters.prometheus`); "
        "`tests/integration/test_cardinality.py` holds them to that under 10,000 growing types and "
        "10,000 growing sites.\n"
    )


# --- command line --------------------------------------------------------------------------------


def subcommands(parser: argparse.ArgumentParser) -> dict[str, tuple[str, argparse.ArgumentParser]]:
    """Each subcommand's name: (its one-line help, its parser). argparse has no public way to
    list them, so this reads its subparsers action."""
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            helps = {a.dest: a.help or "" for a in action._choices_actions}
            return {name: (helps.get(name, ""), sub) for name, sub in action.choices.items()}
    return {}


def help_text(parser: argparse.ArgumentParser) -> str:
    """The parser's --help, at `HELP_WIDTH` columns whatever the terminal."""
    parser.formatter_class = functools.partial(parser.formatter_class, width=HELP_WIDTH)
    return parser.format_help().rstrip()


def cli_markdown() -> str:
    """`leakwatch --help`, then a section per subcommand with its one-line help and its --help."""
    parser = build_parser()
    lines = ["```text", "$ leakwatch --help", help_text(parser), "```"]
    for name, (summary, sub) in subcommands(parser).items():
        lines += ["", f"## `leakwatch {name}`", "", text(summary[:1].upper() + summary[1:]) + ".", ""]
        lines += ["```text", f"$ leakwatch {name} --help", help_text(sub), "```"]
    return "\n".join(lines) + "\n"


SECTIONS: dict[str, Callable[[], str]] = {
    "options": options_markdown,
    "metrics": metrics_markdown,
    "metric-bounds": metric_bounds_markdown,
    "cli": cli_markdown,
}


def markers(markdown: str) -> list[str]:
    """The reference sections a page asks for, in order."""
    return MARKER.findall(markdown)


def expand(markdown: str, where: str = "a page") -> str:
    """Put each marker's generated section in its place; an unknown marker is an error."""

    def render(m: re.Match[str]) -> str:
        name = m.group(1)
        if name not in SECTIONS:
            raise ValueError(f"{where}: no reference section {name!r}; known: {', '.join(SECTIONS)}")
        return SECTIONS[name]()

    return MARKER.sub(render, markdown)


def pages_markers() -> dict[str, list[str]]:
    """The markers of every page under docs/, by path relative to it."""
    found: dict[str, list[str]] = {}
    for folder, dirs, names in os.walk(DOCS):
        dirs[:] = [d for d in dirs if d != "hooks" and not d.startswith(".")]
        for name in names:
            if name.endswith(".md"):
                path = os.path.join(folder, name)
                with open(path, encoding="utf-8") as f:
                    if used := markers(f.read()):
                        found[os.path.relpath(path, DOCS).replace(os.sep, "/")] = used
    return found


# --- MkDocs events -------------------------------------------------------------------------------


def on_pre_build(config: Any, **kwargs: Any) -> None:
    """Every section is placed on some page: a marker deleted by mistake fails the build."""
    from mkdocs.exceptions import PluginError

    used = {name for names in pages_markers().values() for name in names}
    missing = [name for name in SECTIONS if name not in used]
    if missing:
        raise PluginError(f"no page under docs/ holds the reference section(s) {', '.join(missing)}")


def on_page_markdown(markdown: str, page: Any, **kwargs: Any) -> str:
    from mkdocs.exceptions import PluginError

    try:
        return expand(markdown, page.file.src_uri)
    except ValueError as e:
        raise PluginError(str(e)) from None
