"""Pre-fork roles, worker slots and the shared report directory, with real locks and real files."""

from __future__ import annotations

import dataclasses
import json
import os
import subprocess
import tempfile
import threading
import time

import pytest

from leakwatch.config import Config
from leakwatch.errors import LeakwatchError
from leakwatch.exporters.prometheus import LeakwatchCollector
from leakwatch.model import Report, Suspect
from leakwatch.prefork import graphs, roles, slots
from leakwatch.prefork.member import Membership
from leakwatch.prefork.merge import merged_report, suspects_document, workers_of
from leakwatch.prefork.roles import program_of
from leakwatch.prefork.slots import Slot, live_reports


def report(samples: int, *keys: str) -> Report:
    suspects = tuple(
        Suspect(kind="type", key=k, unit="objects", current=10, growth_per_second=1, since=0, confidence=0.99) for k in keys
    )
    return Report(time=1.0, samples=samples, suspects=suspects)


def test_slots_are_the_lowest_free_numbers_and_come_back_when_released(tmp_path):
    a, b = Slot.claim(str(tmp_path)), Slot.claim(str(tmp_path))
    assert (a.number, b.number) == (0, 1)
    a.release()
    c = Slot.claim(str(tmp_path))
    assert c.number == 0
    with pytest.raises(OSError, match="all 2 worker slots"):
        Slot.claim(str(tmp_path), limit=2)
    b.release()
    c.release()
    c.release()  # idempotent


def test_live_reports_drop_a_dead_workers_file(tmp_path):
    live = Slot.claim(str(tmp_path))
    live.publish(report(5, "app.Session"))
    # A worker that died: its report is there, nobody holds its lock.
    (tmp_path / "slot-7.lock").write_text("")
    (tmp_path / "worker-7.json").write_text(json.dumps({"pid": 1, "report": report(3).to_dict()}))
    (tmp_path / "worker-8.json").write_text("{not json")  # no lock file either
    (found,) = live_reports(str(tmp_path))
    assert (found.slot, found.pid, found.report.samples) == (0, os.getpid(), 5)
    assert found.report.suspects[0].key == "app.Session"
    assert not (tmp_path / "worker-7.json").exists() and not (tmp_path / "worker-8.json").exists()
    live.release()
    assert live_reports(str(tmp_path)) == [] and not (tmp_path / "worker-0.json").exists()


def test_a_new_claim_withdraws_what_the_slots_last_holder_left(tmp_path):
    (tmp_path / "worker-0.json").write_text(json.dumps({"pid": 1, "report": report(9).to_dict()}))
    slot = Slot.claim(str(tmp_path))
    assert live_reports(str(tmp_path)) == []  # not the dead worker's report under our number
    slot.release()


@pytest.mark.parametrize(
    ("argv", "program"),
    [
        (["python", "-m", "gunicorn", "-w", "2", "app:app"], ("gunicorn", ["-w", "2", "app:app"])),
        (["python", "/venv/bin/gunicorn", "app:app"], ("gunicorn", ["app:app"])),
        (["python", "-X", "dev", "-mgunicorn.app.wsgiapp", "x"], ("gunicorn", ["x"])),
        (["python", "-c", "pass"], ("", [])),
        (["python"], ("", [])),
    ],
)
def test_program_of_a_command_line(argv, program):
    assert program_of(argv) == program


SHELL = ["/bin/bash"]
GUNICORN = ["python", "/venv/bin/gunicorn", "-w", "2", "app:app"]
SPAWNED = ["python", "-c", "from multiprocessing.spawn import spawn_main; spawn_main(tracker_fd=5)"]


def role(argv: list[str], parent: list[str] = SHELL, env: dict[str, str] | None = None, **options: object) -> str:
    env = env or {}
    return roles.role(Config.from_options(env=env, **options), argv, env, parent)


def test_masters_are_known_by_their_command_line():
    assert role(GUNICORN) == "master"
    assert role(["python", "-m", "uvicorn", "--workers", "2", "a:b"]) == "master"
    assert role(["python", "-m", "uvicorn", "--workers=3", "a:b"]) == "master"
    assert role(["python", "/venv/bin/fastapi", "run", "--workers", "2", "main.py"]) == "master"
    assert role(["python", "-m", "uvicorn", "a:b"], env={"WEB_CONCURRENCY": "2"}) == "master", "uvicorn reads it too"
    assert role(["python", "-m", "uvicorn", "--workers", "1", "a:b"]) == "single"
    assert role(["python", "-m", "uvicorn", "a:b"]) == "single"
    assert role(GUNICORN, prefork="off") == "single"
    assert role(["python", "app.py"], prefork="master") == "master"


