"""Config composition: Hydra groups, then Sacred-style ``with FILE.yaml key=value`` updates.

Command-line routing (`split_argv`): a ``group=option`` token whose group is a folder of
``configs/`` (``model=seqformer_r50``, ``debug=cpu_smoke``, ``+experiment=...``) goes to Hydra's
compose API; everything else stays with Sacred. A ``with`` file may carry a Hydra-style
``defaults:`` list of group selections, which are routed the same way (the command line wins).

Legacy detectron2 options (`apply_d2_opts`): ``d2_opts`` is a flat ``[KEY, VALUE, ...]`` list (or
``[[KEY, VALUE], ...]``, or one whitespace-separated string) of the keys in `D2_KEYS`; values are
parsed as YAML scalars, like detectron2's ``--opts``.
"""

from __future__ import annotations

import copy
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from wsovvis.engine.schema import flatten, unknown_key_message
from wsovvis.errors import WsovvisError

# detectron2 key -> our dotted key.
D2_KEYS: dict[str, str] = {
    "MODEL.WEIGHTS": "model.weights",
    "MODEL.SeqFormer.NUM_CLASSES": "model.num_classes",
    "TEST.EVAL_PERIOD": "eval.period",
    "SOLVER.CHECKPOINT_PERIOD": "solver.checkpoint_period",
    "SOLVER.MAX_ITER": "solver.max_iter",
    "SOLVER.BASE_LR": "solver.base_lr",
    "SOLVER.IMS_PER_BATCH": "solver.ims_per_batch",
    "INPUT.SAMPLING_FRAME_NUM": "input.sampling_frame_num",
}
# detectron2 prefix -> our prefix; the rest of the key is lower-cased (MODEL.DINOV2.WEIGHTS -> model.backbone.weights).
D2_PREFIXES: dict[str, str] = {"MODEL.DINOV2.": "model.backbone."}

CONFIG_FILE_SUFFIXES = (".yaml", ".yml", ".json")


def config_dir() -> Path:
    """``$WSOVVIS_CONFIG_DIR`` or the ``configs/`` folder of the checkout."""
    env = os.environ.get("WSOVVIS_CONFIG_DIR")
    return Path(env).resolve() if env else Path(__file__).resolve().parents[2] / "configs"


def config_groups(conf_dir: Path | None = None) -> list[str]:
    conf_dir = conf_dir or config_dir()
    return sorted(p.name for p in conf_dir.iterdir() if p.is_dir() and not p.name.startswith((".", "_")))


@dataclass
class SplitArgv:
    hydra_overrides: list[str] = field(default_factory=list)
    sacred_argv: list[str] = field(default_factory=list)


def _is_group_token(token: str, groups: list[str]) -> bool:
    if "=" not in token or token.startswith("-"):
        return False
    key = token.split("=", 1)[0].lstrip("+~")
    return key in groups


def split_argv(argv: list[str], groups: list[str]) -> SplitArgv:
    """Route ``group=option`` tokens to Hydra, the rest (commands, ``with``, updates, flags) to Sacred."""
    out = SplitArgv()
    for tok in argv:
        (out.hydra_overrides if _is_group_token(tok, groups) else out.sacred_argv).append(tok)
    return out


def compose(overrides: list[str], conf_dir: Path | None = None, config_name: str = "config") -> dict:
    """Hydra compose API -> plain, resolved dict. Hydra errors become `WsovvisError`."""
    from hydra import compose as hydra_compose
    from hydra import initialize_config_dir
    from hydra.errors import HydraException
    from omegaconf import OmegaConf
    from omegaconf.errors import OmegaConfBaseException

    conf_dir = conf_dir or config_dir()
    if not (conf_dir / f"{config_name}.yaml").is_file():
        raise WsovvisError(f"{conf_dir}: no {config_name}.yaml (set WSOVVIS_CONFIG_DIR to the configs folder)")
    try:
        with initialize_config_dir(config_dir=str(conf_dir), version_base="1.3"):
            cfg = hydra_compose(config_name=config_name, overrides=list(overrides))
        return OmegaConf.to_container(cfg, resolve=True)
    except (HydraException, OmegaConfBaseException) as e:
        msg = str(e).strip().replace("\n", " ")
        raise WsovvisError(f"{conf_dir}: cannot compose config with overrides {list(overrides)}: {msg}") from e


def load_update_file(path: str) -> tuple[dict, list[str]]:
    """A ``with`` file -> (updates, Hydra overrides from its ``defaults`` list)."""
    p = Path(path)
    if not p.is_file():
        raise WsovvisError(f"{path}: config file does not exist")
    try:
        text = p.read_text(encoding="utf-8")
        data = json.loads(text) if p.suffix == ".json" else yaml.safe_load(text)
    except (yaml.YAMLError, json.JSONDecodeError, UnicodeDecodeError) as e:
        raise WsovvisError(f"{path}: unreadable config file: {e}") from e
    data = data or {}
    if not isinstance(data, dict):
        raise WsovvisError(f"{path}: a config file must hold a mapping, got {type(data).__name__}")
    overrides = []
    for item in data.pop("defaults", None) or []:
        if isinstance(item, dict) and len(item) == 1:
            (k, v), = item.items()
            overrides.append(f"{k}={v}")
        elif isinstance(item, str) and "=" in item:
            overrides.append(item)
        else:
            raise WsovvisError(f"{path}: 'defaults' entries must be 'group: option' mappings, got {item!r}")
    return data, overrides


