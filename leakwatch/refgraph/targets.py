"""What a graph request names: a suspect (by id), a type or a site, checked and resolved to a `Target`."""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Iterable

from leakwatch.errors import LeakwatchError
from leakwatch.model import Suspect

SUSPECT_ID = re.compile(r"^[0-9a-f]{12}$")
TYPE_NAME = re.compile(r"^[A-Za-z_][\w]*(\.[A-Za-z_<>][\w<>]*)*$")
MAX_TYPE_NAME = 300
# A site as site suspects name it: `path:LINE`, then its callers, joined by " <- ".
SITE = re.compile(r"^[^\x00-\x1f]+?:\d+( <- [^\x00-\x1f]+?:\d+)*$")
MAX_SITE = 4096
ALLOWED_TARGETS = "give a suspect id, a type name such as 'app.models.Session', or a site such as 'app/views.py:42'"


@dataclasses.dataclass(frozen=True)
class Target:
    """What a graph follows: live instances of a type (`kind="type"`, key `module.QualName`,
    builtins bare) or the live objects allocated at a source line (`kind="site"`, key
    `path/file.py:LINE` as site suspects name it; needs tracemalloc tracing)."""

    kind: str
    key: str


def resolve_target(target: Suspect | str, suspects: Iterable[Suspect]) -> Target:
    """The `Target` a graph request names: a type or site `Suspect`, the id of one of `suspects`,
    a type name or a site. Raises `LeakwatchError` saying what is wrong otherwise."""
    if isinstance(target, str):
        if not target.strip():
            raise LeakwatchError(f"a graph target is empty; {ALLOWED_TARGETS}")
        suspect = next((s for s in suspects if s.id == target), None)
        if suspect is None:
            if SUSPECT_ID.match(target):
                known = ", ".join(s.id for s in suspects) or "none"
                raise LeakwatchError(f"no current suspect has id {target!r}; current: {known}")
            if len(target) <= MAX_TYPE_NAME and TYPE_NAME.match(target):
                return Target("type", target)
            if len(target) <= MAX_SITE and SITE.match(target):
                return Target("site", target)
            raise LeakwatchError(f"{target[:80]!r} names no graph target; {ALLOWED_TARGETS}")
    elif isinstance(target, Suspect):
        suspect = target
    else:
        raise LeakwatchError(f"a graph target is a Suspect, a suspect id, a type name or a site, not {type(target).__name__}")
    if suspect.kind not in ("type", "site"):
        raise LeakwatchError(
            f"suspect {suspect.id} is {suspect.kind} memory ({suspect.key[:80]}), which no Python object holds "
            "(a C allocation, or memory the allocator keeps); graphs follow objects: give a type or site suspect"
        )
    return Target(suspect.kind, suspect.key)
