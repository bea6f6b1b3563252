"""The training loop of one rank: data -> forward -> loss -> backward/clip -> step -> log -> checkpoint.

`run` is what every process executes once the process group exists and the run directory is
known: it builds the model, optimiser, schedule and loaders, resumes from the newest checkpoint
of the run directory when asked, trains for ``solver.max_iter`` iterations (or only evaluates with
``eval_only``), evaluates every ``eval.period`` iterations and at the end, and writes the plots.
"""

from __future__ import annotations

import contextlib
import hashlib
import math
import os
import random
import resource
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn
from tqdm import tqdm

from wsovvis.data.collate import to_device
from wsovvis.engine import distributed as du
from wsovvis.engine.checkpoint import Checkpointer, load_file, restore_model, rng_state, set_rng_state
from wsovvis.engine.config import check_eval_only
from wsovvis.engine.data import build_train_dataset, build_train_loader, build_val_dataset
from wsovvis.engine.evaluation import check_eval_setup, evaluate_results, run_inference
from wsovvis.engine.metrics import MetricsWriter
from wsovvis.engine.optim import build_lr_scheduler, build_optimizer
from wsovvis.errors import WsovvisError
from wsovvis.utils.io import atomic_write_json
from wsovvis.utils.logging import get_logger

log = get_logger(__name__)


def default_builder(cfg):
    from wsovvis.modeling import build_model

    return build_model(cfg)


@dataclass
class Context:
    """Where this rank runs: device, run directory, Sacred run (rank 0 only), resolved config dict."""

    device: torch.device
    run_dir: Path
    config: dict
    sacred_run: Any = None
    builder: Callable = default_builder
    out_dir: Path | None = None  # where inference/ goes when not the run directory (an eval-only record)


def seed_everything(seed: int, rank: int) -> None:
    s = seed + rank
    random.seed(s)
    np.random.seed(s % 2**32)
    torch.manual_seed(s)


def memory_mb(device: torch.device) -> float:
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2**20
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: KiB


def unwrap(model: nn.Module) -> nn.Module:
    return model.module if isinstance(model, nn.parallel.DistributedDataParallel) else model


def weights_fingerprint(model: nn.Module) -> str:
    """SHA-256 of every parameter and buffer (name, shape, bytes): equal on all ranks iff replicas agree."""
    h = hashlib.sha256()
    for name, t in sorted(unwrap(model).state_dict().items()):
        h.update(name.encode())
        h.update(str(tuple(t.shape)).encode())
        h.update(t.detach().cpu().contiguous().numpy().tobytes())
    return h.hexdigest()


def _autocast(cfg, device: torch.device):
    if cfg.solver.amp == "none":
        return contextlib.nullcontext()
    dtype = torch.bfloat16 if cfg.solver.amp == "bf16" else torch.float16
    return torch.autocast(device_type=device.type, dtype=dtype)


def _weighted_loss(loss_dict: dict, weights: dict) -> torch.Tensor:
    terms = [loss_dict[k] * weights[k] for k in loss_dict if k in weights]
    if not terms:
        raise WsovvisError(f"criterion: no loss term has a weight (terms: {sorted(loss_dict)}, "
                           f"weights: {sorted(weights)})")
    return sum(terms)


