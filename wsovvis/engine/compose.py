"""Config composition in one straight pass (`compose_run`):

    split argv -> Hydra groups -> d2_cfg_path -> ``with`` files -> key=value -> d2_opts -> preset rule
    -> one validation (`wsovvis.engine.config.build_train_config`) -> save -> run

Command-line routing (`split_argv`): a ``group=option`` token whose group is a folder of
``configs/`` (``model=seqformer_r50``, ``debug=cpu_smoke``, ``+experiment=...``) goes to Hydra's
compose API; everything else stays with Sacred. A ``with`` file may carry a Hydra-style
``defaults:`` list of group selections, which are routed the same way (the command line wins).

Every default lives in one place: the schema dataclasses (`wsovvis.engine.config.TrainConfig`,
`wsovvis.modeling.config.ModelConfig`); ``configs/config.yaml`` only selects the groups, and a
group option states the values that make it that option. Precedence, lowest first: schema
defaults < group options in ``config.yaml``'s defaults order (``debug`` and ``experiment`` presets
last) < ``d2_cfg_path`` < ``with`` files in order < ``key=value`` < ``d2_opts``.

Preset rule (``debug/*``, ``experiment/*`` files with a ``preset:`` block): a preset states what it
caps (``preset.caps``) and which keys are counted in iterations (``preset.per_max_iter``). A later
layer always wins, and each preset value it replaces is reported (`ComposedConfig.notices`). When
``solver.max_iter`` comes from a later layer, the preset's per-``max_iter`` keys that no later layer
set are scaled by ``new max_iter / preset max_iter`` (``debug=cpu_smoke solver.max_iter=40``: evaluation
and checkpoints every 20, lr step at 30, not every 2), also reported.

`ComposedConfig.sources` names, for every dotted key, where its final value came from:
``default``, ``configs/config.yaml``, ``model=seqformer_tiny`` (group option), ``file PATH``,
``command line``, ``d2_cfg_path PATH``, ``d2_opts``, ``debug=cpu_smoke (scaled to max_iter N)``.
"""

from __future__ import annotations

import copy
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from wsovvis.engine.d2_config import D2_KEYS, D2_PREFIXES, apply_d2_opts, map_d2_key  # noqa: F401 (re-exported)
from wsovvis.engine.schema import flatten, unknown_key_message
from wsovvis.errors import WsovvisError

CONFIG_FILE_SUFFIXES = (".yaml", ".yml", ".json")
SOURCE_DEFAULT = "default"
SOURCE_CLI = "command line"


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


def hydra_compose(overrides: list[str], conf_dir: Path | None = None,
                  config_name: str = "config") -> tuple[dict, dict[str, str]]:
    """Hydra compose API -> (plain resolved dict without ``preset`` blocks, {group: chosen option})."""
    from hydra import compose as _compose
    from hydra import initialize_config_dir
    from hydra.errors import HydraException
    from omegaconf import OmegaConf
    from omegaconf.errors import OmegaConfBaseException

    conf_dir = conf_dir or config_dir()
    if not (conf_dir / f"{config_name}.yaml").is_file():
        raise WsovvisError(f"{conf_dir}: no {config_name}.yaml (set WSOVVIS_CONFIG_DIR to the configs folder)")
    try:
        with initialize_config_dir(config_dir=str(conf_dir), version_base="1.3"):
            cfg = _compose(config_name=config_name, overrides=list(overrides), return_hydra_config=True)
        choices = OmegaConf.to_container(cfg.hydra.runtime.choices, resolve=True)
        with open_dict(cfg):
            del cfg["hydra"]
        out = OmegaConf.to_container(cfg, resolve=True)
    except (HydraException, OmegaConfBaseException) as e:
        msg = str(e).strip().replace("\n", " ")
        raise WsovvisError(f"{conf_dir}: cannot compose config with overrides {list(overrides)}: {msg}") from e
    out.pop("preset", None)
    groups = set(config_groups(conf_dir))
    return out, {g: str(o) for g, o in choices.items() if g in groups and o is not None}


def open_dict(cfg):
    from omegaconf import open_dict as _open_dict

    return _open_dict(cfg)


def compose(overrides: list[str], conf_dir: Path | None = None, config_name: str = "config") -> dict:
    """Hydra compose API -> plain, resolved dict (no schema defaults, no provenance). Hydra errors
    become `WsovvisError`."""
    return hydra_compose(overrides, conf_dir, config_name)[0]


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


