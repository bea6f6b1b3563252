"""``model.num_classes=0``: take the class count from the training data, once, at launch.

The count is the number of categories of ``data.train_json`` (else of ``data.images.json`` when only images
train): 1 for class-agnostic pseudo tubes, K for labelled ones; 1 with ``data.train_classes=agnostic``. It is
written into the resolved config before the run directory saves it, so resume and eval-only rebuild exactly the
same model.
"""

from __future__ import annotations

from wsovvis.errors import WsovvisError
from wsovvis.utils.io import read_json

FROM_DATA = 0


def resolve_num_classes(config: dict, sources: dict[str, str]) -> str | None:
    """Replace ``model.num_classes`` 0 in ``config`` (plain dict) by the training data's category count, in place;
    returns a notice for the log (None when nothing was resolved)."""
    model = config.get("model") or {}
    if model.get("num_classes") != FROM_DATA:
        return None
    data = config.get("data") or {}
    if data.get("train_classes") == "agnostic":
        model["num_classes"] = 1
        sources["model.num_classes"] = "from the data (data.train_classes=agnostic: one class)"
        return "model.num_classes=0: 1 class (data.train_classes=agnostic)"
    path, key = data.get("train_json"), "data.train_json"
    if not path:
        path, key = (data.get("images") or {}).get("json"), "data.images.json"
    if not path:
        raise WsovvisError("model.num_classes=0 takes the class count from the training data, but neither "
                           "data.train_json nor data.images.json is set; set model.num_classes")
    cats = read_json(path, f"{key} (for model.num_classes=0)")
    cats = cats.get("categories") if isinstance(cats, dict) else None
    if not isinstance(cats, list) or not cats:
        raise WsovvisError(f"{path}: {key} has no 'categories' to take model.num_classes from; set model.num_classes")
    model["num_classes"] = len(cats)
    sources["model.num_classes"] = f"from the data ({len(cats)} categories of {key} {path})"
    return f"model.num_classes=0: {len(cats)} classes, the categories of {key} {path}"
