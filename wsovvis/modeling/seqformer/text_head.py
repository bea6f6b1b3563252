"""Open-vocabulary class head: instance queries scored against a vocabulary's text embeddings.

``model.class_head=text`` replaces SeqFormer's per-layer ``Linear(C, K)`` by `TextClassifier`:

* each decoder layer ``l`` has its own projection ``proj[l]: Linear(C, D)`` of the instance query
  into the text-embedding space (``D`` = the text encoder's width);
* the score of class ``k`` is a sigmoid logit in which the class competes with a learned
  background embedding ``b``::

      e = normalize(proj[l](q))                       # [B, Q, D]
      logit_k = s * (cos(e, t_k) - cos(e, b)) + bias   # [B, Q, K]

  i.e. ``sigmoid(logit_k) = exp(s cos_k + bias) / (exp(s cos_k + bias) + exp(s cos_b))``, a
  two-way softmax between the class and the background at temperature ``1/s``. ``s`` (learned,
  stored as ``log s``, clamped to ``MAX_SCALE``) and ``bias`` (initialised to the focal prior
  ``-log 99``) are scalars, so the head has no per-class parameter and works with any ``K``;
* the text embeddings ``t [K, D]`` (unit rows) are a non-persistent buffer: checkpoints hold no
  vocabulary, and `set_vocabulary` swaps it at any time (e.g. all categories at evaluation after
  training on base categories only). A checkpoint whose ``D`` differs from the vocabulary's fails
  naming both.

``load_text_vocab(path)`` reads the cached, hashed text embeddings that ``wsovvis label`` writes
(``<cache>/text/<sha256>.npy``, float32 ``[K, D]``, with a ``.json`` sidecar naming the ``names``).
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from wsovvis.errors import WsovvisError

MAX_SCALE = 100.0


@dataclass
class TextVocab:
    """Text embeddings ``[K, D]`` (float32) and, when the sidecar names them, ``names[k]`` / ``ids[k]``."""

    embeddings: np.ndarray
    names: list[str] | None
    ids: list[int] | None
    source: str

    def __len__(self) -> int:
        return int(self.embeddings.shape[0])

    @property
    def dim(self) -> int:
        return int(self.embeddings.shape[1])


def load_text_vocab(path: str | os.PathLike) -> TextVocab:
    """``X.npy`` float ``[K, D]`` (+ optional ``X.json`` with ``names`` and optionally ``ids``) -> `TextVocab`."""
    from wsovvis.utils.io import read_json

    p = Path(path)
    if p.suffix.lower() != ".npy":
        raise WsovvisError(f"{p}: text embeddings must be a .npy file [K, D] (as `wsovvis label` caches them "
                           "under <embeddings>/text/)")
    if not p.is_file():
        raise WsovvisError(f"{p}: text embedding file does not exist")
    try:
        arr = np.load(p, allow_pickle=False)
    except (OSError, ValueError) as e:
        raise WsovvisError(f"{p}: unreadable text embeddings ({e})") from e
    if arr.ndim != 2 or arr.shape[0] < 1 or arr.shape[1] < 1 or not np.issubdtype(arr.dtype, np.floating):
        raise WsovvisError(f"{p}: text embeddings must be a float array [K, D], got {arr.dtype} {arr.shape}")
    if not np.isfinite(arr).all():
        raise WsovvisError(f"{p}: text embeddings contain NaN or infinite values")
    names = ids = None
    side = p.with_suffix(".json")
    if side.is_file():
        meta = read_json(side, "text embedding sidecar")
        names = meta.get("names") if isinstance(meta, dict) else None
        ids = meta.get("ids") if isinstance(meta, dict) else None
        for key, val, typ in (("names", names, str), ("ids", ids, int)):
            if val is not None and (not isinstance(val, list) or len(val) != arr.shape[0]
                                    or not all(isinstance(v, typ) for v in val)):
                raise WsovvisError(f"{side}: '{key}' must be a list of {arr.shape[0]} {typ.__name__}s "
                                   f"(one per row of {p.name})")
    return TextVocab(arr.astype(np.float32), names, ids, str(p))


def save_text_vocab(path: str | os.PathLike, embeddings: np.ndarray, names: list[str] | None = None,
                    ids: list[int] | None = None) -> Path:
    """Write ``X.npy`` (+ ``X.json`` sidecar) atomically; the inverse of `load_text_vocab`."""
    from wsovvis.utils.io import atomic_open, atomic_write_json

    p = Path(path)
    with atomic_open(p, "wb") as f:
        np.save(f, np.asarray(embeddings, dtype=np.float32))
    meta = {"shape": list(np.shape(embeddings))}
    if names is not None:
        meta["names"] = list(names)
    if ids is not None:
        meta["ids"] = [int(i) for i in ids]
    atomic_write_json(p.with_suffix(".json"), meta, indent=1)
    return p


class TextClassifier(nn.Module):
    """Per-layer projections + shared temperature, background embedding and bias (see the module docstring).

    Args:
        d_model: query width ``C``; embed_dim: text-embedding width ``D``; num_layers: decoder layers.
        text_embeddings: ``[K, D]`` initial vocabulary (rows are L2-normalised here), or None
            (then `set_vocabulary` must be called before the first forward).
        temperature: initial ``1/s``; learn_temperature: train ``s`` (else fixed).
        normalize_queries: cosine (True, default) or plain dot product of the projected query with
            the text rows (False; then the head is exactly linear in the query).
    """

    def __init__(
        self,
        d_model: int,
        embed_dim: int,
        num_layers: int,
        text_embeddings: torch.Tensor | np.ndarray | None = None,
        temperature: float = 0.07,
        learn_temperature: bool = True,
        normalize_queries: bool = True,
        prior_prob: float = 0.01,
    ):
        super().__init__()
        if embed_dim < 1 or temperature <= 0:
            raise WsovvisError(f"model.text_head: need embed_dim >= 1 and temperature > 0, got {embed_dim}, "
                               f"{temperature}")
        self.embed_dim = embed_dim
        self.normalize_queries = normalize_queries
        self.proj = nn.ModuleList(nn.Linear(d_model, embed_dim) for _ in range(num_layers))
        self.logit_scale = nn.Parameter(torch.tensor(math.log(1.0 / temperature)), requires_grad=learn_temperature)
        g = torch.Generator().manual_seed(0)
        self.background = nn.Parameter(torch.randn(embed_dim, generator=g) / math.sqrt(embed_dim))
        self.bias = nn.Parameter(torch.tensor(-math.log((1 - prior_prob) / prior_prob)))
        self.register_buffer("text", torch.zeros(0, embed_dim), persistent=False)
        for lin in self.proj:
            nn.init.xavier_uniform_(lin.weight)
            nn.init.zeros_(lin.bias)
        if text_embeddings is not None:
            self.set_vocabulary(text_embeddings)

    @property
    def num_classes(self) -> int:
        return int(self.text.shape[0])

    def set_vocabulary(self, embeddings: torch.Tensor | np.ndarray, source: str = "text embeddings") -> None:
        """Swap the vocabulary: ``[K, D]`` rows (any ``K >= 1``), normalised to unit length."""
        t = torch.as_tensor(np.asarray(embeddings) if not torch.is_tensor(embeddings) else embeddings)
        if t.dim() != 2 or t.shape[0] < 1:
            raise WsovvisError(f"{source}: vocabulary embeddings must be [K, D] with K >= 1, got {tuple(t.shape)}")
        if t.shape[1] != self.embed_dim:
            raise WsovvisError(
                f"{source}: vocabulary embedding dimension {t.shape[1]} does not match the model's text head "
                f"dimension {self.embed_dim} (model.text_head.embed_dim / the checkpoint's class_head.proj); "
                "use text embeddings from the same text encoder"
            )
        t = F.normalize(t.float(), dim=-1).to(self.background.device)
        self.text = t

    def check_state_dict(self, state_dict: dict, prefix: str = "", source: str = "checkpoint") -> None:
        """Fail naming both dimensions when a checkpoint's text head projects to another ``D``."""
        key = f"{prefix}proj.0.weight"
        if key in state_dict and state_dict[key].shape[0] != self.embed_dim:
            raise WsovvisError(
                f"{source}: the checkpoint's text head projects to {state_dict[key].shape[0]} dimensions but the "
                f"vocabulary embeddings of this model have {self.embed_dim}; use text embeddings of the encoder "
                "the checkpoint was trained with"
            )

    def _load_from_state_dict(self, state_dict, prefix, local_metadata, strict, missing_keys, unexpected_keys,
                              error_msgs):
        self.check_state_dict(state_dict, prefix)
        super()._load_from_state_dict(state_dict, prefix, local_metadata, strict, missing_keys, unexpected_keys,
                                      error_msgs)

    def scale(self) -> torch.Tensor:
        return self.logit_scale.exp().clamp(max=MAX_SCALE)

    def embed(self, hs: torch.Tensor, layer: int) -> torch.Tensor:
        """Instance queries ``[B, Q, C]`` -> embeddings ``[B, Q, D]`` (unit length when ``normalize_queries``)."""
        e = self.proj[layer](hs)
        return F.normalize(e, dim=-1) if self.normalize_queries else e

    def logits(self, emb: torch.Tensor) -> torch.Tensor:
        """Query embeddings ``[B, Q, D]`` -> class logits ``[B, Q, K]``."""
        if self.text.shape[0] == 0:
            raise WsovvisError("model.class_head=text: no vocabulary set (model.text_head.embeddings, or "
                               "SeqFormer.set_vocabulary)")
        text = self.text.to(emb.dtype)
        bg = F.normalize(self.background, dim=0).to(emb.dtype)
        sim = emb @ text.T - (emb @ bg)[..., None]
        return self.scale().to(emb.dtype) * sim + self.bias.to(emb.dtype)

    def forward(self, hs: torch.Tensor, layer: int) -> tuple[torch.Tensor, torch.Tensor]:
        """``hs [B, Q, C]`` of decoder layer ``layer`` -> ``(logits [B, Q, K], embeddings [B, Q, D])``."""
        emb = self.embed(hs, layer)
        return self.logits(emb), emb


def geometric_mix(model_probs: torch.Tensor | np.ndarray, clip_probs: torch.Tensor | np.ndarray,
                  weight: float) -> torch.Tensor:
    """``p_model^(1 - w) * p_clip^w``: the in-model head combined with post-hoc CLIP scores (any shape).

    ``weight`` 0 keeps the model's scores, 1 the CLIP scores (as OV detectors ensemble them).
    """
    if not 0.0 <= weight <= 1.0:
        raise WsovvisError(f"score combination weight must be in [0, 1], got {weight}")
    a = torch.as_tensor(model_probs, dtype=torch.float64).clamp_min(1e-12)
    b = torch.as_tensor(clip_probs, dtype=torch.float64).clamp_min(1e-12)
    if a.shape != b.shape:
        raise WsovvisError(f"score combination: model scores {tuple(a.shape)} and CLIP scores {tuple(b.shape)} differ")
    return torch.exp((1 - weight) * a.log() + weight * b.log())
