"""``openclip:<name>``: an open_clip CLIP/SigLIP model with weights from a local file.

Nothing here ever reaches a model hub: weights come from ``--weights FILE`` (or an explicit
``--random_init``), and models whose tokenizer lives on the HuggingFace hub (SigLIP) need
``--tokenizer DIR`` with a local copy for the text path.
"""

from __future__ import annotations

import contextlib
import difflib
import logging
import os
import pickle
from pathlib import Path

import torch
from PIL import Image

from wsovvis.errors import WsovvisError
from wsovvis.openvocab.embedder import Embedder, file_fingerprint, register_embedder, resolve_device
from wsovvis.utils.logging import get_logger
from wsovvis.utils.safe_load import check_torch_file

log = get_logger(__name__)

RANDOM_INIT_SEED = 0
TEXT_CHUNK = 256


@contextlib.contextmanager
def _quiet_open_clip():
    """open_clip logs through the root logger ('No pretrained weights loaded ...'); we log our own line."""
    root = logging.getLogger()
    level = root.level
    root.setLevel(logging.ERROR)
    try:
        yield
    finally:
        root.setLevel(level)


def _normalize_mean(preprocess) -> tuple[float, float, float]:
    """The RGB mean (0..1) of the transform's Normalize step: the colour that becomes zero input."""
    from torchvision.transforms import Normalize

    for t in getattr(preprocess, "transforms", []):
        if isinstance(t, Normalize):
            return tuple(float(m) for m in t.mean)
    return (0.5, 0.5, 0.5)


_TAG_KEYS = ("mean", "std", "interpolation", "resize_mode", "quick_gelu")


def tag_settings(name: str, tag: str | None) -> tuple[str | None, dict]:
    """Preprocessing and activation that published weights of ``name`` were trained with.

    open_clip applies these only when it downloads a tagged checkpoint; a local file gets the generic
    CLIP defaults, which is wrong for SigLIP (mean/std 0.5) and OpenAI (QuickGELU) weights. So they are
    taken from the tag: the given one, or the model's only choice when all its tags agree.
    Returns ``(tag or None, {mean, std, interpolation, resize_mode, quick_gelu})`` (empty if the model has no tags).
    """
    import open_clip

    tags = open_clip.list_pretrained_tags_by_model(name)
    if tag is not None:
        if tag not in tags:
            raise WsovvisError(f"--pretrained_tag {tag!r} is not a published tag of openclip:{name}; "
                               f"choose from {', '.join(tags) or '(none)'}")
        chosen = [tag]
    else:
        chosen = tags
    settings = {}
    for t in chosen:
        cfg = open_clip.get_pretrained_cfg(name, t)
        settings.setdefault(tuple((k, cfg.get(k)) for k in _TAG_KEYS), []).append(t)
    if len(settings) > 1:
        groups = "; ".join(", ".join(ts) for ts in settings.values())
        raise WsovvisError(
            f"openclip:{name}: its published weights differ in preprocessing or activation ({groups}); "
            "pass --pretrained_tag TAG naming the weights in --weights"
        )
    if not settings:
        return None, {}
    (items, group), = settings.items()
    return (tag or (group[0] if len(group) == 1 else None)), {k: _plain(v) for k, v in items if v is not None}


def _plain(v):
    return list(v) if isinstance(v, tuple) else v


