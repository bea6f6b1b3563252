"""Loading ResNet-50 weights from a torchvision ``.pth`` or a detectron2 ``.pkl`` file.

detectron2's ``R-50.pkl`` converted from torchvision is a pickle of ``{"model": {name: ndarray}}``
with d2 names (``stem.conv1.weight``, ``res2.0.conv1.norm.running_mean``, ``res3.0.shortcut.weight``);
`d2_to_torchvision` maps them onto torchvision names (``conv1``, ``layer1.0.bn1``, ``layer2.0.downsample``).
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import torch
from torch import nn

from wsovvis.errors import WsovvisError
from wsovvis.utils.logging import get_logger
from wsovvis.utils.safe_load import load_untrusted

log = get_logger(__name__)

_D2_STAGE = re.compile(r"^res(\d)\.(\d+)\.(.*)$")


def d2_to_torchvision(key: str) -> str | None:
    """detectron2 ResNet key -> torchvision key (None when it has no torchvision counterpart)."""
    if key.startswith("stem.conv1.norm."):
        return "bn1." + key[len("stem.conv1.norm.") :]
    if key.startswith("stem.conv1."):
        return "conv1." + key[len("stem.conv1.") :]
    m = _D2_STAGE.match(key)
    if not m:
        return None
    layer = f"layer{int(m.group(1)) - 1}.{m.group(2)}."
    rest = m.group(3)
    rest = re.sub(r"^conv(\d)\.norm\.", r"bn\1.", rest)
    rest = re.sub(r"^shortcut\.norm\.", "downsample.1.", rest)
    rest = re.sub(r"^shortcut\.", "downsample.0.", rest)
    return layer + rest


def torchvision_to_d2(key: str) -> str:
    """Inverse of `d2_to_torchvision` for ResNet trunk keys."""
    if key.startswith("bn1."):
        return "stem.conv1.norm." + key[4:]
    if key.startswith("conv1."):
        return "stem.conv1." + key[6:]
    m = re.match(r"^layer(\d)\.(\d+)\.(.*)$", key)
    if not m:
        raise KeyError(key)
    rest = m.group(3)
    rest = re.sub(r"^bn(\d)\.", r"conv\1.norm.", rest)
    rest = re.sub(r"^downsample\.0\.", "shortcut.", rest)
    rest = re.sub(r"^downsample\.1\.", "shortcut.norm.", rest)
    return f"res{int(m.group(1)) + 1}.{m.group(2)}.{rest}"


def read_resnet_state_dict(path: str | Path, trust_pickle: bool = False) -> dict[str, torch.Tensor]:
    """Read a torchvision ``.pth`` or detectron2 ``.pkl`` ResNet file into torchvision key names.

    Both go through `wsovvis.utils.safe_load` (arrays, tensors and plain containers only unless
    ``trust_pickle``).
    """
    path = Path(path)
    if not path.is_file():
        raise WsovvisError(f"{path}: backbone weights file does not exist (model.backbone.weights)")
    if path.suffix != ".pkl":
        obj = load_state_dict_file(path, "ResNet weights", trust_pickle=trust_pickle)
    else:
        obj = load_untrusted(path, what="detectron2 backbone weights", trust_pickle=trust_pickle)
        if isinstance(obj, dict) and isinstance(obj.get("model"), dict):
            obj = obj["model"]
        if not isinstance(obj, dict):
            kind = type(obj).__name__
            raise WsovvisError(f"{path}: expected a dict of arrays (optionally under 'model'), not {kind}")
    if any(k.startswith(("res_conv1_", "conv1_w")) or "_branch2a_" in k for k in obj):
        raise WsovvisError(
            f"{path}: this is a Caffe2-named MSRA ResNet (stride in the 1x1 conv, BGR input), which the "
            "torchvision-layout backbone cannot use; supply torchvision's resnet50 .pth or detectron2's "
            "torchvision-converted R-50.pkl"
        )
    d2 = any(k.startswith(("stem.", "res2.")) for k in obj)
    out: dict[str, torch.Tensor] = {}
    for k, v in obj.items():
        name = d2_to_torchvision(k) if d2 else k
        if name is None:
            continue
        out[name] = torch.as_tensor(np.asarray(v)) if not isinstance(v, torch.Tensor) else v
    return out


def load_resnet_weights(body: nn.Module, path: str | Path, trust_pickle: bool = False) -> None:
    """Load a ResNet file into a torchvision-layout ``body``; every trunk tensor must be present."""
    sd = read_resnet_state_dict(path, trust_pickle)
    own = body.state_dict()
    missing = [k for k in own if k not in sd]
    if missing:
        raise WsovvisError(f"{path}: ResNet weights lack {len(missing)} keys, e.g. {', '.join(missing[:5])}")
    bad = [f"{k} {tuple(sd[k].shape)} vs {tuple(v.shape)}" for k, v in own.items() if sd[k].shape != v.shape]
    if bad:
        raise WsovvisError(f"{path}: ResNet weights have wrong shapes: {'; '.join(bad[:5])}")
    body.load_state_dict({k: sd[k].to(own[k].dtype) for k in own})
    ignored = sorted(set(sd) - set(own) - {k for k in sd if k.endswith("num_batches_tracked") or k.startswith("fc.")})
    log.info("loaded ResNet weights from %s%s", path, f" (ignored {len(ignored)} extra keys)" if ignored else "")


def load_state_dict_file(path: str | Path, what: str, trust_pickle: bool = False) -> dict[str, torch.Tensor]:
    """A ``.pth`` holding a state dict (optionally under ``model``/``state_dict``), errors naming the file.

    Read by `wsovvis.utils.safe_load.load_untrusted` (no code runs unless ``trust_pickle``).
    """
    path = Path(path)
    if not path.is_file():
        raise WsovvisError(f"{path}: {what} file does not exist")
    obj = load_untrusted(path, what=what, trust_pickle=trust_pickle)
    if isinstance(obj, dict):
        for key in ("model", "state_dict"):
            if isinstance(obj.get(key), dict):
                obj = obj[key]
                break
    if not isinstance(obj, dict) or not all(isinstance(v, torch.Tensor) for v in obj.values()):
        raise WsovvisError(f"{path}: {what} is not a dict of tensors")
    return obj
