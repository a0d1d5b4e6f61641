"""Asyncio tasks nothing can wake: pending on a future that nothing outside the task reaches
(`stranded_tasks`)."""

from __future__ import annotations

import dataclasses
import logging
import sys
import threading
import time
from collections.abc import Collection
from itertools import compress
from typing import Any

from leakwatch.model import Suspect
from leakwatch.probes.census import live_objects
from leakwatch.refgraph.instances import spread
from leakwatch.refgraph.search import Search

logger = logging.getLogger(__name__)

STRANDED_SAMPLES = 8
STRANDED_DEPTH = 16
# How long to wait for a loop to finish a wake-up in progress before the second search.
STRANDED_RECHECK_WAIT = 1.0


def stranded_tasks(samples: int = STRANDED_SAMPLES, budget_seconds: float = 2.0) -> tuple[int, int]:
    """(stranded, sampled): of up to `samples` pending asyncio tasks, each waiting on a future,
    how many wait on one that nothing outside the task itself can reach.

    A task waits on its `_fut_waiter`; whatever will wake it (a timer handle in the loop, a
    waiter list of a lock or queue, a dict of pending replies, another task's callback) holds
    that future. The search walks back from the futures, as a graph does, never through the
    task's own objects (the task, its chain of coroutines and their frames): a future it finds
    no root for, Python-visible, can never be set, and its task stays pending until cancelled.
    Tasks kept in a set "so they are not collected" that wait on such a future are a leak.

    The loop runs while the search does, and a wake-up in progress holds the future for a moment
    where only a C local sees it (the loop has popped the timer handle and not yet run it). So a
    task is stranded only if a second search, once its loop has finished whatever it was doing,
    finds it stranded too and it still waits on the same future; a task woken meanwhile, or whose
    future is cancelled (as asyncio.run cancels every task at exit), is left out of the sample.
    Costs one walk of the gc list plus one per level of the search, shared by all samples; the
    second search (on at most half the budget) runs only when the first finds something
    stranded.
    """
    asyncio = sys.modules.get("asyncio")
    if asyncio is None:
        return 0, 0
    started = time.perf_counter()
    objs = live_objects()
    task_types = {tp for tp in set(map(type, objs)) if issubclass(tp, asyncio.Task)}
    tasks = list(compress(objs, map(task_types.__contains__, map(type, objs)))) if task_types else []
    del objs
    waiting = [t for t in tasks if not t.done() and getattr(t, "_fut_waiter", None) is not None]  # type: ignore[attr-defined]
    del tasks
    # Each waiter is read once: a task the loop wakes meanwhile has None there, and None as
    # a target would make every object a holder. A future cancelled (as asyncio.run cancels
    # every task at exit) is held by the loop only to wake its task: that says nothing.
    pairs = [
        (t, w)
        for t, w in ((t, getattr(t, "_fut_waiter", None)) for t in spread(waiting, samples))
        if w is not None and not _cancelling(w)
    ]
    del waiting
    chosen_tasks = [t for t, _ in pairs]
    futures = [w for _, w in pairs]
    del pairs
    try:
        kinds = _wait_kinds(chosen_tasks, futures, started + budget_seconds)
        for i, future in enumerate(futures):
            if _cancelling(future):  # cancelled during the search (asyncio.run's exit): no verdict
                kinds[i] = "released"
        future = None
        if "outside" in kinds:
            again = [i for i, kind in enumerate(kinds) if kind == "outside"]
            _let_loops_run({id(loop): loop for loop in (_loop_of(chosen_tasks[i]) for i in again) if loop is not None})
            for i in again:
                kinds[i] = "released"  # woken, unless the second search finds it stranded again
            again = [i for i in again if _waits_on(chosen_tasks[i], futures[i])]
            # Only the lists `_wait_kinds` is given may hold the futures it searches.
            chosen_tasks = [chosen_tasks[i] for i in again]
            futures = [futures[i] for i in again]
            second = _wait_kinds(chosen_tasks, futures, time.perf_counter() + budget_seconds / 2)
            for i, task, future, kind in zip(again, chosen_tasks, futures, second, strict=True):
                kinds[i] = kind if _waits_on(task, future) else "released"
    finally:
        futures = []
        chosen_tasks = []
    judged = [kind for kind in kinds if kind not in ("released", None)]
    return judged.count("outside"), len(judged)


def _loop_of(task: object) -> Any:
    try:
        return task.get_loop()  # type: ignore[attr-defined]
    except Exception:
        return None


