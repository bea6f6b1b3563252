"""Checkpoint loading and export: our keys, original SeqFormer keys and VNext keys.

Key rules (reference table, R50):

======================  ===========================================  ========================================
ours                    original SeqFormer (``wjf5203/SeqFormer``)   VNext (``projects/SeqFormer``)
======================  ===========================================  ========================================
``transformer.*``,      ``detr.`` + same                             ``detr.detr.`` + same
``input_proj.*``,
``query_embed.*``,
``class_embed.*``,
``bbox_embed.*``
``controller.*``,       same                                         ``detr.`` + same
``mask_head.*``
``backbone.body.<tv>``  ``detr.backbone.0.body.<tv>``                ``detr.detr.backbone.0.backbone.<d2>``
======================  ===========================================  ========================================

``<tv>``/``<d2>``: torchvision / detectron2 ResNet names (`torchvision_to_d2`). Other backbones
keep their own names under the same prefixes. ``transformer.decoder.bbox_embed.*`` is the same
module as ``bbox_embed.*``; a checkpoint holding either name fills both. A class head with
``K + 2`` rows (the original repo indexes raw YTVIS ids 1..40 in 42 rows) loads rows ``1..K``.
"""

from __future__ import annotations

import pickle
from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch import nn

from wsovvis.errors import WsovvisError
from wsovvis.modeling.backbone.weights import d2_to_torchvision, torchvision_to_d2
from wsovvis.utils.logging import get_logger

log = get_logger(__name__)

_DETR_PARTS = ("transformer.", "input_proj.", "query_embed.", "class_embed.", "bbox_embed.")
_HEAD_PARTS = ("controller.", "mask_head.")
_ALIAS = ("bbox_embed.", "transformer.decoder.bbox_embed.")


@dataclass
class LoadReport:
    """What `load_checkpoint` did: ``missing`` in our key names, ``unexpected`` mapped to ours where a
    rule applies (else as in the file), ``shape_mismatch`` as ``"key (file shape) vs (model shape)"``."""

    path: str
    format: str
    loaded: int = 0
    missing: list[str] = field(default_factory=list)
    unexpected: list[str] = field(default_factory=list)
    shape_mismatch: list[str] = field(default_factory=list)
    class_rows: str | None = None

    def summary(self) -> str:
        parts = [f"{self.path}: {self.format} checkpoint, {self.loaded} tensors loaded"]
        if self.class_rows:
            parts.append(self.class_rows)
        for name, keys in (("missing", self.missing), ("unexpected", self.unexpected),
                           ("shape mismatch", self.shape_mismatch)):
            if keys:
                parts.append(f"{len(keys)} {name} (e.g. {', '.join(keys[:4])})")
        return "; ".join(parts)


def detect_format(keys) -> str:
    keys = list(keys)
    if any(k.startswith("detr.detr.") for k in keys):
        return "vnext"
    if any(k.startswith("detr.") for k in keys):
        return "original"
    return "wsovvis"


def external_to_ours(key: str, fmt: str) -> str | None:
    """Map one original/VNext key to ours (None: no counterpart, e.g. BN ``num_batches_tracked``)."""
    if key.endswith("num_batches_tracked"):
        return None
    if fmt == "wsovvis":
        return key
    detr = "detr.detr." if fmt == "vnext" else "detr."
    heads = "detr." if fmt == "vnext" else ""
    bb_d2 = "detr.detr.backbone.0.backbone."
    bb_tv = "detr.backbone.0.body."
    if fmt == "vnext" and key.startswith(bb_d2):
        rest = key[len(bb_d2) :]
        tv = d2_to_torchvision(rest)
        return "backbone.body." + tv if tv is not None else "backbone." + rest
    if fmt == "original" and key.startswith(bb_tv):
        return "backbone.body." + key[len(bb_tv) :]
    if key.startswith(detr + "backbone.0."):
        return "backbone." + key[len(detr + "backbone.0.") :]
    if key.startswith(detr) and key[len(detr) :].startswith(_DETR_PARTS):
        return key[len(detr) :]
    if key.startswith(heads) and key[len(heads) :].startswith(_HEAD_PARTS):
        return key[len(heads) :]
    return key  # reported as unexpected


