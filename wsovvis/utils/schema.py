"""Typed validation of plain config dicts against dataclasses (the one validator of every config:
the training config in `wsovvis.engine.config` and the model node in `wsovvis.modeling.config`).

`from_dict(cls, data)` turns a nested dict (what Hydra + Sacred produce) into an instance of
the dataclass ``cls``, checking every key and value on the way:

* an unknown key fails naming its dotted path and the closest valid key;
* a value of the wrong type fails naming the expected type (``int``, ``list[int]``,
  ``one of 'local', 'submission'``, ...).

Supported annotations: ``bool``, ``int``, ``float`` (ints are accepted), ``str``, ``Any``,
``X | None``, ``A | B``, ``list[X]``, ``tuple[X, ...]``, ``Literal[...]``, ``dict`` and
nested dataclasses. `to_dict` is the inverse (dataclass -> plain, JSON-able dict).
"""

from __future__ import annotations

import dataclasses
import difflib
import types
import typing
from typing import Any, Literal, Union

from wsovvis.errors import WsovvisError


def _type_name(tp: Any) -> str:
    origin = typing.get_origin(tp)
    if tp is type(None):
        return "null"
    if origin is Literal:
        return "one of " + ", ".join(repr(a) for a in typing.get_args(tp))
    if origin in (Union, types.UnionType):
        return " or ".join(_type_name(a) for a in typing.get_args(tp))
    if origin in (list, tuple):
        args = [a for a in typing.get_args(tp) if a is not Ellipsis]
        return f"list[{_type_name(args[0])}]" if args else "list"
    if origin is dict or tp is dict:
        return "mapping"
    if dataclasses.is_dataclass(tp):
        return f"mapping ({tp.__name__})"
    return getattr(tp, "__name__", str(tp))


def _describe(value: Any) -> str:
    text = repr(value)
    return f"{type(value).__name__} {text if len(text) <= 60 else text[:57] + '...'}"


def closest(key: str, candidates: list[str]) -> str | None:
    """The candidate most similar to ``key`` (difflib ratio >= 0.4), else None."""
    match = difflib.get_close_matches(key, candidates, n=1, cutoff=0.4)
    return match[0] if match else None


def unknown_key_message(path: str, valid: list[str], where: str = "config") -> str:
    prefix, _, name = path.rpartition(".")
    guess = closest(name, valid) if valid else None
    full = f"{prefix}.{guess}" if prefix and guess else guess
    hint = f"; did you mean '{full}'?" if guess else ""
    listing = f" (valid keys{' under ' + repr(prefix) if prefix else ''}: {', '.join(sorted(valid))})"
    return f"{where}: unknown key '{path}'{hint}{listing}"


def _fail(path: str, tp: Any, value: Any, where: str) -> WsovvisError:
    return WsovvisError(f"{where}: key '{path}' expects {_type_name(tp)}, got {_describe(value)}")


def _convert(tp: Any, value: Any, path: str, where: str) -> Any:
    origin = typing.get_origin(tp)
    if tp is Any:
        return value
    if tp is type(None):
        if value is None:
            return None
        raise _fail(path, tp, value, where)
    if origin in (Union, types.UnionType):
        args = typing.get_args(tp)
        if value is None:
            if type(None) in args:
                return None
            raise _fail(path, tp, value, where)
        # Prefer an exact type match so that `True` stays a bool in `bool | str`.
        for a in args:
            if a in (bool, int, float, str) and type(value) is a:
                return value
        for a in args:
            if a is type(None):
                continue
            try:
                return _convert(a, value, path, where)
            except WsovvisError:
                continue
        raise _fail(path, tp, value, where)
    if origin is Literal:
        if value in typing.get_args(tp) and type(value) in {type(a) for a in typing.get_args(tp)}:
            return value
        raise _fail(path, tp, value, where)
    if tp is bool:
        if isinstance(value, bool):
            return value
        raise _fail(path, tp, value, where)
    if tp is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        if isinstance(value, float) and value.is_integer():
            return int(value)
        raise _fail(path, tp, value, where)
    if tp is float:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
        raise _fail(path, tp, value, where)
    if tp is str:
        if isinstance(value, str):
            return value
        raise _fail(path, tp, value, where)
    if origin in (list, tuple) or tp in (list, tuple):
        if not isinstance(value, (list, tuple)):
            raise _fail(path, tp, value, where)
        args = [a for a in typing.get_args(tp) if a is not Ellipsis]
        item = args[0] if args else Any
        return [_convert(item, v, f"{path}[{i}]", where) for i, v in enumerate(value)]
    if origin is dict or tp is dict:
        if not isinstance(value, dict):
            raise _fail(path, tp, value, where)
        return dict(value)
    if dataclasses.is_dataclass(tp):
        if isinstance(value, tp):
            return value
        if not isinstance(value, dict):
            raise _fail(path, tp, value, where)
        return from_dict(tp, value, where=where, path=path)
    raise TypeError(f"schema annotation {tp!r} of '{path}' is not supported")


def from_dict(cls: type, data: dict, *, where: str = "config", path: str = "") -> Any:
    """Build ``cls`` from ``data``; missing keys take the dataclass defaults."""
    if not isinstance(data, dict):
        raise WsovvisError(f"{where}: '{path or '<root>'}' expects a mapping, got {_describe(data)}")
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls) if f.init}
    kwargs = {}
    for key, value in data.items():
        sub = f"{path}.{key}" if path else str(key)
        if key not in fields:
            raise WsovvisError(unknown_key_message(sub, list(fields), where))
        kwargs[key] = _convert(hints[key], value, sub, where)
    missing = [
        name for name, f in fields.items()
        if name not in kwargs and f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING
    ]
    if missing:
        raise WsovvisError(f"{where}: missing required key '{(path + '.') if path else ''}{missing[0]}'")
    try:
        obj = cls(**kwargs)
    except (ValueError, TypeError) as e:  # __post_init__ range checks
        raise WsovvisError(f"{where}: {path or cls.__name__}: {e}") from e
    return obj


def to_dict(obj: Any) -> Any:
    """Dataclass (nested) -> plain dict of JSON-able values; tuples become lists."""
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return {f.name: to_dict(getattr(obj, f.name)) for f in dataclasses.fields(obj)}
    if isinstance(obj, (list, tuple)):
        return [to_dict(v) for v in obj]
    if isinstance(obj, dict):
        return {k: to_dict(v) for k, v in obj.items()}
    return obj


def flatten(d: dict, prefix: str = "") -> dict[str, Any]:
    """``{"a": {"b": 1}}`` -> ``{"a.b": 1}`` (lists are leaves)."""
    out: dict[str, Any] = {}
    for k, v in d.items():
        key = f"{prefix}.{k}" if prefix else str(k)
        if isinstance(v, dict) and v:
            out.update(flatten(v, key))
        else:
            out[key] = v
    return out
