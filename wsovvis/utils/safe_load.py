"""The one loader for checkpoint and weights files that may come from anywhere.

A pickle can run any code while it is read, so nothing here unpickles fully unless the caller passes
``trust_pickle=True`` (``--trust_pickle`` / ``model.trust_pickle=true``), which logs what it risks.
Otherwise only tensors, numpy arrays / scalars / dtypes, plain containers (dict, list, tuple, set,
``OrderedDict``) and ``argparse.Namespace`` (the original SeqFormer checkpoints pickle their
arguments beside the weights; it is data) are rebuilt. Anything else is refused with a `WsovvisError`
naming the file and the disallowed type; the file's code is never run.

Entry points:

* `load_untrusted` -- any weights file, by suffix: torch ``.pth``/``.pt``/``.bin``/``.ckpt``
  (``torch.load(weights_only=True)`` with the extra types above), ``.pkl``/``.pickle`` (restricted
  unpickler), ``.npy``/``.npz`` (``allow_pickle=False``), ``.safetensors``.
* `load_pickle_untrusted` -- a plain pickle (detectron2 ``R-50.pkl``: ``{"model": {name: ndarray}}``).
* `load_numpy_untrusted` -- ``.npy`` / ``.npz``.
* `check_torch_file` -- scan a torch file's pickle for disallowed types without loading it (for
  third-party loaders such as open_clip that read the file themselves).
"""

from __future__ import annotations

import argparse
import codecs
import collections
import copyreg
import os
import pickle
import re
import sys
import types
import zipfile
from pathlib import Path
from typing import Any

import numpy as np

from wsovvis.errors import WsovvisError
from wsovvis.utils.logging import get_logger

log = get_logger(__name__)

PathLike = str | os.PathLike

TORCH_SUFFIXES = (".pth", ".pt", ".bin", ".ckpt", ".tar")
PICKLE_SUFFIXES = (".pkl", ".pickle")
NUMPY_SUFFIXES = (".npy", ".npz")

ADVICE = ("only tensors, arrays and plain containers are read from weights files; if you trust this file, "
          "pass --trust_pickle (model.trust_pickle=true), which runs any code the file contains")


class UnsafePickleError(WsovvisError):
    """A weights file holds a Python object other than tensors, arrays and plain containers."""


def _numpy_core(name: str):
    """``numpy._core.multiarray.<name>`` (numpy 2) also reachable as ``numpy.core.multiarray.<name>``."""
    core = getattr(np, "_core", None) or np.core
    return getattr(core.multiarray, name)


def _dtype_classes() -> list[type]:
    dtypes = getattr(np, "dtypes", None)
    if dtypes is None:
        return []
    return [getattr(dtypes, n) for n in dir(dtypes) if n.endswith("DType") and isinstance(getattr(dtypes, n), type)]


def _torch_safe_globals() -> list:
    """Extra globals for ``torch.load(weights_only=True)``: numpy data and ``argparse.Namespace``.

    Each also under its numpy-1 name (``numpy.core.…``): files saved with numpy 1 name it so.
    """
    out: list = [argparse.Namespace, np.ndarray, np.dtype]
    for name in ("_reconstruct", "scalar"):
        fn = _numpy_core(name)
        out += [fn, (fn, f"numpy.core.multiarray.{name}"), (fn, f"numpy._core.multiarray.{name}")]
    out += _dtype_classes()
    return out


def _encode(obj, encoding="utf-8", errors="strict"):
    """``_codecs.encode`` as protocol-2 pickles use it for bytes, limited to text encodings."""
    if not isinstance(obj, str) or codecs.lookup(encoding).name not in ("latin-1", "iso8859-1", "utf-8", "ascii"):
        raise pickle.UnpicklingError(f"_codecs.encode with {type(obj).__name__} / {encoding!r}")
    return codecs.encode(obj, encoding, errors)


