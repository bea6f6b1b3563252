"""AdamW with per-parameter-group learning rates, and the warmup + step schedule.

Parameter groups (trainable parameters only; frozen ones never reach the optimiser):

* name contains ``"backbone"``                     -> ``base_lr * backbone_multiplier``,
  except names containing one of ``backbone_new_names`` (layers a backbone adds on top of its
  pretrained trunk, e.g. the DINOv2 pseudo-FPN ``backbone.fpn.``): they start from random
  weights, so they learn at the head's rate
* name contains one of ``linear_proj_names``        -> ``base_lr * linear_proj_multiplier``
* everything else                                   -> ``base_lr``

All groups use ``weight_decay``. The schedule multiplies each group's initial lr by
``warmup(it) * gamma ** (number of steps <= it)`` (detectron2's WarmupMultiStepLR).
"""

from __future__ import annotations

import bisect

import torch
from torch import nn


def param_groups(
    model: nn.Module,
    base_lr: float,
    weight_decay: float,
    backbone_multiplier: float = 1.0,
    linear_proj_multiplier: float = 1.0,
    linear_proj_names: tuple[str, ...] | list[str] = (),
    backbone_new_names: tuple[str, ...] | list[str] = (),
) -> list[dict]:
    """Trainable parameters split into (at most) three groups, each with ``name`` and ``lr``."""
    groups: dict[str, list] = {"backbone": [], "linear_proj": [], "default": []}
    seen: set[int] = set()
    for name, p in model.named_parameters():
        if not p.requires_grad or id(p) in seen:  # tied weights appear once
            continue
        seen.add(id(p))
        if "backbone" in name and not any(k in name for k in backbone_new_names):
            groups["backbone"].append(p)
        elif any(k in name for k in linear_proj_names):
            groups["linear_proj"].append(p)
        else:
            groups["default"].append(p)
    mult = {"backbone": backbone_multiplier, "linear_proj": linear_proj_multiplier, "default": 1.0}
    return [
        {"params": ps, "lr": base_lr * mult[k], "weight_decay": weight_decay, "name": k}
        for k, ps in groups.items() if ps
    ]


def build_optimizer(cfg, model: nn.Module) -> torch.optim.Optimizer:
    """AdamW from ``cfg.solver`` (a `SolverConfig`)."""
    s = cfg.solver
    groups = param_groups(model, s.base_lr, s.weight_decay, s.backbone_multiplier,
                          s.linear_proj_multiplier, tuple(s.linear_proj_names), tuple(s.backbone_new_names))
    if not groups:
        raise ValueError("the model has no trainable parameters")
    return torch.optim.AdamW(groups, lr=s.base_lr, weight_decay=s.weight_decay, betas=tuple(s.betas))


def lr_factor(it: int, steps: list[int], gamma: float, warmup_iters: int, warmup_factor: float,
              warmup_method: str = "linear") -> float:
    """Multiplier of the initial lr at iteration ``it`` (0-based, before the step of iteration ``it``)."""
    warm = 1.0
    if it < warmup_iters:
        if warmup_method == "constant":
            warm = warmup_factor
        else:
            alpha = it / warmup_iters
            warm = warmup_factor * (1 - alpha) + alpha
    return warm * gamma ** bisect.bisect_right(sorted(steps), it)


class WarmupMultiStepLR(torch.optim.lr_scheduler.LRScheduler):
    """Closed-form schedule: ``lr = initial_lr * lr_factor(last_epoch)``; state = ``last_epoch``."""

    def __init__(self, optimizer: torch.optim.Optimizer, steps: list[int], gamma: float = 0.1,
                 warmup_iters: int = 0, warmup_factor: float = 1.0, warmup_method: str = "linear",
                 last_epoch: int = -1) -> None:
        self.steps = sorted(steps)
        self.gamma = gamma
        self.warmup_iters = warmup_iters
        self.warmup_factor = warmup_factor
        self.warmup_method = warmup_method
        super().__init__(optimizer, last_epoch)

    def get_lr(self) -> list[float]:
        f = lr_factor(self.last_epoch, self.steps, self.gamma, self.warmup_iters, self.warmup_factor,
                      self.warmup_method)
        return [base * f for base in self.base_lrs]


def build_lr_scheduler(cfg, optimizer: torch.optim.Optimizer) -> WarmupMultiStepLR:
    s = cfg.solver
    return WarmupMultiStepLR(optimizer, list(s.steps), s.gamma, s.warmup_iters, s.warmup_factor, s.warmup_method)
