"""wsovvis pseudo: per-frame instance-id PNGs (pseudo tubes) from raw videos, sharded and resumable.

Examples::

    wsovvis pseudo --img_root data/LV-VIS/train/JPEGImages --out outputs/pseudo/train
    wsovvis pseudo --img_root ... --out ... --arch dino_vitb8 --weights dino_vitbase8_pretrain.pth
    wsovvis pseudo --img_root ... --out ... --engine videocutler --weights videocutler_m2f_rn50.pth --conf 0.6
    wsovvis pseudo --img_root ... --out ... --workers 4 --gpus 0,1,2,3      # one process per GPU

``--workers k`` splits this shard over k processes (shard i of n becomes shards i + r*n of n*k,
so the union is unchanged); their logs go to ``<out>/logs/``.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from pathlib import Path

# Parallelism comes from --workers processes; multi-threaded BLAS on the small products of the
# eigensolver is many times slower on a busy machine (thread hand-off dominates). Must be set
# before numpy loads; an explicit setting in the environment wins.
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
os.environ.setdefault("MKL_NUM_THREADS", "1")

from tqdm import tqdm  # noqa: E402

from wsovvis.errors import WsovvisError  # noqa: E402
from wsovvis.pseudo.launcher import LAUNCHER_KEYS  # noqa: E402
from wsovvis.pseudo.runner import check_provenance, run_shard, shard, summarize  # noqa: E402
from wsovvis.utils.logging import get_logger  # noqa: E402
from wsovvis.utils.workers import child_preexec, stop_processes  # noqa: E402

log = get_logger(__name__)
PARENT_ENV = "WSOVVIS_PSEUDO_PARENT_PID"

ARCH_CHOICES = ("auto", "classic", "dino_vits8", "dino_vitb8", "dino_vits16", "dino_vitb16", "dinov2_vits14",
                "dinov2_vitb14", "dinov2_vitl14", "dinov2_vitb14_reg4")


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--img_root", required=True, help="folder of <video>/ folders of frames")
    p.add_argument("--out", required=True, help="output folder: masks/, manifest/ (and logs/ with --workers > 1)")
    p.add_argument("--engine", default="maskcut", choices=("maskcut", "videocutler", "owlv2_sam2"))
    p.add_argument("--arch", default="auto", choices=ARCH_CHOICES,
                   help="maskcut features: auto = classic (weight-free) without --weights, dino_vitb8 with")
    p.add_argument("--weights", help="local checkpoint: a DINO/DINOv2 .pth (maskcut) or videocutler_m2f_rn50.pth")
    p.add_argument("--tau", type=float, help="maskcut affinity threshold (default: 0.15 DINO, 0.2 DINOv2, 0.4 "
                   "classic; 0.5 keeps touching objects apart)")
    p.add_argument("--num_cuts", type=int, help="maskcut cuts per frame (default 3 ViT, 4 classic)")
    p.add_argument("--preset", default="default", choices=("default", "maskcut_paper"),
                   help="maskcut settings: default = the tuned pipeline; maskcut_paper = the published MaskCut "
                        "per frame (480² squares, DINO ViT-B/8 keys, tau 0.15, N 3, CRF; needs --weights)")
    p.add_argument("--refine", default="guided", choices=("none", "guided", "crf"),
                   help="pixel refinement of patch masks (crf needs pydensecrf2; else guided is used)")
    p.add_argument("--short_side", type=int, help="working short side in px (default 480)")
    p.add_argument("--min_len", type=int, default=3, help="drop tubes shorter than this many frames")
    p.add_argument("--no_flow_check", action="store_true",
                   help="weight-free features: count all optical flow as motion, not only flow that passes the "
                        "forward-backward check (for tiny frames with fast motion, where the flow itself fails it)")
    p.add_argument("--conf", type=float, default=0.8, help="videocutler confidence threshold")
    p.add_argument("--clip_len", type=int, default=64, help="videocutler frames per window")
    p.add_argument("--overlap", type=int, default=8, help="videocutler frames shared by consecutive windows")
    p.add_argument("--cutler_root", default="third_party/CutLER", help="CutLER checkout (videocutler engine)")
    p.add_argument("--device", help="torch device (default: cuda if available)")
    g = p.add_argument_group("owlv2_sam2 engine (text-prompted tubes with categories)")
    from wsovvis.autolabel.cli import add_model_arguments

    add_model_arguments(g)
    g.add_argument("--key_every", type=int, default=5, help="detect on every k-th frame (and the first) (5)")
    p.add_argument("--shard_index", type=int, default=0)
    p.add_argument("--num_shards", type=int, default=1)
    p.add_argument("--workers", type=int, default=1, help="processes for this shard (default 1)")
    p.add_argument("--gpus", help="comma-separated GPU ids, one per worker (sets CUDA_VISIBLE_DEVICES)")
    p.add_argument("--no_progress", action="store_true")
    from wsovvis.pseudo.launcher import add_launcher_arguments

    add_launcher_arguments(p)
    p.add_argument("--overwrite", action="store_true",
                   help="--out holds tubes made with other parameters: delete them and start again")
    p.add_argument("--trust_pickle", action="store_true",
                   help="load --weights with full unpickling (legacy files holding Python objects); this runs "
                        "any code the file contains, so only for files from a source you trust")


# options that change how a run executes but not the tubes it makes (not part of the provenance record)
EXECUTION_ONLY = {"shard_index", "num_shards", "workers", "gpus", "no_progress", "verbose", "device", "overwrite",
                  "trust_pickle", "cutler_root", "out", "command"}
EXECUTION_ONLY |= set(LAUNCHER_KEYS)  # where the shards run (--launcher, --slurm_*) never changes the tubes


def provenance_params(args: argparse.Namespace) -> dict:
    """The parameters recorded in ``<out>/params.json``: every option that can change the tubes."""
    params = {k: v for k, v in sorted(vars(args).items()) if k not in EXECUTION_ONLY and not callable(v)}
    for k in ("img_root", "weights"):
        if params.get(k):
            params[k] = os.path.abspath(params[k])
    # The built-in engine's code defaults change its tubes too (an upgrade may move them).
    if params.get("engine", "maskcut") == "maskcut":
        from wsovvis.pseudo.engines import resolved_defaults

        params.update(resolved_defaults())
    return params


def _child_argv(args: argparse.Namespace, index: int, num: int) -> list[str]:
    argv = [sys.executable, "-m", "wsovvis", "pseudo", "--shard_index", str(index), "--num_shards", str(num),
            "--workers", "1", "--no_progress"]
    # --overwrite is the parent's decision (made before the workers start): a worker must not delete
    # the outputs of the others
    skip = {"shard_index", "num_shards", "workers", "gpus", "no_progress", "verbose", "overwrite"}
    for k, v in vars(args).items():
        if k in skip or v is None:
            continue
        if isinstance(v, bool):  # store_true flags
            if v:
                argv.append(f"--{k}")
            continue
        if isinstance(v, list):  # repeatable flags (--class_threshold)
            for x in v:
                argv += [f"--{k}", str(x)]
            continue
        argv += [f"--{k}", str(v)]
    return argv


def _run_workers(args: argparse.Namespace) -> int:
    """Spawn ``args.workers`` processes over sub-shards and follow them through the manifests."""
    from wsovvis.pseudo.frames import list_videos

    k, n, i = args.workers, args.num_shards, args.shard_index
    gpus = [g.strip() for g in args.gpus.split(",")] if args.gpus else []
    if gpus and len(gpus) < k:
        raise WsovvisError(f"--gpus lists {len(gpus)} device(s) for --workers {k}; give one per worker")
    mine = shard(list_videos(args.img_root), i, n)
    logs = Path(args.out) / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    procs = []
    for r in range(k):
        env = dict(os.environ)
        # Children import the same wsovvis as this process, installed or not.
        pkg_parent = str(Path(__file__).resolve().parents[2])
        env["PYTHONPATH"] = os.pathsep.join(x for x in (pkg_parent, env.get("PYTHONPATH")) if x)
        if gpus:
            env["CUDA_VISIBLE_DEVICES"] = gpus[r]
        env[PARENT_ENV] = str(os.getpid())  # the worker dies with this process (see main)
        sub = i + r * n
        log_file = open(logs / f"shard_{sub:03d}_of_{n * k:03d}.log", "a")  # noqa: SIM115 - closed below
        procs.append((subprocess.Popen(_child_argv(args, sub, n * k), env=env, stdout=log_file,
                                       stderr=subprocess.STDOUT), log_file))
        log.info("worker %d: shard %d of %d%s, log %s", r, sub, n * k, f", GPU {gpus[r]}" if gpus else "",
                 log_file.name)
    bar = tqdm(total=len(mine), desc="pseudo", unit="video", disable=args.no_progress)
    try:
        while any(p.poll() is None for p, _ in procs):
            time.sleep(2.0)
            s = summarize(Path(args.out), mine)
            bar.n = len(s.done) + len(s.failed)
            bar.set_postfix(failed=len(s.failed))
            bar.refresh()
    finally:
        # Ctrl-C / SIGTERM / an error here: stop the workers, bounded (SIGTERM, wait, SIGKILL)
        stop_processes([p for p, _ in procs])
        for _, f in procs:
            f.close()
        bar.close()
    s = summarize(Path(args.out), mine)
    crashed = [r for r, (p, _) in enumerate(procs) if p.returncode != 0 and p.returncode != 1]
    log.info("all workers: %s", s.line())
    if crashed:
        log.error("worker(s) %s exited abnormally; see %s", crashed, logs)
        return 3
    return 1 if s.failed else 0


def main(args: argparse.Namespace) -> int:
    if os.environ.get(PARENT_ENV):  # a worker of `_run_workers`: never outlive the parent
        child_preexec(int(os.environ.pop(PARENT_ENV)))
    if args.workers < 1:
        raise WsovvisError(f"--workers must be >= 1, got {args.workers}")
    if not Path(args.img_root).is_dir():
        raise WsovvisError(f"{args.img_root}: --img_root is not a folder")
    check_provenance(args.out, provenance_params(args), overwrite=args.overwrite)
    if args.launcher == "slurm":
        from wsovvis.pseudo.launcher import launch_pseudo

        return launch_pseudo(args)
    if args.workers > 1:
        return _run_workers(args)
    from wsovvis.pseudo.engines import build_engine

    engine = build_engine(args)
    s = run_shard(engine, args.img_root, args.out, args.shard_index, args.num_shards, progress=not args.no_progress)
    print(f"pseudo: {s.line()}")
    if s.failed:
        print(f"pseudo: failed videos (details in {Path(args.out) / 'manifest'}): {', '.join(s.failed)}")
    return 1 if s.failed else 0
