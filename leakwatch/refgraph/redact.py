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
SHOWN_KEY = re.compile(r"[A-Za-z_][A-Za-z0-9_.\-:/]{0,31}")  # the whole key
MAX_SHOWN_INT = 10**6


def safe_key(key: object) -> str:
    """A dict key as shown: short plain names and small ints verbatim, anything else as its type."""
    if type(key) is str:
        if SHOWN_KEY.fullmatch(key) and not _looks_random(key):
            return repr(key)
        return f"<str len {len(key)}>"
    if type(key) is int:
        return str(key) if abs(key) < MAX_SHOWN_INT else "<int>"
    return f"<{type_key(type(key))}>"


def scrubbed_repr(obj: object) -> str:
    """`repr(obj)` for people, when they opt in: containers shown a few items deep, secrets
    replaced by <redacted> (passwords in URLs, values after names like password=, token: or
    "secret", bearer tokens, private keys, cloud and service keys of known shapes, long
    random-looking runs; e-mail addresses become <email>), at most `MAX_REPR` characters. It runs the object's
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
# Names whose value is a secret, in code and in configuration.
SECRET_NAMES = (
    r"\w*pass(?:word|wd|phrase)?|pwd|\w*secret\w*|\w*token\w*|api[_-]?key|apikey|access[_-]?key\w*|auth\w*|"
    r"session\w*|cookie|credential\w*|private[_-]?key|signature|client[_-]?secret|x-api-key"
)
SCRUB = (
    # A PEM block: everything after its header.
    (re.compile(r"-----BEGIN [A-Z ]*PRIVATE KEY-----.*", re.S), "<redacted private key>"),
    # user:password@ in a URL (postgres://user:pw@host/db, https://user:pw@host).
    (re.compile(r"(?i)\b([a-z][a-z0-9+.-]*://[^:/@\s'\"]*):[^@\s'\"]+@"), r"\1:<redacted>@"),
    (re.compile(r"(?i)\b(bearer|basic|token|digest)\s+[A-Za-z0-9._~+/=-]+"), r"\1 <redacted>"),
    # name=value, name: value, "name": "value", name => value, name -> value, name is value, and
    # ("name", "value"); the value quoted (all of it, spaces too), bytes (b'...'), in a list or a
    # tuple, or bare up to the next separator.
    (
        re.compile(
            rf"(?i)((?:{SECRET_NAMES})(?:['\"]?\s*(?:=>|->|[=:]|\bis\b)|['\"]\s*,)\s*(?:[\[(]\s*)?(?:[bru]{{1,2}}(?=['\"]))?)"
            r"('[^']*'?|\"[^\"]*\"?|[^\s'\",;&})\]]+)"
        ),
        lambda m: _redacted_value(m.group(1), m.group(2)),
    ),
    # A secret's name, then its value after a space ("mypassword hunter2", "secret s3cr3t").
    (re.compile(r"(?i)\b(\w*(?:password|passwd|passphrase|secret))\s+(?!<)[^\s'\",;&})\]]+"), r"\1 <redacted>"),
    # Cloud and service keys with a known shape.
    (re.compile(r"\b(?:AKIA|ASIA)[0-9A-Z]{16}\b"), "<redacted>"),
    (re.compile(r"\bAIza[0-9A-Za-z_-]{35}\b"), "<redacted>"),
    (re.compile(r"\b(?:sk|rk|pk)_(?:live|test)_[0-9A-Za-z]{8,}"), "<redacted>"),
    (re.compile(r"\bxox[abposr]-[0-9A-Za-z-]{10,}"), "<redacted>"),
    (re.compile(r"\bgh[pousr]_[0-9A-Za-z]{20,}"), "<redacted>"),
    (re.compile(r"[\w.+-]+@[\w-]+\.[\w.-]+"), "<email>"),
    # Long random-looking runs (a path's parts are judged one by one: /api/v1/users is no token).
    (re.compile(r"[A-Za-z0-9_+=-]{12,}"), lambda m: "<redacted>" if _looks_random(m.group()) else m.group()),
)


def _redacted_value(before: str, value: str) -> str:
    quote = value[0] if value[0] in "'\"" else ""
    return f"{before}{quote}<redacted>{quote}"


def _looks_random(text: str) -> bool:
    """Long runs of mixed letters and digits (tokens, ids, hashes) are not shown."""
    return len(text) >= 12 and any(c.isdigit() for c in text) and any(c.isalpha() for c in text)
