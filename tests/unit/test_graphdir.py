"""Graphs through graph_dir for processes that serve no HTTP: the request file, graphs of new
suspects, and the files kept; the heap search is replaced by a recorder of what was asked."""

from __future__ import annotations

import json
import logging
import os

from leakwatch.config import Config
from leakwatch.errors import LeakwatchError
from leakwatch.graphdir import GRAPHS_PER_TICK, MAX_GRAPH_FILES, MAX_REQUEST_BYTES, REQUEST_FILE, REQUEST_SETTLE_SECONDS, GraphDir
from leakwatch.model import Suspect
from leakwatch.refgraph import Graph

TYPE = Suspect(kind="type", key="app.Session", unit="objects", current=10, growth_per_second=1, since=0, confidence=0.99)
OTHER = Suspect(kind="type", key="app.Token", unit="objects", current=10, growth_per_second=1, since=0, confidence=0.99)
SITE = Suspect(kind="site", key="app/x.py:3", unit="bytes", current=10, growth_per_second=1, since=0, confidence=0.99)


class Finder:
    def __init__(self) -> None:
        self.asked: list[str] = []

    def __call__(self, target: str) -> Graph:
        self.asked.append(target)
        if target == "not a type!":
            raise LeakwatchError("'not a type!' names no type or site")
        return Graph(target=target, instances=3, sampled=3, paths=(), passes=1, seconds=0.01, complete=True)


def request(directory: str, text: str) -> None:
    path = os.path.join(directory, REQUEST_FILE)
    with open(path, "w") as f:
        f.write(text)
    old = os.stat(path).st_mtime - 2 * REQUEST_SETTLE_SECONDS
    os.utime(path, (old, old))


def test_a_request_is_taken_once_settled_and_its_graph_written_whole(tmp_path):
    graphs = GraphDir(Config.from_options(env={}, graph_dir=str(tmp_path)))
    find = Finder()
    (tmp_path / REQUEST_FILE).write_text("app.Session")  # just written: it may still be growing
    graphs.serve((TYPE,), find)
    assert find.asked == [] and (tmp_path / REQUEST_FILE).exists()
    request(str(tmp_path), "app.Session\n")
    graphs.serve((TYPE,), find)
    assert find.asked == ["app.Session"] and not (tmp_path / REQUEST_FILE).exists()
    stem = tmp_path / f"graph-{os.getpid()}-app.Session"
    assert json.loads(stem.with_suffix(".Session.json").read_text())["target"] == "app.Session"
    assert (tmp_path / f"graph-{os.getpid()}-app.Session.dot").read_text().startswith("digraph")


def test_an_empty_request_draws_every_type_suspect_and_a_bad_one_is_logged(tmp_path, caplog):
    graphs = GraphDir(Config.from_options(env={}, graph_dir=str(tmp_path)))
    find = Finder()
    request(str(tmp_path), "")
    graphs.serve((TYPE, SITE, OTHER), find)
    assert find.asked == [TYPE.id, OTHER.id], "by suspect id"
    request(str(tmp_path), "not a type!")
    with caplog.at_level(logging.WARNING, logger="leakwatch.graphdir"):
        graphs.serve((TYPE,), find)
    assert "holds no suspect id, type name or site" in caplog.text and "not a type" not in caplog.text
    assert find.asked == [TYPE.id, OTHER.id], "nothing drawn for it"
    request(str(tmp_path), "app.Missing")
    with caplog.at_level(logging.WARNING, logger="leakwatch.graphdir"):
        graphs.serve((TYPE,), Finder())
    assert "no graph for 'app.Missing'" not in caplog.text  # a well-formed name is drawn or told