def parse_update_layers(tokens: list[str]) -> tuple[list[tuple[str, dict]], list[str]]:
    """Sacred ``with`` tokens -> (``[(source, nested updates)]`` in precedence order, Hydra overrides
    from file defaults). Files come in command-line order, then one ``command line`` layer with every
    ``key=value`` (Sacred's value parsing), so the command line wins over files."""
    from sacred.arg_parser import get_config_updates

    layers: list[tuple[str, dict]] = []
    overrides: list[str] = []
    kv = []
    for tok in tokens:
        if "=" in tok:
            kv.append(tok)
        elif tok.endswith(CONFIG_FILE_SUFFIXES):
            data, ov = load_update_file(tok)
            layers.append((f"file {tok}", data))
            overrides += ov
        else:
            raise WsovvisError(
                f"command line: '{tok}' is neither key=value, group=option nor a config file "
                f"({', '.join(CONFIG_FILE_SUFFIXES)})"
            )
    if kv:
        cli, _named = get_config_updates(kv)
        layers.append((SOURCE_CLI, cli))
    return layers, overrides


def parse_updates(tokens: list[str]) -> tuple[dict, list[str]]:
    """Sacred ``with`` tokens -> (nested updates merged in precedence order, Hydra overrides)."""
    layers, overrides = parse_update_layers(tokens)
    updates: dict = {}
    for _src, data in layers:
        deep_merge(updates, data)
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


# --- the one pass --------------------------------------------------------------------------------

@dataclass
class ComposedConfig:
    """Result of `compose_run`: the plain config (every schema key), and where each value came from."""

    config: dict
    sources: dict[str, str]
    hydra_overrides: list[str]
    given: set[str] = field(default_factory=set)  # dotted keys set on the command line (key=value, group=option)
    notices: list[str] = field(default_factory=list)


@dataclass
class _GroupLayer:
    source: str  # "model=seqformer_tiny", "configs/config.yaml"
    flat: dict[str, Any]
    preset: dict | None = None  # the file's ``preset:`` block (caps, per_max_iter)


def _read_yaml(path: Path) -> tuple[dict, bool]:
    text = path.read_text(encoding="utf-8")
    data = yaml.safe_load(text) or {}
    return data, "@package _global_" in text


def _option_layers(conf_dir: Path, group: str, option: str, seen: frozenset = frozenset()) -> list[_GroupLayer]:
    """Layers of one group option: its same-group ``defaults`` (e.g. ``seqformer_r50``) first, then itself."""
    path = conf_dir / group / f"{option}.yaml"
    if not path.is_file() or (group, option) in seen:
        return []
    data, is_global = _read_yaml(path)
    out: list[_GroupLayer] = []
    for item in data.pop("defaults", None) or []:
        if isinstance(item, str) and item != "_self_" and "/" not in item:
            out += _option_layers(conf_dir, group, item, seen | {(group, option)})
    preset = data.pop("preset", None)
    body = data if is_global else {group: data}
    out.append(_GroupLayer(f"{group}={option}", flatten(body) if body else {}, preset))
    return out


def group_layers(choices: dict[str, str], conf_dir: Path | None = None) -> list[_GroupLayer]:
    """The files Hydra merged, lowest precedence first (``config.yaml``, then its defaults order)."""
    conf_dir = conf_dir or config_dir()
    root, _ = _read_yaml(conf_dir / "config.yaml")
    order = []
    for item in root.pop("defaults", None) or []:
        if isinstance(item, dict) and len(item) == 1:
            order.append(next(iter(item)).lstrip("+~").split("@")[0].removeprefix("override /"))
    order += [g for g in choices if g not in order]
    layers = [_GroupLayer("configs/config.yaml", flatten(root))]
    for g in order:
        if g in choices:
            layers += _option_layers(conf_dir, g, choices[g])
    return layers


def _attribute(flat: dict[str, Any], layers: list[_GroupLayer]) -> dict[str, str]:
    """The last layer that sets each key to its final value (Hydra's merge order)."""
    out = {}
    for k, v in flat.items():
        out[k] = SOURCE_DEFAULT
        for layer in reversed(layers):
            if k in layer.flat and layer.flat[k] == v:
                out[k] = layer.source
                break
    return out