class Trainer:
    """State of one rank's training: model (DDP-wrapped when distributed), optimiser, schedule, scaler."""

    def __init__(self, cfg, ctx: Context) -> None:
        self.cfg, self.ctx = cfg, ctx
        self.rank, self.world = du.get_rank(), du.world_size()
        self.device = ctx.device
        model, self.criterion, self.postprocessor = ctx.builder(cfg)
        self.model = model.to(self.device)
        self.criterion.to(self.device)
        if hasattr(self.postprocessor, "to"):
            self.postprocessor.to(self.device)
        self.optimizer = build_optimizer(cfg, self.model)
        self.scheduler = build_lr_scheduler(cfg, self.optimizer)
        self.scaler = torch.amp.GradScaler(self.device.type, enabled=cfg.solver.amp == "fp16")
        if cfg.solver.amp != "none" and self.device.type != "cuda":
            # honoured so that CPU runs check the same code path (autocast, loss scaling) as GPU runs
            log.warning("solver.amp=%s on %s: mixed precision is meant for GPUs and is usually slower here",
                        cfg.solver.amp, self.device.type)
        self.checkpointer = Checkpointer(ctx.run_dir / "checkpoints", cfg.solver.keep_last)
        self.iteration = 0
        self.weights_loaded = False

    # --- state -----------------------------------------------------------------------------------

    def resume_or_load(self) -> None:
        """Continue from the newest checkpoint of the run directory (``resume``); otherwise the
        weights are ``model.weights`` (loaded by ``build_model``) or the initialisation."""
        latest = self.checkpointer.latest() if self.cfg.resume else None
        if self.cfg.resume and latest is None:
            raise WsovvisError(f"{self.ctx.run_dir / 'checkpoints'}: resume requested but there is no checkpoint")
        if latest is not None:
            ckpt = load_file(latest, map_location=self.device, trust_pickle=self.cfg.model.trust_pickle)
            restore_model(unwrap(self.model), ckpt, latest, self.ctx.config)
            self.optimizer.load_state_dict(ckpt["optimizer"])
            self.scheduler.load_state_dict(ckpt["scheduler"])
            self.scaler.load_state_dict(ckpt["scaler"])
            self.iteration = int(ckpt["iteration"])
            rngs = ckpt.get("rng") or []
            if len(rngs) == self.world:
                set_rng_state(rngs[self.rank])
            else:
                log.warning("checkpoint saved by %d processes, resuming with %d: random states re-seeded",
                            len(rngs), self.world)
            self.weights_loaded = True
            log.info("resumed from %s at iteration %d", latest, self.iteration)
        elif self.cfg.model.weights:
            self.weights_loaded = True  # build_model loaded them

    def state_dict(self) -> dict:
        return {
            "model": unwrap(self.model).state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict(),
            "scaler": self.scaler.state_dict(),
            "iteration": self.iteration,
            "world_size": self.world,
            "config": self.ctx.config,
        }

    def save_checkpoint(self) -> None:
        rngs = du.all_gather_object(rng_state())
        if self.rank == 0:
            self.checkpointer.save(self.iteration, {**self.state_dict(), "rng": rngs})

    # --- loop ------------------------------------------------------------------------------------

    def train(self, writer: MetricsWriter | None, evaluate: Callable[[int], Any]) -> None:
        cfg = self.cfg
        s = cfg.solver
        dataset = build_train_dataset(cfg)
        if getattr(unwrap(self.model), "text_head", None) is not None:  # class_head=text: the training classes' rows
            from wsovvis.engine.vocabulary import training_vocab

            unwrap(self.model).set_vocabulary(training_vocab(cfg, dataset.category_map, dataset.categories),
                                              str(cfg.model.text_head.embeddings))
        if dataset.num_classes > getattr(unwrap(self.model), "num_classes", cfg.model.num_classes):
            raise WsovvisError(f"{cfg.data.train_json}: {dataset.num_classes} training classes but "
                               f"model.num_classes={cfg.model.num_classes}")
        if self.rank == 0:
            atomic_write_json(self.ctx.run_dir / "data_report.json", {
                "train_json": cfg.data.train_json, "videos": len(dataset), "skipped": len(dataset.skipped),
                "skipped_videos": [vars(v) for v in dataset.skipped],
                "dropped_novel_tracks": getattr(dataset, "dropped_novel", 0)}, indent=2)
        if self.world > 1:
            self.model = nn.parallel.DistributedDataParallel(
                self.model, device_ids=[self.device.index] if self.device.type == "cuda" else None,
                find_unused_parameters=cfg.find_unused_parameters)
        loader = build_train_loader(cfg, dataset, self.rank, self.world, self.iteration)
        self.model.train()
        bar = tqdm(total=s.max_iter, initial=self.iteration, desc="train", unit="it", dynamic_ncols=True,
                   disable=not (cfg.progress and self.rank == 0), mininterval=1.0)
        it_loader = iter(loader)
        try:
            while self.iteration < s.max_iter:
                self._inject_failure()
                t0 = time.perf_counter()
                # data
                batches = [next(it_loader) for _ in range(s.grad_accum_steps)]
                data_time = time.perf_counter() - t0
                # forward -> loss -> backward/clip -> step
                sums, grad_norm, lr = self.step(batches)
                self.iteration += 1
                iter_time = time.perf_counter() - t0
                # log
                bar.update(1)
                if self.iteration % cfg.log_period == 0 or self.iteration == s.max_iter or self.iteration == 1:
                    avg = du.reduce_mean(sums, self.device)
                    if writer is not None:
                        writer.write(self.iteration, {**avg, "lr": lr, "grad_norm": grad_norm,
                                                      "iter_time": iter_time, "data_time": data_time,
                                                      "memory_mb": memory_mb(self.device)})
                    bar.set_postfix(loss=f"{avg['loss']:.3f}", lr=f"{lr:.2e}", refresh=False)
                # checkpoint
                if self.iteration % s.checkpoint_period == 0 or self.iteration == s.max_iter:
                    self.save_checkpoint()
                # evaluate
                if cfg.eval.period > 0 and self.iteration % cfg.eval.period == 0 and self.iteration < s.max_iter:
                    evaluate(self.iteration)
                    self.model.train()
        finally:
            bar.close()
            del it_loader  # shuts loader workers down
        self.check_replicas()

    def check_replicas(self) -> None:
        """Every rank must end with the same weights; rank 0 records the fingerprints in ``ranks.json``."""
        prints = du.all_gather_object(weights_fingerprint(self.model))
        if self.rank == 0:
            atomic_write_json(self.ctx.run_dir / "ranks.json",
                              {"iteration": self.iteration, "world_size": self.world, "weights_sha256": prints},
                              indent=2)
        if len(set(prints)) != 1:
            raise RuntimeError(f"model replicas diverged across ranks at iteration {self.iteration}: {prints}")

    def step(self, batches: list[dict]) -> tuple[dict[str, float], float, float]:
        """One optimiser step over ``batches`` (gradient accumulation): forward -> loss -> backward
        -> clip -> step. Returns (mean weighted loss terms and ``loss``, grad norm, lr used)."""
        s, weights = self.cfg.solver, self.criterion.weight_dict
        sums: dict[str, float] = {}
        self.optimizer.zero_grad(set_to_none=True)
        for k, batch in enumerate(batches):
            images, sizes, targets = to_device(batch, self.device)
            last = k == len(batches) - 1
            # DDP all-reduces gradients on the last micro-batch only.
            sync = contextlib.nullcontext() if last or self.world == 1 else self.model.no_sync()
            with sync:
                with _autocast(self.cfg, self.device):
                    # models that compute their losses inside forward (Mask R-CNN) also take the targets
                    extra = (targets,) if getattr(unwrap(self.model), "needs_targets", False) else ()
                    outputs = self.model(images, sizes, *extra)
                    loss_dict = self.criterion(outputs, targets)
                loss = _weighted_loss(loss_dict, weights)
                values = {n: float(v.detach()) for n, v in loss_dict.items()}
                # Every rank must take the same branch, or the others would wait in backward forever.
                if not du.all_true(math.isfinite(float(loss.detach())), self.device):
                    msg = ", ".join(f"{n}={v:.4g}" for n, v in sorted(values.items()))
                    log.error("non-finite loss at iteration %d: %s", self.iteration, msg)
                    raise FloatingPointError(f"non-finite loss at iteration {self.iteration} (on some rank); "
                                             f"this rank's loss terms: {msg}")
                self.scaler.scale(loss / len(batches)).backward()
            for n, v in values.items():
                if n in weights:
                    sums[n] = sums.get(n, 0.0) + v / len(batches)
            sums["loss"] = sums.get("loss", 0.0) + float(loss.detach()) / len(batches)
        grad_norm = float("nan")
        if s.clip_max_norm > 0:
            self.scaler.unscale_(self.optimizer)
            grad_norm = float(nn.utils.clip_grad_norm_(self.model.parameters(), s.clip_max_norm))
        self.scaler.step(self.optimizer)
        self.scaler.update()
        lr = self.optimizer.param_groups[-1]["lr"]
        self.scheduler.step()
        return sums, grad_norm, lr

    def _inject_failure(self) -> None:
        f = self.cfg.inject_failure
        if f.rank == self.rank and f.iteration == self.iteration:
            if f.kind == "exit":
                os._exit(3)
            raise RuntimeError(f"injected failure on rank {self.rank} at iteration {self.iteration}")


