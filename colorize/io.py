"""Atomic writes, hashes and run records: the few file rules every stage shares.

Nothing is lost: every file is written to a temp file in the same folder and moved into place with
`os.replace`, so a reader (or a rerun after a kill) sees either the old file or the new one, never half.
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import hashlib
import json
import os
import platform
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

from colorize import __version__

TMP_PREFIX = ".tmp-"

# mkstemp creates files 0600; finished files get the mode a plain open() would give them. The umask is
# read once at import (reading it means setting it, which is not thread-safe later).
_UMASK = os.umask(0o022)
os.umask(_UMASK)
FILE_MODE = 0o666 & ~_UMASK


@contextlib.contextmanager
def atomic_open(path: str | os.PathLike, mode: str = "wb", **kwargs: Any) -> Iterator[IO]:
    """Open a temp file beside `path`; on success fsync and rename it over `path`, on error remove it."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=TMP_PREFIX + path.name + ".", dir=path.parent)
    try:
        os.fchmod(fd, FILE_MODE)
        with os.fdopen(fd, mode, **kwargs) as fh:
            yield fh
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> None:
    with atomic_open(path, "wb") as fh:
        fh.write(data)


def atomic_write_text(path: str | os.PathLike, text: str) -> None:
    with atomic_open(path, "w", encoding="utf-8", newline="\n") as fh:
        fh.write(text)


def dumps_json(obj: Any) -> str:
    """Stable JSON (sorted keys, fixed indent) so the same content is the same bytes."""
    return json.dumps(obj, indent=2, sort_keys=True, ensure_ascii=False, default=_json_default) + "\n"


def atomic_write_json(path: str | os.PathLike, obj: Any) -> None:
    atomic_write_text(path, dumps_json(obj))


def _json_default(obj: Any) -> Any:
    if isinstance(obj, Path):
        return str(obj)
    if hasattr(obj, "tolist"):  # numpy scalars and arrays
        return obj.tolist()
    if hasattr(obj, "__dataclass_fields__"):
        import dataclasses

        return dataclasses.asdict(obj)
    raise TypeError(f"not JSON serialisable: {type(obj).__name__}")


def read_json(path: str | os.PathLike) -> Any:
    with open(path, encoding="utf-8") as fh:
        return json.load(fh)


def read_folder_record(folder: str | os.PathLike, record: str, not_ours: str, fix: str) -> dict[str, Any] | None:
    """The JSON record that marks `folder` as one of ours, or None when the folder is new or empty.

    A non-empty folder without a readable dict record is someone else's: refuse it rather than
    overwrite it (`ColorizeError(f"{folder} exists and is not {not_ours}", fix)`).
    """
    folder = Path(folder)
    if not (folder.exists() and any(folder.iterdir())):
        return None
    try:
        data = read_json(folder / record)
    except (OSError, ValueError):  # missing, unreadable or not JSON (UnicodeDecodeError is a ValueError)
        data = None
    if not isinstance(data, dict):
        from colorize.errors import ColorizeError

        raise ColorizeError(f"{folder} exists and is not {not_ours}", fix)
    return data


def sha256_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def sha256_file(path: str | os.PathLike, chunk: int = 1 << 20) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(chunk):
            h.update(block)
    return h.hexdigest()


def remove_stale_temps(folder: str | os.PathLike) -> int:
    """Delete temp files a killed run left behind in `folder` (not recursive); returns how many."""
    n = 0
    folder = Path(folder)
    if folder.is_dir():
        for p in folder.glob(TMP_PREFIX + "*"):
            with contextlib.suppress(FileNotFoundError):
                p.unlink()
                n += 1
    return n


def utc_now() -> str:
    return _dt.datetime.now(_dt.timezone.utc).replace(microsecond=0).isoformat().replace("+00:00", "Z")


def write_run_record(
    path: str | os.PathLike,
    command: str,
    params: dict[str, Any],
    counts: dict[str, Any] | None = None,
    timings: dict[str, float] | None = None,
    **extra: Any,
) -> dict[str, Any]:
    """Write the machine-readable record of one run (what ran, parameters, counts, timings, version)."""
    record: dict[str, Any] = {
        "schema": "colorize.run/1",
        "command": command,
        "tool_version": __version__,
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "finished_at": utc_now(),
        "params": params,
        "counts": counts or {},
        "timings_s": {k: round(float(v), 4) for k, v in (timings or {}).items()},
    }
    record.update(extra)
    atomic_write_json(path, record)
    return record