def test_a_request_that_is_a_link_is_never_followed_nor_its_target_told(tmp_path, caplog):
    secret = tmp_path / "secret.txt"
    secret.write_text("app.Session")  # a target that would even parse
    graphs = GraphDir(Config.from_options(env={}, graph_dir=str(tmp_path / "graphs")))
    os.mkdir(tmp_path / "graphs")
    link = tmp_path / "graphs" / REQUEST_FILE
    os.symlink(secret, link)
    old = os.lstat(link).st_mtime - 2 * REQUEST_SETTLE_SECONDS
    os.utime(link, (old, old), follow_symlinks=False)
    find = Finder()
    with caplog.at_level(logging.WARNING, logger="leakwatch.graphdir"):
        graphs.serve((TYPE,), find)
    assert find.asked == [] and "not a regular file" in caplog.text and "Session" not in caplog.text
    assert secret.read_text() == "app.Session" and not link.exists()


def test_pruning_touches_only_the_graphs_it_wrote(tmp_path):
    mine = [tmp_path / f"graph-mine-{i}.png" for i in range(45)]  # the application's own files
    for path in mine:
        path.write_bytes(b"png")
        os.utime(path, (1, 1))  # older than any graph
    graphs = GraphDir(Config.from_options(env={}, graph_dir=str(tmp_path)))
    for i in range(MAX_GRAPH_FILES // 2 + 3):
        request(str(tmp_path), f"app.T{i}")
        graphs.serve((), Finder())
    assert all(path.exists() for path in mine)
    assert len(list(tmp_path.glob(f"graph-{os.getpid()}-*"))) == MAX_GRAPH_FILES


def test_each_new_type_suspect_is_drawn_once_when_asked_to(tmp_path):
    graphs = GraphDir(Config.from_options(env={}, graph_dir=str(tmp_path), graph_on_suspect=True))
    find = Finder()
    for _ in range(3):
        graphs.serve((SITE, TYPE, OTHER), find)  # a site is drawn only while traced
    assert find.asked == [TYPE.id, OTHER.id], "one a tick, each once"


def test_only_the_newest_graph_files_are_kept(tmp_path):
    graphs = GraphDir(Config.from_options(env={}, graph_dir=str(tmp_path)))
    for i in range(MAX_GRAPH_FILES // 2 + 5):
        request(str(tmp_path), f"app.T{i}")
        graphs.serve((), Finder())
        for name in os.listdir(tmp_path):  # distinct times, oldest first
            if name.startswith(f"graph-{os.getpid()}-app.T{i}."):
                os.utime(tmp_path / name, (1000 + i, 1000 + i))
    names = sorted(os.listdir(tmp_path))
    assert len(names) == MAX_GRAPH_FILES
    assert f"graph-{os.getpid()}-app.T0.json" not in names and f"graph-{os.getpid()}-app.T24.json" in names


def test_graphs_beyond_a_ticks_share_are_drawn_on_the_next_ticks(tmp_path):
    many = [
        Suspect(kind="type", key=f"app.T{i}", unit="objects", current=10, growth_per_second=1, since=0, confidence=0.99)
        for i in range(GRAPHS_PER_TICK + 2)
    ]
    graphs = GraphDir(Config.from_options(env={}, graph_dir=str(tmp_path), graph_on_suspect=True))
    find = Finder()
    request(str(tmp_path), "")  # every type suspect
    graphs.serve(many, find)
    assert len(find.asked) == GRAPHS_PER_TICK
    graphs.serve(many, find)
    graphs.serve(many, find)
    assert sorted(find.asked) == sorted(s.id for s in many), "each drawn once, none left out"


def test_a_request_longer_than_allowed_is_ignored_not_cut(tmp_path, caplog):
    graphs = GraphDir(Config.from_options(env={}, graph_dir=str(tmp_path)))
    find = Finder()
    request(str(tmp_path), "app." + "T" * MAX_REQUEST_BYTES)  # its first bytes would parse
    with caplog.at_level(logging.WARNING, logger="leakwatch.graphdir"):
        graphs.serve((), find)
    assert find.asked == [] and f"at most {MAX_REQUEST_BYTES} bytes" in caplog.text
