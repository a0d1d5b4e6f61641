"""The watcher's thread, lifecycle and safety, with real threads and processes."""

from __future__ import annotations

import gc
import json
import logging
import os
import subprocess
import sys
import textwrap
import threading
import time
import weakref

import pytest

import leakwatch
from leakwatch.testing import FakeClock
from leakwatch.watcher import THREAD_NAME, Watcher

from .conftest import noise, wait_for

FAST = dict(interval=0.05, warmup=0.0, window=1.0, trace_window=0.5, log_suspects=False)


def leakwatch_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name == THREAD_NAME]


def test_start_runs_a_named_daemon_thread_and_stop_ends_it():
    with Watcher(**FAST) as w:
        assert w.running
        (thread,) = leakwatch_threads()
        assert thread.daemon
        wait_for(lambda: w.report().samples >= 3)
    assert not w.running
    assert leakwatch_threads() == []


def test_stop_is_idempotent_and_bounded():
    w = Watcher(**FAST).start()
    assert w.stop(timeout=5) is True
    assert w.stop(timeout=5) is True
    assert Watcher(**FAST).stop() is True  # never started


def test_sample_now_runs_on_the_callers_thread_without_a_thread():
    w = Watcher(**FAST)
    report = w.sample_now()
    assert report.samples == 1
    assert report.durations["census"] > 0
    assert leakwatch_threads() == []


def test_disabled_watcher_never_samples():
    w = Watcher(enabled=False, interval=0.05, window=1, trace_window=0.5).start()
    assert not w.running
    assert w.report().samples == 0


def test_module_level_start_returns_the_running_watcher_and_warns_on_other_options(caplog):
    try:
        first = leakwatch.start(**FAST)
        assert leakwatch.start(**FAST) is first
        with caplog.at_level(logging.WARNING, logger="leakwatch.api"):
            assert leakwatch.start(**{**FAST, "interval": 0.1}) is first
        assert "already running" in caplog.text
        wait_for(lambda: first.report().samples >= 2)
        assert leakwatch.suspects() == first.suspects()
    finally:
        assert leakwatch.stop(timeout=5)
    assert leakwatch.suspects() == []
    assert leakwatch_threads() == []


def test_a_stopped_watcher_is_garbage_collected():
    def run_and_stop() -> weakref.ref[Watcher]:
        w = Watcher(**FAST).start()
        wait_for(lambda: w.report().samples >= 2)
        w.stop()
        return weakref.ref(w)

    ref = run_and_stop()
    gc.collect()
    assert ref() is None


def test_a_failing_probe_is_counted_and_the_others_go_on(monkeypatch, caplog):
    w = Watcher(**FAST)

    def broken(*args, **kwargs):
        raise RuntimeError("probe exploded")

    monkeypatch.setattr(w._sampler.census, "read", broken)
    with caplog.at_level(logging.WARNING, logger="leakwatch.sampler"):
        w.sample_now()
        report = w.sample_now()
    assert report.errors == {"census": 2}
    assert "rss" in w._pipeline.history.kind("process")
    warnings = [r for r in caplog.records if r.levelno >= logging.WARNING and "probe" in r.getMessage()]
    assert len(warnings) == 1  # logged once with its traceback, not every tick


def test_a_failing_tick_does_not_kill_the_thread(monkeypatch):
    w = Watcher(**FAST)
    calls = {"n": 0}
    real = w._tick

    def flaky():
        calls["n"] += 1
        if calls["n"] <= 2:
            raise RuntimeError("bad tick")
        return real()

    monkeypatch.setattr(w, "_tick", flaky)
    with w:
        wait_for(lambda: w.report().samples >= 2)
    assert calls["n"] >= 4


def test_finds_a_leak_in_its_own_process():
    class Leaky:
        pass

    hoard: list[Leaky] = []
    stop = threading.Event()

    def leak() -> None:
        while not stop.wait(0.002):
            hoard.extend(Leaky() for _ in range(5))

    worker = threading.Thread(target=leak, daemon=True)
    worker.start()
    w = Watcher(interval=0.05, warmup=0.2, window=1.5, trace_window=0.6, log_suspects=False)
    try:
        with w:
            suspect = wait_for(lambda: [s for s in w.suspects() if s.key.endswith("Leaky")], timeout=30)
    finally:
        stop.set()
        worker.join()
    (s,) = suspect
    assert s.kind == "type" and s.unit == "objects" and s.growth_per_second > 100