def run(cfg, ctx: Context) -> dict:
    """Train (or only evaluate) on this rank; returns the final metrics (rank 0) or {}."""
    rank = du.get_rank()
    check_eval_only(cfg)  # again here for callers that skip the launcher's start-up checks
    seed_everything(cfg.seed, rank)
    wants_eval = cfg.eval_only or cfg.eval.at_end or cfg.eval.period > 0
    val = build_val_dataset(cfg) if wants_eval else None
    need_eval = val is not None
    index_to_id = eval_emb = eval_vocab_path = None
    if need_eval:
        train_cats = None
        if cfg.data.train_json and Path(cfg.data.train_json).is_file():
            from wsovvis.data import ytvis

            train_cats = ytvis.load(cfg.data.train_json, validate_json=False).categories
        index_to_id = check_eval_setup(cfg, val, train_cats)
        if getattr(cfg.model, "class_head", "linear") == "text" and not cfg.eval.class_agnostic:
            from wsovvis.engine.vocabulary import eval_vocab  # eval.vocab swapped in, no retraining

            eval_emb, index_to_id, eval_vocab_path = eval_vocab(cfg, val.ds.categories, val.json_path)
    elif cfg.eval_only:
        raise WsovvisError("config: eval_only=True needs data.val_json and data.val_img_root")
    trainer = Trainer(cfg, ctx)
    if eval_emb is not None and eval_emb.shape[1] != unwrap(trainer.model).text_head.embed_dim:
        # fail at start-up, not after training (`set_vocabulary` would raise the same at evaluation)
        unwrap(trainer.model).text_head.set_vocabulary(eval_emb, eval_vocab_path)
    trainer.resume_or_load()
    start_iter = trainer.iteration
    writer = MetricsWriter(ctx.run_dir, ctx.sacred_run, start_iter) if rank == 0 else None
    final: dict = {}

    def evaluate(iteration: int) -> dict:
        nonlocal final
        state = rng_state()  # inference must not shift the training random stream
        train_vocab = None
        if eval_emb is not None:
            train_vocab = unwrap(trainer.model).text_head.text.clone()
            unwrap(trainer.model).set_vocabulary(eval_emb, eval_vocab_path)
        results = run_inference(unwrap(trainer.model), trainer.postprocessor, val, index_to_id, cfg.progress,
                                desc=f"eval@{iteration}")
        if train_vocab is not None and train_vocab.numel():
            unwrap(trainer.model).set_vocabulary(train_vocab)
        metrics = {}
        if rank == 0:
            metrics = evaluate_results(cfg, results, val, ctx.out_dir or ctx.run_dir, iteration, writer)
        final = du.broadcast_object(metrics)
        set_rng_state(state)
        return final

    if cfg.eval_only:
        evaluate(trainer.iteration)
        return final
    trainer.train(writer, evaluate if need_eval else (lambda it: None))
    if rank == 0:
        trainer.checkpointer.save_final_weights(unwrap(trainer.model).state_dict(), ctx.config)
    if need_eval and cfg.eval.at_end:
        evaluate(trainer.iteration)
    if rank == 0 and cfg.plots:
        from wsovvis.viz.plots import plot_run

        for p in plot_run(ctx.run_dir):
            log.info("plot: %s", p)
    return final