def _merge_layer(cfg: dict, sources: dict[str, str], source: str, updates: dict) -> None:
    check_update_keys(cfg, updates, where=f"config update ({source})")
    deep_merge(cfg, updates)
    for k in flatten(updates):
        # a key set to a mapping replaces its children too
        for old in [s for s in sources if s.startswith(k + ".")]:
            sources[old] = source
        sources[k] = source


def _scaled(value: Any, ratio: float) -> Any:
    if isinstance(value, list):
        return [_scaled(v, ratio) for v in value]
    if isinstance(value, int) and not isinstance(value, bool) and value > 0:
        return max(1, int(round(value * ratio)))
    return value


def _apply_preset_rule(cfg: dict, sources: dict[str, str], layers: list[_GroupLayer]) -> list[str]:
    notices = []
    group_sources = {layer.source for layer in layers}
    for layer in layers:
        if layer.preset is None:
            continue
        caps = layer.preset.get("caps")
        if caps:
            notices.append(f"preset {layer.source}: {caps}")
        for k, v in layer.flat.items():
            src = sources.get(k)
            if src not in (None, layer.source) and src not in group_sources and flatten(cfg).get(k) != v:
                notices.append(f"preset {layer.source} sets {k}={v!r}; {src} overrides it: {flatten(cfg).get(k)!r}")
        preset_iters = layer.flat.get("solver.max_iter")
        final_iters = flatten(cfg).get("solver.max_iter")
        if (not isinstance(preset_iters, int) or preset_iters <= 0 or sources.get("solver.max_iter") == layer.source
                or sources.get("solver.max_iter") in group_sources or final_iters == preset_iters):
            continue
        ratio = final_iters / preset_iters
        for k in layer.preset.get("per_max_iter") or []:
            if sources.get(k) != layer.source:
                continue
            old = flatten(cfg).get(k)
            new = _scaled(old, ratio)
            if new != old:
                set_dotted(cfg, k, new)
                sources[k] = f"{layer.source} (scaled to max_iter {final_iters})"
                notices.append(f"preset {layer.source}: {k}={old!r} was meant for max_iter {preset_iters}; "
                               f"scaled to {new!r} for max_iter {final_iters}")
    return notices


def schema_defaults() -> dict:
    """Every key of the training config at its schema default (the one place defaults live)."""
    from wsovvis.engine.config import TrainConfig, train_config_dict

    return train_config_dict(TrainConfig())


def compose_run(hydra_overrides: list[str], update_tokens: list[str], conf_dir: Path | None = None) -> ComposedConfig:
    """The command line (group options + ``with`` tokens) -> `ComposedConfig` (not validated yet:
    `wsovvis.engine.config.build_train_config` does that once)."""
    from wsovvis.engine.d2_config import d2_file_updates, d2_opts_updates

    update_layers, file_overrides = parse_update_layers(update_tokens)
    overrides = file_overrides + list(hydra_overrides)
    composed, choices = hydra_compose(overrides, conf_dir)
    layers = group_layers(choices, conf_dir)
    cfg = schema_defaults()
    check_update_keys(cfg, composed, where=f"composed config ({' '.join(overrides) or 'defaults'})")
    deep_merge(cfg, composed)
    sources = _attribute(flatten(cfg), layers)
    notices: list[str] = []
    # d2_cfg_path sits just above the groups; its value may come from any layer
    d2_path = cfg.get("d2_cfg_path")
    for _src, data in update_layers:
        d2_path = data.get("d2_cfg_path", d2_path)
    if d2_path:
        pairs, notes = d2_file_updates(d2_path)
        notices += notes
        for ours, value, key in pairs:
            _merge_layer(cfg, sources, f"d2_cfg_path {d2_path} ({key})", _nested(ours, value))
    for src, data in update_layers:
        _merge_layer(cfg, sources, src, data)
    for ours, value, key in d2_opts_updates(cfg.get("d2_opts")):
        _merge_layer(cfg, sources, f"d2_opts ({key})", _nested(ours, value))
    notices += _apply_preset_rule(cfg, sources, layers)
    cli_groups = {o.lstrip("+~") for o in hydra_overrides}
    cli_d2 = sources.get("d2_opts") == SOURCE_CLI
    given = {k for k, s in sources.items()
             if s == SOURCE_CLI or s.split(" (")[0] in cli_groups or (cli_d2 and s.startswith("d2_opts ("))}
    return ComposedConfig(cfg, sources, overrides, given, notices)


def _nested(dotted: str, value: Any) -> dict:
    out: dict = {}
    set_dotted(out, dotted, value)
    return out