def test_own_memory_stays_flat_over_many_ticks():
    """History, detector and process probe under tracemalloc: nothing accumulates."""
    import tracemalloc

    w = Watcher(interval=0.05, warmup=0.0, window=1.0, trace_window=0.5, tracemalloc="off", census=False, log_suspects=False)
    for _ in range(300):
        w.sample_now()
    tracemalloc.start()
    try:
        for _ in range(300):
            w.sample_now()
        first, _ = tracemalloc.get_traced_memory()
        for _ in range(3000):
            w.sample_now()
        second, _ = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert second - first < 16 * 1024


def test_census_ticks_keep_history_bounded():
    w = Watcher(interval=0.05, warmup=0.0, window=1.0, trace_window=0.5, tracemalloc="off", log_suspects=False)
    for _ in range(500):
        w.sample_now()
    blocks = sys.getallocatedblocks()
    for _ in range(1000):
        w.sample_now()
    late = w.report()
    assert late.series <= w.config.max_series + 8
    # Series that are new (types this process creates later, pytest's, replacing the smallest)
    # fill up to history_points; none holds more: three arrays of 8-byte values.
    assert late.history_bytes <= late.series * 3 * 8 * max(8, w.config.history_points)
    assert sys.getallocatedblocks() - blocks < 2000


def run_child(python: str, code: str, env: dict[str, str], timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [python, "-X", "dev", "-c", textwrap.dedent(code)], env=env, capture_output=True, text=True, timeout=timeout
    )


def test_process_exits_promptly_and_silently_with_a_running_watcher(python, subprocess_env):
    code = """
        import leakwatch, time
        w = leakwatch.start(interval=0.01, window=1, trace_window=0.5, warmup=0)
        time.sleep(0.3)
        print("samples", w.report().samples)
    """
    for _ in range(5):
        result = run_child(python, code, subprocess_env, timeout=20)
        assert result.returncode == 0
        assert noise(result.stderr) == []
        assert int(result.stdout.split()[1]) > 3


def test_bad_environment_value_warns_and_the_host_runs_on(python, subprocess_env):
    env = {**subprocess_env, "LEAKWATCH_INTERVAL": "soon"}
    code = """
        import logging; logging.basicConfig()
        import leakwatch
        w = leakwatch.start(window=300)
        print("interval", w.config.interval, w.running)
        leakwatch.stop()
    """
    result = run_child(python, code, env)
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["interval", "5.0", "True"]
    assert "LEAKWATCH_INTERVAL='soon'" in result.stderr


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork")
def test_watcher_runs_again_in_a_forked_child(python, subprocess_env):
    code = """
        import os, time, threading, leakwatch
        w = leakwatch.start(interval=0.02, window=1, trace_window=0.5, warmup=0)
        time.sleep(0.1)
        pid = os.fork()
        if pid == 0:
            before = w.report().samples
            deadline = time.time() + 10
            while w.report().samples < before + 3 and time.time() < deadline:
                time.sleep(0.01)
            names = [t.name for t in threading.enumerate()]
            os._exit(0 if w.running and "leakwatch" in names else 3)
        _, status = os.waitpid(pid, 0)
        print("child", os.waitstatus_to_exitcode(status))
    """
    result = run_child(python, code, subprocess_env)
    assert result.stdout.strip() == "child 0", result.stderr


def test_report_file_is_kept_current_while_suspects_change(tmp_path):
    path = tmp_path / "report.json"

    class Hoarded:
        pass

    hoard = []
    clock = FakeClock()
    w = Watcher(clock=clock, interval=0.05, warmup=0.0, window=1.0, trace_window=0.5, log_suspects=False, report_file=str(path))
    keys: list[str] = []
    for _ in range(200):
        hoard.extend(Hoarded() for _ in range(50))
        report = w.sample_now()
        clock.advance(0.05)
        written = json.loads(path.read_text())
        assert written["samples"] == report.samples, "the file holds every tick's report"
        keys = [s["key"] for s in written["suspects"]]
        if keys:
            break
    assert any(k.endswith("Hoarded") for k in keys)


