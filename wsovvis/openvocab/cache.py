"""The on-disk embedding cache: one fp16 ``.npy [D]`` per instance plus a TSV index.

Layout of a cache directory::

    embed_meta.json      model fingerprint, crop settings, source file hash, kind, dim
    inst2feat.tsv        header ``video_id<TAB>track_id<TAB>feat_file`` (images: ``image_id segment_id``)
    <a>_<b>.npy          fp16 [D], unit L2 norm (a, b = the two key columns)
    embed_skipped.json   instances that got no embedding, and frames that were left out, with reasons
    text/<hash>.npy      vocabulary text embeddings (see `wsovvis.openvocab.vocab`)

Each ``.npy`` is written atomically before its index line is appended, so after a crash the
index may miss finished instances or end in a torn line; `EmbeddingCache.open` repairs both.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import numpy as np

from wsovvis.errors import WsovvisError
from wsovvis.utils.io import atomic_open, atomic_write_json, atomic_write_text, read_json
from wsovvis.utils.logging import get_logger

log = get_logger(__name__)

INDEX_NAME = "inst2feat.tsv"
META_NAME = "embed_meta.json"
SKIPPED_NAME = "embed_skipped.json"
FORMAT_VERSION = 1
_FEAT_RE = re.compile(r"^(\d+)_(\d+)\.npy$")
# Meta entries that must agree for a re-run to add to an existing cache.
COMPARED_META = ("format", "kind", "fingerprint", "dim", "crop", "source_sha256")

Key = tuple[int, int]


def feat_name(key: Key) -> str:
    return f"{key[0]}_{key[1]}.npy"


def valid_feat(path: Path, dim: int) -> bool:
    """True when ``path`` is a readable fp16 ``[dim]`` array (header only; the file was written atomically)."""
    try:
        with open(path, "rb") as f:
            version = np.lib.format.read_magic(f)
            fmt = np.lib.format
            shape, _, dtype = (fmt.read_array_header_1_0 if version == (1, 0) else fmt.read_array_header_2_0)(f)
            data_start = f.tell()
        return shape == (dim,) and dtype == np.float16 and path.stat().st_size == data_start + 2 * dim
    except (OSError, ValueError, EOFError):
        return False


def write_feat(path: Path, vec: np.ndarray) -> None:
    with atomic_open(path, "wb") as f:
        np.save(f, np.asarray(vec, dtype=np.float16))


def parse_index(path: Path, header: tuple[str, ...] | None = None) -> tuple[list[tuple[Key, str]], int, tuple]:
    """Read ``inst2feat.tsv`` -> (``[(key, feat_file)]`` of well-formed lines, number of bad lines, header).

    ``header`` given: a file with another header is an error naming both.
    """
    text = path.read_text(encoding="utf-8", errors="replace")
    lines = text.split("\n")
    got = tuple(lines[0].split("\t")) if lines and lines[0] else ()
    if header is not None and got and got != header:
        raise WsovvisError(f"{path}: index header is {got}, expected {header}")
    entries, bad = [], 0
    body = lines[1:]
    torn_tail = not text.endswith("\n")
    for i, line in enumerate(body):
        if not line:
            continue
        parts = line.split("\t")
        last = i == len(body) - 1
        if len(parts) != 3 or not parts[0].isdigit() or not parts[1].isdigit() or (last and torn_tail):
            bad += 1
            continue
        entries.append(((int(parts[0]), int(parts[1])), parts[2]))
    return entries, bad, got


def read_index(root: str | os.PathLike) -> tuple[dict[Key, Path], dict]:
    """``{key: feat path}`` and the meta of a finished cache directory (for `wsovvis label`)."""
    root = Path(root)
    meta = read_json(root / META_NAME, "embedding cache meta (run `wsovvis embed` first)")
    index = root / INDEX_NAME
    if not index.is_file():
        raise WsovvisError(f"{index}: embedding index does not exist (run `wsovvis embed` first)")
    header = tuple(meta.get("header", ()))
    entries, bad, _ = parse_index(index, header or None)
    if bad:
        log.warning("%s: %d malformed line(s) ignored (re-run `wsovvis embed` to repair)", index, bad)
    return {k: root / f for k, f in entries}, meta


def recorded_weights_file(root: str | os.PathLike) -> dict | None:
    """The weights fingerprint an earlier run recorded in ``root`` (None when there is none)."""
    path = Path(root) / META_NAME
    if not path.is_file():
        return None
    try:
        return read_json(path, "embedding cache meta").get("weights_file")
    except (WsovvisError, AttributeError):
        return None


def recorded_model(root: str | os.PathLike) -> str | None:
    """The model spec of the embeddings already in ``root`` (None when it holds none)."""
    path = Path(root) / META_NAME
    if not path.is_file() or not any(_FEAT_RE.match(p.name) for p in Path(root).iterdir()):
        return None
    model = read_json(path, "embedding cache meta").get("model")
    return model if isinstance(model, str) else None


def load_feats(paths: list[Path], dim: int) -> np.ndarray:
    """Stack ``.npy`` files -> float32 ``[N, dim]``; a wrong shape names the file."""
    out = np.zeros((len(paths), dim), dtype=np.float32)
    for i, p in enumerate(paths):
        try:
            v = np.load(p)
        except (OSError, ValueError) as e:
            raise WsovvisError(f"{p}: unreadable embedding ({e})") from e
        if v.shape != (dim,):
            raise WsovvisError(f"{p}: embedding has shape {v.shape}, expected ({dim},)")
        out[i] = v
    return out


class EmbeddingCache:
    """Append-only writer of one cache directory (see the module docstring).

    Args:
        root: the directory (created).
        header: the index header (`sources.VIDEO_INDEX_HEADER` or `IMAGE_INDEX_HEADER`).
        dim: embedding size ``D``.
    """

    def __init__(self, root: str | os.PathLike, header: tuple[str, str, str], dim: int):
        self.root = Path(root)
        self.header = header
        self.dim = dim
        self.entries: dict[Key, str] = {}
        self._fh = None

    @property
    def index_path(self) -> Path:
        return self.root / INDEX_NAME

    def check_meta(self, meta: dict, overwrite: bool) -> None:
        """Write ``meta``; refuse to mix with a cache made with different settings unless ``overwrite``."""
        self.root.mkdir(parents=True, exist_ok=True)
        meta_path = self.root / META_NAME
        # A cache without any embedding (e.g. a first run that stopped on bad input) has nothing to mix with.
        has_feats = any(_FEAT_RE.match(p.name) for p in self.root.iterdir())
        if overwrite:
            self.clear()
        elif meta_path.exists() and has_feats:
            old = read_json(meta_path, "embedding cache meta")
            diff = [k for k in COMPARED_META if old.get(k) != meta.get(k)]
            if diff:
                lines = "; ".join(f"{k}: cached {old.get(k)!r} vs now {meta.get(k)!r}" for k in diff)
                raise WsovvisError(
                    f"{self.root}: holds embeddings made with other settings ({lines}); "
                    "use another --out directory or --overwrite"
                )
        elif has_feats:
            raise WsovvisError(
                f"{self.root}: holds embeddings but no {META_NAME} (unknown provenance); "
                "use another --out directory or --overwrite"
            )
        atomic_write_json(meta_path, meta, indent=1)

    def clear(self) -> None:
        """Remove this cache's own files (index, meta, report, ``<a>_<b>.npy``); nothing else."""
        n = 0
        for p in self.root.iterdir():
            if p.name in (INDEX_NAME, META_NAME, SKIPPED_NAME) or _FEAT_RE.match(p.name):
                p.unlink()
                n += 1
        if n:
            log.info("--overwrite: removed %d file(s) from %s", n, self.root)

    def open(self) -> set[Key]:
        """Load and repair the index; returns the keys already embedded."""
        bad_lines = dropped = 0
        if self.index_path.exists():
            entries, bad_lines, got = parse_index(self.index_path)
            if got and got != self.header:
                raise WsovvisError(f"{self.index_path}: index header is {got}, expected {self.header}")
            for key, name in entries:
                if name == feat_name(key) and valid_feat(self.root / name, self.dim):
                    self.entries[key] = name
                else:
                    dropped += 1
        recovered = 0
        for p in self.root.iterdir():
            m = _FEAT_RE.match(p.name)
            if m:
                key = (int(m.group(1)), int(m.group(2)))
                if key not in self.entries and valid_feat(p, self.dim):
                    self.entries[key] = p.name
                    recovered += 1
        if bad_lines or dropped or recovered or not self.index_path.exists():
            if bad_lines or dropped or recovered:
                log.warning(
                    "%s: repaired the index (%d torn/malformed line(s), %d entr(ies) without a valid .npy dropped, "
                    "%d finished instance(s) recovered from their .npy files)",
                    self.index_path, bad_lines, dropped, recovered,
                )
            self._rewrite()
        self._fh = open(self.index_path, "a", encoding="utf-8")
        return set(self.entries)

    def _rewrite(self) -> None:
        lines = ["\t".join(self.header)] + [f"{k[0]}\t{k[1]}\t{n}" for k, n in sorted(self.entries.items())]
        atomic_write_text(self.index_path, "\n".join(lines) + "\n")

    def add(self, key: Key, vec: np.ndarray) -> None:
        """Write ``vec [D]`` as fp16, then append its index line."""
        if vec.shape != (self.dim,):
            raise ValueError(f"embedding for {key} has shape {vec.shape}, expected ({self.dim},)")
        name = feat_name(key)
        write_feat(self.root / name, vec)
        self._fh.write(f"{key[0]}\t{key[1]}\t{name}\n")
        self._fh.flush()
        self.entries[key] = name

    def close(self) -> None:
        """Rewrite the index sorted by key (atomic), leaving no torn tail behind."""
        if self._fh is not None:
            self._fh.close()
            self._fh = None
        self._rewrite()
