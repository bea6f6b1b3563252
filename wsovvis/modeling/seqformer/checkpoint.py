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

Loading is strict by default: every model tensor must be filled and every file tensor used, with the
documented exceptions only (BN ``num_batches_tracked`` buffers, the ``bbox_embed`` alias, the ``K + 2``
class rows). Otherwise the error lists the keys grouped by module; ``strict=False``
(``model.weights_strict=false``) downgrades that to a WARNING with counts, but a load that fills less
than ``min_share`` of the model's tensors still fails.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch import nn

from wsovvis.errors import WsovvisError
from wsovvis.modeling.backbone.weights import d2_to_torchvision, torchvision_to_d2
from wsovvis.utils.logging import get_logger
from wsovvis.utils.safe_load import load_untrusted

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


def read_checkpoint(path: str | Path, trust_pickle: bool = False) -> dict[str, torch.Tensor]:
    """A ``.pth`` file -> its state dict (unwrapping ``{"model": ...}`` / ``{"state_dict": ...}``, ``module.``).

    Read through `wsovvis.utils.safe_load`: tensors, arrays, plain containers and the original repo's
    pickled ``argparse.Namespace``; any other Python object is refused unless ``trust_pickle``.
    """
    path = Path(path)
    if not path.is_file():
        raise WsovvisError(f"{path}: model checkpoint does not exist (model.weights)")
    obj = load_untrusted(path, what="model checkpoint (model.weights)", trust_pickle=trust_pickle)
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


def _module_of(key: str) -> str:
    """The module a key is reported under: two name components, three for the backbone and layers."""
    prefix = next((p for p in ("detr.detr.", "detr.") if key.startswith(p)), "")  # an unmapped external key
    parts = key[len(prefix) :].split(".")
    depth = 3 if parts[0] == "backbone" or (len(parts) > 2 and parts[1] in ("encoder", "decoder")) else 2
    return prefix + ".".join(parts[: min(depth, len(parts) - 1)]) or key


def group_by_module(keys: list[str], limit: int = 12) -> str:
    """``"transformer.decoder.layers (12): a, b, ...; class_embed.0 (2): ..."`` for an error message."""
    groups: dict[str, list[str]] = defaultdict(list)
    for k in keys:
        groups[_module_of(k.split(" ")[0])].append(k)
    shown = []
    for mod, ks in list(groups.items())[:limit]:
        leaves = [k[len(mod) + 1 :] if k.startswith(mod + ".") else k for k in ks]
        more = f", ... {len(ks) - 3} more" if len(ks) > 3 else ""
        shown.append(f"{mod} ({len(ks)}): {', '.join(leaves[:3])}{more}")
    if len(groups) > limit:
        shown.append(f"... {len(groups) - limit} more modules")
    return "; ".join(shown)


def load_checkpoint(model: nn.Module, source, strict: bool = True, min_share: float = 0.5,
                    trust_pickle: bool = False) -> LoadReport:
    """Load ours / original / VNext weights into ``model`` and report what did not fit.

    Args:
        source: a path or a state dict.
        strict: raise `WsovvisError` on any missing, unexpected or mismatched key, listed by module
            (``model.weights_strict``); otherwise they are logged as a WARNING with counts.
        min_share: even when not strict, fail if fewer than this share of the model's tensors were
            filled (``model.min_weights_share``; 0 accepts anything).
        trust_pickle: read the file with full unpickling (``model.trust_pickle``).
    """
    path = str(source) if not isinstance(source, dict) else "<state dict>"
    sd = read_checkpoint(source, trust_pickle) if not isinstance(source, dict) else dict(source)
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
    if getattr(model, "text_head", None) is not None:  # open-vocabulary head: a clear message for a wrong D
        model.text_head.check_state_dict(mapped, "text_head.", path)
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
    report.loaded = len(to_load)
    share = report.loaded / max(len(own), 1)
    problems = [(name, keys) for name, keys in (("missing from the file", report.missing),
                                                 ("unexpected in the file", report.unexpected),
                                                 ("of another shape", report.shape_mismatch)) if keys]
    if problems and strict:
        listing = "\n".join(f"  {len(keys)} {name}: {group_by_module(keys)}" for name, keys in problems)
        raise WsovvisError(
            f"{path}: {fmt} checkpoint does not fit the model ({report.loaded} of {len(own)} model tensors "
            f"filled):\n{listing}\nIs model= / model.num_classes / model.backbone right? To load the matching "
            "tensors anyway and keep the others as initialised, set model.weights_strict=false"
        )
    if share < min_share:
        raise WsovvisError(
            f"{path}: {fmt} checkpoint fills only {report.loaded} of {len(own)} model tensors ({share:.0%}, "
            f"below model.min_weights_share={min_share:g}): it is probably not a checkpoint of this model "
            f"({report.summary()}); set model.min_weights_share=0 to accept it"
        )
    model.load_state_dict(to_load, strict=False)
    if problems:
        log.warning("%s (model.weights_strict=false: these tensors keep their initial values)", report.summary())
    else:
        log.info("%s", report.summary())
    return report
