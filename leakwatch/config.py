"""One frozen `Config`: keyword > ``LEAKWATCH_*`` environment variable > default.

Every option, its environment name, default and meaning is listed once, in `OPTIONS`;
the reference page docs/reference/options.md is generated from it.

A bad keyword raises `ConfigError` (misuse in code should fail loudly); a bad environment
value logs a warning and falls back to the default (an operator's typo must not take a
service down).

(Over 500 lines on purpose: most of it is `OPTIONS`, the one table of every option, which the
reference docs, `leakwatch options` and the parsing all read.)
"""

from __future__ import annotations

import dataclasses
import logging
import math
import os
import re
from collections.abc import Callable, Mapping
from typing import Any

from leakwatch.errors import ConfigError

logger = logging.getLogger(__name__)

ENV_PREFIX = "LEAKWATCH_"
TRACEMALLOC_MODES = ("off", "auto", "always")
PREFORK_MODES = ("auto", "master", "off")
# The port the docs, the deploy kit and `leakwatch serve` use. Prometheus's list of default
# port allocations has no free port left in 9100-9999 and lists exporters from 10001 up;
# 9464, used before, is the OpenTelemetry Prometheus exporter's default.
SUGGESTED_PORT = 10464

_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off"}
_DURATION = re.compile(r"^\s*([0-9]*\.?[0-9]+(?:[eE][-+]?[0-9]+)?)\s*(ms|s|m|h)?\s*$")
_SIZE = re.compile(r"^\s*([0-9]*\.?[0-9]+)\s*([kmg]i?b?|b)?\s*$", re.IGNORECASE)
_SIZE_FACTORS = {"": 1, "b": 1, "k": 1024, "m": 1024**2, "g": 1024**3}
_DURATION_FACTORS = {"": 1.0, "s": 1.0, "ms": 0.001, "m": 60.0, "h": 3600.0}


@dataclasses.dataclass(frozen=True)
class Option:
    """How one option is parsed, checked and documented."""

    name: str
    default: Any
    kind: str  # "bool", "seconds", "int", "bytes", "float", "choice", "str"
    help: str
    low: float | None = None
    high: float | None = None
    choices: tuple[str, ...] = ()
    # When set and the option is not given, its value is this many intervals (`default` is
    # then the value at the default interval).
    intervals: float | None = None
    # A "str" option that must not be empty (an empty host would bind every interface).
    nonempty: bool = False

    @property
    def env(self) -> str:
        return ENV_PREFIX + self.name.upper()

    def allowed(self) -> str:
        """Say in words what values are accepted."""
        if self.kind == "bool":
            return "true or false (env: 1/0, true/false, yes/no, on/off)"
        if self.kind == "choice":
            return "one of " + ", ".join(repr(c) for c in self.choices)
        if self.kind == "str":
            return "a non-empty string without spaces" if self.nonempty else "a string without NUL characters"
        unit = {"seconds": " seconds", "bytes": " bytes"}.get(self.kind, "")
        kind = "an integer" if self.kind in ("int", "bytes") else "a number"
        suffix = {
            "seconds": " (env also takes 500ms, 30s, 5m, 1h)",
            "bytes": " (env also takes 64KiB, 32MiB, 1GiB)",
        }.get(self.kind, "")
        return f"{kind} from {_fmt(self.low)} to {_fmt(self.high)}{unit}{suffix}"


def _fmt(x: float | None) -> str:
    if x is None:
        return "any"
    return str(int(x)) if float(x).is_integer() else str(x)


