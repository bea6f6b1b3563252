"""TFRecord framing: write and read length-prefixed, CRC-checked records without TensorFlow.

Each record is ``uint64 length (little endian) | uint32 masked_crc32c(length bytes) | data |
uint32 masked_crc32c(data)``, with ``masked(c) = ((c >> 15) | (c << 17)) + 0xA282EAD8 (mod 2^32)``
as in TensorFlow's ``core/lib/io/record_writer``. The CRC is CRC-32C (Castagnoli), computed by the
``crc32c`` package (hardware instructions where the CPU has them).
"""

from __future__ import annotations

import os
import struct
from collections.abc import Iterator
from typing import BinaryIO

import crc32c as _crc32c

from wsovvis.errors import WsovvisError

_MASK_DELTA = 0xA282EAD8
_LEN = struct.Struct("<Q")
_CRC = struct.Struct("<I")


def masked_crc(data: bytes) -> int:
    """TensorFlow's masked CRC-32C of ``data``."""
    crc = _crc32c.crc32c(data)
    return (((crc >> 15) | (crc << 17)) + _MASK_DELTA) & 0xFFFFFFFF


def frame(data: bytes) -> bytes:
    """One record's bytes (header, data, footer)."""
    header = _LEN.pack(len(data))
    return b"".join((header, _CRC.pack(masked_crc(header)), data, _CRC.pack(masked_crc(data))))


def write_record(f: BinaryIO, data: bytes) -> int:
    """Append one framed record to an open binary file; returns the bytes written."""
    header = _LEN.pack(len(data))
    f.write(header + _CRC.pack(masked_crc(header)))
    f.write(data)
    f.write(_CRC.pack(masked_crc(data)))
    return len(data) + 16


def write_record_parts(f: BinaryIO, parts: list[bytes]) -> int:
    """Append one record whose data is ``b"".join(parts)`` without joining them (the CRC runs over the parts)."""
    length = sum(len(p) for p in parts)
    header = _LEN.pack(length)
    f.write(header + _CRC.pack(masked_crc(header)))
    crc = 0
    for p in parts:
        crc = _crc32c.crc32c(p, crc)
        f.write(p)
    f.write(_CRC.pack((((crc >> 15) | (crc << 17)) + _MASK_DELTA) & 0xFFFFFFFF))
    return length + 16


def read_records(path: str | os.PathLike, *, check_crc: bool = True) -> Iterator[bytes]:
    """Yield every record's data; `WsovvisError` names the file, the record and the byte offset of any damage."""
    with open(path, "rb") as f:
        index, offset = 0, 0
        while True:
            head = f.read(12)
            if not head:
                return
            where = f"{path}: record {index} at byte {offset}"
            if len(head) < 12:
                raise WsovvisError(f"{where}: truncated header ({len(head)} of 12 bytes)")
            (length,) = _LEN.unpack_from(head)
            if check_crc and _CRC.unpack_from(head, 8)[0] != masked_crc(head[:8]):
                raise WsovvisError(f"{where}: length CRC mismatch (not a TFRecord file, or corrupted)")
            data = f.read(length)
            foot = f.read(4)
            if len(data) < length or len(foot) < 4:
                raise WsovvisError(f"{where}: truncated record (expected {length} data bytes)")
            if check_crc and _CRC.unpack(foot)[0] != masked_crc(data):
                raise WsovvisError(f"{where}: data CRC mismatch (corrupted)")
            yield data
            index += 1
            offset += length + 16