_PLAIN_CLASSES: dict[tuple[str, str], Any] = {
    ("builtins", "set"): set,
    ("builtins", "frozenset"): frozenset,
    ("builtins", "bytearray"): bytearray,
    ("builtins", "complex"): complex,
    ("builtins", "slice"): slice,
    ("builtins", "object"): object,
    ("__builtin__", "set"): set,
    ("__builtin__", "frozenset"): frozenset,
    ("__builtin__", "object"): object,
    ("collections", "OrderedDict"): collections.OrderedDict,
    ("argparse", "Namespace"): argparse.Namespace,
    ("numpy", "ndarray"): np.ndarray,
    ("numpy", "dtype"): np.dtype,
}
# classes `copyreg._reconstructor` (protocol 0/1 pickles of plain objects) may build
_RECONSTRUCTABLE = (argparse.Namespace, collections.OrderedDict, set, frozenset)


def _reconstructor(cls, base, state):
    if cls not in _RECONSTRUCTABLE or base not in (object, dict, set, frozenset):
        raise pickle.UnpicklingError(f"copyreg._reconstructor of {getattr(cls, '__qualname__', cls)!r}")
    return copyreg._reconstructor(cls, base, state)


def _allowed_pickle_globals() -> dict[tuple[str, str], Any]:
    table = dict(_PLAIN_CLASSES)
    for mod in ("numpy.core.multiarray", "numpy._core.multiarray"):
        for name in ("_reconstruct", "scalar"):
            table[(mod, name)] = _numpy_core(name)
    core = getattr(np, "_core", None) or np.core
    for mod in ("numpy.core.numeric", "numpy._core.numeric"):  # protocol-5 pickles of arrays
        table[(mod, "_frombuffer")] = core.numeric._frombuffer
    for cls in _dtype_classes():
        table[("numpy.dtypes", cls.__name__)] = cls
    table[("_codecs", "encode")] = _encode
    table[("copy_reg", "_reconstructor")] = _reconstructor
    table[("copyreg", "_reconstructor")] = _reconstructor
    return table


# tensors in a plain pickle (``pickle.dump(state_dict)``): torch's own rebuild functions, the storage bytes
# read back weights-only (torch's ``_load_from_bytes`` would unpickle them fully)
_TORCH_PICKLE_GLOBALS = {("torch._utils", "_rebuild_tensor_v2"), ("torch._utils", "_rebuild_parameter"),
                         ("torch.storage", "_load_from_bytes")}


def _torch_pickle_global(name: str) -> Any:
    import io

    import torch

    if name == "_load_from_bytes":
        return lambda b: torch.load(io.BytesIO(b), map_location="cpu", weights_only=True)
    return getattr(torch._utils, name)


def _buildable(inst: Any) -> bool:
    """Objects whose state a pickle may set (BUILD): data only, never a class or a function."""
    if isinstance(inst, (type, _FunctionTypes)):
        return False
    if isinstance(inst, (np.ndarray, np.dtype, np.generic, argparse.Namespace, collections.OrderedDict)):
        return True
    torch = sys.modules.get("torch")
    return torch is not None and isinstance(inst, torch.Tensor)


_FunctionTypes = (types.FunctionType, types.BuiltinFunctionType, types.MethodType)


