"""The typed schema of the training config: `TrainConfig` and its groups (``model`` is
`wsovvis.modeling.config.ModelConfig`). These dataclasses hold every default, in one place.

The composed config (`wsovvis.engine.compose.compose_run`) is a plain dict; `build_train_config`
validates it ONCE into a `TrainConfig` with `wsovvis.engine.schema.from_dict` (model included), so
that an unknown key or a wrong type fails before anything runs. ``train_config_dict`` is the inverse;
``build_train_config(train_config_dict(c)) == c`` for every composed config (tested).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

from wsovvis.data.train_config import CopyPasteConfig, ImageDataConfig
from wsovvis.engine.schema import from_dict, to_dict
from wsovvis.errors import WsovvisError
from wsovvis.modeling.config import ModelConfig


@dataclass
class DataConfig:
    """Dataset locations. ``val_json`` null disables evaluation."""

    train_json: str = ""
    train_img_root: str = ""
    train_name: str = "train"
    val_json: str | None = None
    val_img_root: str | None = None
    val_name: str = "val"
    # Training targets: "dataset" uses the category ids of train_json; "agnostic" maps every
    # track to class 0 (pseudo tubes carry no meaningful class).
    train_classes: Literal["dataset", "agnostic", "base"] = "dataset"  # base: LV-VIS partition 0/1 tracks only
    tube_embeddings: str | None = None  # `wsovvis embed` cache of train_json (model.loss.distill_weight > 0)
    num_workers: int = 2
    prefetch_factor: int = 2
    max_train_videos: int = 0  # 0 = all; N trains on the first N usable videos (overfitting checks)
    max_val_videos: int = 0  # 0 = all; N evaluates the first N videos (smoke runs)
    images: ImageDataConfig = field(default_factory=ImageDataConfig)  # still images mixed in (data/image_clips.py)
    copy_paste: CopyPasteConfig = field(default_factory=CopyPasteConfig)  # CutLER copy-paste (data/copy_paste.py)
    # training videos without annotations: kept as negatives like VNext (FILTER_EMPTY_ANNOTATIONS False);
    # true drops them (the count is logged either way)
    drop_empty_videos: bool = False
    # a truncated training frame (JPEG/PNG cut short): fail naming the file, or skip its video and count it
    bad_frames: Literal["fail", "skip"] = "fail"

    def __post_init__(self) -> None:
        if self.num_workers < 0 or self.prefetch_factor < 1:
            raise ValueError("num_workers must be >= 0 and prefetch_factor >= 1")


@dataclass
class CropConfig:
    enabled: bool = False
    prob: float = 0.5
    size: list[int] = field(default_factory=lambda: [384, 600])  # absolute [min, max] side of the crop


@dataclass
class InputConfig:
    """Clip sampling and augmentation (SeqFormer/VNext defaults, seqformer.md §5)."""

    sampling_frame_num: int = 5
    sampling_frame_range: int = 10
    min_size_train: list[int] = field(
        default_factory=lambda: [320, 352, 392, 416, 448, 480, 512, 544, 576, 608, 640]
    )
    max_size_train: int = 1333  # the test size is model.inference.test_size / max_size
    flip_prob: float = 0.5
    crop: CropConfig = field(default_factory=CropConfig)
    size_divisibility: int = 32

    def __post_init__(self) -> None:
        if self.sampling_frame_num < 1 or self.sampling_frame_range < 0:
            raise ValueError("sampling_frame_num must be >= 1 and sampling_frame_range >= 0")
        if not self.min_size_train or min(self.min_size_train) < 1:
            raise ValueError("min_size_train must be a non-empty list of positive sizes")
        if not 0.0 <= self.flip_prob <= 1.0:
            raise ValueError("flip_prob must be in [0, 1]")


@dataclass
class SolverConfig:
    """Optimiser, schedule and loop (VNext SeqFormer R50 defaults)."""

    ims_per_batch: int = 16  # clips per optimiser step, over all processes and accumulation steps
    grad_accum_steps: int = 1
    base_lr: float = 2e-4
    backbone_multiplier: float = 0.1  # applies to parameters whose name contains "backbone"
    # ... except these randomly initialised layers on top of a pretrained trunk (full lr)
    backbone_new_names: list[str] = field(default_factory=lambda: ["backbone.fpn."])
    linear_proj_multiplier: float = 1.0  # parameters named like `linear_proj_names` (original repo: 0.1)
    linear_proj_names: list[str] = field(default_factory=lambda: ["sampling_offsets", "reference_points"])
    weight_decay: float = 1e-4
    betas: list[float] = field(default_factory=lambda: [0.9, 0.999])
    max_iter: int = 12000
    steps: list[int] = field(default_factory=lambda: [8000])
    gamma: float = 0.1
    warmup_iters: int = 10
    warmup_factor: float = 1.0
    warmup_method: Literal["linear", "constant"] = "linear"
    clip_max_norm: float = 0.01  # full-model L2 norm; 0 disables clipping
    amp: Literal["none", "bf16", "fp16"] = "none"  # autocast dtype; fp16 adds loss scaling (meant for GPUs)
    checkpoint_period: int = 1000
    keep_last: int = 3

    def __post_init__(self) -> None:
        if self.ims_per_batch < 1 or self.grad_accum_steps < 1 or self.max_iter < 0:
            raise ValueError("ims_per_batch and grad_accum_steps must be >= 1, max_iter >= 0")
        if self.keep_last < 1:
            raise ValueError("keep_last must be >= 1")
        if len(self.betas) != 2:
            raise ValueError("betas must have two values")


@dataclass
class EvalConfig:
    """Periodic/final evaluation. ``mode=submission`` writes and validates results only."""

    mode: Literal["local", "submission"] = "local"
    period: int = 0  # iterations between evaluations; 0 = only at the end
    at_end: bool = True
    class_agnostic: bool = False
    flavor: Literal["ytvis", "lvvis"] = "ytvis"
    lenient: bool = False
    vocab: str | None = None  # class_head=text: text embeddings .npy to evaluate with (default: the model's)


@dataclass
class FailureInjection:
    """Test hook for the failure handling: rank ``rank`` fails at iteration ``iteration``."""

    rank: int = -1
    iteration: int = -1
    kind: Literal["raise", "exit"] = "raise"


@dataclass
class TrainConfig:
    model: ModelConfig = field(default_factory=ModelConfig)
    data: DataConfig = field(default_factory=DataConfig)
    input: InputConfig = field(default_factory=InputConfig)
    solver: SolverConfig = field(default_factory=SolverConfig)
    eval: EvalConfig = field(default_factory=EvalConfig)
    seed: int = 42
    device: Literal["auto", "cpu", "cuda"] = "auto"
    num_gpus: int = 1  # processes per machine (one per GPU; CPU processes with gloo on CPU)
    num_machines: int = 1
    machine_rank: int = 0
    dist_url: str = "auto"  # tcp://host:port; "auto" picks a free local port (single machine)
    dist_timeout_s: float = 1800.0
    find_unused_parameters: bool = True
    output_root: str = "runs/wsovvis"  # base directory of run directories when -F is not given
    resume: bool | str = False  # True: newest run with a checkpoint under the base; or a run directory
    eval_only: bool = False
    d2_opts: list[Any] = field(default_factory=list)  # detectron2-style [KEY, VALUE, ...] (wsovvis.engine.d2_config)
    d2_cfg_path: str | None = None  # a detectron2/VNext YAML (and its _BASE_ chain) read as one config layer
    num_threads: int = 0  # torch intra-op threads per process; 0 = torch's default (all cores / processes)
    log_period: int = 20  # iterations between logged training rows
    plots: bool = True
    progress: bool = True
    inject_failure: FailureInjection = field(default_factory=FailureInjection)

    def __post_init__(self) -> None:
        if self.num_gpus < 1 or self.num_machines < 1 or not 0 <= self.machine_rank < self.num_machines:
            raise ValueError("need num_gpus >= 1, num_machines >= 1 and 0 <= machine_rank < num_machines")

    @property
    def world_size(self) -> int:
        return self.num_gpus * self.num_machines


def check_eval_only(cfg: TrainConfig) -> None:
    """``eval_only`` needs weights to evaluate: a run to resume or ``model.weights``."""
    if cfg.eval_only and not cfg.resume and not cfg.model.weights:
        raise WsovvisError("config: eval_only=True needs resume=True (a run directory with checkpoints) "
                           "or model.weights=PATH")


def build_train_config(cfg: dict, where: str = "config") -> TrainConfig:
    """Validate a plain dict (the output of `wsovvis.engine.compose.compose_run`) into a `TrainConfig`."""
    return from_dict(TrainConfig, cfg, where=where)


def train_config_dict(tc: TrainConfig) -> dict:
    """`TrainConfig` -> plain dict holding every key (the base config handed to Sacred)."""
    return to_dict(tc)
