"""The config of a later invocation of a run directory (``resume``, ``eval_only``): the run's saved
``config.yaml`` is the base, and only what this command line gives explicitly replaces it.

Rule: keys set by ``key=value`` tokens or by ``group=option`` tokens on this command line (the
``given`` keys of `wsovvis.engine.compose.ComposedConfig`) override the saved values; values that
this invocation's ``with`` files, file ``defaults`` or group defaults would give are NOT applied (the
run keeps the model it was trained with), and each such difference is reported, naming the value
kept. ``resume`` and ``eval_only`` always come from this invocation.
"""

from __future__ import annotations

import copy
from pathlib import Path

import yaml

from wsovvis.engine.compose import ComposedConfig, check_update_keys, deep_merge, schema_defaults, set_dotted
from wsovvis.engine.schema import flatten
from wsovvis.errors import WsovvisError

ALWAYS_NEW = ("resume", "eval_only")
_MISSING = "<absent>"


def load_saved_config(path: Path) -> dict:
    try:
        data = yaml.safe_load(Path(path).read_text(encoding="utf-8")) or {}
    except (OSError, yaml.YAMLError, UnicodeDecodeError) as e:
        raise WsovvisError(f"{path}: unreadable saved config: {e}") from e
    if not isinstance(data, dict):
        raise WsovvisError(f"{path}: a saved config must hold a mapping, got {type(data).__name__}")
    return data


def rebase_on_saved(saved_path: Path, composed: ComposedConfig) -> tuple[ComposedConfig, list[str], list[str]]:
    """-> (config based on the saved one, overrides applied, differences ignored) as readable lines."""
    saved = load_saved_config(saved_path)
    base = schema_defaults()
    check_update_keys(base, saved, where=f"{saved_path} (saved config)")
    deep_merge(base, saved)
    old, new = flatten(base), flatten(composed.config)
    sources = {k: f"saved {saved_path}" for k in old}
    config = copy.deepcopy(base)
    applied, ignored = [], []
    for k in sorted(set(old) | set(new)):
        a, b = old.get(k, _MISSING), new.get(k, _MISSING)
        if a == b:
            continue
        src = composed.sources.get(k, "default")
        if k in ALWAYS_NEW or k in composed.given:
            set_dotted(config, k, copy.deepcopy(b))
            sources[k] = src
            if k not in ALWAYS_NEW:
                applied.append(f"{k}: {a!r} -> {b!r} ({src})")
        elif k != "d2_opts":
            ignored.append(f"{k}: kept {a!r} ({src} would give {b!r})")
    out = ComposedConfig(config, sources, composed.hydra_overrides, composed.given, composed.notices)
    return out, applied, ignored
