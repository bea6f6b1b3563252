"""``colorhist:[bins]``: a weight-free, deterministic embedder that names colours.

Images are embedded as a soft histogram of the hue of their saturated pixels; a text is embedded as
the same histogram profile centred on the hue of the colour word it contains ("a photo of a red
object" -> red). Cosine similarity between the two is therefore high exactly when a crop's dominant
saturated hue matches the colour name. It stands in for a CLIP model in tests and in the demo, where
no weights can be downloaded; it knows only the colours in `COLOR_HUES`.
"""

from __future__ import annotations

import re

import numpy as np
import torch
from PIL import Image

from wsovvis.errors import WsovvisError
from wsovvis.openvocab.embedder import Embedder, register_embedder

# Hue in degrees of each known colour name (HSV hue circle).
COLOR_HUES: dict[str, float] = {
    "red": 0.0, "orange": 30.0, "yellow": 60.0, "lime": 90.0, "chartreuse": 90.0, "green": 120.0,
    "mint": 150.0, "cyan": 180.0, "teal": 180.0, "azure": 210.0, "blue": 240.0, "violet": 270.0,
    "purple": 280.0, "magenta": 300.0, "pink": 330.0, "rose": 330.0,
}
_WORD = re.compile(r"[a-z]+")


def rgb_to_hsv(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """RGB in 0..1, channels first ``[B, 3, ...]`` -> hue in degrees ``[0, 360)``, saturation, value ``[B, ...]``."""
    r, g, b = x[:, 0], x[:, 1], x[:, 2]
    mx, _ = x.max(dim=1)
    mn, _ = x.min(dim=1)
    delta = mx - mn
    sat = torch.where(mx > 0, delta / mx.clamp_min(1e-12), torch.zeros_like(mx))
    safe = delta.clamp_min(1e-12)
    hue = torch.where(
        mx == r, ((g - b) / safe) % 6, torch.where(mx == g, (b - r) / safe + 2, (r - g) / safe + 4)
    ) * 60.0
    hue = torch.where(delta > 0, hue, torch.zeros_like(hue)) % 360.0
    return hue, sat, mx


def hue_profile(hue: torch.Tensor, bins: int, sigma: float) -> torch.Tensor:
    """Circular Gaussian of each hue (degrees, any shape ``[...]``) over ``bins`` centres -> ``[..., bins]``."""
    centres = torch.arange(bins, dtype=hue.dtype, device=hue.device) * (360.0 / bins)
    d = (hue.unsqueeze(-1) - centres).abs() % 360.0
    d = torch.minimum(d, 360.0 - d)
    return torch.exp(-0.5 * (d / sigma) ** 2)


class ColorHistEmbedder(Embedder):
    """Hue histogram embedder.

    Args:
        bins: histogram size ``D``.
        size: crops are resized to ``size x size`` before counting.
        sigma: width in degrees of the Gaussian each pixel spreads over the bins.
        min_saturation, min_value: pixels less saturated or darker than this do not vote; the
            grey fill of blended background (``bg_alpha``) falls below ``min_saturation``.
    """

    def __init__(self, bins: int = 36, size: int = 32, sigma: float = 15.0, min_saturation: float = 0.5,
                 min_value: float = 0.25):
        if bins < 4:
            raise WsovvisError(f"model spec 'colorhist:{bins}': need at least 4 hue bins")
        self.bins, self.size, self.sigma = bins, size, sigma
        self.min_saturation, self.min_value = min_saturation, min_value
        self.spec = f"colorhist:{bins}"
        self.dim = bins
        self.fill_rgb = (128, 128, 128)

    def preprocess(self, image: Image.Image) -> torch.Tensor:
        im = image.convert("RGB").resize((self.size, self.size), Image.BILINEAR)
        return torch.from_numpy(np.asarray(im, dtype=np.float32) / 255.0).permute(2, 0, 1).contiguous()

    def encode_images(self, images: torch.Tensor) -> torch.Tensor:
        hue, sat, val = rgb_to_hsv(images.float())
        w = sat * ((sat >= self.min_saturation) & (val >= self.min_value))
        prof = hue_profile(hue.flatten(1), self.bins, self.sigma)  # [B, P, D]
        return torch.einsum("bp,bpd->bd", w.flatten(1), prof)

    def colour_of(self, text: str) -> list[str]:
        return [w for w in _WORD.findall(text.lower()) if w in COLOR_HUES]

    def encode_texts(self, texts: list[str]) -> torch.Tensor:
        out = torch.zeros(len(texts), self.bins)
        for i, t in enumerate(texts):
            names = self.colour_of(t)
            if not names:
                raise WsovvisError(
                    f"colorhist embedder: no colour name in {t!r}; it knows {', '.join(sorted(COLOR_HUES))}"
                )
            hues = torch.tensor([COLOR_HUES[n] for n in names], dtype=torch.float32)
            out[i] = hue_profile(hues, self.bins, self.sigma).mean(0)
        return out

    def fingerprint(self) -> dict:
        return {"spec": self.spec, "size": self.size, "sigma": self.sigma,
                "min_saturation": self.min_saturation, "min_value": self.min_value}


def nearest_colour(hue_deg: float, names: list[str]) -> str:
    """The colour among ``names`` whose hue is circularly closest to ``hue_deg``."""
    def dist(n: str) -> float:
        d = abs(hue_deg - COLOR_HUES[n]) % 360.0
        return min(d, 360.0 - d)

    return min(names, key=dist)


@register_embedder("colorhist")
def build_colorhist(name: str, *, weights=None, device="cpu", tokenizer=None, random_init=False, amp=None,
                    pretrained_tag=None, known_fingerprint=None) -> ColorHistEmbedder:
    if weights is not None or pretrained_tag is not None:
        raise WsovvisError("model 'colorhist' has no weights: drop --weights / --pretrained_tag")
    if name and not name.isdigit():
        raise WsovvisError(f"model spec 'colorhist:{name}': the name part is the number of hue bins, e.g. colorhist:36")
    return ColorHistEmbedder(bins=int(name) if name else 36)

