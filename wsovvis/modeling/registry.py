"""Model registry: ``model.name`` -> a builder returning ``(model, criterion, postprocessor)``.

A builder is registered with ``@register_model("name")`` and takes the validated `ModelConfig`.
`wsovvis.modeling.build.build_model` dispatches on ``cfg.model.name``; the modules that hold the
builders are imported lazily by `ensure_registered` so that importing the registry stays light.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import Any

from wsovvis.errors import WsovvisError

Builder = Callable[[Any], tuple[Any, Any, Any]]

_MODELS: dict[str, Builder] = {}

# Modules whose import registers builders (the first call of `ensure_registered` imports them).
BUILDER_MODULES = ("wsovvis.modeling.build", "wsovvis.modeling.maskrcnn.build")


def register_model(name: str) -> Callable[[Builder], Builder]:
    """Decorator: register ``fn(model_config) -> (model, criterion, postprocessor)`` under ``name``."""

    def deco(fn: Builder) -> Builder:
        if name in _MODELS and _MODELS[name] is not fn:
            raise ValueError(f"model {name!r} is already registered (by {_MODELS[name].__module__})")
        _MODELS[name] = fn
        return fn

    return deco


def ensure_registered() -> None:
    for module in BUILDER_MODULES:
        importlib.import_module(module)


def list_models() -> list[str]:
    ensure_registered()
    return sorted(_MODELS)


def get_model_builder(name: str) -> Builder:
    ensure_registered()
    if name not in _MODELS:
        raise WsovvisError(f"model.name: unknown model {name!r}; choose from {', '.join(sorted(_MODELS))}")
    return _MODELS[name]
