"""Shared builders for the modeling tests."""

from __future__ import annotations

from pathlib import Path

import torch
import yaml

CONFIG_DIR = Path(__file__).resolve().parents[2] / "configs" / "model"


def model_cfg(name: str, **overrides) -> dict:
    cfg = yaml.safe_load((CONFIG_DIR / f"{name}.yaml").read_text())
    for key, value in overrides.items():
        node = cfg
        parts = key.split(".")
        for p in parts[:-1]:
            node = node[p]
        node[parts[-1]] = value
    return cfg


def build(name: str = "seqformer_tiny", seed: int = 0, **overrides):
    from wsovvis.modeling import build_model

    torch.manual_seed(seed)
    return build_model({"model": model_cfg(name, **overrides)})


def square_clip(seed: int, T: int = 2, H: int = 64, W: int = 64, n: int = 2):
    """Frames ``[T, 3, H, W]`` (0..255) with ``n`` coloured rectangles moving at random, and their targets."""
    g = torch.Generator().manual_seed(seed)
    img = torch.full((T, 3, H, W), 40.0)
    masks = torch.zeros(n, T, H, W, dtype=torch.bool)
    boxes = torch.zeros(n, T, 4)
    colors = [torch.tensor([220.0, 40, 40]), torch.tensor([40.0, 200, 60]), torch.tensor([50.0, 60, 230])]
    for i in range(n):
        h, w = 16 + 8 * i, 24 - 4 * i
        for t in range(T):
            y0 = int(torch.randint(0, H - h, (1,), generator=g))
            x0 = int(torch.randint(0, W - w, (1,), generator=g))
            masks[i, t, y0 : y0 + h, x0 : x0 + w] = True
            img[t, :, y0 : y0 + h, x0 : x0 + w] = colors[i % 3][:, None, None]
            boxes[i, t] = torch.tensor([(x0 + w / 2) / W, (y0 + h / 2) / H, w / W, h / H])
    target = {
        "labels": torch.arange(n) * 2 % 5,
        "boxes": boxes,
        "masks": masks,
        "valid": torch.ones(n, T, dtype=torch.bool),
        "size": torch.tensor([H, W]),
    }
    return img, target
