"""What a graph may show of the application's data: dict keys that read like names, and (only
when asked for) reprs with secrets scrubbed.

`scrubbed_repr` is the package's only call of `repr()` on an application object, and runs only
when reprs are asked for. Dict keys appear only when they are short plain `str` or `int` that do
not look like secrets; everything else shows as its type.
"""

from __future__ import annotations

import re
import reprlib

from leakwatch.probes.census import type_key

# Dict keys shown verbatim: plain str that reads like a name, or a small int.
SHOWN_KEY = re.compile(r"^[A-Za-z_][A-Za-z0-9_.\-:/]{0,31}$")
MAX_SHOWN_INT = 10**6


def safe_key(key: object) -> str:
    """A dict key as shown: short plain names and small ints verbatim, anything else as its type."""
    if type(key) is str:
        if SHOWN_KEY.match(key) and not _looks_random(key):
            return repr(key)
        return f"<str len {len(key)}>"
    if type(key) is int:
        return str(key) if abs(key) < MAX_SHOWN_INT else "<int>"
    return f"<{type_key(type(key))}>"


def scrubbed_repr(obj: object) -> str:
    """`repr(obj)` for people, when they opt in: containers shown a few items deep, secrets
    (long random-looking runs, values after names like password= or token:, e-mail addresses,
    bearer tokens) replaced by <redacted>, at most `MAX_REPR` characters. It runs the object's
    `__repr__`, application code: never called unless reprs are asked for."""
    try:
        text = _REPR.repr(obj)
    except Exception as e:  # an application __repr__ that fails
        return f"<repr failed: {type(e).__name__}>"
    for pattern, replacement in SCRUB:
        text = pattern.sub(replacement, text)
    return text if len(text) <= MAX_REPR else text[: MAX_REPR - 3] + "..."


MAX_REPR = 120
_REPR = reprlib.Repr()
_REPR.maxlevel, _REPR.maxdict, _REPR.maxlist, _REPR.maxtuple, _REPR.maxset = 2, 4, 4, 4, 4
_REPR.maxstring, _REPR.maxother, _REPR.maxlong = 60, 120, 40
SCRUB = (
    (re.compile(r"(?i)\b(bearer|basic)\s+[A-Za-z0-9._~+/=-]+"), r"\1 <redacted>"),
    (
        re.compile(
            r"(?i)((?:pass(?:word|wd)?|pwd|secret|token|api[_-]?key|access[_-]?key|auth\w*|session\w*|cookie|credential\w*|"
            r"private[_-]?key|signature)['\"]?\s*[=:]\s*['\"]?)[^\s'\",;&}]+"
        ),
        r"\1<redacted>",
    ),
    (re.compile(r"[\w.+-]+@[\w-]+\.[\w.-]+"), "<email>"),
    (re.compile(r"[A-Za-z0-9_+/=-]{12,}"), lambda m: "<redacted>" if _looks_random(m.group()) else m.group()),
)


def _looks_random(text: str) -> bool:
    """Long runs of mixed letters and digits (tokens, ids, hashes) are not shown."""
    return len(text) >= 12 and any(c.isdigit() for c in text) and any(c.isalpha() for c in text)