def test_workers_of_a_master_without_leakwatch_are_siblings():
    # Forked by gunicorn (the master's own command line), also as setproctitle renames it.
    assert role(GUNICORN, parent=GUNICORN) == "sibling"
    assert role(GUNICORN, parent=["gunicorn: master [app:app]"]) == "sibling"
    # Spawned by uvicorn's or fastapi's supervisor.
    assert role(SPAWNED, parent=["python", "-m", "uvicorn", "--workers", "2", "a:b"]) == "sibling"
    assert role(SPAWNED, parent=["python", "/venv/bin/fastapi", "run", "main.py"], env={"WEB_CONCURRENCY": "4"}) == "sibling"
    assert role(SPAWNED, parent=SHELL) == "single"
    assert role(GUNICORN, parent=GUNICORN, prefork="off") == "single"


def test_a_worker_publishes_where_its_master_serves(tmp_path):
    (tmp_path / slots.MASTER_FILE).write_text(str(os.getppid()))
    workers_dir = str(tmp_path)
    # Forked or spawned by a leakwatch master, whatever the command line says.
    assert role(GUNICORN, parent=GUNICORN, workers_dir=workers_dir) == "worker"
    assert role(SPAWNED, workers_dir=workers_dir) == "worker"
    # A gunicorn master re-executed by USR2 is its predecessor's child with its environment:
    # GUNICORN_PID names the predecessor, and it is a master still.
    reexecuted = {"GUNICORN_PID": str(os.getppid())}
    assert role(GUNICORN, parent=GUNICORN, env=reexecuted, workers_dir=workers_dir) == "master"
    # Independent workers told where to publish (uWSGI's, for `leakwatch serve`).
    assert role(SPAWNED, workers_dir="/tmp/elsewhere") == "worker"


def test_a_directory_another_live_master_holds_is_not_adopted(tmp_path):
    (tmp_path / "master.pid").write_text(str(os.getppid()))
    assert not slots.adopt_directory(str(tmp_path))
    (tmp_path / "master.pid").write_text("999999999")  # no such process
    assert slots.adopt_directory(str(tmp_path))
    assert (tmp_path / "master.pid").read_text() == str(os.getpid())


class Master:
    """A report source as a pre-fork master is one: the collector and server ask it for its workers."""

    role = "master"

    def __init__(self, directory: str) -> None:
        self.config = Config.from_options(env={})
        self.directory = directory

    def report(self) -> Report:
        return Report()

    def worker_reports(self) -> list[slots.WorkerReport]:
        return live_reports(self.directory)


def test_the_collector_labels_each_live_workers_series(tmp_path):
    first, second = Slot.claim(str(tmp_path)), Slot.claim(str(tmp_path))
    first.publish(report(4, "app.Session"))
    second.publish(report(6))
    families = {f.name: f for f in LeakwatchCollector(Master(str(tmp_path))).collect()}
    assert [s.value for s in families["leakwatch_workers"].samples] == [2]
    ticks = {s.labels["worker"]: s.value for s in families["leakwatch_ticks"].samples if s.name == "leakwatch_ticks_total"}
    assert ticks == {"0": 4, "1": 6}
    (suspect,) = families["leakwatch_suspect_objects"].samples
    sid = suspect.labels["id"]
    assert suspect.labels == {"worker": "0", "kind": "type", "key": "app.Session", "id": sid, "leak": sid}
    first.release()
    families = {f.name: f for f in LeakwatchCollector(Master(str(tmp_path))).collect()}
    assert {s.labels["worker"] for s in families["leakwatch_ticks"].samples} == {"1"}
    second.release()


def test_multiprocessing_helpers_are_left_alone():
    assert roles.is_helper_process(["python", "-B", "-c", "from multiprocessing.resource_tracker import main;main(7)"])
    assert roles.is_helper_process(["python", "-c", "from multiprocessing.forkserver import main; main(3)"])
    assert not roles.is_helper_process(["python", "-c", "from multiprocessing.spawn import spawn_main; spawn_main()"])
    assert not roles.is_helper_process(["python", "app.py", "-c"])


def limited(samples: int, rss: float, growth: float) -> Report:
    return Report(time=1.0, samples=samples, memory_limit=1000.0, process={"rss": rss, "rss_growth": growth})


