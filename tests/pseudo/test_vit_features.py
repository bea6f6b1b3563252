"""DINO / DINOv2 feature path with random-initialised timm weights saved to local files.

No hub access: the checkpoint files are made here (``HF_HUB_OFFLINE=1`` in conftest).
"""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")
timm = pytest.importorskip("timm")

from wsovvis.errors import WsovvisError  # noqa: E402
from wsovvis.pseudo.engines import build_engine  # noqa: E402
from wsovvis.pseudo.features import available_features, build_features  # noqa: E402
from wsovvis.pseudo.frames import Video  # noqa: E402
from wsovvis.pseudo.vit_features import VIT_ARCHS  # noqa: E402

SMALL = {"dino_vits8": (8, 384, 1), "dino_vits16": (16, 384, 1), "dinov2_vits14": (14, 384, 1)}


@pytest.fixture(scope="module")
def checkpoints(tmp_path_factory):
    """Random-initialised state dicts in the layouts users have: DINO's ``teacher`` wrapper with
    ``backbone.`` prefixes, and DINOv2's plain dict with ``mask_token``."""
    d = tmp_path_factory.mktemp("ckpt")
    paths = {}
    for arch in SMALL:
        torch.manual_seed(0)
        m = timm.create_model(VIT_ARCHS[arch][0], pretrained=False, num_classes=0)
        sd = m.state_dict()
        if arch.startswith("dino_"):
            obj = {"teacher": {f"backbone.{k}": v for k, v in sd.items()}, "epoch": 100}
        else:
            obj = dict(sd, mask_token=torch.zeros(1, 384))
        paths[arch] = d / f"{arch}.pth"
        torch.save(obj, paths[arch])
    return paths


def test_every_registered_extractor_has_a_build_path():
    assert set(available_features()) == {"classic", *VIT_ARCHS}
    for arch, (timm_name, tau) in VIT_ARCHS.items():
        assert timm.is_model(timm_name), timm_name
        assert 0 < tau < 1
        with pytest.raises(WsovvisError, match=f"--weights is required for the {arch} features"):
            build_features(arch)


@pytest.mark.parametrize("arch", sorted(SMALL))
def test_keys_load_from_a_local_checkpoint_with_the_right_shapes(arch, checkpoints):
    patch, dim, prefix = SMALL[arch]
    fx = build_features(arch, weights=str(checkpoints[arch]), device="cpu", batch_size=2)
    assert (fx.multiple, fx.embed_dim, fx.prefix) == (patch, dim, prefix)
    # The loaded weights are the saved ones (not a fresh random init).
    ref = torch.load(checkpoints[arch], weights_only=True)
    ref = ref["teacher"] if "teacher" in ref else ref
    key = next(k for k in ref if k.endswith("blocks.0.attn.qkv.weight"))
    torch.testing.assert_close(fx.model.blocks[0].attn.qkv.weight, ref[key])
    h, w = 3 * patch, 5 * patch  # a non-square grid
    frames = np.random.default_rng(0).integers(0, 255, size=(3, h, w, 3), dtype=np.uint8)
    feats = fx(frames)
    assert feats.patch.shape == (3, 3, 5, dim) and feats.fg_rule == "maskcut"
    k2 = feats.patch[2]  # second batch, computed lazily
    assert k2.shape == (3, 5, dim) and np.isfinite(k2).all()
    # The hook returns exactly the keys: recompute them by hand from the last block's qkv.
    x = torch.from_numpy(frames[:1]).permute(0, 3, 1, 2).float() / 255
    mean = torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1)
    std = torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1)
    with torch.no_grad():
        tokens = fx.model.patch_embed((x - mean) / std)
        tokens = fx.model._pos_embed(tokens)
        tokens = fx.model.norm_pre(tokens)
        for blk in fx.model.blocks[:-1]:
            tokens = blk(tokens)
        qkv = fx.model.blocks[-1].attn.qkv(fx.model.blocks[-1].norm1(tokens))
    keys = qkv[0, prefix:, dim:2 * dim].reshape(3, 5, dim).numpy()
    np.testing.assert_allclose(feats.patch[0], keys, rtol=1e-4, atol=1e-4)


def test_bad_checkpoints_are_errors_naming_the_file(checkpoints, tmp_path):
    with pytest.raises(WsovvisError, match="missing.pth: --weights file does not exist"):
        build_features("dino_vits8", weights=str(tmp_path / "missing.pth"))
    junk = tmp_path / "junk.pth"
    junk.write_bytes(b"not a checkpoint")
    with pytest.raises(WsovvisError, match=r"junk.pth: unreadable --weights \(vit_small_patch8_224.dino checkpoint\)"):
        build_features("dino_vits8", weights=str(junk))
    # A DINOv2 S/14 checkpoint for a DINO S/8 model: the patch embedding does not fit.
    with pytest.raises(WsovvisError, match="dinov2_vits14.pth: checkpoint"):
        build_features("dino_vits8", weights=str(checkpoints["dinov2_vits14"]))


def test_maskcut_engine_runs_on_vit_features(checkpoints):
    eng = build_engine({"arch": "dino_vits16", "weights": str(checkpoints["dino_vits16"]), "device": "cpu",
                        "short_side": 64, "min_len": 1})
    assert eng.cut.fg_rule == "maskcut" and eng.cut.tau == pytest.approx(0.15)
    assert eng.frame_spec == (64, 16, 864)
    rng = np.random.default_rng(0)
    frames = rng.integers(0, 255, size=(3, 64, 96, 3), dtype=np.uint8)
    frames[:, 16:48, 24:64] = [230, 40, 40]  # a flat red block on noise
    res = eng(Video(name="v", frame_names=["a.jpg", "b.jpg", "c.jpg"], frames=frames, size=(64, 96)))
    # Random weights give arbitrary masks; the pipeline must still produce valid tubes.
    assert res.num_frames == 3
    for tb in res.tubes:
        assert 0.0 <= tb.score <= 1.0 and all(m.shape == (64, 96) for m in tb.masks.values())