OPTIONS: tuple[Option, ...] = (
    Option("enabled", True, "bool", "Master switch: when false, start() returns a watcher that never samples."),
    Option("interval", 5.0, "seconds", "Time between samples.", 0.01, 60.0),
    Option(
        "warmup",
        30.0,
        "seconds",
        "Growth before this much time after start is ignored (imports, first requests).",
        0.0,
        7 * 86400.0,
        intervals=6,
    ),
    Option(
        "window",
        240.0,
        "seconds",
        "How much recent history a verdict weighs: a steady leak is named about one window after warm-up; also how "
        "long growth must have stopped before a suspect is cleared. At least 5 intervals.",
        0.05,
        30 * 86400.0,
        intervals=48,
    ),
    Option(
        "tracemalloc",
        "auto",
        "choice",
        "Allocation-site tracing: 'auto' traces in bounded windows only while a cheap signal suspects a leak; "
        "'always' traces from start (costly; for development); 'off' never traces.",
        choices=TRACEMALLOC_MODES,
    ),
    Option(
        "trace_frames",
        1,
        "int",
        "Frames kept per traced allocation (1 = the allocating line; more adds its callers to site keys, at a cost).",
        1,
        64,
    ),
    Option(
        "trace_window",
        60.0,
        "seconds",
        "Length of one tracing window in 'auto' mode. At least 4 intervals.",
        0.04,
        86400.0,
        intervals=12,
    ),
    Option(
        "trace_max_memory",
        32 * 1024**2,
        "bytes",
        "A tracing window ends early when tracemalloc's own memory passes this, which bounds the cost of a snapshot.",
        1024**2,
        64 * 1024**3,
    ),
    Option("census", True, "bool", "Count live gc-tracked objects per type each sample."),
    Option("process", True, "bool", "Read process memory (RSS) each sample."),
    Option(
        "uss",
        False,
        "bool",
        "Also read USS (unique set size); reads /proc/<pid>/smaps, which costs milliseconds on big processes.",
    ),
    Option(
        "max_series",
        256,
        "int",
        "Most keys tracked per kind (types, sites); the largest are kept, and every suspect.",
        8,
        100_000,
    ),
    Option(
        "history_points",
        128,
        "int",
        "Points kept per key: the newest half raw, older samples merged into equal-time buckets.",
        16,
        100_000,
    ),
    Option(
        "significance",
        0.01,
        "float",
        "p-value the growth test's trend test (Mann-Kendall or the steps' sign test) must beat before growth counts.",
        1e-9,
        0.2,
    ),
    Option("min_growth_objects", 100, "int", "Least growth, in objects over a window, that can make a type a suspect.", 1, 1e12),
    Option(
        "min_growth_bytes",
        1024**2,
        "bytes",
        "Least growth, in bytes over a window, that can make a site or the process a suspect.",
        1,
        1e15,
    ),
    Option("log_suspects", True, "bool", "Log a warning when a suspect is confirmed and an info line when it clears."),
    Option(
        "report_file",
        "",
        "str",
        "When set, the report is written there as JSON (atomically: a new file replaces the old) after every sample "
        "and when the watcher stops, so a process killed by SIGTERM leaves its last sample's report; "
        "{pid} in it becomes the process id.",
    ),
    Option(
        "port",
        None,
        "int",
        "Serve /metrics and /api/suspects over HTTP on this port (0 picks a free one; "
        "Watcher.server_address tells which). Unset: no server.",
        0,
        65535,
    ),
    Option(
        "host",
        "127.0.0.1",
        "str",
        "Address the HTTP server binds. The default keeps it on this machine; 0.0.0.0 or :: exposes it to the network.",
        nonempty=True,
    ),
    Option(
        "max_suspect_series",
        50,
        "int",
        "Most suspects exported as labelled Prometheus series (fastest-growing first); "
        "leakwatch_suspects_omitted counts the rest.",
        1,
        10_000,
    ),
    Option("top_k", 20, "int", "Types and sites exported in the census top-K metrics (largest first); 0 exports none.", 0, 1000),
    Option(
        "memory_limit",
        0,
        "bytes",
        "Memory limit exported as leakwatch_memory_limit_bytes; 0 reads the container's cgroup limit "
        "(none exported when unlimited).",
        0,
        1 << 60,
    ),
    Option(
        "cpu_budget",
        0.01,
        "float",
        "Share of one core leakwatch may spend sampling (of the part of a core the process gets, when it shares one): "
        "when a sample costs more than that at the interval (a heap of millions of objects), the interval stretches "
        "until it fits, and the window with it.",
        0.0001,
        1.0,
    ),
    Option(
        "trace_budget",
        0.05,
        "float",
        "Share of the application's time tracing windows may cost it, averaged from the start: tracing's slowdown "
        "of allocation-heavy code is measured once, and windows are spaced and shortened to keep within this. "
        "A value above that slowdown (100) lets windows follow each other as fast as trace_window allows.",
        0.0001,
        1000.0,
    ),
    Option(
        "graphs",
        False,
        "bool",
        "Serve /api/graph on the HTTP server: who holds a suspect's objects (each request walks the heap a few times).",
    ),
    Option(
        "graph_token",
        "",
        "str",
        "When set, /api/graph requires the header 'Authorization: Bearer <token>'; never logged or exported.",
    ),
    Option("graph_budget", 10.0, "seconds", "Longest one graph may search; it then answers with what it found.", 0.1, 300.0),
    Option(
        "retained_samples",
        32,
        "int",
        "Objects of each type suspect whose deep size (pympler's asizeof) is measured, once a window, to "
        "estimate the memory the suspect holds; 0 measures none.",
        0,
        1000,
    ),
    Option(
        "graph_dir",
        "",
        "str",
        "Graphs without HTTP: a file named graph-request put there (holding a suspect id or a type name, or nothing "
        "for every type suspect) makes the next tick write graph-<pid>-<target>.json and .dot there; the newest 20 are kept.",
    ),
    Option(
        "graph_on_suspect",
        False,
        "bool",
        "Also draw a graph into graph_dir when a type or site suspect is first confirmed (a site's while it is traced).",
    ),
    Option(
        "baseline_file",
        "",
        "str",
        "When set, a snapshot taken once warm-up ends is saved there ({pid} becomes the process id), for "
        "`leakwatch diff` to compare later ones with; the page then shows each type suspect's growth since it.",
    ),
    Option(
        "postmortem_at",
        0.9,
        "float",
        "When process memory passes this share of the memory limit (the container's, or memory_limit), write a "
        "post-mortem once per crossing: the report and the top suspects' graphs, before an OOM kill; 0 never.",
        0.0,
        1.0,
    ),
    Option(
        "postmortem_dir",
        "",
        "str",
        "Where post-mortems are written ({pid} becomes the process id); unset: graph_dir, else the temporary directory.",
    ),
    Option(
        "prefork",
        "auto",
        "choice",
        "Pre-forking servers: 'master' samples nothing in this process and serves (on port) the reports of the "
        "workers it forks or spawns, each series labelled worker; 'auto' is 'master' when the command line is "
        "gunicorn, or uvicorn with --workers; 'off' samples here.",
        choices=PREFORK_MODES,
    ),
    Option(
        "workers_dir",
        "",
        "str",
        "Where workers publish their reports for one endpoint to serve: a master sets it for the workers it spawns; "
        "set it yourself to gather processes no leakwatch master starts (uWSGI workers) and serve them with "
        "'leakwatch serve'.",
    ),
    Option(
        "freeze",
        True,
        "bool",
        "In a pre-fork master, gc.freeze() before each fork: workers' censuses then skip the preloaded heap and "
        "do not copy its memory pages.",
    ),
    Option(
        "graph_reprs",
        False,
        "bool",
        "Show each graph step's repr(), scrubbed of secrets and cut to 120 characters; runs the application's "
        "__repr__ methods, so off by default.",
    ),
)
OPTION_NAMES = tuple(o.name for o in OPTIONS)
_BY_NAME = {o.name: o for o in OPTIONS}
_UNSET = object()