def test_stop_from_the_watchers_own_thread_does_not_deadlock():
    w = Watcher(**FAST)
    stopped_from_inside = threading.Event()
    real_tick = w._tick

    def tick_then_stop():
        report = real_tick()
        if threading.current_thread().name == THREAD_NAME:
            w.stop()  # as a logging handler or callback on this thread might
            stopped_from_inside.set()
        return report

    w._tick = tick_then_stop  # type: ignore[method-assign]
    w.start()
    wait_for(stopped_from_inside.is_set, timeout=10)
    wait_for(lambda: not w.running, timeout=10)
    assert w.sample_now().samples >= 2  # the tick lock is free again


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork")
def test_fork_in_the_middle_of_a_census_pins_nothing_in_the_child(python, subprocess_env):
    code = """
        import gc, os, threading, time, weakref
        from leakwatch.watcher import Watcher
        class Payload: pass
        heap = [object() for _ in range(300_000)]  # a census that takes a while
        w = Watcher(interval=0.01, window=1, trace_window=0.5, warmup=0, tracemalloc="off").start()
        failures = 0
        for _ in range(20):
            victim = Payload(); ref = weakref.ref(victim)
            time.sleep(0.013)  # land inside a tick now and then
            del victim
            forked_at = time.monotonic()
            pid = os.fork()
            if pid == 0:
                gc.collect()
                # The child's watcher starts afresh: no more ticks than its own time allows
                # (a busy machine may let it tick once or twice before this line).
                ticks = 1 + (time.monotonic() - forked_at) / 0.01
                os._exit(0 if ref() is None and w.report().samples <= ticks else 1)
            _, status = os.waitpid(pid, 0)
            failures += os.waitstatus_to_exitcode(status) != 0
        print("failures", failures)
    """
    result = run_child(python, code, subprocess_env, timeout=120)
    assert result.stdout.split() == ["failures", "0"], result.stderr


EXIT_CASES = {
    "plain": "w = leakwatch.start(interval=0.01, warmup=0, window=1, trace_window=0.2)",
    "serving": "w = leakwatch.start(interval=0.01, warmup=0, window=1, trace_window=0.2, port=0, graphs=True)",
    # A handler on stderr, as an app's logging would be, with suspects logged while it exits.
    "logging": "import logging, sys; logging.basicConfig(stream=sys.stderr, level=logging.CRITICAL)\n"
    "w = leakwatch.start(interval=0.01, warmup=0, window=0.5, trace_window=0.2)",
    # log_suspects off: a leak confirmed before the exit would be logged to stderr, rightly.
    "leaking": "w = leakwatch.start(interval=0.01, warmup=0, window=0.5, trace_window=0.2, tracemalloc='always',"
    " log_suspects=False)\n"
    "kept = [[object()] for _ in range(200_000)]",
    # Stopped, then started again by an atexit hook while the interpreter shuts down.
    "started_at_exit": "import atexit; w = leakwatch.start(interval=0.01, warmup=0, window=1); leakwatch.stop()\n"
    "atexit.register(lambda: leakwatch.start(interval=0.01, warmup=0, window=1))",
}