def test_a_master_projects_the_memory_limit_from_all_its_workers_together(tmp_path):
    first, second = Slot.claim(str(tmp_path)), Slot.claim(str(tmp_path))
    first.publish(limited(3, rss=300.0, growth=2.0))
    second.publish(limited(3, rss=500.0, growth=2.0))
    families = {f.name: f for f in LeakwatchCollector(Master(str(tmp_path))).collect()}
    (eta,) = families["leakwatch_memory_limit_eta_seconds"].samples
    assert eta.labels == {} and eta.value == (1000 - 800) / 4
    second.publish(limited(4, rss=500.0, growth=-6.0))  # shrinking memory: no projection
    families = {f.name: f for f in LeakwatchCollector(Master(str(tmp_path))).collect()}
    assert families["leakwatch_memory_limit_eta_seconds"].samples == []
    first.release()
    second.release()


def test_only_a_master_has_workers_and_its_page_marks_each_workers_suspects(tmp_path):
    single = Config.from_options(env={})
    first = Slot.claim(str(tmp_path))
    first.publish(report(3, "app.Session"))
    master = Master(str(tmp_path))
    assert workers_of(master) == live_reports(str(tmp_path))
    assert workers_of(Report()) is None
    page = merged_report(master)
    assert [s.detail for s in page.suspects] == ["worker 0"]
    document = suspects_document(master)
    assert document["master"]["pid"] == os.getpid()
    assert [(w["worker"], w["samples"]) for w in document["workers"]] == [(0, 3)]

    class Single:
        config = single

        def report(self) -> Report:
            return report(5)

    assert workers_of(Single()) is None and merged_report(Single()).samples == 5
    assert suspects_document(Single())["samples"] == 5
    first.release()


def test_a_master_membership_removes_only_the_directory_it_made(tmp_path, monkeypatch):
    # (set, then removed: so the variable the test makes is removed again at its end)
    monkeypatch.setenv(slots.WORKERS_DIR_ENV, "")
    monkeypatch.delenv(slots.WORKERS_DIR_ENV)
    made = Membership(Config.from_options(env={}, prefork="master"))
    assert made.role == "master" and made.open_master() and made.serving
    assert os.environ[slots.WORKERS_DIR_ENV] == made.directory and os.path.isdir(made.directory)
    made.leave()
    assert not os.path.exists(made.directory)
    assert slots.WORKERS_DIR_ENV not in os.environ, "a master that leaves takes back what it told spawned workers"

    given = Membership(Config.from_options(env={}, prefork="master", workers_dir=str(tmp_path)))
    assert given.open_master() and given.directory == str(tmp_path)
    given.leave()
    assert tmp_path.is_dir()


def test_a_worker_membership_publishes_into_its_slot_and_frees_it(tmp_path):
    member = Membership(Config.from_options(env={}, workers_dir=str(tmp_path)))
    assert member.role == "worker"
    member.join()
    member.publish(report(7))
    (live,) = live_reports(str(tmp_path))
    assert (live.slot, live.pid, live.report.samples) == (0, os.getpid(), 7)
    member.leave()
    assert live_reports(str(tmp_path)) == []
    assert Slot.claim(str(tmp_path)).number == 0, "the slot is free again"


def test_a_serving_masters_forked_child_becomes_a_worker_and_a_workers_child_drops_its_slot(tmp_path, monkeypatch):
    # (set, then removed: so the variable the test makes is removed again at its end)
    monkeypatch.setenv(slots.WORKERS_DIR_ENV, "")
    monkeypatch.delenv(slots.WORKERS_DIR_ENV)
    master = Membership(Config.from_options(env={}, prefork="master", workers_dir=str(tmp_path)))
    assert not master.after_fork_in_child(), "a master that is not serving yet stays one"
    master.open_master()
    assert master.after_fork_in_child()
    assert (master.role, master.serving, master.directory) == ("worker", False, str(tmp_path))
    master.join()
    master.publish(report(1))
    published = os.path.join(str(tmp_path), "worker-0.json")
    assert not master.after_fork_in_child()
    # A child only closes its copy of the slot's lock: it withdraws nothing of the parent's.
    assert os.path.exists(published)
    master.leave()
    assert os.path.exists(published), "leave() after the fork hook does not touch the parent's slot"