def make_tokenizer(name: str, tokenizer_dir: str | os.PathLike | None = None):
    """The text tokenizer of open_clip model ``name``, never from the hub.

    CLIP models bundle their BPE vocabulary; SigLIP models use a HuggingFace tokenizer, which is read
    from ``tokenizer_dir`` (local files only) and needs the ``transformers`` package.
    """
    import open_clip

    text_cfg = open_clip.get_model_config(name).get("text_cfg", {})
    hf_name = text_cfg.get("hf_tokenizer_name")
    if not hf_name and "siglip" not in name.lower():
        if tokenizer_dir is not None:
            log.warning("--tokenizer ignored: openclip:%s uses the BPE tokenizer bundled with open_clip", name)
        return open_clip.get_tokenizer(name)
    if tokenizer_dir is None:
        raise WsovvisError(
            f"model 'openclip:{name}' uses the HuggingFace tokenizer {hf_name or 'of ' + name!r}, which is not "
            "bundled and cannot be downloaded here: pass --tokenizer DIR with a local copy "
            "(tokenizer.json / tokenizer_config.json) and install `transformers`"
        )
    tokenizer_dir = Path(tokenizer_dir)
    if not tokenizer_dir.is_dir():
        raise WsovvisError(f"{tokenizer_dir}: --tokenizer directory does not exist")
    try:
        import transformers  # noqa: F401
    except ImportError as e:
        raise WsovvisError(
            f"--tokenizer {tokenizer_dir}: reading a HuggingFace tokenizer needs the `transformers` package, "
            "which is not installed (pip install transformers)"
        ) from e
    from open_clip.tokenizer import HFTokenizer

    try:
        return HFTokenizer(
            str(tokenizer_dir),
            context_length=text_cfg.get("context_length", 64),
            tokenizer_mode=text_cfg.get("tokenizer_mode"),
            local_files_only=True,
            **text_cfg.get("tokenizer_kwargs", {}),
        )
    except (OSError, ValueError) as e:
        raise WsovvisError(f"{tokenizer_dir}: not a usable tokenizer for openclip:{name}: {e}") from e


