"""detectron2 / VNext configuration keys translated to ours, with no detectron2 installed.

Two ways in, both applied by `wsovvis.engine.compose.compose_run`:

* ``d2_opts``: a flat ``[KEY, VALUE, ...]`` list (or ``[[KEY, VALUE], ...]``, or one
  whitespace-separated string), like detectron2's ``--opts``; string values are parsed as YAML
  scalars. Applied after every other layer (it wins, as ``--opts`` did).
* ``d2_cfg_path``: a detectron2 YAML file (VNext's ``configs/base_ytvis.yaml`` or an overlay with
  ``_BASE_: base_ytvis.yaml``). The ``_BASE_`` chain is read and merged (base first), every key in
  `D2_KEYS` / `D2_PREFIXES` / the special cases below is mapped, keys whose value equals VNext's
  default (`VNEXT_DEFAULTS`) are accepted and ignored, and anything else fails with the full list.
  It sits just above the Hydra groups: ``with`` files and ``key=value`` still win over it.

Special cases: ``MODEL.BACKBONE.NAME: DINOv2PseudoFPN`` selects a DINOv2 backbone whose size comes
from ``MODEL.DINOV2.{MODEL_NAME,ARCH,NAME,VARIANT}`` (``vits14``, ``vit_small``, ``dinov2_vitb14_reg``...,
default ViT-S/14); ``SOLVER.CLIP_GRADIENTS.ENABLED: false`` is ``solver.clip_max_norm: 0``;
``SOLVER.AMP.ENABLED: true`` is ``solver.amp: fp16``; ``INPUT.RANDOM_FLIP: none`` is
``input.flip_prob: 0``; ``DATASETS.TRAIN`` / ``DATASETS.TEST`` name the splits (paths stay with
the ``data`` group).
"""

from __future__ import annotations

import ast
import re
from pathlib import Path
from typing import Any

import yaml

from wsovvis.engine.schema import flatten, unknown_key_message
from wsovvis.errors import WsovvisError

