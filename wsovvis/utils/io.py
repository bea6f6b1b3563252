"""Atomic file writes and JSON reading with errors that name the file.

Every output of wsovvis goes through these helpers so that an interrupted job never
leaves a half-written file under its final name (temp file in the same directory,
fsync, then ``os.replace``).
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import tempfile
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
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
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
