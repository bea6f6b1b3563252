"""`wsovvis.utils.safe_load`: weights files never run code unless trust_pickle; legitimate data loads."""

from __future__ import annotations

import argparse
import collections
import pickle
import random

import numpy as np
import pytest
import torch

from tests.reliability.helpers import MarkerPayload
from wsovvis.errors import WsovvisError
from wsovvis.utils.safe_load import (
    UnsafePickleError,
    check_torch_file,
    load_numpy_untrusted,
    load_pickle_untrusted,
    load_untrusted,
)


def _legit():
    return {
        "model": collections.OrderedDict(w=torch.arange(6.0).reshape(2, 3), p=torch.nn.Parameter(torch.ones(2))),
        "args": argparse.Namespace(lr=1e-4, dims=[1, 2]),
        "rng": {"python": random.getstate(), "numpy": np.random.get_state(), "torch": torch.get_rng_state()},
        "arr": np.arange(4, dtype=np.int16), "scalar": np.float64(2.5), "set": {1, 2}, "iteration": 7,
    }


def _check_legit(obj):
    assert torch.equal(obj["model"]["w"], torch.arange(6.0).reshape(2, 3))
    assert obj["args"].dims == [1, 2] and obj["args"].lr == 1e-4
    assert obj["rng"]["numpy"][0] == "MT19937" and obj["rng"]["numpy"][1].dtype == np.uint32
    assert obj["arr"].dtype == np.int16 and obj["arr"].tolist() == [0, 1, 2, 3]
    assert obj["scalar"] == 2.5 and obj["set"] == {1, 2} and obj["iteration"] == 7


@pytest.mark.parametrize("zipfile", [True, False])
def test_torch_file_with_namespace_numpy_and_rng_loads(tmp_path, zipfile):
    p = tmp_path / "ckpt.pth"
    torch.save(_legit(), p, _use_new_zipfile_serialization=zipfile)
    _check_legit(load_untrusted(p, what="checkpoint"))


@pytest.mark.parametrize("protocol", [0, 2, 4, 5])
def test_plain_pickle_of_arrays_tensors_and_namespace_loads(tmp_path, protocol):
    p = tmp_path / "R-50.pkl"
    with open(p, "wb") as f:
        pickle.dump(_legit(), f, protocol=protocol)
    obj = load_untrusted(p, what="backbone weights")
    _check_legit(obj)
    assert isinstance(obj["model"]["p"], torch.nn.Parameter)


@pytest.mark.parametrize("suffix,zipfile", [(".pth", True), (".pth", False), (".pkl", None), (".bin", True)])
def test_malicious_file_is_refused_and_runs_nothing(tmp_path, suffix, zipfile):
    marker = tmp_path / "PWNED"
    p = tmp_path / f"evil{suffix}"
    payload = {"w": torch.zeros(2), "x": MarkerPayload(marker)}
    if zipfile is None:
        with open(p, "wb") as f:
            pickle.dump(payload, f)
    else:
        torch.save(payload, p, _use_new_zipfile_serialization=zipfile)
    with pytest.raises(UnsafePickleError) as e:
        load_untrusted(p, what="model weights")
    msg = str(e.value)
    assert str(p) in msg and "system" in msg and "--trust_pickle" in msg
    assert not marker.exists()


def test_check_torch_file_refuses_without_loading(tmp_path):
    marker = tmp_path / "PWNED"
    p = tmp_path / "open_clip_model.pt"
    torch.save({"state_dict": {"w": torch.zeros(1)}, "x": MarkerPayload(marker)}, p)
    with pytest.raises(UnsafePickleError, match="system"):
        check_torch_file(p, what="open_clip weights")
    good = tmp_path / "good.pt"
    torch.save(_legit(), good)
    check_torch_file(good, what="open_clip weights")
    assert not marker.exists()


def test_trust_pickle_is_explicit_and_warns(tmp_path, caplog):
    marker = tmp_path / "PWNED"
    p = tmp_path / "evil.pkl"
    with open(p, "wb") as f:
        pickle.dump({"x": MarkerPayload(marker)}, f)
    with caplog.at_level("WARNING"):
        load_pickle_untrusted(p, what="legacy weights", trust_pickle=True)
    assert marker.exists()  # the opt-in really unpickles fully
    assert "trust_pickle" in caplog.text and "any code" in caplog.text


def test_numpy_object_arrays_refused(tmp_path):
    p = tmp_path / "emb.npy"
    np.save(p, np.array([1, "a"], dtype=object), allow_pickle=True)
    with pytest.raises(UnsafePickleError, match="object array"):
        load_numpy_untrusted(p, what="embeddings")
    q = tmp_path / "w.npz"
    np.savez(q, a=np.ones(3, np.float32))
    assert load_untrusted(q, what="SigLIP weights")["a"].tolist() == [1.0, 1.0, 1.0]


@pytest.mark.parametrize("content", [b"", b"garbage" * 20, b"PK\x03\x04broken"])
def test_corrupt_or_missing_files_name_the_file(tmp_path, content):
    p = tmp_path / "w.pth"
    p.write_bytes(content)
    with pytest.raises(WsovvisError, match=f"{p}: unreadable model weights"):
        load_untrusted(p, what="model weights")
    with pytest.raises(WsovvisError, match="does not exist"):
        load_untrusted(tmp_path / "nope.pth", what="model weights")
    with pytest.raises(WsovvisError, match="is a directory"):
        load_untrusted(tmp_path, what="model weights")


def test_truncated_pickle_names_the_file(tmp_path):
    p = tmp_path / "w.pkl"
    p.write_bytes(pickle.dumps({"model": {"a": np.zeros(100)}})[:50])
    with pytest.raises(WsovvisError, match=f"{p}: unreadable w"):
        load_pickle_untrusted(p, what="w")


def test_a_pickle_cannot_set_attributes_on_an_allowed_class(tmp_path):
    # hand-written opcodes: GLOBAL argparse.Namespace, then BUILD with slot state
    # {"__setstate__": numpy.dtype}: would replace a method of the class for the whole process
    stream = (b"\x80\x02cargparse\nNamespace\n" b"N}X\x0c\x00\x00\x00__setstate__cnumpy\ndtype\ns\x86b.")
    p = tmp_path / "mutate.pkl"
    p.write_bytes(stream)
    with pytest.raises(UnsafePickleError, match=r"state of Namespace \(BUILD\)"):
        load_pickle_untrusted(p, what="weights")
    assert "__setstate__" not in vars(argparse.Namespace)
