"""``tf.train.Example`` messages without TensorFlow: encode from and decode to plain Python values.

Decoding (and the reference encoder) use the ``protobuf`` runtime: the message types
(``tensorflow/core/example/{feature,example}.proto``) are declared here as a descriptor and built in a
private descriptor pool, so nothing is registered in the default pool, where TensorFlow registers the
same names when it is imported in the same process.

Writing uses `encode_example_parts`, a direct encoder of the same wire format (packed int64/float
lists, map entries sorted by key bytes as C++ protobuf's deterministic serialization sorts them; the
tests check it against the protobuf runtime and against bytes TensorFlow wrote) that hands the image
bytes through as their own part: building a protobuf message copies each image twice, and that was
half of the export's CPU time. (Python protobuf's upb runtime puts a key after the keys it is a prefix
of, e.g. ``image/id`` before ``image``; parsers accept any order.)

A feature value is ``(kind, values)`` with kind ``"bytes" | "float" | "int64"``.
"""

from __future__ import annotations

import struct
from functools import lru_cache
from typing import Any

from google.protobuf import descriptor_pb2, descriptor_pool, message_factory
from google.protobuf.message import DecodeError

from wsovvis.errors import WsovvisError

KINDS = ("bytes", "float", "int64")
_LIST_FIELD = {"bytes": "bytes_list", "float": "float_list", "int64": "int64_list"}
_KIND_OF_FIELD = {v: k for k, v in _LIST_FIELD.items()}

Features = dict[str, tuple[str, list]]


def _file_descriptor() -> descriptor_pb2.FileDescriptorProto:
    F = descriptor_pb2.FieldDescriptorProto
    fd = descriptor_pb2.FileDescriptorProto(name="wsovvis/tf_example.proto", package="tensorflow", syntax="proto3")

    def message(name: str, fields: list[tuple[str, int, int, int, str]]) -> descriptor_pb2.DescriptorProto:
        m = fd.message_type.add(name=name)
        for fname, number, ftype, label, type_name in fields:
            f = m.field.add(name=fname, number=number, type=ftype, label=label)
            if type_name:
                f.type_name = type_name
        return m

    rep, opt = F.LABEL_REPEATED, F.LABEL_OPTIONAL
    message("BytesList", [("value", 1, F.TYPE_BYTES, rep, "")])
    message("FloatList", [("value", 1, F.TYPE_FLOAT, rep, "")])  # proto3: packed by default, as TF's
    message("Int64List", [("value", 1, F.TYPE_INT64, rep, "")])
    feature = message("Feature", [("bytes_list", 1, F.TYPE_MESSAGE, opt, ".tensorflow.BytesList"),
                                  ("float_list", 2, F.TYPE_MESSAGE, opt, ".tensorflow.FloatList"),
                                  ("int64_list", 3, F.TYPE_MESSAGE, opt, ".tensorflow.Int64List")])
    feature.oneof_decl.add(name="kind")
    for f in feature.field:
        f.oneof_index = 0
    features = message("Features", [("feature", 1, F.TYPE_MESSAGE, rep, ".tensorflow.Features.FeatureEntry")])
    entry = features.nested_type.add(name="FeatureEntry")
    entry.field.add(name="key", number=1, type=F.TYPE_STRING, label=opt)
    entry.field.add(name="value", number=2, type=F.TYPE_MESSAGE, label=opt, type_name=".tensorflow.Feature")
    entry.options.map_entry = True
    message("Example", [("features", 1, F.TYPE_MESSAGE, opt, ".tensorflow.Features")])
    return fd


@lru_cache(maxsize=1)
def example_class() -> type:
    """The ``tensorflow.Example`` message class, from a private descriptor pool."""
    pool = descriptor_pool.DescriptorPool()
    pool.Add(_file_descriptor())
    return message_factory.GetMessageClass(pool.FindMessageTypeByName("tensorflow.Example"))


def _varint_slow(n: int) -> bytes:
    """Protobuf base-128 varint; negative int64 values as their 64-bit two's complement (10 bytes)."""
    if n < 0:
        n += 1 << 64
    out = bytearray()
    while n > 0x7F:
        out.append((n & 0x7F) | 0x80)
        n >>= 7
    out.append(n)
    return bytes(out)


_VARINTS = [_varint_slow(i) for i in range(1 << 14)]  # every 1- and 2-byte varint: lengths, ids, labels


def _varint(n: int) -> bytes:
    if 0 <= n < 16384:
        return _VARINTS[n]
    if 0 <= n < 2097152:  # 3 bytes: image lengths (16 KB - 2 MB) and most box areas
        return bytes((n & 0x7F | 0x80, n >> 7 & 0x7F | 0x80, n >> 14))
    return _varint_slow(int(n))


_FEATURE_TAG = {"bytes": b"\x0a", "float": b"\x12", "int64": b"\x1a"}  # Feature.{bytes,float,int64}_list
BIG = 4096  # values (bytes, or packed lists) at least this long are passed through as parts of their own
_MAX_KEYS = 1024  # the caches below hold at most this many keys / key sets (a writer uses a dozen)

_FLOATS: dict[int, struct.Struct] = {}  # n -> packer of n little-endian float32 (boxes: n = 4 * objects)
# key -> kind -> data length -> the entry's bytes before its data (see `encode_example_parts`)
_HEADS: dict[str, dict[str, dict[int, bytes]]] = {}
# key set (as given) -> its keys sorted by their UTF-8 bytes, each with its map-entry head and its `_HEADS` cache
_ORDER: dict[tuple[str, ...], list[tuple[str, bytes, dict[str, dict[int, bytes]]]]] = {}


