"""Instance-id mask PNGs: one PNG per frame, pixel value = track id, 0 = background.

Formats (``id_format``):

* ``palette``: 8-bit ``P`` or ``L`` PNG, id = pixel index (VideoCutLER, DAVIS, YouTube-VOS).
* ``uint16``: 16-bit grayscale PNG (``I;16``/``I``), for more than 255 tracks.
* ``rgb``: ``RGB`` PNG, id = R + 256·G + 256²·B (the COCO-panoptic convention).
* ``auto``: chosen from the PNG mode; `detect_id_format` explains the choice.
"""

from __future__ import annotations

import io
import os
import struct
import zlib
from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError

from wsovvis.errors import WsovvisError
from wsovvis.utils.io import atomic_write_bytes

ID_FORMATS = ("auto", "palette", "uint16", "rgb")
_MODES = {"palette": ("P", "L", "1"), "uint16": ("I;16", "I;16B", "I;16L", "I", "L", "P"), "rgb": ("RGB", "RGBA")}


# What a pixel means in each format. Auto detection is decided per video: PNGs of one video whose
# meanings differ would split or merge tracks (one RGB PNG in a palette video), so callers compare them.
ID_MEANING = {"palette": "pixel value", "uint16": "pixel value", "rgb": "RGB colour"}


def detect_id_format(mode: str) -> tuple[str, str]:
    """PIL mode -> (id_format, reason)."""
    if mode in ("P", "L", "1"):
        return "palette", f"8-bit '{mode}' PNG: pixel value is the track id"
    if mode.startswith("I"):
        return "uint16", f"16-bit '{mode}' PNG: pixel value is the track id"
    if mode in ("RGB", "RGBA"):
        return "rgb", f"'{mode}' PNG: id = R + 256*G + 65536*B (COCO-panoptic convention)"
    raise WsovvisError(f"PNG mode '{mode}' is not an instance-id format (expected P, L, I;16 or RGB)")


def read_ids(
    path: str | os.PathLike,
    id_format: str = "auto",
    ignore_value: int | None = None,
) -> np.ndarray:
    """Decode an id PNG to ``int32 [H, W]``; pixels equal to ``ignore_value`` become 0.

    Raises `WsovvisError` naming the file for unreadable/truncated PNGs and mode mismatches.
    """
    ids, _ = read_ids_with_format(path, id_format, ignore_value)
    return ids


def read_ids_with_format(
    path: str | os.PathLike,
    id_format: str = "auto",
    ignore_value: int | None = None,
) -> tuple[np.ndarray, str]:
    """Like `read_ids`, also returning the id format that was used."""
    ids, fmt, _ = decode_ids(path, id_format, ignore_value)
    return ids.astype(np.int32, copy=False), fmt


_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
_FAST_MODES = {(8, 3): ("P", np.uint8), (8, 0): ("L", np.uint8), (16, 0): ("I;16", np.dtype(">u2"))}