def _default(name: str) -> Any:
    return _BY_NAME[name].default


@dataclasses.dataclass(frozen=True)
class Config:
    """Everything a watcher needs to know, validated however it is built (a bad value raises
    `ConfigError`). Build with `Config.from_options`, which also reads ``LEAKWATCH_*`` and lets
    the time options not given follow the interval; built directly, every field not given
    takes its default from `OPTIONS`."""

    enabled: bool = _default("enabled")
    interval: float = _default("interval")
    warmup: float = _default("warmup")
    window: float = _default("window")
    tracemalloc: str = _default("tracemalloc")
    trace_frames: int = _default("trace_frames")
    trace_window: float = _default("trace_window")
    trace_max_memory: int = _default("trace_max_memory")
    census: bool = _default("census")
    process: bool = _default("process")
    uss: bool = _default("uss")
    max_series: int = _default("max_series")
    history_points: int = _default("history_points")
    significance: float = _default("significance")
    min_growth_objects: int = _default("min_growth_objects")
    min_growth_bytes: int = _default("min_growth_bytes")
    log_suspects: bool = _default("log_suspects")
    report_file: str = _default("report_file")
    port: int | None = _default("port")
    host: str = _default("host")
    max_suspect_series: int = _default("max_suspect_series")
    top_k: int = _default("top_k")
    memory_limit: int = _default("memory_limit")
    cpu_budget: float = _default("cpu_budget")
    trace_budget: float = _default("trace_budget")
    graphs: bool = _default("graphs")
    graph_token: str = dataclasses.field(default=_default("graph_token"), repr=False)
    graph_budget: float = _default("graph_budget")
    retained_samples: int = _default("retained_samples")
    baseline_file: str = _default("baseline_file")
    postmortem_at: float = _default("postmortem_at")
    postmortem_dir: str = _default("postmortem_dir")
    graph_dir: str = _default("graph_dir")
    graph_on_suspect: bool = _default("graph_on_suspect")
    prefork: str = _default("prefork")
    workers_dir: str = _default("workers_dir")
    freeze: bool = _default("freeze")
    graph_reprs: bool = _default("graph_reprs")
    # The options the user set (by keyword, ``LEAKWATCH_*`` or ``-o``): used as given. Only
    # the others (defaults, and time options that follow the interval) may be adapted by the
    # cost governor.
    explicit: frozenset[str] = frozenset()

    def __post_init__(self) -> None:
        for opt in OPTIONS:
            value = getattr(self, opt.name)
            if value is None and opt.default is None:
                continue
            checked = _coerce_keyword(opt, value)
            if checked != value or type(checked) is not type(value):
                object.__setattr__(self, opt.name, checked)
        unknown = self.explicit - set(OPTION_NAMES)
        if unknown:
            raise ConfigError("explicit", sorted(unknown), "option names, from " + ", ".join(OPTION_NAMES))
        values = {name: getattr(self, name) for name in OPTION_NAMES}
        _check_relations(values, {name: values[name] for name in OPTION_NAMES}, set())

    @classmethod
    def from_options(cls, env: Mapping[str, str] | None = None, **options: Any) -> Config:
        """Merge keyword options over ``LEAKWATCH_*`` variables over defaults.

        Raises `ConfigError` for an unknown or bad keyword; logs a warning and uses the
        default for a bad environment value.
        """
        env = os.environ if env is None else env
        for name in options:
            if name not in _BY_NAME:
                raise ConfigError(name, options[name], "an option name, one of " + ", ".join(OPTION_NAMES))
        _warn_unknown_env(env)
        values: dict[str, Any] = {}
        given: set[str] = set()
        from_env: set[str] = set()
        derived: list[Option] = []
        for opt in OPTIONS:
            if name_given(opt.name, options):
                values[opt.name] = _coerce_keyword(opt, options[opt.name])
                given.add(opt.name)
            # An empty variable (common in templated manifests) counts as unset.
            elif env.get(opt.env, "").strip() and (parsed := _parse_env(opt, env[opt.env])) is not _UNSET:
                values[opt.name] = parsed
                from_env.add(opt.name)
                given.add(opt.name)
            elif opt.intervals is not None:
                derived.append(opt)
            else:
                values[opt.name] = opt.default
        for opt in derived:
            # Time options not given follow the interval, so `interval=0.1` alone makes a
            # watcher that judges in seconds, as tests and demos want.
            values[opt.name] = round(opt.intervals * values["interval"], 6)
        _check_relations(values, options, from_env)
        return cls(**values, explicit=frozenset(given))

    def given(self, name: str) -> bool:
        """Whether the user set this option (keyword, environment or ``-o``): then it is used as given."""
        return name in self.explicit

    def options(self) -> dict[str, Any]:
        """The options the user set, as keywords: `Config.from_options(env={}, **c.options())`
        builds this config again. A config built directly (or changed with `dataclasses.replace`)
        counts every value that differs from what its given options derive as set."""
        given = {name: getattr(self, name) for name in self.explicit}
        derived = Config.from_options(env={}, **given)
        given.update((n, getattr(self, n)) for n in OPTION_NAMES if n not in given and getattr(self, n) != getattr(derived, n))
        return given

    def to_dict(self) -> dict[str, Any]:
        """Every option's value (not which were given)."""
        return {name: getattr(self, name) for name in OPTION_NAMES}