def _let_loops_run(loops: dict[int, Any]) -> None:
    """Return once each loop has run two rounds of callbacks (or after STRANDED_RECHECK_WAIT):
    a timer the loop has popped runs in the round it is popped, and the task it wakes in the
    next. A loop that is not running, or runs on this thread, is not waited for."""
    asyncio = sys.modules["asyncio"]
    deadline = time.monotonic() + STRANDED_RECHECK_WAIT
    for loop in loops.values():
        if loop is asyncio._get_running_loop() or not loop.is_running():
            continue
        for _ in range(2):
            turned = threading.Event()
            try:
                loop.call_soon_threadsafe(turned.set)
            except RuntimeError:  # closed meanwhile
                break
            if not turned.wait(max(0.0, deadline - time.monotonic())):
                return


def _cancelling(future: object) -> bool:
    try:
        return bool(future.cancelled())  # type: ignore[attr-defined]
    except Exception:  # a future-like object of another library's loop, without the Future API
        return False


def _waits_on(task: object, future: object) -> bool:
    """The task is still pending on that future, not being cancelled: the loop has not woken
    it since it was read."""
    return not task.done() and getattr(task, "_fut_waiter", None) is future and not _cancelling(future)  # type: ignore[attr-defined]


def _wait_kinds(chosen_tasks: list[object], futures: list[object], deadline: float) -> list[str | None]:
    """For each task, the kind of root that holds the future it waits on ("outside": none that
    Python can see; "released": the application dropped it; None: the search ran out of time
    or depth first). Only the two lists may hold the futures besides the application."""
    ours: set[int] = {id(futures), id(chosen_tasks)}
    search = Search(futures, ours, STRANDED_DEPTH, deadline)
    for task, future in zip(chosen_tasks, futures, strict=True):
        search.excluded[id(future)] = _owned_by(task)
    try:
        search.run()
        found = search.found
        return [found[id(future)][0] if id(future) in found else None for future in futures]
    finally:
        search.targets = []


def _owned_by(task: object) -> set[int]:
    """Ids of a task and of what only it runs: its coroutines down the await chain, their
    frames, and the iterator of the future it awaits."""
    owned = {id(task)}
    step = task.get_coro()  # type: ignore[attr-defined]
    for _ in range(64):
        if step is None:
            break
        owned.add(id(step))
        frame = getattr(step, "cr_frame", None) or getattr(step, "gi_frame", None) or getattr(step, "ag_frame", None)
        if frame is not None:
            owned.add(id(frame))
        step = getattr(step, "cr_await", None) or getattr(step, "gi_yieldfrom", None) or getattr(step, "ag_await", None)
    return owned


class TaskCheck:
    """The stranded-task verdict on growing asyncio tasks, kept between ticks.

    Growing tasks get a detail saying whether they wait on futures nothing can set (stranded:
    a leak) or on ones something holds (a backlog). Checked at most once a window, and only
    while tasks are a suspect: it walks the heap a few times.
    """

    def __init__(self, budget_seconds: float) -> None:
        self._budget = budget_seconds
        self._found = (0, 0)  # (stranded, sampled) of the last check that decided any
        self._next = 0.0

    def annotate(
        self, suspects: tuple[Suspect, ...], tasks: Collection[Suspect], now: float, window: float
    ) -> tuple[Suspect, ...]:
        """`suspects` with the verdict in the detail of those in `tasks` (growing task types)."""
        if now >= self._next:
            try:
                found = stranded_tasks(budget_seconds=self._budget)
            except Exception:  # a heap the search cannot read: say nothing rather than fail the tick
                logger.debug("leakwatch: the stranded-task check failed", exc_info=True)
                found = (0, 0)
            # A check that decided nothing (out of time, or every task woken or finished at that
            # moment, as when asyncio.run cancels them all at exit) keeps the last verdict and is
            # retried sooner.
            if found[1]:
                self._found = found
            self._next = now + window / (1 if found[1] else 4)
        stranded, sampled = self._found
        if not sampled:
            return suspects
        if stranded:
            detail = (
                f"{stranded} of {sampled} sampled pending tasks wait on a future nothing outside them holds: "
                "they can never be woken, only cancelled"
            )
        else:
            detail = f"the {sampled} sampled pending tasks wait on futures something holds: a backlog, not stranded"
        return tuple(dataclasses.replace(s, detail=detail) if s in tasks else s for s in suspects)
