"""Atomic writes, hashes and run records: the few file rules every stage shares.

Nothing is lost: every file is written to a temp file in the same folder and moved into place with
`os.replace`, so a reader (or a rerun after a kill) sees either the old file or the new one, never half.
"""

from __future__ import annotations

import contextlib
import csv
import datetime as _dt
import errno
import hashlib
import json
import logging
import os
import platform
import stat
import sys
import tempfile
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import IO, Any

from colorize import __version__
from colorize.errors import ColorizeError, UsageError

log = logging.getLogger(__name__)

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
    with _replace_on_success(Path(tmp), path):
        os.fchmod(fd, FILE_MODE)
        with os.fdopen(fd, mode, **kwargs) as fh:
            yield fh
            fh.flush()
            os.fsync(fh.fileno())


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """A temp file name beside `path` with the same suffix, for writers that take a file name and pick the
    format by its suffix (OpenCV); on success the file is fsynced and renamed over `path`, else removed."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(prefix=TMP_PREFIX + path.name + ".", suffix=path.suffix, dir=path.parent)
    os.close(fd)
    tmp = Path(name)
    with _replace_on_success(tmp, path):
        yield tmp
        os.chmod(tmp, FILE_MODE)
        with open(tmp, "rb+") as fh:
            os.fsync(fh.fileno())


@contextlib.contextmanager
def _replace_on_success(tmp: Path, path: Path) -> Iterator[None]:
    """Rename the finished temp file over `path` (then fsync the folder), or remove it if the body raised."""
    try:
        yield
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
    fsync_dir(path.parent)


def fsync_dir(folder: str | os.PathLike) -> None:
    """Make a rename in `folder` durable: without this, a power cut after `os.replace` can bring back
    the old file (or none) even though the new one was fsynced. Filesystems that cannot fsync a folder
    (some network and Windows ones) are skipped: the rename is still atomic there."""
    try:
        fd = os.open(folder, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError as exc:
        if exc.errno not in (errno.EINVAL, errno.ENOTSUP, errno.EBADF, errno.EACCES):
            raise
    finally:
        os.close(fd)


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


# A cell starting with one of these is run as a formula by spreadsheets (CSV injection, OWASP).
FORMULA_PREFIXES = ("=", "+", "-", "@", "\t", "\r")


def csv_cell(value: str | int | float) -> str:
    """A CSV cell: numbers as `%.6g`, text (names from untrusted data) with a formula prefix defused
    by a leading `'`, as OWASP advises (the csv module's quoting handles commas, quotes and newlines)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        text = str(value)
        return "'" + text if text.startswith(FORMULA_PREFIXES) else text
    return str(value) if isinstance(value, int) else f"{value:.6g}"


def atomic_write_csv(path: str | os.PathLike, rows: Iterable[Sequence[str | int | float]]) -> None:
    """Write rows of cells (see `csv_cell`) as RFC 4180 CSV, atomically.

    CRLF line ends (the RFC's) matter: the csv module quotes a cell holding any line-end character only
    if it is part of the line terminator, so with a bare '\n' a stray '\r' in a name would end the row.
    """
    with atomic_open(path, "w", encoding="utf-8", newline="") as fh:
        writer = csv.writer(fh, lineterminator="\r\n")
        for row in rows:
            writer.writerow([csv_cell(v) for v in row])


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
    """Parse a JSON file; anything wrong with it is an OSError or a ValueError, which callers catch.

    The file is opened with `open_regular`, so a FIFO or a device named manifest.json is refused instead
    of blocking the reader forever. JSON nested deeper than Python's recursion limit (5,000 `[`, a few KB)
    makes the parser raise RecursionError, which no caller expects: it becomes a ValueError.
    """
    with open_regular(path) as fh:
        data = fh.read()
    try:
        return json.loads(data.decode("utf-8"))
    except RecursionError:
        raise ValueError(f"{path}: JSON nested too deeply") from None


def read_folder_record(folder: str | os.PathLike, record: str, not_ours: str, fix: str, *,
                       schema: str | None = None, missing_ok: bool = False) -> dict[str, Any] | None:
    """The JSON record that marks `folder` as one of ours, or None when the folder is new or empty.

    A non-empty folder without a readable dict record is someone else's: refuse it rather than
    overwrite it (`ColorizeError(f"{folder} exists and is not {not_ours}", fix)`). With `missing_ok`, a
    folder without the record file at all is accepted (None): for stages that have always written into
    existing folders (prep), where only a record of another kind must be protected.

    With `schema`, the record must also be of that kind: a record with another (or no) schema belongs to
    another tool, e.g. a scraped dataset's manifest.json where prep would write its shard manifest.
    That is a mistake in how the command was called, so it is a `UsageError` (exit 2), and nothing is
    touched.
    """
    folder = Path(folder)
    if folder.exists() and not folder.is_dir():
        raise UsageError(f"{folder} exists and is a file, not a folder", fix)
    if not (folder.exists() and any(folder.iterdir())):
        return None
    path = folder / record
    if missing_ok and not os.path.lexists(path):
        return None
    try:
        data = read_json(path)
    except (OSError, ValueError):  # missing, unreadable or not JSON (UnicodeDecodeError is a ValueError)
        data = None
    if not isinstance(data, dict):
        raise ColorizeError(f"{folder} exists and is not {not_ours}", fix)
    if schema is not None and data.get("schema") != schema:
        kind = str(data.get("schema") or "unknown")[:60]
        raise UsageError(f"{folder} holds another tool's {record} ({kind}), not {not_ours}; refusing to overwrite it",
                         fix)
    return data


def sha256_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def sha256_file(path: str | os.PathLike, chunk: int = 1 << 20) -> str:
    h = hashlib.sha256()
    with open_regular(path) as fh:
        while block := fh.read(chunk):
            h.update(block)
    return h.hexdigest()


_SPECIAL_KINDS = ((stat.S_ISFIFO, "a FIFO (named pipe)"), (stat.S_ISSOCK, "a socket"),
                  (stat.S_ISCHR, "a character device"), (stat.S_ISBLK, "a block device"),
                  (stat.S_ISDIR, "a folder"))


def not_regular_reason(mode: int) -> str | None:
    """Why a file of this `st_mode` must not be read as data (None for a regular file)."""
    if stat.S_ISREG(mode):
        return None
    kind = next((name for test, name in _SPECIAL_KINDS if test(mode)), "a special file")
    return f"{kind}, not a regular file"


def open_regular(path: str | os.PathLike) -> IO[bytes]:
    """Open `path` for reading only if it is a regular file (after symlinks).

    A FIFO named x.jpg would block a plain open() forever, and a device could stream without end, so
    the file is opened non-blocking (which never waits, whatever it is) and checked with fstat on the
    open descriptor (no race with a swap after a stat). Anything else raises an OSError whose
    strerror says what it is.
    """
    flags = os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_NOCTTY", 0) | getattr(os, "O_CLOEXEC", 0)
    try:
        fd = os.open(path, flags)
    except OSError as exc:  # a socket cannot be opened at all (ENXIO): say what it is
        if exc.errno == errno.ENXIO and (reason := not_regular_reason(os.stat(path).st_mode)):
            raise OSError(errno.EINVAL, reason, str(path)) from None
        raise
    try:
        reason = not_regular_reason(os.fstat(fd).st_mode)
        if reason is not None:
            raise OSError(errno.EINVAL, reason, str(path))
        if hasattr(os, "set_blocking"):
            os.set_blocking(fd, True)
        return os.fdopen(fd, "rb")
    except BaseException:
        os.close(fd)
        raise


def read_regular_bytes(path: str | os.PathLike, max_bytes: int | None = None) -> bytes:
    """The bytes of a regular file (see `open_regular`), refusing one over `max_bytes` before reading it."""
    with open_regular(path) as fh:
        size = os.fstat(fh.fileno()).st_size
        if max_bytes is not None and size > max_bytes:
            raise OSError(errno.EFBIG, f"file over the {max_bytes} byte cap", str(path))
        data = fh.read() if max_bytes is None else fh.read(max_bytes + 1)
    if max_bytes is not None and len(data) > max_bytes:  # it grew while we read
        raise OSError(errno.EFBIG, f"file over the {max_bytes} byte cap", str(path))
    return data


def remove_stale_temps(folder: str | os.PathLike, root: str | os.PathLike | None = None) -> int:
    """Delete temp files a killed run left behind in `folder` (not recursive); returns how many.

    Only what we create is removed: regular files (or dangling links) named `TMP_PREFIX*` directly in
    `folder`. A folder that is a symlink is not followed (it may lead out of the output folder, where
    the files are not ours), unless it resolves inside `root` (the caller's own --out, which the user
    may well have made a symlink). One entry that cannot be removed (a folder named like a temp file,
    no permission) is logged and skipped: cleaning up must never abort the run it prepares.
    """
    folder = Path(folder)
    if folder.is_symlink():
        inside = False
        if root is not None:
            with contextlib.suppress(OSError, ValueError):
                folder.resolve().relative_to(Path(root).resolve())
                inside = True
        if not inside:
            log.info("not cleaning temp files in %s: it is a symlink and may lead elsewhere", folder)
            return 0
    if not folder.is_dir():
        return 0
    n = 0
    try:
        entries = list(os.scandir(folder))
    except OSError as exc:
        log.warning("cannot list %s to clean temp files (%s)", folder, exc.strerror or exc)
        return 0
    for entry in entries:
        if not entry.name.startswith(TMP_PREFIX):
            continue
        try:
            if entry.is_dir(follow_symlinks=False):
                log.warning("not removing %s: a folder, not a temp file of ours", entry.path)
                continue
            os.unlink(entry.path)
            n += 1
        except FileNotFoundError:
            continue
        except OSError as exc:
            log.warning("cannot remove stale temp file %s (%s)", entry.path, exc.strerror or exc)
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
