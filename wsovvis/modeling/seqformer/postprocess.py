"""Post-processing: top-k queries -> class scores and binary masks at the original video size."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from wsovvis.modeling.seqformer.mask_head import dynamic_mask_logits
from wsovvis.modeling.seqformer.valid_region import crop_valid_stride4, valid_stride4  # noqa: F401 (re-exported)


class SeqFormerPostProcessor(nn.Module):
    """Turns model outputs into per-video predictions (VNext's rules).

    ``top_k`` queries by their best class probability; masks: stride-4 logits -> x4 bilinear ->
    sigmoid -> crop to the valid size -> nearest resize to the original size -> ``> mask_threshold``.
    With ``multi_cls`` every (query, class) pair scoring above ``cls_threshold`` is one prediction
    (same mask); otherwise the argmax class. The clip-wise options are used by
    `wsovvis.modeling.seqformer.inference.predict_video`.
    """

    def __init__(
        self,
        top_k: int = 10,
        multi_cls: bool = True,
        cls_threshold: float = 0.05,
        mask_threshold: float = 0.5,
        test_size: int = 360,
        max_size: int = 1333,
        clip_length: int = 20,
        clip_overlap: int = 5,
        max_tracks: int = 120,
        match_threshold: float = 0.01,
        preset: str = "default",
    ):
        super().__init__()
        self.preset = preset  # default | vnext | original (wsovvis.modeling.seqformer.presets)
        self.top_k, self.multi_cls = top_k, multi_cls
        self.cls_threshold, self.mask_threshold = cls_threshold, mask_threshold
        self.test_size, self.max_size = test_size, max_size
        self.clip_length, self.clip_overlap = clip_length, clip_overlap
        self.max_tracks, self.match_threshold = max_tracks, match_threshold

    def select(self, outputs: dict, b: int, top_k: int | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """``(probs [k, K], query_idx [k])`` of the top-k queries of clip ``b`` by max class probability."""
        probs = outputs["pred_logits"][b].sigmoid()
        k = min(top_k or self.top_k, probs.shape[0])
        idx = probs.max(-1).values.topk(k).indices
        return probs[idx], idx

    def select_flat(self, outputs: dict, b: int, top_k: int | None = None) -> list[tuple[int, float, int]]:
        """Original SeqFormer repo: top-k ``(query, score, class)`` over the flattened ``Q x K`` probabilities."""
        probs = outputs["pred_logits"][b].sigmoid()
        K = probs.shape[-1]
        k = min(top_k or self.top_k, probs.numel())
        scores, flat = probs.flatten().topk(k)
        return [(int(i) // K, float(s), int(i) % K) for s, i in zip(scores, flat)]

    def resize_straight(self, logits: torch.Tensor, orig_size: tuple[int, int]) -> torch.Tensor:
        """Original repo: ``[n, h4, w4]`` stride-4 logits bilinearly resized to ``orig_size``, sigmoid ``> thr``."""
        x = F.interpolate(logits[:, None].float(), size=tuple(orig_size), mode="bilinear", align_corners=False)
        return x[:, 0].sigmoid() > self.mask_threshold

    def clip_mask_logits(self, outputs: dict, b: int, query_idx: torch.Tensor) -> torch.Tensor:
        """Stride-4 logits ``[k, T, hv, wv]`` of the chosen queries, cropped to the valid region (+1 cell)."""
        logits = dynamic_mask_logits(
            outputs["mask_feats"][b],
            outputs["mask_params"][b, query_idx],
            outputs["mask_refs"][b, query_idx],
            outputs["image_sizes"][b],
        )
        return crop_valid_stride4(logits, outputs["image_sizes"][b])

    def binarize(self, logits: torch.Tensor, image_size: tuple[int, int], orig_size: tuple[int, int]) -> torch.Tensor:
        """``[n, hv, wv]`` stride-4 logits -> bool ``[n, H0, W0]``."""
        h, w = image_size
        x = F.interpolate(logits[:, None].float(), scale_factor=4, mode="bilinear", align_corners=False)
        x = x.sigmoid()[..., :h, :w]
        x = F.interpolate(x, size=tuple(orig_size), mode="nearest")
        return x[:, 0] > self.mask_threshold

    def expand_classes(self, scores: torch.Tensor) -> list[tuple[int, float, int]]:
        """``[n, K]`` scores -> ``(row, score, class)`` predictions (multi-class or argmax)."""
        if self.multi_cls:
            rows, cls = torch.nonzero(scores > self.cls_threshold, as_tuple=True)
            return [(int(r), float(scores[r, c]), int(c)) for r, c in zip(rows, cls)]
        best, cls = scores.max(-1)
        return [(r, float(best[r]), int(cls[r])) for r in range(scores.shape[0])]

    @torch.no_grad()
    def forward(self, outputs: dict, orig_sizes: list[tuple[int, int]]) -> list[list[dict]]:
        """Whole clips in one pass -> per clip a list of ``{"score", "category_index", "masks" bool [T, H0, W0]}``."""
        results = []
        for b in range(outputs["pred_logits"].shape[0]):
            probs, idx = self.select(outputs, b)
            logits = self.clip_mask_logits(outputs, b, idx)  # [k, T, hv, wv]
            k, T = logits.shape[:2]
            size = tuple(int(v) for v in outputs["image_sizes"][b])
            masks = self.binarize(logits.flatten(0, 1), size, orig_sizes[b]).view(k, T, *orig_sizes[b])
            results.append(
                [{"score": s, "category_index": c, "masks": masks[r]} for r, s, c in self.expand_classes(probs)]
            )
        return results
