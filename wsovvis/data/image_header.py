"""Image dimensions from the file header, without decoding: ``image_size(path) -> (height, width)``."""

from __future__ import annotations

import os
import struct

from PIL import Image


def image_size(path: str | os.PathLike) -> tuple[int, int]:
    """(height, width) of a JPEG or PNG from its header; PIL for anything else.

    Reading every frame's size with PIL costs more than decoding a small mask PNG, so the two
    common formats are parsed directly (PNG: IHDR; JPEG: the first SOFn segment).
    """
    fd = os.open(path, os.O_RDONLY)
    try:
        head = os.read(fd, 8192)
        if head[:8] == b"\x89PNG\r\n\x1a\n" and head[12:16] == b"IHDR":
            w, h = struct.unpack(">II", head[16:24])
            return h, w
        if head[:2] == b"\xff\xd8":
            pos = 2
            while True:
                if pos + 9 > len(head):  # a big EXIF block: read on
                    more = os.read(fd, max(65536, pos + 9 - len(head)))
                    if not more:
                        break
                    head += more
                    continue
                if head[pos] != 0xFF:
                    break
                code = head[pos + 1]
                if code in (0xD8, 0x01, 0xFF) or 0xD0 <= code <= 0xD7:
                    pos += 1 if code == 0xFF else 2  # fill bytes and markers without a length
                    continue
                if code in _SOF_MARKERS:
                    h, w = struct.unpack(">HH", head[pos + 5:pos + 9])
                    return h, w
                pos += 2 + int.from_bytes(head[pos + 2:pos + 4], "big")
    finally:
        os.close(fd)
    with Image.open(path) as im:
        return im.height, im.width


_SOF_MARKERS = {0xC0, 0xC1, 0xC2, 0xC3, 0xC5, 0xC6, 0xC7, 0xC9, 0xCA, 0xCB, 0xCD, 0xCE, 0xCF}