class _RestrictedUnpickler(pickle._Unpickler):
    """Resolves only the globals of `_allowed_pickle_globals`; the first other one stops the load.

    The pure-Python unpickler, so that BUILD can be limited to data objects too (`_buildable`): otherwise
    a pickle could set attributes on an allowed class (``argparse.Namespace.__setstate__ = ...``).
    """

    _table: dict[tuple[str, str], Any] | None = None
    dispatch = dict(pickle._Unpickler.dispatch)

    def load_build(self) -> None:
        inst = self.stack[-2]  # the state is on top, the object it goes to below it
        if not _buildable(inst):
            raise UnsafePickleError(f"state of {getattr(inst, '__qualname__', type(inst).__qualname__)} (BUILD)")
        pickle._Unpickler.load_build(self)

    dispatch[pickle.BUILD[0]] = load_build

    def find_class(self, module: str, name: str) -> Any:
        table = type(self)._table
        if table is None:
            table = type(self)._table = _allowed_pickle_globals()
        if (module, name) in _TORCH_PICKLE_GLOBALS:
            return _torch_pickle_global(name)
        try:
            return table[(module, name)]
        except KeyError:
            raise UnsafePickleError(f"{module}.{name}") from None

    def persistent_load(self, pid):
        raise pickle.UnpicklingError(f"persistent id {str(pid)[:60]!r} (not a plain pickle)")


def _refuse(path: Path, what: str, types: list[str]) -> UnsafePickleError:
    shown = ", ".join(types[:5]) + (f" and {len(types) - 5} more" if len(types) > 5 else "")
    return UnsafePickleError(f"{path}: {what} holds a disallowed Python object ({shown}); {ADVICE}")


def _warn_trusted(path: Path, what: str) -> None:
    log.warning("%s: loading %s with full unpickling (trust_pickle): any code the file holds runs with your "
                "permissions; use this only for files from a source you trust", path, what)


def _existing(path: PathLike, what: str) -> Path:
    path = Path(path)
    if not path.exists():
        raise WsovvisError(f"{path}: {what} does not exist")
    if path.is_dir():
        raise WsovvisError(f"{path}: {what} is a directory, expected a file")
    return path


_GLOBAL_RE = re.compile(r"(?:GLOBAL|global:?)\s+([A-Za-z_][\w.]*)")


def unsafe_globals(path: PathLike) -> list[str]:
    """Globals in a torch file's pickle outside the allowed set, read without loading ([] when unsure)."""
    import torch

    try:
        found = torch.serialization.get_unsafe_globals_in_checkpoint(str(path))
    except Exception:  # legacy (non-zip) format or not a torch file: the load error names the type
        return []
    allowed = set()
    for g in _torch_safe_globals():
        allowed.add(g[1] if isinstance(g, tuple) else f"{g.__module__}.{g.__qualname__}")
    return sorted(t for t in found if t not in allowed)


