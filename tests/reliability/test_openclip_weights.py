"""open_clip weights files: a pickle payload is refused with a message (never run) unless --trust_pickle."""

from __future__ import annotations

import pytest
import torch

from tests.reliability.helpers import MarkerPayload
from wsovvis.cli import main as cli_main
from wsovvis.openvocab.embedder import build_embedder
from wsovvis.utils.safe_load import UnsafePickleError

open_clip = pytest.importorskip("open_clip")
ARCH = "ViT-S-32"


@pytest.fixture(scope="module")
def evil(tmp_path_factory):
    root = tmp_path_factory.mktemp("openclip_evil")
    torch.manual_seed(0)
    model = open_clip.create_model(ARCH, pretrained=None)
    marker = root / "PWNED"
    path = root / "evil.pt"
    torch.save({"state_dict": {k: v.half() for k, v in model.state_dict().items()}, "x": MarkerPayload(marker)},
               path)
    return path, marker


def test_malicious_open_clip_weights_are_refused(evil, synthetic_data, tmp_path, capsys):
    path, marker = evil
    with pytest.raises(UnsafePickleError, match=rf"{path}: open_clip weights of 'ViT-S-32' holds a disallowed.*system"):
        build_embedder(f"openclip:{ARCH}", weights=path)
    assert not marker.exists()
    # through the CLI: a message and exit 2, not an UnpicklingError traceback
    rc = cli_main(["embed", "--tubes", str(synthetic_data.gt_json), "--img_root", str(synthetic_data.img_root),
                   "--out", str(tmp_path / "emb"), "--model", f"openclip:{ARCH}", "--weights", str(path),
                   "--device", "cpu", "--no_progress"])
    err = capsys.readouterr().err
    assert rc == 2 and "disallowed" in err and "--trust_pickle" in err and "Traceback" not in err
    assert not marker.exists()


def test_trust_pickle_loads_legacy_open_clip_weights(evil):
    path, marker = evil
    emb = build_embedder(f"openclip:{ARCH}", weights=path, trust_pickle=True)
    assert marker.exists() and emb.dim > 0
