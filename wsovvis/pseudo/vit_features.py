"""Self-supervised ViT features (DINO, DINOv2) through timm, from a local checkpoint only.

MaskCut's features are the keys of the last attention layer: a forward hook on
``blocks[-1].attn.qkv`` (output ``[B, N, 3D]`` laid out ``[q | k | v]``) keeps ``out[..., D:2D]``
without the prefix tokens (CLS, registers). Frames keep their aspect ratio (sides rounded to the
patch size), so the grid is ``H/p x W/p``. Features are computed in batches of frames, lazily, as
the engine walks through the video, so memory is bounded by one batch.

The model is created with ``pretrained=False`` and never touches a hub: a missing ``weights``
path is an error that names ``--weights``.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from wsovvis.errors import WsovvisError
from wsovvis.pseudo.features import FeatureExtractor, VideoFeatures, register_features
from wsovvis.utils.logging import get_logger
from wsovvis.utils.safe_load import load_untrusted

log = get_logger(__name__)

# our name -> (timm architecture, default MaskCut tau)
VIT_ARCHS: dict[str, tuple[str, float]] = {
    "dino_vits8": ("vit_small_patch8_224.dino", 0.15),
    "dino_vitb8": ("vit_base_patch8_224.dino", 0.15),
    "dino_vits16": ("vit_small_patch16_224.dino", 0.15),
    "dino_vitb16": ("vit_base_patch16_224.dino", 0.15),
    # DINOv2 keys are untested for MaskCut (see the reference); tau is a starting value to tune.
    "dinov2_vits14": ("vit_small_patch14_dinov2.lvd142m", 0.2),
    "dinov2_vitb14": ("vit_base_patch14_dinov2.lvd142m", 0.2),
    "dinov2_vitl14": ("vit_large_patch14_dinov2.lvd142m", 0.2),
    "dinov2_vitb14_reg4": ("vit_base_patch14_reg4_dinov2.lvd142m", 0.2),
}
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
_WRAPPERS = ("teacher", "student", "model", "state_dict", "module")
_PREFIXES = ("module.", "backbone.", "encoder.")


def _unwrap(state: dict) -> dict:
    """Accept DINO full checkpoints (``teacher``/``student``), ``{"model": ...}`` and plain state dicts."""
    for key in _WRAPPERS:
        if isinstance(state, dict) and key in state and isinstance(state[key], dict):
            state = state[key]
            break
    out = {}
    for k, v in state.items():
        for p in _PREFIXES:
            if k.startswith(p):
                k = k[len(p):]
        out[k] = v
    return out


def load_vit(arch: str, weights: str | os.PathLike | None, device: str = "cpu", trust_pickle: bool = False):
    """timm ViT ``arch`` (a key of `VIT_ARCHS`) with the local checkpoint ``weights``.

    The file is read by `wsovvis.utils.safe_load` (no code runs unless ``trust_pickle``).
    """
    import timm
    from timm.models.vision_transformer import checkpoint_filter_fn

    if arch not in VIT_ARCHS:
        raise WsovvisError(f"unknown ViT {arch!r}; choose from {', '.join(VIT_ARCHS)}")
    timm_name, _ = VIT_ARCHS[arch]
    if not weights:
        raise WsovvisError(
            f"--weights is required for the {arch} features ({timm_name}): pass a local checkpoint file, "
            "e.g. dino_vitbase8_pretrain.pth from https://dl.fbaipublicfiles.com/dino/; nothing is downloaded. "
            "Leave --arch at 'classic' to run without weights."
        )
    path = Path(weights)
    if not path.is_file():
        raise WsovvisError(f"{path}: --weights file does not exist (a local {timm_name} checkpoint is needed)")
    state = load_untrusted(path, what=f"--weights ({timm_name} checkpoint)", trust_pickle=trust_pickle)
    if not isinstance(state, dict):
        raise WsovvisError(f"{path}: --weights holds a {type(state).__name__}, expected a state dict")
    model = timm.create_model(timm_name, pretrained=False, num_classes=0, dynamic_img_size=True)
    state = _unwrap(state)
    state = {k: v for k, v in state.items() if not k.startswith(("head.", "mask_token"))}
    # timm's filter would silently resample a patch embedding of another size: check it first.
    pe = state.get("patch_embed.proj.weight")
    want = tuple(model.patch_embed.proj.weight.shape)
    if pe is not None and tuple(pe.shape) != want:
        raise WsovvisError(f"{path}: checkpoint does not fit {timm_name}: patch embedding {tuple(pe.shape)} "
                           f"(dim, channels, patch, patch), the model needs {want}; is --arch right?")
    try:
        state = checkpoint_filter_fn(state, model)
    except Exception as e:
        raise WsovvisError(f"{path}: checkpoint does not fit {timm_name} ({type(e).__name__}: {e})") from e
    missing, unexpected = model.load_state_dict(state, strict=False)
    missing = [k for k in missing if not k.startswith("head")]
    if missing:
        shown = ", ".join(missing[:6]) + (" ..." if len(missing) > 6 else "")
        raise WsovvisError(f"{path}: checkpoint is not a {timm_name} state dict; missing {len(missing)} "
                           f"parameter(s): {shown}")
    foreign = [k for k in unexpected if k.startswith("blocks.")]
    if foreign:
        raise WsovvisError(f"{path}: checkpoint does not fit {timm_name}: {len(foreign)} block parameter(s) the "
                           f"model does not have, e.g. {foreign[0]}; is --arch right?")
    if unexpected:
        log.info("%s: ignored %d unexpected key(s), e.g. %s", path, len(unexpected), unexpected[0])
    return model.eval().to(device)


class _LazyKeys:
    """``[T, h, w, D]`` last-layer keys computed batch by batch on first access (one batch cached)."""

    def __init__(self, extractor: ViTFeatures, frames: np.ndarray):
        self.ex = extractor
        self.frames = frames
        p = extractor.multiple
        self.shape = (len(frames), frames.shape[1] // p, frames.shape[2] // p, extractor.embed_dim)
        self._start = -1
        self._batch: np.ndarray | None = None

    def __len__(self) -> int:
        return self.shape[0]

    def __getitem__(self, t: int) -> np.ndarray:
        b = self.ex.batch_size
        start = (t // b) * b
        if start != self._start:
            self._batch = self.ex.keys(self.frames[start:start + b])
            self._start = start
        return self._batch[t - start]


class ViTFeatures(FeatureExtractor):
    """Last-layer attention keys of a timm DINO / DINOv2 ViT (see the module docstring).

    Args:
        arch: key of `VIT_ARCHS`; weights: local checkpoint path; short_side / max_long: working
        frame size; batch_size: frames per forward pass; device: torch device string.
    """

    def __init__(self, arch: str = "dino_vitb8", weights: str | None = None, short_side: int = 480,
                 max_long: int = 864, batch_size: int = 4, device: str | None = None, trust_pickle: bool = False):
        import torch

        self.arch = arch
        self.name = arch
        self.device = device or ("cuda" if torch.cuda.is_available() else "cpu")
        self.model = load_vit(arch, weights, self.device, trust_pickle)
        self.multiple = int(self.model.patch_embed.patch_size[0])
        self.embed_dim = int(self.model.embed_dim)
        self.prefix = int(self.model.num_prefix_tokens)
        self.short_side = short_side
        self.max_long = max_long
        self.batch_size = batch_size
        self.default_tau = VIT_ARCHS[arch][1]
        self._captured = None
        self.model.blocks[-1].attn.qkv.register_forward_hook(self._hook)

    def _hook(self, _module, _inp, out):
        self._captured = out

    def keys(self, frames: np.ndarray) -> np.ndarray:
        """``uint8 [B, H, W, 3]`` RGB -> ``float32 [B, H/p, W/p, D]`` keys."""
        import torch

        b, h, w, _ = frames.shape
        p = self.multiple
        if h % p or w % p:
            raise ValueError(f"frame size {h}x{w} is not a multiple of the patch size {p}")
        x = torch.from_numpy(np.ascontiguousarray(frames)).to(self.device).permute(0, 3, 1, 2).float() / 255.0
        mean = torch.tensor(IMAGENET_MEAN, device=self.device).view(1, 3, 1, 1)
        std = torch.tensor(IMAGENET_STD, device=self.device).view(1, 3, 1, 1)
        with torch.inference_mode():
            self.model.forward_features((x - mean) / std)
        qkv = self._captured
        self._captured = None
        d = self.embed_dim
        k = qkv[:, self.prefix:, d:2 * d]
        return k.reshape(b, h // p, w // p, d).float().cpu().numpy()

    def __call__(self, frames: np.ndarray) -> VideoFeatures:
        lazy = _LazyKeys(self, frames)
        return VideoFeatures(patch=lazy, link=lazy, fg_rule="maskcut")


def _factory(arch: str):
    def build(**kwargs) -> ViTFeatures:
        return ViTFeatures(arch=arch, **kwargs)

    return build


for _arch in VIT_ARCHS:
    register_features(_arch)(_factory(_arch))