def ours_to_external(key: str, fmt: str) -> str:
    if fmt == "wsovvis":
        return key
    if fmt not in ("vnext", "original"):
        raise WsovvisError(f"checkpoint export: unknown format {fmt!r} (wsovvis, original, vnext)")
    detr = "detr.detr." if fmt == "vnext" else "detr."
    heads = "detr." if fmt == "vnext" else ""
    if key.startswith("backbone.body."):
        rest = key[len("backbone.body.") :]
        if fmt == "vnext":
            return "detr.detr.backbone.0.backbone." + torchvision_to_d2(rest)
        return "detr.backbone.0.body." + rest
    if key.startswith("backbone."):
        return detr + "backbone.0." + key[len("backbone.") :]
    if key.startswith(_HEAD_PARTS):
        return heads + key
    return detr + key


def export_state_dict(model: nn.Module, fmt: str = "vnext") -> dict[str, torch.Tensor]:
    """Our state dict under original SeqFormer or VNext key names (aliases and BN buffers included)."""
    return {ours_to_external(k, fmt): v for k, v in model.state_dict().items()}


def read_checkpoint(path: str | Path) -> dict[str, torch.Tensor]:
    """A ``.pth`` file -> its state dict (unwrapping ``{"model": ...}`` / ``{"state_dict": ...}``, ``module.``)."""
    path = Path(path)
    if not path.is_file():
        raise WsovvisError(f"{path}: model checkpoint does not exist (model.weights)")
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError:
        # the original repo pickles its argparse namespace next to the weights
        log.warning("%s: checkpoint holds Python objects besides tensors; loading it fully (trusted files only)", path)
        try:
            obj = torch.load(path, map_location="cpu", weights_only=False)
        except Exception as e:  # torch raises many types for corrupt files
            raise WsovvisError(f"{path}: unreadable model checkpoint: {e}") from e
    except Exception as e:  # torch raises many types for corrupt files
        raise WsovvisError(f"{path}: unreadable model checkpoint: {e}") from e
    if isinstance(obj, dict):
        for key in ("model", "state_dict"):
            if isinstance(obj.get(key), dict):
                obj = obj[key]
                break
    if not isinstance(obj, dict) or not obj or not all(isinstance(v, torch.Tensor) for v in obj.values()):
        raise WsovvisError(f"{path}: not a model checkpoint (expected a dict of tensors, optionally under 'model')")
    if all(k.startswith("module.") for k in obj):
        obj = {k[len("module.") :]: v for k, v in obj.items()}
    return obj


def load_checkpoint(model: nn.Module, source, strict: bool = False) -> LoadReport:
    """Load ours / original / VNext weights into ``model`` and report what did not fit.

    Args:
        source: a path or a state dict. strict: raise `WsovvisError` on any missing, unexpected or
            mismatched key (otherwise they are logged and reported).
    """
    path = str(source) if not isinstance(source, dict) else "<state dict>"
    sd = read_checkpoint(source) if not isinstance(source, dict) else dict(source)
    fmt = detect_format(sd)
    own = model.state_dict()
    report = LoadReport(path=path, format=fmt)
    mapped: dict[str, torch.Tensor] = {}
    for k, v in sd.items():
        name = external_to_ours(k, fmt)
        if name is not None:
            mapped[name] = v
    for a, b in (_ALIAS, _ALIAS[::-1]):
        for k in list(mapped):
            if k.startswith(a) and not k.startswith(b):
                mapped.setdefault(b + k[len(a) :], mapped[k])
    num_classes = getattr(model, "num_classes", None)
    to_load = {}
    for k, v in mapped.items():
        if k not in own:
            report.unexpected.append(k)
            continue
        if k.startswith("class_embed.") and own[k].shape[0] == num_classes and v.shape[0] == (num_classes or 0) + 2:
            v = v[1 : num_classes + 1]
            report.class_rows = f"class head rows 1..{num_classes} of {num_classes + 2} taken"
        if v.shape != own[k].shape:
            report.shape_mismatch.append(f"{k} {tuple(v.shape)} vs {tuple(own[k].shape)}")
            continue
        to_load[k] = v
    report.missing = [k for k in own if k not in to_load]
    model.load_state_dict(to_load, strict=False)
    report.loaded = len(to_load)
    if strict and (report.missing or report.unexpected or report.shape_mismatch):
        raise WsovvisError(report.summary())
    log.info("%s", report.summary())
    return report