def test_siblings_share_a_private_directory_named_by_their_master(monkeypatch, tmp_path):
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    dead = subprocess.Popen(["true"])
    dead.wait()
    abandoned = tmp_path / f"{slots.SIBLINGS_PREFIX}{os.getuid()}-{dead.pid}"
    abandoned.mkdir(mode=0o700)
    directory = slots.sibling_directory(os.getpid())
    assert directory == str(tmp_path / f"{slots.SIBLINGS_PREFIX}{os.getuid()}-{os.getpid()}")
    assert os.stat(directory).st_mode & 0o777 == 0o700
    assert not abandoned.exists(), "a directory whose master has exited is removed"
    assert slots.sibling_directory(os.getpid()) == directory, "the second sibling finds the first's"
    os.chmod(directory, 0o755)  # not private: someone else could have made it
    with pytest.raises(OSError, match="not a private directory"):
        slots.sibling_directory(os.getpid())


def test_a_master_exports_each_workers_rss_and_its_own(tmp_path):
    first, second = Slot.claim(str(tmp_path)), Slot.claim(str(tmp_path))
    first.publish(dataclasses.replace(report(4), process={"rss": 5e7}))
    second.publish(dataclasses.replace(report(6), process={"rss": 7e7}))
    families = {f.name: f for f in LeakwatchCollector(Master(str(tmp_path))).collect()}
    rss = {s.labels["worker"]: s.value for s in families["leakwatch_process_resident_bytes"].samples}
    assert rss["0"] == 5e7 and rss["1"] == 7e7
    assert rss["master"] > 1e6, "the master's own RSS, read at scrape time"
    first.release()  # a recycled worker's series end with it
    families = {f.name: f for f in LeakwatchCollector(Master(str(tmp_path))).collect()}
    assert {s.labels["worker"] for s in families["leakwatch_process_resident_bytes"].samples} == {"1", "master"}
    second.release()


def test_a_master_asks_the_worker_for_a_graph_through_their_directory(tmp_path):
    directory = str(tmp_path)
    served: list[graphs.GraphRequest] = []

    def worker() -> None:  # as the worker's thread does, once a second
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            request = graphs.take(directory, 1)
            if request is not None:
                served.append(request)
                if request.target == "nothing.Here":
                    graphs.answer(directory, 1, request, None, "no live instances of nothing.Here")
                else:
                    graphs.answer(directory, 1, request, b'{"target": "%s"}' % request.target.encode())
                if len(served) == 2:
                    return
            time.sleep(0.01)

    thread = threading.Thread(target=worker)
    thread.start()
    try:
        assert graphs.ask(directory, 1, "app.Session", "json", 4, 9, timeout=5) == b'{"target": "app.Session"}'
        with pytest.raises(LeakwatchError, match="worker 1: no live instances of nothing.Here"):
            graphs.ask(directory, 1, "nothing.Here", "dot", 4, 9, timeout=5)
    finally:
        thread.join(10)
    asked = [(r.target, r.format, r.samples, r.depth) for r in served]
    assert asked == [("app.Session", "json", 4, 9), ("nothing.Here", "dot", 4, 9)]
    assert sorted(os.listdir(directory)) == [], "requests and replies are removed once read"


def test_an_unanswered_graph_request_times_out_and_is_withdrawn(tmp_path):
    with pytest.raises(LeakwatchError, match="did not draw the graph within 0.2 s"):
        graphs.ask(str(tmp_path), 0, "app.Session", "json", 4, 9, timeout=0.2)
    assert os.listdir(tmp_path) == []
    (tmp_path / "graph-request-0.json").write_text('{"not": "a request"}')
    assert graphs.take(str(tmp_path), 0) is None and os.listdir(tmp_path) == []
    (tmp_path / "graph-request-0.json").write_text("x" * 5000)
    assert graphs.take(str(tmp_path), 0) is None and os.listdir(tmp_path) == []


def test_a_reply_that_came_after_its_asker_gave_up_is_removed_by_a_later_ask(tmp_path):
    late = tmp_path / "graph-reply-0-0123456789abcdef.ok"  # the worker answered after the timeout
    late.write_bytes(b"{}")
    recent = tmp_path / "graph-reply-0-fedcba9876543210.ok"
    recent.write_bytes(b"{}")
    old = time.time() - graphs.STALE_REPLY_SECONDS - 1
    os.utime(late, (old, old))
    with pytest.raises(LeakwatchError):
        graphs.ask(str(tmp_path), 0, "app.Session", "json", 4, 9, timeout=0.1)
    assert os.listdir(tmp_path) == [recent.name], "only a reply older than any graph may take is removed"