def load_torch_untrusted(path: PathLike, *, what: str, trust_pickle: bool = False, map_location: Any = "cpu") -> Any:
    """``torch.load`` with weights-only unpickling plus numpy data and ``argparse.Namespace``."""
    import torch

    path = _existing(path, what)
    if trust_pickle:
        _warn_trusted(path, what)
        try:
            return torch.load(path, map_location=map_location, weights_only=False)
        except Exception as e:  # torch raises many types for corrupt files
            raise WsovvisError(f"{path}: unreadable {what} ({type(e).__name__}: {e})") from e
    try:
        with torch.serialization.safe_globals(_torch_safe_globals()):
            return torch.load(path, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as e:
        types = unsafe_globals(path) or _GLOBAL_RE.findall(str(e))
        if types:
            raise _refuse(path, what, types) from None
        raise WsovvisError(f"{path}: unreadable {what} (not a plain torch file: {_last_line(e)})") from None
    except OSError as e:
        raise WsovvisError(f"{path}: cannot read {what}: {e.strerror or e}") from e
    except MemoryError:
        raise WsovvisError(f"{path}: {what} does not fit in memory") from None
    except Exception as e:  # truncated zip, not a torch file, bad storage ...
        raise WsovvisError(f"{path}: unreadable {what} ({type(e).__name__}: {_last_line(e)})") from e


def _last_line(e: BaseException) -> str:
    lines = [ln.strip() for ln in str(e).splitlines() if ln.strip()]
    boiler = ("Weights only load failed", "Check the documentation", "Please file an issue", "(1)", "(2)")
    informative = [ln for ln in lines if not ln.startswith(boiler)]
    return (informative or lines or [type(e).__name__])[0][:300]


def load_pickle_untrusted(path: PathLike, *, what: str, trust_pickle: bool = False, encoding: str = "latin1") -> Any:
    """A plain pickle through the restricted unpickler (``encoding``: for Python-2 pickles, as detectron2's)."""
    path = _existing(path, what)
    try:
        with open(path, "rb") as f:
            if trust_pickle:
                _warn_trusted(path, what)
                return pickle.load(f, encoding=encoding)
            return _RestrictedUnpickler(f, encoding=encoding).load()
    except UnsafePickleError as e:
        raise _refuse(path, what, [str(e)]) from None
    except OSError as e:
        raise WsovvisError(f"{path}: cannot read {what}: {e.strerror or e}") from e
    except MemoryError:
        raise WsovvisError(f"{path}: {what} does not fit in memory") from None
    except RecursionError:
        raise WsovvisError(f"{path}: unreadable {what}: nested too deeply") from None
    except Exception as e:  # UnpicklingError, EOFError, ValueError, TypeError from a corrupt stream
        raise WsovvisError(f"{path}: unreadable {what} as a pickle ({type(e).__name__}: {e})") from e


def load_numpy_untrusted(path: PathLike, *, what: str, trust_pickle: bool = False) -> Any:
    """``np.load`` without pickles (object arrays refused unless ``trust_pickle``); ``.npz`` read eagerly."""
    path = _existing(path, what)
    if trust_pickle:
        _warn_trusted(path, what)
    try:
        obj = np.load(path, allow_pickle=trust_pickle)
        if isinstance(obj, np.lib.npyio.NpzFile):
            with obj:
                return {k: obj[k] for k in obj.files}
        return obj
    except ValueError as e:
        if "allow_pickle" in str(e):
            raise _refuse(path, what, ["numpy object array"]) from None
        raise WsovvisError(f"{path}: unreadable {what} ({e})") from e
    except OSError as e:
        raise WsovvisError(f"{path}: cannot read {what}: {e.strerror or e}") from e
    except (zipfile.BadZipFile, EOFError) as e:
        raise WsovvisError(f"{path}: unreadable {what} ({type(e).__name__}: {e})") from e


def load_untrusted(path: PathLike, *, what: str, trust_pickle: bool = False, map_location: Any = "cpu") -> Any:
    """Any weights file, by suffix (torch files are the default for unknown suffixes)."""
    suffix = Path(path).suffix.lower()
    if suffix in PICKLE_SUFFIXES:
        return load_pickle_untrusted(path, what=what, trust_pickle=trust_pickle)
    if suffix in NUMPY_SUFFIXES:
        return load_numpy_untrusted(path, what=what, trust_pickle=trust_pickle)
    if suffix == ".safetensors":
        path = _existing(path, what)
        try:
            from safetensors.torch import load_file
        except ImportError as e:
            raise WsovvisError(f"{path}: reading .safetensors needs the 'safetensors' package") from e
        try:
            return load_file(str(path), device=str(map_location))
        except Exception as e:  # safetensors raises its own error types for bad headers
            raise WsovvisError(f"{path}: unreadable {what} ({type(e).__name__}: {e})") from e
    return load_torch_untrusted(path, what=what, trust_pickle=trust_pickle, map_location=map_location)


def check_torch_file(path: PathLike, *, what: str, trust_pickle: bool = False) -> None:
    """Refuse a torch file whose pickle names a disallowed global, without loading its tensors.

    For loaders outside wsovvis that call ``torch.load`` themselves (open_clip): a weights-only load
    there is safe too, but this gives our message. Files that are not zip torch files pass through
    (the loader reports them).
    """
    path = _existing(path, what)
    if trust_pickle or Path(path).suffix.lower() in (".safetensors", *NUMPY_SUFFIXES):
        return
    types = unsafe_globals(path)
    if types:
        raise _refuse(path, what, types)