# detectron2 key -> our dotted key (also the d2_opts table).
D2_KEYS: dict[str, str] = {
    "MODEL.WEIGHTS": "model.weights",
    "MODEL.PIXEL_MEAN": "model.pixel_mean",
    "MODEL.PIXEL_STD": "model.pixel_std",
    "MODEL.SeqFormer.NUM_CLASSES": "model.num_classes",
    "MODEL.SeqFormer.NUM_OBJECT_QUERIES": "model.transformer.num_queries",
    "MODEL.SeqFormer.HIDDEN_DIM": "model.transformer.d_model",
    "MODEL.SeqFormer.NHEADS": "model.transformer.nheads",
    "MODEL.SeqFormer.DIM_FEEDFORWARD": "model.transformer.dim_feedforward",
    "MODEL.SeqFormer.DROPOUT": "model.transformer.dropout",
    "MODEL.SeqFormer.ENC_LAYERS": "model.transformer.enc_layers",
    "MODEL.SeqFormer.DEC_LAYERS": "model.transformer.dec_layers",
    "MODEL.SeqFormer.ENC_N_POINTS": "model.transformer.enc_n_points",
    "MODEL.SeqFormer.DEC_N_POINTS": "model.transformer.dec_n_points",
    "MODEL.SeqFormer.SET_COST_CLASS": "model.matcher.cost_class",
    "MODEL.SeqFormer.SET_COST_BOX": "model.matcher.cost_bbox",
    "MODEL.SeqFormer.SET_COST_GIOU": "model.matcher.cost_giou",
    "MODEL.SeqFormer.CLASS_WEIGHT": "model.loss.class_weight",
    "MODEL.SeqFormer.L1_WEIGHT": "model.loss.bbox_weight",
    "MODEL.SeqFormer.GIOU_WEIGHT": "model.loss.giou_weight",
    "MODEL.SeqFormer.MASK_WEIGHT": "model.loss.mask_weight",
    "MODEL.SeqFormer.DICE_WEIGHT": "model.loss.dice_weight",
    "MODEL.SeqFormer.FOCAL_ALPHA": "model.loss.focal_alpha",
    "MODEL.SeqFormer.DEEP_SUPERVISION": "model.loss.aux_loss",
    "MODEL.SeqFormer.MULTI_CLS_ON": "model.inference.multi_cls",
    "MODEL.SeqFormer.APPLY_CLS_THRES": "model.inference.cls_threshold",
    "MODEL.RESNETS.FREEZE_AT": "model.backbone.freeze_at",
    "MODEL.BACKBONE.FREEZE_AT": "model.backbone.freeze_at",
    "TEST.EVAL_PERIOD": "eval.period",
    "SOLVER.CHECKPOINT_PERIOD": "solver.checkpoint_period",
    "SOLVER.MAX_ITER": "solver.max_iter",
    "SOLVER.BASE_LR": "solver.base_lr",
    "SOLVER.IMS_PER_BATCH": "solver.ims_per_batch",
    "SOLVER.STEPS": "solver.steps",
    "SOLVER.GAMMA": "solver.gamma",
    "SOLVER.WARMUP_ITERS": "solver.warmup_iters",
    "SOLVER.WARMUP_FACTOR": "solver.warmup_factor",
    "SOLVER.WARMUP_METHOD": "solver.warmup_method",
    "SOLVER.WEIGHT_DECAY": "solver.weight_decay",
    "SOLVER.BACKBONE_MULTIPLIER": "solver.backbone_multiplier",
    "SOLVER.CLIP_GRADIENTS.CLIP_VALUE": "solver.clip_max_norm",
    "INPUT.SAMPLING_FRAME_NUM": "input.sampling_frame_num",
    "INPUT.SAMPLING_FRAME_RANGE": "input.sampling_frame_range",
    "INPUT.MIN_SIZE_TRAIN": "input.min_size_train",
    "INPUT.MAX_SIZE_TRAIN": "input.max_size_train",
    "INPUT.MIN_SIZE_TEST": "model.inference.test_size",
    "INPUT.MAX_SIZE_TEST": "model.inference.max_size",
    "INPUT.CROP.ENABLED": "input.crop.enabled",
    "INPUT.CROP.SIZE": "input.crop.size",
    "DATALOADER.FILTER_EMPTY_ANNOTATIONS": "data.drop_empty_videos",
}
# detectron2 prefix -> our prefix; the rest of the key is lower-cased (MODEL.DINOV2.WEIGHTS -> model.backbone.weights).
D2_PREFIXES: dict[str, str] = {"MODEL.DINOV2.": "model.backbone."}
DINOV2_NAME_KEYS = ("MODEL.DINOV2.MODEL_NAME", "MODEL.DINOV2.ARCH", "MODEL.DINOV2.NAME", "MODEL.DINOV2.VARIANT")
# Keys with a meaning of their own (see the module docstring).
SPECIAL_KEYS = ("MODEL.BACKBONE.NAME", "SOLVER.CLIP_GRADIENTS.ENABLED", "SOLVER.AMP.ENABLED", "INPUT.RANDOM_FLIP",
                "DATASETS.TRAIN", "DATASETS.TEST", *DINOV2_NAME_KEYS)

