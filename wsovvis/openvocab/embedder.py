"""The embedder interface and its registry of model spec schemes (``openclip:<name>``, ``colorhist:``).

An embedder maps image crops and texts into one joint space. Everything downstream (the embedding
cache, vocabularies, attribution) only talks to this interface, so a deterministic stand-in can be
plugged in place of a CLIP model (``register_embedder``).
"""

from __future__ import annotations

import importlib
import os
from abc import ABC, abstractmethod
from collections.abc import Callable
from pathlib import Path

import torch
from PIL import Image

from wsovvis.errors import WsovvisError
from wsovvis.utils.io import file_sha256

DEFAULT_SPEC = "openclip:ViT-B-16-SigLIP"

# scheme -> builder(name, **options) -> Embedder
EMBEDDERS: dict[str, Callable[..., Embedder]] = {}
# Built-in schemes are imported on first use, so `wsovvis label` never pays for open_clip if not needed.
_BUILTIN_MODULES = {
    "openclip": "wsovvis.openvocab.openclip_embedder",
    "colorhist": "wsovvis.openvocab.color_embedder",
}


class Embedder(ABC):
    """Image crops and texts -> vectors in one space (not necessarily unit norm).

    Attributes:
        spec: the model spec string, e.g. ``openclip:ViT-B-32``.
        dim: embedding size ``D``.
        fill_rgb: neutral colour (0..255) for blended background and out-of-image padding; for CLIP
            models the normalisation mean, so that blended pixels move towards zero input.
    """

    spec: str
    dim: int
    fill_rgb: tuple[int, int, int] = (128, 128, 128)
    weights_file: dict | None = None  # {path, size, mtime_ns, sha256} of a local weights file, if any

    @abstractmethod
    def preprocess(self, image: Image.Image) -> torch.Tensor:
        """The model's own preprocessing of one RGB crop -> float ``[3, S, S]``. Must be picklable (loader workers)."""

    @abstractmethod
    def encode_images(self, images: torch.Tensor) -> torch.Tensor:
        """``[B, 3, S, S]`` preprocessed crops -> float32 ``[B, D]`` on the CPU."""

    @abstractmethod
    def encode_texts(self, texts: list[str]) -> torch.Tensor:
        """``N`` texts -> float32 ``[N, D]`` on the CPU."""

    @abstractmethod
    def fingerprint(self) -> dict:
        """JSON-able identity ``{spec, weights_sha256 | ...}``: equal fingerprints give equal embeddings."""


def register_embedder(scheme: str) -> Callable:
    """Decorator: ``@register_embedder("myscheme")`` on ``builder(name, **options) -> Embedder``."""

    def deco(fn: Callable[..., Embedder]) -> Callable[..., Embedder]:
        EMBEDDERS[scheme] = fn
        return fn

    return deco


def parse_spec(spec: str) -> tuple[str, str]:
    """``"openclip:ViT-B-32"`` -> ``("openclip", "ViT-B-32")``; raises naming the known schemes."""
    scheme, sep, name = spec.partition(":")
    known = sorted(set(EMBEDDERS) | set(_BUILTIN_MODULES))
    if not sep or not scheme:
        raise WsovvisError(f"model spec {spec!r} must look like '<scheme>:<name>', scheme one of {', '.join(known)}")
    if scheme not in EMBEDDERS and scheme not in _BUILTIN_MODULES:
        raise WsovvisError(f"model spec {spec!r}: unknown scheme {scheme!r}; choose from {', '.join(known)}")
    return scheme, name


def build_embedder(
    spec: str,
    *,
    weights: str | os.PathLike | None = None,
    device: str = "cpu",
    tokenizer: str | os.PathLike | None = None,
    random_init: bool = False,
    amp: bool | None = None,
    pretrained_tag: str | None = None,
    known_fingerprint: dict | None = None,
    trust_pickle: bool = False,
) -> Embedder:
    """Build the embedder named by ``spec``.

    ``weights``: local weights file (never downloaded); ``random_init``: explicit opt-in to random
    weights (tests, benchmarks); ``tokenizer``: local tokenizer directory for models whose tokenizer
    lives on the HuggingFace hub; ``amp``: fp16 autocast, default on for CUDA;
    ``pretrained_tag``: which published weights the file holds (their preprocessing differs);
    ``known_fingerprint``: a fingerprint recorded earlier, reused when the weights file is unchanged;
    ``trust_pickle``: full unpickling of ``weights`` (``--trust_pickle``; only embedders that read
    pickled weights take it).
    """
    scheme, name = parse_spec(spec)
    if scheme not in EMBEDDERS:
        importlib.import_module(_BUILTIN_MODULES[scheme])
    extra = {"trust_pickle": True} if trust_pickle and scheme == "openclip" else {}
    return EMBEDDERS[scheme](
        name,
        **extra,
        weights=weights,
        device=device,
        tokenizer=tokenizer,
        random_init=random_init,
        amp=amp,
        pretrained_tag=pretrained_tag,
        known_fingerprint=known_fingerprint,
    )


def resolve_device(device: str) -> str:
    """``auto`` -> ``cuda`` when available, else ``cpu``; an unavailable CUDA request is an error."""
    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise WsovvisError(f"--device {device}: CUDA is not available on this machine (use --device cpu)")
    return device


def file_fingerprint(path: str | os.PathLike, known: dict | None = None) -> dict:
    """``{path, size, mtime_ns, sha256}`` of a weights file; reuses ``known`` when size and mtime match.

    Hashing an 800 MB checkpoint costs seconds, and `wsovvis label` runs after `wsovvis embed`
    with the same file, so the recorded hash is trusted while the file is unchanged.
    """
    p = Path(path)
    st = p.stat()
    if (
        known
        and known.get("size") == st.st_size
        and known.get("mtime_ns") == st.st_mtime_ns
        and Path(known.get("path", "")).resolve() == p.resolve()
        and known.get("sha256")
    ):
        return dict(known)
    return {"path": str(p.resolve()), "size": st.st_size, "mtime_ns": st.st_mtime_ns, "sha256": file_sha256(p)}