def test_200_start_and_exit_cycles_under_dev_mode_are_silent(python, subprocess_env):
    # -X dev turns on ResourceWarning and asyncio/threading debug checks; each program exits
    # at a different moment of a tick (the sleep varies), with the watcher still running.
    def one(i: int) -> tuple[str, int, str]:
        case = list(EXIT_CASES)[i % len(EXIT_CASES)]
        code = f"import time, leakwatch\n{EXIT_CASES[case]}\ntime.sleep({(i % 13) * 0.003})\n"
        result = subprocess.run([python, "-X", "dev", "-c", code], env=subprocess_env, capture_output=True, text=True, timeout=60)
        return case, result.returncode, result.stderr

    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(max_workers=4) as pool:
        results = list(pool.map(one, range(200)))
    noisy = [(case, code, err[-500:]) for case, code, err in results if code != 0 or noise(err)]
    assert not noisy, noisy[:3]


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork")
def test_fork_while_the_watcher_holds_its_locks_never_deadlocks_the_child(python, subprocess_env):
    # The parent's watcher ticks back to back over a big heap while another thread logs, so
    # forks land while the tick lock, the history and the logging locks are held; every
    # child must sample, log and start its own thread within the alarm.
    code = """
        import logging, os, signal, sys, threading, time
        from leakwatch.watcher import Watcher
        logging.basicConfig(stream=sys.stdout, level=logging.INFO, format="%(message)s")
        heap = [[i] for i in range(300_000)]
        w = Watcher(interval=0.01, window=1, trace_window=0.5, warmup=0, tracemalloc="off", log_suspects=False).start()
        def chatter():
            while True:
                logging.getLogger("app").debug("busy")
        threading.Thread(target=chatter, daemon=True).start()
        failures = 0
        for i in range(30):
            time.sleep(0.007 * (i % 5))
            pid = os.fork()
            if pid == 0:
                signal.alarm(20)  # a deadlock ends the child with SIGALRM
                w.sample_now()
                before = w.report().samples
                while w.report().samples < before + 2:
                    time.sleep(0.005)
                logging.getLogger("child").debug("done")
                os._exit(0 if w.running else 1)
            _, status = os.waitpid(pid, 0)
            failures += os.waitstatus_to_exitcode(status) != 0
        print("failures", failures)
    """
    result = run_child(python, code, subprocess_env, timeout=300)
    assert result.stdout.split()[-2:] == ["failures", "0"], result.stdout[-500:] + result.stderr[-2000:]


def test_the_census_never_breaks_a_tuple_another_thread_is_building():
    # tuple(generator) fills a gc-tracked tuple and resizes it, which fails with SystemError
    # if anything else holds a reference to it meanwhile (CPython #39117); a census that held
    # the list of every object while other threads ran did, whenever a tick met such a tuple.
    failures: list[BaseException] = []
    stop = threading.Event()

    def slow_items():
        for i in range(40):
            if i % 8 == 0:
                time.sleep(0)  # hand the GIL over mid-build, as any real generator may
            yield i

    def build():
        while not stop.is_set():
            try:
                tuple(slow_items())
            except SystemError as e:
                failures.append(e)
                return

    heap = [[i] for i in range(200_000)]  # a census long enough to overlap many builds
    builders = [threading.Thread(target=build, daemon=True) for _ in range(2)]
    w = Watcher(interval=0.01, warmup=0.0, window=1.0, trace_window=0.5, tracemalloc="off", log_suspects=False)
    for b in builders:
        b.start()
    try:
        for _ in range(40):
            w.sample_now()
    finally:
        stop.set()
        for b in builders:
            b.join(10)
    assert not failures, failures[0]
    assert len(heap) == 200_000


def test_stranded_tasks_keep_their_verdict_while_every_task_is_finishing():
    """asyncio.run cancels every pending task at exit, and a tick can land while they are all
    done but still held (by gather): the check then samples none, which must not erase what
    the last check found."""
    import asyncio

    loop = asyncio.new_event_loop()
    stranded: set[asyncio.Task] = set()

    async def wait_forever() -> None:
        await loop.create_future()  # nothing else holds it: nothing can ever set it

    def strand(n: int) -> None:
        for _ in range(n):
            stranded.add(loop.create_task(wait_forever()))
        loop.run_until_complete(asyncio.sleep(0))  # each task runs until it waits

    def task_detail(report) -> str | None:
        return next((s.detail for s in report.suspects if s.key in ("_asyncio.Task", "asyncio.tasks.Task")), None)

    clock = FakeClock()
    w = Watcher(clock=clock, **FAST)
    try:
        detail = None
        for _ in range(400):
            strand(20)
            detail = task_detail(w.sample_now())
            clock.advance(0.05)
            if detail:
                break
        assert detail and "can never be woken" in detail, detail
        finishing = list(stranded)
        for task in finishing:
            task.cancel()
        loop.run_until_complete(asyncio.gather(*finishing, return_exceptions=True))
        assert all(t.done() for t in finishing)
        clock.advance(FAST["window"])  # past the next check
        report = w.sample_now()
        assert task_detail(report) == detail
    finally:
        stranded.clear()
        loop.close()