def _order(features: Features) -> list[tuple[str, bytes, dict[str, dict[int, bytes]]]]:
    keys = tuple(features)
    order = _ORDER.get(keys)
    if order is None:
        order = []
        for key in sorted(keys):
            kb = key.encode("utf-8")
            heads = _HEADS.get(key)
            if heads is None:
                heads = {"bytes": {}, "float": {}, "int64": {}}
                if len(_HEADS) < _MAX_KEYS:
                    _HEADS[key] = heads
            order.append((key, b"\x0a" + _varint(len(kb)) + kb + b"\x12", heads))
        if len(_ORDER) < _MAX_KEYS:
            _ORDER[keys] = order
    return order


def _entry_head(key_head: bytes, tag: bytes, body_len: int) -> bytes:
    """``0a len(entry) | 0a len(key) key 12 len(feature) | tag len(list)``: a map entry up to its list body."""
    feature_head = tag + _varint(body_len)
    entry_head = key_head + _varint(len(feature_head) + body_len)
    return b"\x0a" + _varint(len(entry_head) + len(feature_head) + body_len) + entry_head + feature_head


def encode_example_parts(features: Features) -> list[bytes]:
    """``{key: (kind, values)}`` -> a serialized ``tf.train.Example`` as a list of parts (join or write them
    in order). Map entries are sorted by key bytes (C++ protobuf's deterministic order). ``bytes`` values
    (and packed lists) of `BIG` bytes or more are parts of their own, never copied; the rest is joined.

    Entry layout: ``0a len(entry) | 0a len(key) key | 12 len(feature) | tag len(list) | list body``. A
    packed list's body is ``0a len(data) data`` (nothing when empty, as proto3 omits it); a bytes list's
    is ``0a len(v) v`` per value. With one data piece (a packed list, or a single bytes value) all that
    precedes the data depends only on (key, kind, len(data)), so it is cached: this runs once per image.
    """
    parts: list[bytes] = []
    run: list[bytes] = []
    total = 0
    VARINTS = _VARINTS
    for key, key_head, heads in _order(features):
        kind, values = features[key]
        if kind == "int64":
            if len(values) == 1:  # ids, sizes, and images with one object: no comprehension (a call in 3.11)
                v = values[0]
                data = VARINTS[v] if 0 <= v < 16384 else _varint(v)
            else:
                data = b"".join([VARINTS[v] if 0 <= v < 16384 else _varint(v) for v in values])
        elif kind == "float":
            packer = _FLOATS.get(len(values))
            if packer is None:
                packer = struct.Struct(f"<{len(values)}f")
                if len(values) < 1024:
                    _FLOATS[len(values)] = packer
            data = packer.pack(*values)
        elif kind == "bytes" and len(values) == 1:
            data = values[0]
        elif kind == "bytes":  # none or several values: one '0a len' head each
            pieces = [(b"\x0a" + _varint(len(v)), v) for v in values]
            body_len = sum(len(h) + len(v) for h, v in pieces)
            head = _entry_head(key_head, b"\x0a", body_len)
            run.append(head)
            total += len(head) + body_len
            for h, v in pieces:
                run.append(h)
                if len(v) >= BIG:
                    parts.append(b"".join(run))
                    parts.append(v)
                    run = []
                else:
                    run.append(v)
            continue
        else:
            raise ValueError(f"feature {key!r}: kind must be one of {KINDS}, got {kind!r}")
        n = len(data)
        cache = heads[kind]
        head = cache.get(n)
        if head is None:
            if n or kind == "bytes":
                list_head = b"\x0a" + _varint(n)
                head = _entry_head(key_head, _FEATURE_TAG[kind], len(list_head) + n) + list_head
            else:
                head = _entry_head(key_head, _FEATURE_TAG[kind], 0)
            if n < 16384:  # image lengths vary too much to be worth keeping
                cache[n] = head
        run.append(head)
        total += len(head) + n
        if n >= BIG:
            parts.append(b"".join(run))
            parts.append(data)
            run = []
        else:
            run.append(data)
    if total == 0:
        return []  # like protobuf: an unset 'features' message is not written
    if run:
        parts.append(b"".join(run))
    return [b"\x0a" + _varint(total), *parts]  # Example.features


def encode_example(features: Features) -> bytes:
    """``{key: (kind, values)}`` -> serialized ``tf.train.Example`` (map entries sorted: byte-stable output)."""
    return b"".join(encode_example_parts(features))


def encode_example_protobuf(features: Features) -> bytes:
    """The same bytes as `encode_example`, through the protobuf runtime (the reference the tests compare to)."""
    ex = example_class()()
    fmap = ex.features.feature
    for key, (kind, values) in features.items():
        if kind not in _LIST_FIELD:
            raise ValueError(f"feature {key!r}: kind must be one of {KINDS}, got {kind!r}")
        getattr(fmap[key], _LIST_FIELD[kind]).value.extend(values)
    return ex.SerializeToString(deterministic=True)


def decode_example(data: bytes, *, where: str = "record") -> Features:
    """Serialized ``tf.train.Example`` -> ``{key: (kind, values)}``; `WsovvisError` naming ``where`` if unparsable."""
    ex = example_class()()
    try:
        ex.ParseFromString(data)
    except DecodeError as e:
        raise WsovvisError(f"{where}: not a tf.train.Example ({e})") from e
    out: dict[str, tuple[str, list[Any]]] = {}
    for key, feat in ex.features.feature.items():
        which = feat.WhichOneof("kind")
        if which is None:  # an empty Feature: TF reads it as an empty list of any kind
            out[key] = ("bytes", [])
            continue
        out[key] = (_KIND_OF_FIELD[which], list(getattr(feat, which).value))
    return dict(sorted(out.items()))
