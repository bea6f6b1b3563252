"""Copy-paste augmentation (CutLER): paste instances of another training sample onto this one.

`copy_paste(dst, src, rng, ...)` takes two training samples (the dict of `wsovvis.data.dataset`:
``images uint8 [T, 3, h, w]``, ``masks bool [n, T, h, w]``, ``labels [n]``, ...):

1. choose ``k`` in ``1..m-1`` of the source's ``m`` instances (1 when it has one);
2. scale the whole source by ``s ~ U(scale_range)`` of the destination's size and shift it to a
   random position inside the destination;
3. paste the chosen instances one by one; an instance is dropped when it would cover ``>= max_cover``
   of an existing mask (intersection over the existing mask's area, over all frames);
4. the pasted pixels occlude what was below: existing masks lose them, and every box and ``valid``
   flag is recomputed from the masks; instances left without a pixel are removed.

Frame ``t`` of a clip takes the source's frame ``t`` (its last frame if it has fewer), with the
same geometry for every frame. Pasted instances have ``ann_id`` -1.
"""

from __future__ import annotations

import cv2
import numpy as np
import torch

from wsovvis.data.dataset import boxes_and_valid


def _resize(arr: np.ndarray, hw: tuple[int, int], nearest: bool) -> np.ndarray:
    """``[..., H, W]`` (channels first) -> ``[..., h, w]`` with cv2 (chunks of <= 256 planes)."""
    lead = arr.shape[:-2]
    flat = arr.reshape(-1, *arr.shape[-2:])
    out = np.zeros((flat.shape[0], *hw), dtype=arr.dtype)
    interp = cv2.INTER_NEAREST if nearest else cv2.INTER_LINEAR
    for s in range(0, flat.shape[0], 256):
        chunk = flat[s:s + 256].astype(np.uint8).transpose(1, 2, 0)
        r = cv2.resize(chunk, (hw[1], hw[0]), interpolation=interp).reshape(hw[0], hw[1], -1)
        out[s:s + 256] = r.transpose(2, 0, 1).astype(arr.dtype)
    return out.reshape(*lead, *hw)


def copy_paste(dst: dict, src: dict, rng: np.random.Generator, scale_range: tuple[float, float] = (0.3, 1.0),
               max_cover: float = 0.5) -> dict:
    """A new sample: ``dst`` with instances of ``src`` pasted on it (see the module docstring)."""
    m = int(src["masks"].shape[0])
    if m == 0:
        return dst
    images = dst["images"].numpy().copy()  # [T, 3, h, w]
    masks = dst["masks"].numpy().copy()  # [n, T, h, w]
    labels = dst["labels"].tolist()
    ann_ids = list(dst.get("ann_ids") or [0] * len(labels))
    T, _, h, w = images.shape
    k = int(rng.integers(1, max(m - 1, 1) + 1))
    chosen = sorted(rng.choice(m, size=k, replace=False).tolist())
    s = float(rng.uniform(*scale_range))
    ph, pw = max(1, int(round(h * s))), max(1, int(round(w * s)))
    y0, x0 = int(rng.integers(0, h - ph + 1)), int(rng.integers(0, w - pw + 1))
    src_t = [min(t, src["images"].shape[0] - 1) for t in range(T)]
    src_img = np.zeros_like(images)  # the scaled, shifted source on the destination's canvas
    src_img[:, :, y0:y0 + ph, x0:x0 + pw] = _resize(src["images"].numpy()[src_t], (ph, pw), nearest=False)
    src_masks = _resize(src["masks"].numpy()[chosen][:, src_t], (ph, pw), nearest=True)  # [k, T, ph, pw]
    pasted = 0
    for j, i in enumerate(chosen):
        canvas = np.zeros((T, h, w), dtype=bool)
        canvas[:, y0:y0 + ph, x0:x0 + pw] = src_masks[j]
        if not canvas.any():
            continue
        area = masks.reshape(len(masks), T * h * w).sum(1)
        inter = (masks & canvas[None]).reshape(len(masks), T * h * w).sum(1)
        if len(masks) and np.any((area > 0) & (inter >= max_cover * np.maximum(area, 1))):
            continue  # would hide most of an existing instance
        masks &= ~canvas[None]  # occlusion
        for t in range(T):
            images[t][:, canvas[t]] = src_img[t][:, canvas[t]]
        masks = np.concatenate([masks, canvas[None]], axis=0)
        labels.append(int(src["labels"][i]))
        ann_ids.append(-1)
        pasted += 1
    if not pasted:
        return dst
    keep = masks.reshape(len(masks), T * h * w).any(1)
    masks = masks[keep]
    labels = [lab for lab, kp in zip(labels, keep) if kp]
    ann_ids = [a for a, kp in zip(ann_ids, keep) if kp]
    boxes, valid = boxes_and_valid(masks)
    out = dict(dst)
    out.update(images=torch.from_numpy(images), masks=torch.from_numpy(np.ascontiguousarray(masks)),
               labels=torch.tensor(labels, dtype=torch.long), boxes=torch.from_numpy(boxes),
               valid=torch.from_numpy(valid), ann_ids=ann_ids)
    return out


class CopyPasteDataset(torch.utils.data.Dataset):
    """Wraps a training dataset keyed by ``(index, seed)``: with probability ``prob`` a sample gets
    instances of another sample of the same dataset pasted on (deterministic in the seed)."""

    def __init__(self, base, prob: float = 1.0, scale_range: tuple[float, float] = (0.3, 1.0),
                 max_cover: float = 0.5) -> None:
        self.base, self.prob, self.scale_range, self.max_cover = base, prob, tuple(scale_range), max_cover

    def __len__(self) -> int:
        return len(self.base)

    def __getattr__(self, name):  # num_classes, skipped, categories ... of the wrapped dataset
        if name == "base":
            raise AttributeError(name)
        return getattr(self.base, name)

    def __getitem__(self, key):
        seed = key[1] if isinstance(key, tuple) else None
        sample = self.base[key]
        rng = np.random.default_rng(None if seed is None else [seed, 17])
        if self.prob <= 0 or rng.random() >= self.prob or len(self.base) < 1:
            return sample
        other = int(rng.integers(len(self.base)))
        src = self.base[(other, int(rng.integers(2**31)))]
        return copy_paste(sample, src, rng, self.scale_range, self.max_cover)
