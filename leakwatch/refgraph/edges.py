"""How one object holds another: the referents a walk may safely take, and each edge's name
(attribute, dict key, list index, closure cell, frame local), read from what the objects
themselves hold, without calling their methods.
"""

from __future__ import annotations

import gc
import sys
import types
from collections import deque
from collections.abc import Iterable

from leakwatch.probes.census import type_key
from leakwatch.refgraph.model import Step
from leakwatch.refgraph.redact import safe_key, scrubbed_repr

CONTAINER_TYPES = (dict, list, set, frozenset, tuple, deque)


def referents(obj: object) -> list[object]:
    """`gc.get_referents(obj)`, except that a module gives only its `__dict__`.

    CPython 3.12 before 3.12.6 (and 3.13's betas) visit `_asyncio`'s free list of FutureIter
    objects when traversing that module, so `gc.get_referents` hands out freed objects, and
    dropping them frees them again: the gc list is corrupted and the next heap walk spins
    forever (https://github.com/python/cpython/issues/122695). A module holds everything
    Python-visible through its `__dict__`, which the collector tracks on its own.
    """
    if isinstance(obj, types.ModuleType):
        namespace = instance_dict(obj)
        return [namespace] if namespace is not None else []
    return gc.get_referents(obj)


def without_modules(objs: list[object]) -> list[object]:
    """`objs` without modules, whose referents are not safe to take (see `referents`)."""
    modules = {tp for tp in set(map(type, objs)) if issubclass(tp, types.ModuleType)}
    return [obj for obj in objs if type(obj) not in modules] if modules else objs


FUTURE_FIELDS = ("_fut_waiter", "_callbacks", "_result", "_exception", "_loop")


def _is_future(obj: object) -> bool:
    asyncio = sys.modules.get("asyncio")
    return asyncio is not None and isinstance(obj, asyncio.Future)


def safe_edge_name(parent: object, child: object) -> str:
    """`edge_name`, or "?" when an odd object defeats it: one edge never costs the graph."""
    try:
        return edge_name(parent, child)
    except Exception:
        return "?"


def edge_name(parent: object, child: object) -> str:
    """How `parent` holds `child`, from the structures themselves; no user code is called.

    The application keeps running while a graph is drawn, so containers are read through a
    copy taken in one C call (the GIL is not released inside it), never iterated in place.
    """
    if isinstance(parent, dict):
        for key, value in dict.copy(parent).items():
            if value is child:
                return f"[{safe_key(key)}]"
            if key is child:
                return "(a key)"
        return "?"
    if isinstance(parent, (list, tuple, deque)):
        for i, value in enumerate(list.copy(parent) if isinstance(parent, list) else tuple(parent)):
            if value is child:
                return f"[{i}]"
        return "?"
    if isinstance(parent, (set, frozenset)):
        return "{member}"
    if isinstance(parent, types.FrameType):
        return _frame_local(parent, child)
    if isinstance(parent, types.CellType):
        return "cell_contents"
    if isinstance(parent, types.FunctionType):
        if parent.__closure__ is child:
            return "__closure__"
        if parent.__globals__ is child:
            return "__globals__"
        if parent.__defaults__ is child:
            return "__defaults__"
        if parent.__kwdefaults__ is child:
            return "__kwdefaults__"
        return "?"
    if isinstance(parent, types.MethodType):
        return "__self__" if parent.__self__ is child else "__func__"
    if isinstance(parent, (types.GeneratorType, types.CoroutineType)):
        frame = getattr(parent, "gi_frame", None) or getattr(parent, "cr_frame", None)
        return _frame_local(frame, child) if frame is not None else "?"
    if _is_future(parent):
        # asyncio's C futures and tasks keep their state in slots no __dict__ shows.
        for name in FUTURE_FIELDS:
            if getattr(parent, name, None) is child:
                return f".{name}"
        if getattr(parent, "get_coro", None) is not None and parent.get_coro() is child:  # type: ignore[attr-defined]
            return "._coro"
        return "?"
    if isinstance(parent, type):
        # A class's own dict is reachable only through a fresh mappingproxy: match it by content.
        own = parent.__dict__
        if isinstance(child, dict) and len(child) == len(own) and all(k in child for k in own):
            return "__dict__"
        return "?"
    namespace = instance_dict(parent)
    if namespace is child:
        return "__dict__"
    # Since 3.11 an instance may keep its attributes inline, without a dict the collector sees.
    attribute = _attribute(namespace, child)
    if attribute is not None:
        return f".{attribute}"
    for name in _slot_names(type(parent)):
        descriptor = type(parent).__dict__.get(name) if name in type(parent).__dict__ else None
        if isinstance(descriptor, types.MemberDescriptorType):
            try:
                if descriptor.__get__(parent, type(parent)) is child:
                    return f".{name}"
            except AttributeError:
                continue
    return "?"