class OpenClipEmbedder(Embedder):
    """An open_clip model in eval mode.

    Args:
        name: open_clip model config name (``open_clip.list_models()``), e.g. ``ViT-B-16-SigLIP``.
        weights: local checkpoint (``.pt``/``.bin``/``.safetensors``, or big_vision ``.npz`` for SigLIP).
        device: torch device string.
        tokenizer_dir: local HuggingFace tokenizer directory, for models whose tokenizer is not bundled.
        random_init: build with seeded random weights instead of ``weights`` (tests, benchmarks).
        amp: fp16 autocast for the encoders (default: on for CUDA; True also applies on CPU).
        pretrained_tag: the published weights ``weights`` holds (sets preprocessing, see `tag_settings`).
        known_fingerprint: the weights fingerprint recorded by an earlier run (saves re-hashing).
        trust_pickle: load ``weights`` with full unpickling (runs any code the file holds); otherwise a
            file holding Python objects besides tensors is refused (`wsovvis.utils.safe_load`).
    """

    def __init__(
        self,
        name: str,
        weights: str | os.PathLike | None = None,
        device: str = "cpu",
        tokenizer_dir: str | os.PathLike | None = None,
        random_init: bool = False,
        amp: bool | None = None,
        pretrained_tag: str | None = None,
        known_fingerprint: dict | None = None,
        trust_pickle: bool = False,
    ):
        import open_clip

        if name.startswith(("hf-hub:", "local-dir:")) or name not in open_clip.list_models():
            close = difflib.get_close_matches(name, open_clip.list_models(), n=3)
            hint = f" (did you mean {', '.join(close)}?)" if close else ""
            raise WsovvisError(
                f"model spec 'openclip:{name}': not an open_clip model config{hint}; "
                "hub-hosted models cannot be used here, give a built-in name and --weights FILE"
            )
        if weights is None and not random_init:
            raise WsovvisError(
                f"model 'openclip:{name}' needs local weights: pass --weights FILE (a checkpoint on disk; "
                "nothing is downloaded), or --random_init for random weights (tests and benchmarks only)"
            )
        if weights is not None and random_init:
            raise WsovvisError("--weights and --random_init are mutually exclusive")
        if weights is not None and not Path(weights).is_file():
            raise WsovvisError(f"{weights}: --weights file does not exist (model 'openclip:{name}')")
        # Random weights were trained on nothing: open_clip's defaults are as good as any tag's.
        self.tag, self.tag_cfg = (None, {}) if random_init else tag_settings(name, pretrained_tag)
        kwargs = {}
        if self.tag_cfg:
            kwargs = {"image_mean": tuple(self.tag_cfg["mean"]), "image_std": tuple(self.tag_cfg["std"]),
                      "image_interpolation": self.tag_cfg.get("interpolation"),
                      "image_resize_mode": self.tag_cfg.get("resize_mode"),
                      "force_quick_gelu": bool(self.tag_cfg.get("quick_gelu", False))}
        self.name = name
        self.spec = f"openclip:{name}"
        self.device = resolve_device(device)
        self.amp = self.device.startswith("cuda") if amp is None else bool(amp)
        self.tokenizer_dir = Path(tokenizer_dir) if tokenizer_dir is not None else None
        self._tokenizer = None
        # {path, size, mtime_ns, sha256}; recorded in the cache so later runs need not re-hash.
        self.weights_file = None if weights is None else file_fingerprint(weights, known_fingerprint)
        with _quiet_open_clip():
            if random_init:
                with torch.random.fork_rng(devices=[]):
                    # Seeded so that `embed` and `label`, in separate processes, build the same towers.
                    torch.manual_seed(RANDOM_INIT_SEED)
                    model, _, preprocess = open_clip.create_model_and_transforms(name, pretrained=None)
                log.warning("openclip:%s has RANDOM weights (--random_init): embeddings carry no meaning", name)
            else:
                # our refusal (naming the file and the type) before open_clip's own weights-only load
                check_torch_file(weights, what=f"open_clip weights of '{name}'", trust_pickle=trust_pickle)
                if trust_pickle:
                    log.warning("%s: --trust_pickle: full unpickling, any code in the file runs", weights)
                try:
                    model, _, preprocess = open_clip.create_model_and_transforms(
                        name, pretrained=str(weights), weights_only=not trust_pickle, **kwargs)
                except (RuntimeError, KeyError, ValueError, OSError, pickle.UnpicklingError) as e:
                    raise WsovvisError(f"{weights}: cannot load as weights of open_clip model '{name}': {e}") from e
                log.info("openclip:%s weights from %s (sha256 %s), preprocessing of tag %s: %s", name, weights,
                         self.weights_file["sha256"][:12], self.tag, self.tag_cfg or "open_clip defaults")
        self.model = model.to(self.device).eval()
        self._preprocess = preprocess
        self.dim = int(open_clip.get_model_config(name)["embed_dim"])
        self.fill_rgb = tuple(int(round(255 * m)) for m in _normalize_mean(preprocess))
        self.random_init = random_init

    def preprocess(self, image: Image.Image) -> torch.Tensor:
        return self._preprocess(image)

    def _autocast(self):
        # on by default only on CUDA; an explicit amp=True is honoured on CPU too (same path, checkable here)
        if self.amp:
            return torch.autocast(self.device.split(":")[0], dtype=torch.float16)
        return contextlib.nullcontext()

    @torch.inference_mode()
    def encode_images(self, images: torch.Tensor) -> torch.Tensor:
        x = images.to(self.device, non_blocking=True)
        with self._autocast():
            f = self.model.encode_image(x)
        return f.float().cpu()

    def tokenizer(self):
        if self._tokenizer is None:
            self._tokenizer = make_tokenizer(self.name, self.tokenizer_dir)
        return self._tokenizer

    @torch.inference_mode()
    def encode_texts(self, texts: list[str]) -> torch.Tensor:
        tok = self.tokenizer()
        out = []
        for i in range(0, len(texts), TEXT_CHUNK):
            ids = tok(texts[i:i + TEXT_CHUNK]).to(self.device)
            with self._autocast():
                out.append(self.model.encode_text(ids).float().cpu())
        return torch.cat(out) if out else torch.zeros(0, self.dim)

    def fingerprint(self) -> dict:
        if self.random_init:
            return {"spec": self.spec, "random_init_seed": RANDOM_INIT_SEED}
        return {"spec": self.spec, "weights_sha256": self.weights_file["sha256"], "pretrained_tag": self.tag,
                "preprocess": self.tag_cfg}


@register_embedder("openclip")
def build_openclip(name: str, *, weights=None, device="cpu", tokenizer=None, random_init=False, amp=None,
                   pretrained_tag=None, known_fingerprint=None, trust_pickle=False) -> OpenClipEmbedder:
    return OpenClipEmbedder(name, weights=weights, device=device, tokenizer_dir=tokenizer, random_init=random_init,
                            amp=amp, pretrained_tag=pretrained_tag, known_fingerprint=known_fingerprint,
                            trust_pickle=trust_pickle)