def test_a_tick_that_costs_more_than_cpu_budget_stretches_the_default_interval_and_says_so(caplog):
    w = Watcher(tracemalloc="off", cpu_budget=0.0005)
    with caplog.at_level(logging.INFO, logger="leakwatch.governor"):
        for _ in range(3):
            budget = w.sample_now().budget
    # A census of this test process costs milliseconds: at 0.05% of a core that is many seconds apart.
    assert budget.interval > 5.0, budget
    assert budget.window >= 16 * budget.interval
    told = [r.getMessage() for r in caplog.records if "interval is now" in r.getMessage()]
    assert len(told) == 1 and "cpu_budget 0.05%" in told[0]


def test_an_interval_the_user_set_is_kept_over_budget_and_the_thread_ticks_at_it(caplog):
    w = Watcher(interval=0.02, warmup=0.0, window=1.0, trace_window=0.5, tracemalloc="off", cpu_budget=0.0005)
    with caplog.at_level(logging.INFO, logger="leakwatch.governor"):
        w.start()
        try:
            wait_for(lambda: w.report().samples >= 10, timeout=30)
            budget = w.report().budget
            assert (budget.interval, budget.window) == (0.02, 1.0)
            assert budget.cpu_spend > 0.0005
        finally:
            w.stop()
    warned = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING and r.name == "leakwatch.governor"]
    assert len(warned) == 1 and "the interval option (0.02 s) is used as given" in warned[0]
    assert not any("interval is now" in r.getMessage() for r in caplog.records)


def test_windows_shorter_than_a_tick_run_between_ticks_and_name_the_leaks_line(python, subprocess_env):
    # In a fresh process: this one's heap of earlier tests would slow every tick.
    # trace_budget 1% pays for a fraction of a traced second every few seconds, even for this
    # mostly idle loop: less than the 0.5 s between ticks, so the window must start between them.
    # The credit starts full, paying for one whole 6 s window; attribution takes only what it
    # needs of it. Each Leaky is one or two interpreter blocks, fewer than the 4 per object of a
    # growing type that leave blocks growth to attribution: with a dict payload each, the blocks
    # could pass their own test first on a slow tick and open a whole window for themselves.
    code = """
        import dataclasses, json, sys, time
        from leakwatch.watcher import Watcher

        class Leaky:
            def __init__(self):
                self.n = 1

        hoard = []
        w = Watcher(interval=0.5, warmup=0.0, window=8.0, trace_budget=0.01, log_suspects=False).start()
        deadline = time.monotonic() + 60
        found = first = None
        while time.monotonic() < deadline and (found is None or first is None):
            hoard.extend(Leaky() for _ in range(40))
            sum(len(str(i)) for i in range(300))  # the busy part of the loop
            time.sleep(0.01)
            report = w.report()
            found = found or next((s for s in report.suspects if s.key.endswith("Leaky") and s.sites), None)
            if first is None and report.budget.windows == 1 and report.tracing == "idle":
                first = report.budget.traced_seconds  # the first window, closed
        w.stop()
        print(json.dumps({"sites": list(found.sites) if found else None, "first_window": first,
                          "budget": dataclasses.asdict(w.report().budget)}))
    """
    result = run_child(python, code, subprocess_env, timeout=120)
    assert result.returncode == 0, result.stderr
    out = json.loads(result.stdout.splitlines()[-1])
    leak_line = next(i for i, line in enumerate(textwrap.dedent(code).splitlines(), 1) if "hoard.extend" in line)
    assert out["sites"] and any(site.endswith(f":{leak_line}") for site in out["sites"]), out
    # The first window only attributes the growing type: shorter than a tick. Later ones may be
    # whole windows, for the interpreter blocks the leak also grows.
    assert out["first_window"] is not None and 0 < out["first_window"] < 0.5, out
    # Within the budget, give or take the window the credit starts with (a token bucket, full at
    # start): over a run of seconds, that first window is a visible share of the spend.
    assert out["budget"]["trace_spend"] <= 0.01 * 1.25