def name_given(name: str, options: Mapping[str, Any]) -> bool:
    return name in options and options[name] is not None


def _warn_unknown_env(env: Mapping[str, str]) -> None:
    known = {o.env for o in OPTIONS}
    for key in env:
        if key.startswith(ENV_PREFIX) and key not in known:
            logger.warning("leakwatch: ignoring unknown environment variable %s; known: %s", key, ", ".join(sorted(known)))


def _coerce_keyword(opt: Option, value: Any) -> Any:
    if opt.kind == "bool":
        if not isinstance(value, bool):
            raise ConfigError(opt.name, value, opt.allowed())
        return value
    if opt.kind == "choice":
        if value not in opt.choices:
            raise ConfigError(opt.name, value, opt.allowed())
        return value
    if opt.kind == "str":
        if not isinstance(value, (str, os.PathLike)):
            raise ConfigError(opt.name, value, opt.allowed())
        text = os.fspath(value)
        if "\0" in text or (opt.nonempty and (not text.strip() or any(c.isspace() for c in text.strip()))):
            raise ConfigError(opt.name, value, opt.allowed())
        return text.strip() if opt.nonempty else text
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ConfigError(opt.name, value, opt.allowed())
    if opt.kind in ("int", "bytes") and not float(value).is_integer():
        raise ConfigError(opt.name, value, opt.allowed())
    return _check_range(opt, value)