def parse_updates(tokens: list[str]) -> tuple[dict, list[str]]:
    """Sacred ``with`` tokens -> (nested updates, Hydra overrides from file defaults).

    Files are merged in order, then ``key=value`` tokens (Sacred's value parsing), so the command
    line wins over files.
    """
    from sacred.arg_parser import get_config_updates

    updates: dict = {}
    overrides: list[str] = []
    kv = []
    for tok in tokens:
        if "=" in tok:
            kv.append(tok)
        elif tok.endswith(CONFIG_FILE_SUFFIXES):
            data, ov = load_update_file(tok)
            deep_merge(updates, data)
            overrides += ov
        else:
            raise WsovvisError(
                f"command line: '{tok}' is neither key=value, group=option nor a config file "
                f"({', '.join(CONFIG_FILE_SUFFIXES)})"
            )
    if kv:
        cli, named = get_config_updates(kv)
        deep_merge(updates, cli)
    return updates, overrides


def deep_merge(base: dict, update: dict) -> dict:
    """Merge ``update`` into ``base`` in place (mappings merge, everything else replaces)."""
    for k, v in update.items():
        if isinstance(v, dict) and isinstance(base.get(k), dict):
            deep_merge(base[k], v)
        else:
            base[k] = copy.deepcopy(v)
    return base


def check_update_keys(base: dict, updates: dict, where: str = "config", path: str = "") -> None:
    """Every key of ``updates`` must exist in ``base``; an unknown one fails naming the closest."""
    for k, v in updates.items():
        sub = f"{path}.{k}" if path else str(k)
        if not isinstance(base, dict) or k not in base:
            raise WsovvisError(unknown_key_message(sub, list(base) if isinstance(base, dict) else [], where))
        if isinstance(v, dict) and isinstance(base[k], dict) and base[k]:
            check_update_keys(base[k], v, where, sub)


def set_dotted(cfg: dict, dotted: str, value: Any) -> None:
    node = cfg
    parts = dotted.split(".")
    for p in parts[:-1]:
        node = node.setdefault(p, {})
        if not isinstance(node, dict):
            raise WsovvisError(f"config: cannot set '{dotted}': '{p}' is not a mapping")
    node[parts[-1]] = value


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


def map_d2_key(key: str) -> str:
    by_upper = {k.upper(): v for k, v in D2_KEYS.items()}
    if key.upper() in by_upper:
        return by_upper[key.upper()]
    for prefix, ours in D2_PREFIXES.items():
        if key.upper().startswith(prefix.upper()) and len(key) > len(prefix):
            return ours + key[len(prefix):].lower()
    supported = sorted(D2_KEYS) + [p + "*" for p in D2_PREFIXES]
    raise WsovvisError(f"config: d2_opts key '{key}' is not supported; supported keys: {', '.join(supported)}")


def apply_d2_opts(cfg: dict) -> dict:
    """Apply ``cfg['d2_opts']`` onto a copy of ``cfg`` (string values parsed as YAML scalars)."""
    out = copy.deepcopy(cfg)
    for key, value in _d2_pairs(cfg.get("d2_opts") or []):
        ours = map_d2_key(key)
        if isinstance(value, str):
            try:
                value = yaml.safe_load(value) if value.strip() else value
            except yaml.YAMLError:
                pass
        parent, _, leaf = ours.rpartition(".")
        node = out
        for part in parent.split("."):
            if not isinstance(node, dict) or part not in node:
                raise WsovvisError(f"config: d2_opts key '{key}' maps to '{ours}', which this config does not have")
            node = node[part]
        if not isinstance(node, dict) or leaf not in node:
            valid = sorted(node) if isinstance(node, dict) else []
            raise WsovvisError(unknown_key_message(ours, valid, f"config (d2_opts key '{key}')"))
        node[leaf] = value
    return out


def diff_configs(old: dict, new: dict, ignore: tuple[str, ...] = ()) -> list[str]:
    """Human-readable differences between two nested configs (dotted keys)."""
    a, b = flatten(old), flatten(new)
    lines = []
    for k in sorted(set(a) | set(b)):
        if k.split(".")[0] in ignore or k in ignore:
            continue
        if a.get(k, "<absent>") != b.get(k, "<absent>"):
            lines.append(f"{k}: {a.get(k, '<absent>')!r} -> {b.get(k, '<absent>')!r}")
    return lines