def test_a_whole_tracing_window_takes_enough_samples_when_the_interval_is_long(python, subprocess_env):
    # bytes growth, which no type explains: only a whole window of site series can place it. The
    # 1 s interval would give a 4 s window 4 samples; the detector needs 8.
    code = """
        import json, time
        from leakwatch.watcher import Watcher

        kept = []
        w = Watcher(interval=1.0, warmup=0.0, window=16.0, trace_window=4.0, log_suspects=False).start()
        traced, deadline = set(), time.monotonic() + 60
        while time.monotonic() < deadline:
            kept.append(bytes(20_000))
            time.sleep(0.01)
            report = w.report()
            if report.tracing == "window":
                traced.add(report.samples)
            elif traced:
                break
        w.stop()
        print(json.dumps({"traced": len(traced), "windows": w.report().budget.windows}))
    """
    result = run_child(python, code, subprocess_env, timeout=120)
    assert result.returncode == 0, result.stderr
    out = json.loads(result.stdout.splitlines()[-1])
    assert out["windows"] >= 1, out
    assert out["traced"] >= 8, out


def test_a_type_suspect_reports_the_memory_its_objects_hold(python, subprocess_env, tmp_path):
    # Each Session holds a 10 kB payload: the count alone (objects) says nothing of that.
    report_file = tmp_path / "report.json"
    code = f"""
        import json, sys, time
        from leakwatch.watcher import Watcher

        class Session:
            def __init__(self, n):
                self.n = n
                self.payload = bytearray(10_000)

        kept = []
        w = Watcher(interval=0.2, warmup=0.0, window=4.0, tracemalloc="off", log_suspects=False,
                    report_file={str(report_file)!r}).start()
        deadline = time.monotonic() + 60
        found = None
        while time.monotonic() < deadline and found is None:
            kept.extend(Session(i) for i in range(20))
            time.sleep(0.02)
            found = next((s for s in w.report().suspects if s.key.endswith("Session") and s.retained), None)
        w.stop()
        truth = sum(sys.getsizeof(s) + sys.getsizeof(s.__dict__) + sys.getsizeof(s.payload) for s in kept)
        print(json.dumps({{"retained": found and found.to_dict()["retained"], "count": len(kept),
                          "current": found and found.current, "truth": truth}}))
    """
    result = run_child(python, code, subprocess_env, timeout=120)
    assert result.returncode == 0, result.stderr
    out = json.loads(result.stdout.splitlines()[-1])
    retained = out["retained"]
    assert retained is not None, out
    # The estimate follows the count it was scaled to (the count went on growing after it).
    truth_then = out["truth"] * out["current"] / out["count"]
    assert abs(retained["bytes"] - truth_then) <= 0.3 * truth_then, out
    assert retained["samples"] == 32 and retained["seconds"] > 0 and retained["error_bytes"] >= 0
    written = json.loads(report_file.read_text())
    (session,) = [s for s in written["suspects"] if s["key"].endswith("Session")]
    assert session["retained"]["bytes"] > 0


def test_a_leak_allocated_inside_an_installed_library_names_the_users_calling_line(python, subprocess_env, tmp_path):
    # PyYAML (pip-installed) builds the dicts; the application's line keeps them.
    program = tmp_path / "app.py"
    program.write_text(
        textwrap.dedent(
            """
            import json, sys, time
            import yaml
            from leakwatch.watcher import Watcher

            DOC = "name: job\\nsteps: [1, 2, 3]\\nenv: {a: b}\\n"
            kept = []

            def handle():
                kept.append(yaml.safe_load(DOC))  # the leak

            w = Watcher(interval=0.2, warmup=0.0, window=4.0, trace_budget=100.0, log_suspects=False).start()
            deadline = time.monotonic() + 90
            found = None
            while time.monotonic() < deadline and found is None:
                for _ in range(20):
                    handle()
                time.sleep(0.02)
                found = next((s for s in w.report().suspects if s.key == "dict" and s.user_line), None)
            w.stop()
            print(json.dumps(found.to_dict() if found else [s.to_dict() for s in w.report().suspects]))
            """
        )
    )
    result = subprocess.run([python, str(program)], env=subprocess_env, capture_output=True, text=True, timeout=150)
    assert result.returncode == 0, result.stderr
    found = json.loads(result.stdout.splitlines()[-1])
    assert isinstance(found, dict), found
    leak_line = next(i for i, line in enumerate(program.read_text().splitlines(), 1) if "# the leak" in line)
    assert found["user_line"] == f"{program}:{leak_line}", found
    # The allocating line is PyYAML's own, where the dicts are made.
    assert found["sites"] and f"{os.sep}yaml{os.sep}" in found["sites"][0], found
    assert "leakwatch" not in found["user_line"] and not any(f"{os.sep}leakwatch{os.sep}" in s for s in found["sites"])


