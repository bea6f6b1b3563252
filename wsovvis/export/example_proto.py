"""``tf.train.Example`` messages without TensorFlow: encode from and decode to plain Python values.

The message types (``tensorflow/core/example/{feature,example}.proto``) are declared here as a
descriptor and built by the ``protobuf`` runtime in a private descriptor pool, so the wire
format is protobuf's own (packed int64/float lists, the ``map<string, Feature>``) and nothing is
registered in the default pool, where TensorFlow registers the same names when it is imported
in the same process.

A feature value is ``(kind, values)`` with kind ``"bytes" | "float" | "int64"``.
"""

from __future__ import annotations

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


def encode_example(features: Features) -> bytes:
    """``{key: (kind, values)}`` -> serialized ``tf.train.Example`` (map entries sorted: byte-stable output)."""
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
