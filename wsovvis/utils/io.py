"""Atomic file writes and JSON reading with errors that name the file.

Every output of wsovvis goes through these helpers so that an interrupted job never
leaves a half-written file under its final name (temp file in the same directory,
fsync, then ``os.replace``).
"""

from __future__ import annotations

import contextlib
import gc
import glob
import hashlib
import io
import json
import os
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson

from wsovvis.errors import WsovvisError

PathLike = str | os.PathLike


def _read_umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


# mkstemp creates 0600 files; outputs should get the usual 0666 & ~umask like open() gives.
_FILE_MODE = 0o666 & ~_read_umask()


@contextlib.contextmanager
def atomic_open(path: PathLike, mode: str = "w", encoding: str | None = "utf-8") -> Iterator[io.IOBase]:
    """Open a temp file beside ``path``; on clean exit it replaces ``path``, on error it is removed."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    # the pid in the name lets `clean_stale_tmp` tell a killed writer's leftovers from a live one's
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.{os.getpid()}.", suffix=TMP_SUFFIX, dir=path.parent)
    binary = "b" in mode
    try:
        with os.fdopen(fd, mode, encoding=None if binary else encoding) as f:
            yield f
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, _FILE_MODE)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


TMP_SUFFIX = ".tmp"
STALE_UNKNOWN_S = 3600.0  # a temp file without a pid (older wsovvis) counts as stale after this long


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, another user's
        return True
    return True


def _tmp_owner(name: str) -> int | None:
    """The writer's pid in ``.<target>.<pid>.<random>.tmp`` (None when the name has none)."""
    parts = name[: -len(TMP_SUFFIX)].rsplit(".", 2)
    if len(parts) == 3 and parts[1].isdigit():
        return int(parts[1])
    return None


def clean_stale_tmp(directory: PathLike, target: str | None = None) -> list[Path]:
    """Remove temp files of `atomic_open` left in ``directory`` by killed writers; -> the removed paths.

    Only ``.<target>.*.tmp`` when ``target`` (a file name) is given, else every temp file with a pid. A temp
    file is stale when the process named in it is gone (or, without a pid, when it is over an hour old); a
    live writer's file is left alone.
    """
    directory = Path(directory)
    pattern = f".{glob.escape(target)}.*{TMP_SUFFIX}" if target else f".*{TMP_SUFFIX}"
    removed = []
    try:
        candidates = list(directory.glob(pattern))
    except OSError:
        return removed
    now = time.time()
    for p in candidates:
        pid = _tmp_owner(p.name)
        if pid is None and target is None:  # a whole folder: only files that are surely ours
            continue
        try:
            stale = (not _pid_alive(pid)) if pid is not None and pid != os.getpid() else (
                pid is None and now - p.stat().st_mtime > STALE_UNKNOWN_S)
            if stale:
                p.unlink()
                removed.append(p)
        except OSError:  # gone meanwhile, or not ours to remove
            continue
    return removed


def file_sha256(path: PathLike) -> str:
    """Hex SHA-256 of a file's bytes, read in 4 MiB blocks."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 22), b""):
            h.update(block)
    return h.hexdigest()


def atomic_write_bytes(path: PathLike, data: bytes) -> None:
    with atomic_open(path, "wb") as f:
        f.write(data)


def atomic_write_text(path: PathLike, text: str) -> None:
    with atomic_open(path, "w") as f:
        f.write(text)


def atomic_write_json(path: PathLike, obj: Any, indent: int | None = None) -> None:
    """Serialise first, then write: a value that cannot be encoded never touches the disk."""
    text = json.dumps(obj, indent=indent, separators=None if indent else (",", ":"))
    atomic_write_text(path, text)


@contextlib.contextmanager
def _no_gc() -> Iterator[None]:
    """Parsing a big annotation file creates millions of objects, and each allocation burst triggers a
    cycle collection over all of them (2-3x the parse itself); parsed JSON holds no cycles to collect."""
    was = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was:
            gc.enable()


def read_json(path: PathLike, what: str = "JSON file") -> Any:
    """Load JSON, turning missing files and syntax errors into a `WsovvisError` naming the file.

    orjson parses the large annotation and results files several times faster than ``json``; any text it
    refuses (``NaN`` literals, integers beyond 64 bits, nesting deeper than 1024) goes through ``json``, which
    either accepts it as before or gives the line and column of the problem.
    """
    path = Path(path)
    if not path.is_file():
        raise WsovvisError(f"{path}: {what} does not exist")
    try:
        with open(path, "rb") as f:
            raw = f.read()
    except OSError as e:
        raise WsovvisError(f"{path}: cannot read {what}: {e.strerror}") from e
    try:
        with _no_gc():
            return orjson.loads(raw)
    except orjson.JSONDecodeError:
        pass
    try:
        return json.loads(raw.decode("utf-8"))
    except json.JSONDecodeError as e:
        raise WsovvisError(f"{path}: unreadable {what}: {e.msg} at line {e.lineno} column {e.colno}") from e
    except UnicodeDecodeError as e:
        raise WsovvisError(f"{path}: unreadable {what}: not UTF-8 text ({e.reason} at byte {e.start})") from e
    except RecursionError as e:
        raise WsovvisError(f"{path}: unreadable {what}: nested too deeply to parse") from e
