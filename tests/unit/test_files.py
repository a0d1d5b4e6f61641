"""Files leakwatch writes and reads back: whole, never through a planted link, the owner's
only, and no litter when writing fails."""

from __future__ import annotations

import os
import stat

import pytest

from leakwatch.files import read_small, write_atomically


def test_a_link_planted_at_the_old_temporary_name_is_never_followed(tmp_path):
    victim = tmp_path / "victim"
    victim.write_text("precious")
    report = tmp_path / "report.json"
    os.symlink(victim, f"{report}.{os.getpid()}.tmp")  # where a temporary file used to be made
    write_atomically(str(report), '{"suspects": []}')
    assert victim.read_text() == "precious"
    assert report.read_text() == '{"suspects": []}' and not report.is_symlink()


def test_a_link_at_the_target_is_replaced_not_written_through(tmp_path):
    victim = tmp_path / "victim"
    victim.write_text("precious")
    target = tmp_path / "graph.json"
    os.symlink(victim, target)
    write_atomically(str(target), b"{}")
    assert victim.read_text() == "precious" and target.read_bytes() == b"{}" and not target.is_symlink()


def test_what_it_writes_is_the_owners_only(tmp_path):
    path = tmp_path / "report.json"
    write_atomically(str(path), "x")
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600


def test_a_failed_write_leaves_nothing_behind(tmp_path, monkeypatch):
    def full_disk(src: str, dst: str) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "replace", full_disk)
    with pytest.raises(OSError, match="No space"):
        write_atomically(str(tmp_path / "report.json"), "x" * 1000)
    assert os.listdir(tmp_path) == []


def test_reading_refuses_links_and_what_is_not_a_regular_file_and_stops_at_the_limit(tmp_path):
    plain = tmp_path / "request"
    plain.write_text("a" * 1000)
    assert read_small(str(plain), 10) == b"a" * 10
    link = tmp_path / "link"
    os.symlink(plain, link)
    with pytest.raises(OSError):
        read_small(str(link), 10)
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    with pytest.raises(OSError, match="not a regular file"):
        read_small(str(fifo), 10)