# VNext's values (projects/SeqFormer config defaults + base_ytvis.yaml + detectron2 defaults) of keys
# wsovvis has no option for: leaving them at these values is fine, anything else fails.
VNEXT_DEFAULTS: dict[str, Any] = {
    "VERSION": 2,
    "MODEL.META_ARCHITECTURE": "SeqFormer",
    "MODEL.MASK_ON": True,
    "MODEL.DEVICE": "cuda",
    "MODEL.RESNETS.DEPTH": 50,
    "MODEL.RESNETS.STRIDE_IN_1X1": False,
    "MODEL.RESNETS.OUT_FEATURES": ["res2", "res3", "res4", "res5"],
    "MODEL.RESNETS.NORM": "FrozenBN",
    "MODEL.SeqFormer.MASK_STRIDE": 4,
    "MODEL.SeqFormer.MATCH_STRIDE": 4,
    "MODEL.SeqFormer.MERGE_ON_CPU": True,
    "MODEL.SeqFormer.MULTI_CLS_ON": True,
    "MODEL.SeqFormer.CLIP_MATCHING": False,
    "MODEL.SeqFormer.CLIP_LENGTH": 5,
    "MODEL.SeqFormer.CLIP_STRIDE": 1,
    "MODEL.SeqFormer.NUM_FEATURE_LEVELS": 4,
    "MODEL.SeqFormer.PRE_NORM": False,
    "MODEL.SeqFormer.WITH_BOX_REFINE": True,
    "MODEL.SeqFormer.TWO_STAGE": False,
    "MODEL.SeqFormer.TWO_STAGE_NUM_PROPOSALS": 300,
    "MODEL.SeqFormer.NO_OBJECT_WEIGHT": 0.1,
    "MODEL.SeqFormer.REL_COORD": True,
    "MODEL.SeqFormer.NUM_FRAMES": 5,
    "SOLVER.OPTIMIZER": "ADAMW",
    "SOLVER.LR_SCHEDULER_NAME": "WarmupMultiStepLR",
    "SOLVER.CLIP_GRADIENTS.CLIP_TYPE": "full_model",
    "SOLVER.CLIP_GRADIENTS.NORM_TYPE": 2.0,
    "SOLVER.MOMENTUM": 0.9,
    "SOLVER.BIAS_LR_FACTOR": 1.0,
    "SOLVER.WEIGHT_DECAY_NORM": 0.0,
    "INPUT.MIN_SIZE_TRAIN_SAMPLING": "choice_by_clip",
    "INPUT.FORMAT": "RGB",
    "INPUT.CROP.TYPE": "absolute_range",
    "INPUT.SAMPLING_FRAME_SHUFFLE": False,
    "INPUT.AUGMENTATIONS": [],
    "DATALOADER.ASPECT_RATIO_GROUPING": True,
    "TEST.DETECTIONS_PER_IMAGE": 100,
    "OUTPUT_DIR": "./output",
    "SEED": -1,
}
DEFAULT_DINOV2 = "dinov2_vits14"
MISSING_HINT = (
    "the VNext checkout is no longer needed: wsovvis reads detectron2 YAML files itself but has its own "
    "configs; VNext's base_ytvis.yaml (SeqFormer R50) is `model=seqformer_r50 input=ytvis solver=seqformer_r50` "
    "(the defaults), a DINOv2 overlay is `model=seqformer_dinov2_vits14` (vitb14/vitl14/vitg14); drop "
    "d2_cfg_path or point it at a local copy of the YAML"
)


def _lookup(key: str) -> str | None:
    by_upper = {k.upper(): v for k, v in D2_KEYS.items()}
    if key.upper() in by_upper:
        return by_upper[key.upper()]
    for prefix, ours in D2_PREFIXES.items():
        if key.upper().startswith(prefix.upper()) and len(key) > len(prefix):
            return ours + key[len(prefix):].lower()
    return None


def map_d2_key(key: str) -> str:
    """detectron2 key -> our dotted key (case-insensitive); unsupported keys fail with the list."""
    ours = _lookup(key)
    if ours is None:
        supported = sorted(D2_KEYS) + [p + "*" for p in D2_PREFIXES]
        raise WsovvisError(f"config: d2_opts key '{key}' is not supported; supported keys: {', '.join(supported)}")
    return ours


