"""Optimiser groups, the warmup + step schedule, the infinite sampler and checkpoints."""

from __future__ import annotations

import random
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from torch import nn

from wsovvis.engine.checkpoint import Checkpointer, load_file, rng_state, set_rng_state
from wsovvis.engine.config import SolverConfig
from wsovvis.engine.data import InfiniteClipSampler
from wsovvis.engine.optim import WarmupMultiStepLR, build_optimizer, lr_factor, param_groups


class Toy(nn.Module):
    def __init__(self):
        super().__init__()
        self.backbone = nn.Linear(3, 3)
        self.frozen = nn.Linear(3, 3)
        self.frozen.requires_grad_(False)
        self.sampling_offsets = nn.Linear(3, 2)
        self.head = nn.Linear(3, 1)


def test_param_groups_multipliers_and_frozen_parameters():
    groups = {g["name"]: g for g in param_groups(Toy(), 1e-3, 0.05, backbone_multiplier=0.1,
                                                  linear_proj_multiplier=0.5,
                                                  linear_proj_names=["sampling_offsets"])}
    assert groups["backbone"]["lr"] == pytest.approx(1e-4) and len(groups["backbone"]["params"]) == 2
    assert groups["linear_proj"]["lr"] == pytest.approx(5e-4) and len(groups["linear_proj"]["params"]) == 2
    assert groups["default"]["lr"] == pytest.approx(1e-3) and len(groups["default"]["params"]) == 2
    assert all(g["weight_decay"] == 0.05 for g in groups.values())
    n_trainable = sum(len(g["params"]) for g in groups.values())
    assert n_trainable == 6  # the two frozen tensors are not optimised


def test_new_layers_of_a_backbone_learn_at_the_full_rate():
    class WithFPN(nn.Module):
        def __init__(self):
            super().__init__()
            self.backbone = nn.Module()
            self.backbone.trunk = nn.Linear(3, 3)
            self.backbone.fpn = nn.Linear(3, 3)
            self.head = nn.Linear(3, 1)

    model = WithFPN()
    groups = {g["name"]: g for g in param_groups(model, 1e-3, 0.0, backbone_multiplier=0.1,
                                                  backbone_new_names=["backbone.fpn."])}
    assert {id(p) for p in groups["backbone"]["params"]} == {id(p) for p in model.backbone.trunk.parameters()}
    assert {id(p) for p in model.backbone.fpn.parameters()} <= {id(p) for p in groups["default"]["params"]}
    assert groups["backbone"]["lr"] == pytest.approx(1e-4) and groups["default"]["lr"] == pytest.approx(1e-3)


def test_dinov2_config_puts_the_pseudo_fpn_at_the_full_rate():
    from wsovvis.engine.compose import compose
    from wsovvis.engine.config import build_train_config

    cfg = build_train_config(compose(["model=seqformer_dinov2_vits14"]))
    assert "backbone.fpn." in cfg.solver.backbone_new_names


def test_lr_factor_hand_values():
    # linear warmup from 0.1 over 10 iterations, then x0.1 at 20 and again at 30
    f = [lr_factor(i, [20, 30], 0.1, 10, 0.1) for i in (0, 5, 10, 19, 20, 29, 30)]
    assert f == pytest.approx([0.1, 0.55, 1.0, 1.0, 0.1, 0.1, 0.01])
    assert lr_factor(3, [], 0.1, 10, 0.5, "constant") == 0.5
    assert lr_factor(3, [], 0.1, 0, 0.5) == 1.0


def test_scheduler_follows_lr_factor_and_resumes():
    cfg = SimpleNamespace(solver=SolverConfig(base_lr=1e-2, backbone_multiplier=0.5, warmup_iters=4,
                                              warmup_factor=0.25, steps=[6], gamma=0.5, linear_proj_multiplier=1.0))
    opt = build_optimizer(cfg, Toy())
    sched = WarmupMultiStepLR(opt, [6], 0.5, 4, 0.25)
    seen = []
    for _ in range(8):
        seen.append([g["lr"] for g in opt.param_groups])
        opt.step()
        sched.step()
    want = [lr_factor(i, [6], 0.5, 4, 0.25) for i in range(8)]
    assert [s[-1] for s in seen] == pytest.approx([1e-2 * f for f in want])
    assert [s[0] for s in seen] == pytest.approx([0.5e-2 * f for f in want])  # backbone group
    opt2 = build_optimizer(cfg, Toy())
    sched2 = WarmupMultiStepLR(opt2, [6], 0.5, 4, 0.25)
    sched2.load_state_dict(sched.state_dict())
    assert sched2.get_last_lr() == pytest.approx(sched.get_last_lr())


def test_infinite_sampler_resume_and_rank_split():
    full = InfiniteClipSampler(5, seed=3)
    it = iter(full)
    stream = [next(it) for _ in range(23)]
    assert sorted(i for i, _ in stream[:5]) == list(range(5))  # each epoch is a permutation
    epochs = {tuple(i for i, _ in stream[k:k + 5]) for k in range(0, 20, 5)}
    assert len(epochs) > 1 and all(sorted(e) == list(range(5)) for e in epochs)
    assert len({seed for _, seed in stream}) == len(stream)  # every position has its own clip seed
    resumed = iter(InfiniteClipSampler(5, seed=3, start=12))
    assert [next(resumed) for _ in range(11)] == stream[12:]
    r0 = iter(InfiniteClipSampler(5, seed=3, rank=0, world_size=2, start=4))
    r1 = iter(InfiniteClipSampler(5, seed=3, rank=1, world_size=2, start=4))
    assert [next(r0) for _ in range(4)] == stream[4:12:2]
    assert [next(r1) for _ in range(4)] == stream[5:12:2]


def test_checkpointer_keeps_last_k_and_latest(tmp_path):
    ck = Checkpointer(tmp_path / "checkpoints", keep_last=2)
    assert ck.latest() is None
    for it in (2, 4, 6):
        ck.save(it, {"iteration": it, "w": torch.full((2,), float(it))})
    assert [i for i, _ in ck.list()] == [4, 6]
    assert load_file(ck.latest())["iteration"] == 6
    assert not list((tmp_path / "checkpoints").glob("*.tmp")) and not list((tmp_path / "checkpoints").glob(".*"))
    (tmp_path / "bad.pth").write_bytes(b"not a checkpoint")
    with pytest.raises(Exception, match="unreadable checkpoint"):
        load_file(tmp_path / "bad.pth")


def test_rng_state_round_trip():
    state = rng_state()
    a = (random.random(), np.random.rand(), torch.rand(3))
    set_rng_state(state)
    b = (random.random(), np.random.rand(), torch.rand(3))
    assert a[0] == b[0] and a[1] == b[1] and torch.equal(a[2], b[2])