def _read_plain_png(path: str | os.PathLike) -> tuple[np.ndarray, str] | None:
    """Fast path for the common id PNG: 8-bit palette/gray or 16-bit gray, not interlaced, every row
    stored with filter type 0 (what PIL and DAVIS/VideoCutLER tools write for palette PNGs).

    Such a PNG is the zlib stream of the rows, each prefixed by a 0 byte, so one ``zlib.decompress``
    and a strided view replace PIL's per-file machinery. zlib's own checksum guards the pixel
    data. Returns None for anything else (or anything odd), and the caller falls back to PIL,
    which also produces the error messages for damaged files.
    """
    try:
        with open(path, "rb") as f:
            data = f.read()
    except OSError:
        return None
    if data[:8] != _PNG_SIGNATURE or data[12:16] != b"IHDR":
        return None
    width, height, depth, color, _, _, interlace = struct.unpack(">IIBBBBB", data[16:29])
    kind = _FAST_MODES.get((depth, color))
    if kind is None or interlace or width == 0 or height == 0:
        return None
    pos, idat, ended = 8, [], False
    while pos + 8 <= len(data):
        length = int.from_bytes(data[pos:pos + 4], "big")
        ctype = data[pos + 4:pos + 8]
        if ctype == b"IDAT":
            idat.append(data[pos + 8:pos + 8 + length])
        elif ctype == b"IEND":
            ended = True
            break
        pos += 12 + length
    if not ended or not idat:
        return None
    try:
        raw = zlib.decompress(b"".join(idat))
    except zlib.error:
        return None
    mode, dtype = kind
    stride = width * (depth // 8) + 1
    if len(raw) != stride * height:
        return None
    rows = np.frombuffer(raw, dtype=np.uint8).reshape(height, stride)
    if rows[:, 0].any():  # some row uses a prediction filter: let PIL undo it
        return None
    pixels = rows[:, 1:]
    if depth == 16:
        return np.ascontiguousarray(pixels).view(dtype).astype(np.uint16), mode
    return pixels, mode


def _choose_format(path, mode: str, id_format: str) -> tuple[str, str]:
    if id_format == "auto":
        return detect_id_format(mode)
    if mode not in _MODES[id_format]:
        expected = "/".join(_MODES[id_format])
        raise WsovvisError(f"{path}: id_format '{id_format}' expects a {expected} PNG, got mode '{mode}'")
    return id_format, f"requested with id_format={id_format}"


def decode_ids(
    path: str | os.PathLike,
    id_format: str = "auto",
    ignore_value: int | None = None,
) -> tuple[np.ndarray, str, str]:
    """Decode an id PNG keeping its smallest dtype: (ids ``[H, W]`` uint8/uint16/int32, format, reason).

    ``reason`` says why the format was chosen (auto-detection) or that it was requested.
    The fast path for converters: plain PNGs skip PIL, and 8-bit maps get no int32 copy. The
    returned array may be a read-only view.
    """
    if id_format not in ID_FORMATS:
        raise WsovvisError(f"unknown id_format {id_format!r}; choose one of {', '.join(ID_FORMATS)}")
    plain = _read_plain_png(path)
    if plain is not None:
        ids, mode = plain
        fmt, reason = _choose_format(path, mode, id_format)
    else:
        try:
            with Image.open(path) as im:
                im.load()
                fmt, reason = _choose_format(path, im.mode, id_format)
                if fmt == "rgb":
                    rgb = np.asarray(im.convert("RGB"), dtype=np.int32)
                    ids = rgb[..., 0] + 256 * rgb[..., 1] + 65536 * rgb[..., 2]
                elif im.mode == "1":
                    ids = np.asarray(im, dtype=np.uint8)
                else:
                    ids = np.asarray(im)
        except WsovvisError as e:
            if str(path) in str(e):
                raise
            raise WsovvisError(f"{path}: {e}") from e
        except (UnidentifiedImageError, OSError, SyntaxError, ValueError, zlib.error) as e:
            raise WsovvisError(f"{path}: unreadable PNG ({e})") from e
    if ids.ndim != 2:
        raise WsovvisError(f"{path}: expected a single-channel id PNG, got shape {ids.shape}")
    if ignore_value is not None:
        ids = ids.copy()
        ids[ids == ignore_value] = 0
    return ids, fmt, reason


def png_size(path: str | os.PathLike) -> tuple[int, int]:
    """(height, width) from the PNG header without decoding the pixels."""
    try:
        with Image.open(path) as im:
            return im.height, im.width
    except (UnidentifiedImageError, OSError) as e:
        raise WsovvisError(f"{path}: unreadable PNG ({e})") from e


# The DAVIS / PASCAL-VOC palette, generated by its bit-interleaving rule, so that
# viewers show distinct colours for ids 1, 2, 3, ...
def _voc_palette() -> list[int]:
    pal = []
    for i in range(256):
        r = g = b = 0
        c = i
        for j in range(8):
            r |= ((c >> 0) & 1) << (7 - j)
            g |= ((c >> 1) & 1) << (7 - j)
            b |= ((c >> 2) & 1) << (7 - j)
            c >>= 3
        pal += [r, g, b]
    return pal


VOC_PALETTE = _voc_palette()


def encode_ids_png(ids: np.ndarray) -> bytes:
    """``[H, W]`` integer ids -> PNG bytes: palette PNG when ids < 256, else 16-bit grayscale."""
    if ids.ndim != 2:
        raise ValueError(f"id map must be [H, W], got shape {ids.shape}")
    top = int(ids.max()) if ids.size else 0
    if ids.size and int(ids.min()) < 0:
        raise ValueError("track ids must be non-negative")
    if top < 256:
        im = Image.fromarray(ids.astype(np.uint8), mode="P")
        im.putpalette(VOC_PALETTE)
    elif top < 65536:
        im = Image.fromarray(ids.astype(np.uint16))
    else:
        raise ValueError(f"track id {top} does not fit a 16-bit PNG; use RGB encoding")
    buf = io.BytesIO()
    im.save(buf, format="PNG", optimize=False, compress_level=1)
    return buf.getvalue()


def write_ids(path: str | os.PathLike, ids: np.ndarray) -> Path:
    """Write an id map atomically (see `encode_ids_png` for the format)."""
    atomic_write_bytes(path, encode_ids_png(ids))
    return Path(path)


def encode_rgb_ids_png(ids: np.ndarray) -> bytes:
    """``[H, W]`` ids -> RGB PNG with id = R + 256·G + 256²·B (panoptic convention)."""
    ids = ids.astype(np.int64)
    rgb = np.stack([ids % 256, (ids // 256) % 256, (ids // 65536) % 256], axis=-1).astype(np.uint8)
    buf = io.BytesIO()
    Image.fromarray(rgb, mode="RGB").save(buf, format="PNG", compress_level=1)
    return buf.getvalue()