def _d2_pairs(opts: Any) -> list[tuple[str, Any]]:
    if isinstance(opts, str):
        opts = opts.split()
    if not isinstance(opts, list):
        raise WsovvisError(f"config: d2_opts must be a list of KEY, VALUE pairs, got {type(opts).__name__}")
    if all(isinstance(o, (list, tuple)) and len(o) == 2 for o in opts) and opts:
        return [(str(k), v) for k, v in opts]
    if len(opts) % 2:
        raise WsovvisError(f"config: d2_opts needs KEY VALUE pairs, got an odd number of items: {opts}")
    return [(str(opts[i]), opts[i + 1]) for i in range(0, len(opts), 2)]


def _scalar(value: Any) -> Any:
    if isinstance(value, str) and value.strip():
        try:
            return yaml.safe_load(value)
        except yaml.YAMLError:
            return value
    return value


def set_existing(cfg: dict, ours: str, value: Any, where: str) -> None:
    """Set dotted key ``ours`` of ``cfg``; the key must exist (unknown -> the closest valid one)."""
    parent, _, leaf = ours.rpartition(".")
    node = cfg
    for part in parent.split(".") if parent else []:
        if not isinstance(node, dict) or part not in node:
            raise WsovvisError(f"{where}: maps to '{ours}', which this config does not have")
        node = node[part]
    if not isinstance(node, dict) or leaf not in node:
        raise WsovvisError(unknown_key_message(ours, sorted(node) if isinstance(node, dict) else [], where))
    node[leaf] = value


def d2_opts_updates(opts: Any) -> list[tuple[str, Any, str]]:
    """``d2_opts`` -> ``[(our dotted key, value, d2 key)]`` (values parsed as YAML scalars)."""
    return [(map_d2_key(k), _scalar(v), k) for k, v in _d2_pairs(opts or [])]


def apply_d2_opts(cfg: dict) -> dict:
    """Apply ``cfg['d2_opts']`` onto a copy of ``cfg``."""
    import copy

    out = copy.deepcopy(cfg)
    for ours, value, key in d2_opts_updates(cfg.get("d2_opts")):
        set_existing(out, ours, value, f"config (d2_opts key '{key}')")
    return out


# --- d2_cfg_path ---------------------------------------------------------------------------------

def read_d2_yaml(path: str | Path, _seen: tuple[Path, ...] = ()) -> dict:
    """A detectron2 YAML with its ``_BASE_`` chain merged (base first), as a nested dict."""
    p = Path(path)
    if not p.is_file():
        if _seen:
            raise WsovvisError(f"{p}: _BASE_ of {_seen[-1]} names no file; {MISSING_HINT}")
        raise WsovvisError(f"{p}: d2_cfg_path names no file; {MISSING_HINT}")
    if p.resolve() in _seen:
        raise WsovvisError(f"{p}: _BASE_ chain loops ({' -> '.join(str(s) for s in _seen)})")
    try:
        data = yaml.safe_load(p.read_text(encoding="utf-8")) or {}
    except (yaml.YAMLError, UnicodeDecodeError) as e:
        raise WsovvisError(f"{p}: unreadable detectron2 config: {e}") from e
    if not isinstance(data, dict):
        raise WsovvisError(f"{p}: a detectron2 config must hold a mapping, got {type(data).__name__}")
    base = data.pop("_BASE_", None)
    if base is None:
        return data
    if not isinstance(base, str):
        raise WsovvisError(f"{p}: _BASE_ must be a file name, got {base!r}")
    bp = Path(base).expanduser()
    merged = read_d2_yaml(bp if bp.is_absolute() else p.parent / bp, (*_seen, p.resolve()))
    _merge(merged, data)
    return merged


def _merge(base: dict, update: dict) -> None:
    for k, v in update.items():
        if isinstance(v, dict) and isinstance(base.get(k), dict):
            _merge(base[k], v)
        else:
            base[k] = v