def _check_range(opt: Option, value: float) -> Any:
    if not math.isfinite(value) or (opt.low is not None and value < opt.low) or (opt.high is not None and value > opt.high):
        raise ConfigError(opt.name, value, opt.allowed())
    return int(value) if opt.kind in ("int", "bytes") else float(value)


def _parse_env(opt: Option, raw: str) -> Any:
    try:
        return parse_text(opt, raw)
    except (ValueError, ConfigError):
        default = f"{opt.intervals:g} intervals" if opt.intervals is not None else repr(opt.default)
        if opt.default is None:
            default = "unset"
        logger.warning("leakwatch: %s=%r is not valid (allowed: %s); using the default, %s", opt.env, raw, opt.allowed(), default)
        return _UNSET


def parse_text(opt: Option, raw: str) -> Any:
    """Parse one option from text, as given in the environment or on a command line."""
    text = raw.strip()
    parsers: dict[str, Callable[[str], Any]] = {
        "bool": _parse_bool,
        "seconds": _parse_seconds,
        "bytes": _parse_bytes,
        "int": int,
        "float": float,
        "choice": lambda s: s.lower(),
        "str": lambda s: s,
    }
    value = parsers[opt.kind](text)
    return _coerce_keyword(opt, value)


def _parse_bool(text: str) -> bool:
    low = text.lower()
    if low in _TRUE:
        return True
    if low in _FALSE:
        return False
    raise ValueError(text)


def _parse_seconds(text: str) -> float:
    m = _DURATION.match(text)
    if not m:
        raise ValueError(text)
    return float(m.group(1)) * _DURATION_FACTORS[m.group(2) or ""]


def _parse_bytes(text: str) -> int:
    m = _SIZE.match(text)
    if not m:
        raise ValueError(text)
    factor = _SIZE_FACTORS[(m.group(2) or "")[:1].lower()]
    value = float(m.group(1)) * factor
    if not value.is_integer():
        raise ValueError(text)
    return int(value)


def _check_relations(values: dict[str, Any], keywords: Mapping[str, Any], from_env: set[str]) -> None:
    """Check rules that tie two options together; keywords raise, env values fall back."""
    rules: tuple[tuple[str, Callable[[Mapping[str, Any]], bool], str], ...] = (
        ("window", lambda v: bool(v["window"] >= 5 * v["interval"]), "at least 5 times interval"),
        ("trace_window", lambda v: bool(v["trace_window"] >= 4 * v["interval"]), "at least 4 times interval"),
    )
    for name, holds, allowed in rules:
        if holds(values):
            continue
        opt = _BY_NAME[name]
        floor = (5 if name == "window" else 4) * values["interval"]
        if name_given(name, keywords):
            raise ConfigError(name, values[name], f"{allowed} (interval is {values['interval']} s)")
        if name in from_env:
            logger.warning("leakwatch: %s=%r must be %s; using %s", opt.env, values[name], allowed, floor)
        values[name] = floor