def test_memory_crossing_its_limit_leaves_a_post_mortem_naming_the_leak(python, subprocess_env, tmp_path):
    # A small limit (the memory_limit option stands in for the container's): the process leaks
    # until it crosses 90% of it, and leaves the evidence before it "dies" (exits) there.
    out_dir = tmp_path / "postmortem"
    code = f"""
        import glob, json, os, time, psutil
        from leakwatch.watcher import Watcher

        class Session:
            def __init__(self, n):
                self.n = n
                self.payload = bytearray(10_000)

        limit = psutil.Process().memory_info().rss + 160 * 1024**2
        w = Watcher(interval=0.2, warmup=0.0, window=4.0, tracemalloc="off", log_suspects=False,
                    memory_limit=limit, postmortem_dir={str(out_dir)!r}).start()
        kept, deadline = [], time.monotonic() + 90
        while time.monotonic() < deadline and not glob.glob({str(out_dir / "*-report.json")!r}):
            if psutil.Process().memory_info().rss < 0.95 * limit:
                kept.extend(Session(i) for i in range(10))
            time.sleep(0.01)
        settle = time.monotonic() + 5  # the report counts it once the files are whole
        while w.report().postmortems == 0 and time.monotonic() < settle:
            time.sleep(0.01)
        print(json.dumps({{"postmortems": w.report().postmortems, "limit": limit}}))
        os._exit(0)  # as an OOM kill would: no stop(), no atexit
    """
    result = run_child(python, code, subprocess_env, timeout=150)
    assert result.returncode == 0, result.stderr
    out = json.loads(result.stdout.splitlines()[-1])
    assert out["postmortems"] == 1, out
    (report_file,) = out_dir.glob("postmortem-*-report.json")
    report = json.loads(report_file.read_text())
    assert report["process"]["rss"] >= 0.9 * out["limit"] and report["memory_limit"] == out["limit"]
    (session,) = [s for s in report["suspects"] if s["key"].endswith("Session")]
    stem = str(report_file).removesuffix("-report.json")
    graph = json.loads(open(f"{stem}-{session['id']}.json").read())
    assert graph["target"].endswith("Session") and graph["instances"] > 0 and graph["paths"]
    assert open(f"{stem}-{session['id']}.dot").read().startswith("digraph")
    assert "post-mortem written to" in result.stderr and "Session" in result.stderr


def test_a_baseline_taken_after_warm_up_is_saved_and_shown_beside_each_type_suspect(python, subprocess_env, tmp_path):
    baseline = tmp_path / "baseline-{pid}.json"
    code = f"""
        import json, time
        from leakwatch.server.page import render_page
        from leakwatch.watcher import Watcher

        class Leaky:
            pass

        kept = []
        w = Watcher(interval=0.2, warmup=1.0, window=4.0, tracemalloc="off", log_suspects=False,
                    baseline_file={str(baseline)!r}).start()
        deadline, found = time.monotonic() + 60, None
        while time.monotonic() < deadline and found is None:
            kept.extend(Leaky() for _ in range(20))
            time.sleep(0.02)
            report = w.report()
            found = next((s for s in report.suspects if s.key.endswith("Leaky") and s.key in report.baseline), None)
        page = render_page(report, w.config)
        w.stop()
        print(json.dumps({{"then": report.baseline.get(found.key) if found else None, "now": found and found.current,
                          "shown": "since the baseline at" in page}}))
    """
    result = run_child(python, code, subprocess_env, timeout=120)
    assert result.returncode == 0, result.stderr
    out = json.loads(result.stdout.splitlines()[-1])
    assert out["then"] is not None and 0 < out["then"] < out["now"] and out["shown"], out
    (saved,) = tmp_path.glob("baseline-*.json")
    doc = json.loads(saved.read_text())
    assert doc["leakwatch_snapshot"] == 1 and doc["types"]["__main__.Leaky"] == out["then"]