def _dinov2_name(value: Any, path: str) -> str:
    text = str(value).lower()
    m = re.search(r"vit_?(small|base|large|giant|s|b|l|g)", text) or re.search(r"\b(small|base|large|giant)\b", text)
    if not m:
        raise WsovvisError(f"{path}: cannot tell the DINOv2 size from {value!r} (expected e.g. vits14, vit_base, "
                           "dinov2_vitl14_reg)")
    size = m.group(1)[0]
    return f"dinov2_vit{size}14" + ("_reg" if "reg" in text else "")


def _norm(v: Any) -> Any:
    """Values as detectron2 (yacs) reads them: strings go through ``ast.literal_eval`` (so ``(8000,)`` is a
    tuple) and tuples become lists."""
    if isinstance(v, str):
        try:
            v = ast.literal_eval(v)
        except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError):
            return v
    if isinstance(v, (tuple, list)):
        return [_norm(x) for x in v]
    return v


def d2_file_updates(path: str | Path) -> tuple[list[tuple[str, Any, str]], list[str]]:
    """Read ``d2_cfg_path`` -> (``[(our key, value, d2 key)]``, notes). Unsupported keys set away
    from VNext's defaults fail, all listed at once."""
    flat = flatten(read_d2_yaml(path))
    upper = {k.upper(): k for k in flat}
    out: list[tuple[str, Any, str]] = []
    notes: list[str] = []
    bad: list[str] = []
    for key, value in flat.items():
        value = _norm(value)
        ku = key.upper()
        if ku == "MODEL.BACKBONE.NAME":
            if value == "DINOv2PseudoFPN":
                named = [upper[k] for k in (n.upper() for n in DINOV2_NAME_KEYS) if k in upper]
                name = _dinov2_name(flat[named[0]], f"{path} ({named[0]})") if named else DEFAULT_DINOV2
                if not named:
                    notes.append(f"{path}: DINOv2PseudoFPN without MODEL.DINOV2.MODEL_NAME: using {DEFAULT_DINOV2}")
                out.append(("model.backbone.name", name, key))
            elif value in ("build_resnet_backbone", "build_resnet_fpn_backbone"):
                out.append(("model.backbone.name", "resnet50", key))
            else:
                bad.append(f"{key}: {value!r} (backbones: DINOv2PseudoFPN, build_resnet_backbone)")
        elif ku in (n.upper() for n in DINOV2_NAME_KEYS):
            continue  # read with MODEL.BACKBONE.NAME
        elif ku == "SOLVER.CLIP_GRADIENTS.ENABLED":
            if value is False:
                out.append(("solver.clip_max_norm", 0.0, key))
        elif ku == "SOLVER.AMP.ENABLED":
            out.append(("solver.amp", "fp16" if value else "none", key))
        elif ku == "INPUT.RANDOM_FLIP":
            if value == "none":
                out.append(("input.flip_prob", 0.0, key))
            elif value != "flip_by_clip":
                bad.append(f"{key}: {value!r} (supported: flip_by_clip, none)")
        elif ku in ("DATASETS.TRAIN", "DATASETS.TEST"):
            names = value if isinstance(value, list) else [value]
            if len(names) > 1:
                bad.append(f"{key}: {value!r} (one dataset per split)")
            elif names:
                out.append(("data.train_name" if ku.endswith("TRAIN") else "data.val_name", str(names[0]), key))
        elif _lookup(key) is not None:
            out.append((_lookup(key), value, key))
        elif ku in {k.upper() for k in VNEXT_DEFAULTS}:
            default = next(v for k, v in VNEXT_DEFAULTS.items() if k.upper() == ku)
            if value != default:
                bad.append(f"{key}: {value!r} (VNext default {default!r}; wsovvis has no option for it)")
        else:
            bad.append(f"{key}: {value!r} (not a key wsovvis knows)")
    if bad:
        listing = "\n  ".join(bad)
        raise WsovvisError(f"{path}: {len(bad)} detectron2 keys are set away from VNext's defaults but wsovvis does "
                           f"not support them:\n  {listing}")
    return out, notes
