"""The shared file rules: atomic writes never leave partial files, records are stable JSON."""

from __future__ import annotations

import json

import pytest

from colorize.io import (
    FILE_MODE,
    atomic_open,
    atomic_write_bytes,
    atomic_write_json,
    read_folder_record,
    remove_stale_temps,
    sha256_file,
    write_run_record,
)


def test_atomic_write_replaces_whole_file(tmp_path):
    target = tmp_path / "a.bin"
    atomic_write_bytes(target, b"old")
    atomic_write_bytes(target, b"new contents")
    assert target.read_bytes() == b"new contents"
    assert [p.name for p in tmp_path.iterdir()] == ["a.bin"]


def test_writer_raising_midway_leaves_old_file_and_no_temp(tmp_path):
    target = tmp_path / "a.txt"
    atomic_write_bytes(target, b"complete")
    with pytest.raises(RuntimeError):
        with atomic_open(target, "wb") as fh:
            fh.write(b"half of the new")
            raise RuntimeError("writer died")
    assert target.read_bytes() == b"complete"
    assert [p.name for p in tmp_path.iterdir()] == ["a.txt"]


def test_writer_raising_on_new_file_leaves_nothing(tmp_path):
    target = tmp_path / "sub" / "new.txt"
    with pytest.raises(KeyboardInterrupt):
        with atomic_open(target, "w") as fh:
            fh.write("partial")
            raise KeyboardInterrupt
    assert not target.exists()
    assert list(target.parent.iterdir()) == []


def test_finished_file_is_readable_by_others(tmp_path):
    """mkstemp makes 0600 files; a shared report or dataset must keep the usual umask-based mode."""
    target = tmp_path / "shared.txt"
    atomic_write_bytes(target, b"x")
    assert target.stat().st_mode & 0o777 == FILE_MODE
    assert FILE_MODE & 0o044, "group/others can read under the usual umask"


def test_json_is_stable_bytes(tmp_path):
    a, b = tmp_path / "a.json", tmp_path / "b.json"
    atomic_write_json(a, {"b": 1, "a": [1, 2]})
    atomic_write_json(b, {"a": [1, 2], "b": 1})
    assert a.read_bytes() == b.read_bytes()
    assert sha256_file(a) == sha256_file(b)


def test_run_record_has_what_ran(tmp_path):
    rec = write_run_record(tmp_path / "run.json", "prep", {"seed": 0}, counts={"n": 3}, timings={"total": 1.23456})
    on_disk = json.loads((tmp_path / "run.json").read_text())
    assert on_disk == json.loads(json.dumps(rec))
    assert on_disk["command"] == "prep" and on_disk["counts"] == {"n": 3}
    assert on_disk["timings_s"]["total"] == 1.2346 and on_disk["tool_version"]


def test_remove_stale_temps(tmp_path):
    (tmp_path / ".tmp-x.jpg.abc").write_bytes(b"x")
    (tmp_path / "keep.jpg").write_bytes(b"y")
    assert remove_stale_temps(tmp_path) == 1
    assert [p.name for p in tmp_path.iterdir()] == ["keep.jpg"]


def test_folder_record_new_ours_and_foreign(tmp_path):
    from colorize.errors import ColorizeError

    assert read_folder_record(tmp_path / "new", "rec.json", "a thing", "fix") is None
    assert read_folder_record(tmp_path, "rec.json", "a thing", "fix") is None  # empty folder
    atomic_write_json(tmp_path / "rec.json", {"params": 1})
    assert read_folder_record(tmp_path, "rec.json", "a thing", "fix") == {"params": 1}
    (tmp_path / "rec.json").write_text("[1, 2]")
    with pytest.raises(ColorizeError, match="is not a thing"):
        read_folder_record(tmp_path, "rec.json", "a thing", "fix")
    (tmp_path / "rec.json").write_bytes(b"\xff not json")
    with pytest.raises(ColorizeError, match="is not a thing"):
        read_folder_record(tmp_path, "rec.json", "a thing", "fix")