def instance_dict(obj: object) -> object:
    """An instance's or module's `__dict__`, read without running a `__getattr__`."""
    try:
        return object.__getattribute__(obj, "__dict__")
    except (AttributeError, TypeError):
        return None


def _slot_names(cls: type) -> Iterable[str]:
    for klass in cls.__mro__:
        slots = klass.__dict__.get("__slots__", ())
        if isinstance(slots, str):
            slots = (slots,)
        for name in slots if isinstance(slots, (tuple, list)) else ():
            if isinstance(name, str):
                yield name


def _frame_local(frame: types.FrameType, child: object) -> str:
    code = frame.f_code
    for name, value in dict(frame.f_locals).items():
        if value is child:
            return f"local {name} in {code.co_name}"
    return f"frame of {code.co_name}"


def collapse(chain: list[object], edges: list[str], reprs: bool = False) -> tuple[tuple[Step, ...], list[str]]:
    """Name each step by its type (and, when `reprs`, its scrubbed repr), and merge
    `obj -> __dict__ -> ['name']` into `obj -> .name`."""
    steps: list[Step] = []
    out: list[str] = []
    i = 0
    while i < len(chain):
        steps.append(Step(type_key(type(chain[i])), _size(chain[i]), scrubbed_repr(chain[i]) if reprs else None))
        if i < len(edges):
            name = _attribute(chain[i + 1], chain[i + 2]) if edges[i] == "__dict__" and i + 2 < len(chain) else None
            if name is not None:
                # Attribute names come from code, not data: shown whatever they look like.
                out.append("." + name)
                i += 2
                continue
            cell = _closure_cell(chain, edges, i)
            if cell is not None:
                out.append(f"closure {cell}")
                i += 3
                continue
            out.append(edges[i])
        i += 1
    return tuple(steps), out


def _closure_cell(chain: list[object], edges: list[str], i: int) -> str | None:
    """`function -> __closure__ -> [k] -> cell -> cell_contents` reads as the free variable's name."""
    fn = chain[i]
    if not (isinstance(fn, types.FunctionType) and edges[i] == "__closure__" and i + 3 < len(chain)):
        return None
    if not (edges[i + 1].startswith("[") and edges[i + 2] == "cell_contents"):
        return None
    k = int(edges[i + 1][1:-1])
    names = fn.__code__.co_freevars
    return names[k] if k < len(names) else None


def _attribute(namespace: object, value: object) -> str | None:
    """The name under which a `__dict__` holds `value`, if it is an identifier."""
    if not isinstance(namespace, dict):
        return None
    for key, held in dict.copy(namespace).items():
        if held is value and type(key) is str and key.isidentifier() and len(key) <= 64:
            return key
    return None


def _size(obj: object) -> int | None:
    if type(obj) in CONTAINER_TYPES or isinstance(obj, (dict, deque)) and type(obj).__len__ in (dict.__len__, deque.__len__):
        try:
            return len(obj)  # type: ignore[arg-type]
        except TypeError:
            return None
    return None
