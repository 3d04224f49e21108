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


def test_atomic_write_fsyncs_the_folder_after_the_rename(tmp_path, monkeypatch):
    """Without an fsync of the folder, a power cut after os.replace can bring back the old record."""
    import os
    import stat

    import colorize.io as cio

    seen: list[tuple[bool, bool]] = []
    real_fsync = os.fsync

    def spy(fd):
        seen.append((stat.S_ISDIR(os.fstat(fd).st_mode), (tmp_path / "rec.json").exists()))
        return real_fsync(fd)

    monkeypatch.setattr(cio.os, "fsync", spy)
    atomic_write_json(tmp_path / "rec.json", {"a": 1})
    assert seen == [(False, False), (True, True)]  # the file before the rename, its folder after it


def test_remove_stale_temps_never_follows_a_symlinked_folder_out(tmp_path):
    import os

    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / ".tmp-precious").write_bytes(b"not ours")
    out = tmp_path / "out"
    out.mkdir()
    os.symlink(outside, out / "beach")  # a category folder that leads out of --out
    assert remove_stale_temps(out / "beach") == 0
    assert remove_stale_temps(out / "beach", root=out) == 0  # resolves outside the root: still not followed
    assert (outside / ".tmp-precious").exists()
    # The user's own --out may be a symlink: cleaning it with itself as root is fine.
    os.symlink(outside, tmp_path / "link-out")
    assert remove_stale_temps(tmp_path / "link-out", root=tmp_path / "link-out") == 1


def test_remove_stale_temps_skips_a_bad_entry_and_cleans_the_rest(tmp_path):
    """A folder named like a temp file (or one we cannot remove) must not abort the run being prepared."""
    import os

    (tmp_path / ".tmp-dir").mkdir()
    (tmp_path / ".tmp-dir" / "inside").write_bytes(b"x")
    (tmp_path / ".tmp-a.jpg.1").write_bytes(b"x")
    os.symlink(tmp_path / "nowhere", tmp_path / ".tmp-dangling")
    assert remove_stale_temps(tmp_path) == 2
    assert sorted(p.name for p in tmp_path.iterdir()) == [".tmp-dir"]
    assert (tmp_path / ".tmp-dir" / "inside").exists()


@pytest.mark.timeout(20)
def test_special_files_are_never_opened_as_data(tmp_path):
    """A FIFO named x.jpg blocks a plain open() forever; reading refuses it at once with its kind."""
    import os
    import socket

    from colorize.io import read_regular_bytes

    os.mkfifo(tmp_path / "x.jpg")
    for reader in (read_regular_bytes, sha256_file):
        with pytest.raises(OSError, match="FIFO"):
            reader(tmp_path / "x.jpg")
    sock = socket.socket(socket.AF_UNIX)
    try:
        sock.bind(str(tmp_path / "s.jpg"))
        with pytest.raises(OSError, match="socket"):
            read_regular_bytes(tmp_path / "s.jpg")
    finally:
        sock.close()
    with pytest.raises(OSError, match="character device"):
        read_regular_bytes("/dev/zero")  # would stream without end
    (tmp_path / "big").write_bytes(b"x" * 11)
    with pytest.raises(OSError, match="10 byte cap"):
        read_regular_bytes(tmp_path / "big", max_bytes=10)
    assert read_regular_bytes(tmp_path / "big", max_bytes=11) == b"x" * 11


def test_folder_record_of_another_kind_is_refused_with_exit_2(tmp_path):
    from colorize.errors import UsageError

    atomic_write_json(tmp_path / "manifest.json", {"schema": "colorize.dataset/1", "photos": []})
    with pytest.raises(UsageError, match="another tool's manifest.json") as err:
        read_folder_record(tmp_path, "manifest.json", "a shard folder", "pick another --out", schema="colorize.shards/1")
    assert err.value.exit_code == 2 and "\n" not in err.value.line()
    atomic_write_json(tmp_path / "manifest.json", {"schema": "colorize.shards/1"})
    assert read_folder_record(tmp_path, "manifest.json", "a shard folder", "fix", schema="colorize.shards/1") \
        == {"schema": "colorize.shards/1"}
    (tmp_path / "manifest.json").unlink()
    (tmp_path / "other.txt").write_text("x")
    assert read_folder_record(tmp_path, "manifest.json", "a shard folder", "fix", missing_ok=True) is None
    with pytest.raises(UsageError, match="is a file, not a folder"):  # was a NotADirectoryError traceback
        read_folder_record(tmp_path / "other.txt", "manifest.json", "a shard folder", "fix", missing_ok=True)


@pytest.mark.timeout(30)
def test_read_json_refuses_a_fifo_and_reports_deep_nesting_as_a_value_error(tmp_path):
    """A FIFO named manifest.json blocked fetch for ever; 5,000 nested arrays raised RecursionError."""
    import os

    from colorize.io import read_json

    os.mkfifo(tmp_path / "pipe.json")
    with pytest.raises(OSError, match="FIFO"):
        read_json(tmp_path / "pipe.json")
    (tmp_path / "deep.json").write_text("[" * 5000 + "]" * 5000)
    with pytest.raises(ValueError, match="nested too deeply"):
        read_json(tmp_path / "deep.json")
    (tmp_path / "ok.json").write_text('{"a": [1, "é"]}')
    assert read_json(tmp_path / "ok.json") == {"a": [1, "é"]}
