"""CLIP/SigLIP embedding cache of video tubes or image segments (``wsovvis embed``).

    wsovvis embed --tubes pseudo.json --img_root JPEGImages --out emb/ --weights siglip.bin
    wsovvis embed --results results.json --videos val.json --img_root JPEGImages --out emb/ ...
    wsovvis embed --panoptic panoptic_val.json --panoptic_root panoptic_val/ --img_root val2017 --out emb/ ...
    wsovvis embed --coco instances_val.json --img_root val2017 --out emb/ ...

Writes one fp16 ``<a>_<b>.npy [D]`` per instance and ``inst2feat.tsv``; re-running the same command
skips finished instances (and repairs an index torn by a crash).
"""

from __future__ import annotations

import argparse

from wsovvis.openvocab.cache import recorded_weights_file
from wsovvis.openvocab.embed import CropSettings, embed_source
from wsovvis.openvocab.embedder import DEFAULT_SPEC, Embedder, build_embedder


def add_model_arguments(parser: argparse.ArgumentParser, recorded_default: bool = False) -> None:
    """``recorded_default``: ``--model`` defaults to the model recorded in an existing cache (then DEFAULT_SPEC)."""
    g = parser.add_argument_group("model")
    g.add_argument("--model", default=None if recorded_default else DEFAULT_SPEC,
                   help="model spec '<scheme>:<name>': openclip:<open_clip config> or colorhist:[bins] (default "
                        + ("the model that made the embedding cache, else " if recorded_default else "")
                        + f"{DEFAULT_SPEC})")
    g.add_argument("--weights", default=None, help="local weights file of the model (nothing is downloaded)")
    g.add_argument("--pretrained_tag", default=None,
                   help="which published weights --weights holds (e.g. webli, openai, dfn2b): sets the matching "
                        "preprocessing; needed only when the model's tags disagree")
    g.add_argument("--random_init", action="store_true",
                   help="use seeded random weights instead of --weights (tests and benchmarks only)")
    g.add_argument("--tokenizer", default=None,
                   help="local HuggingFace tokenizer directory (SigLIP models; only the text path needs it)")
    g.add_argument("--device", default="auto", help="auto (CUDA when available), cpu, cuda, cuda:1, ...")
    g.add_argument("--no_amp", action="store_true", help="disable fp16 autocast on CUDA")
    g.add_argument("--trust_pickle", action="store_true",
                   help="load --weights with full unpickling (legacy files holding Python objects); this runs any "
                        "code the file contains, so only for files from a source you trust")


def add_crop_arguments(parser: argparse.ArgumentParser) -> None:
    """Crop settings and the run options (batch, workers, overwrite, progress) of an embedding job."""
    g = parser.add_argument_group("crops")
    g.add_argument("--pad_ratio", type=float, default=0.1, help="context around the mask box, per side (0.1)")
    g.add_argument("--bg_alpha", type=float, default=0.3,
                   help="share of the background kept outside the mask; the rest is the model's mean colour (0.3)")
    g.add_argument("--topk_frames", type=int, default=0,
                   help="embed only the k largest-area frames of each tube (0 = all frames)")
    g = parser.add_argument_group("run")
    g.add_argument("--batch_size", type=int, default=32, help="crops per encoder batch (32)")
    g.add_argument("--num_workers", type=int, default=2, help="frame reading/cropping worker processes (2)")
    g.add_argument("--overwrite", action="store_true",
                   help="remove the cache's embeddings first (needed when model or crop settings changed)")
    g.add_argument("--no_progress", action="store_true", help="no progress bar")


def build_from_args(args: argparse.Namespace, known_fingerprint: dict | None = None) -> Embedder:
    return build_embedder(
        args.model,
        weights=args.weights,
        device=args.device,
        tokenizer=args.tokenizer,
        random_init=args.random_init,
        amp=False if args.no_amp else None,
        pretrained_tag=args.pretrained_tag,
        known_fingerprint=known_fingerprint,
        trust_pickle=args.trust_pickle,
    )


def crop_settings(args: argparse.Namespace) -> CropSettings:
    return CropSettings(pad_ratio=args.pad_ratio, bg_alpha=args.bg_alpha, topk_frames=args.topk_frames)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    src = parser.add_mutually_exclusive_group(required=True)
    src.add_argument("--tubes", help="YouTube-VIS JSON with annotations (pseudo tubes or GT)")
    src.add_argument("--results", help="YouTube-VIS results list (predicted tubes); needs --videos")
    src.add_argument("--panoptic", help="COCO panoptic JSON; needs --panoptic_root")
    src.add_argument("--coco", help="COCO instances JSON (polygon or RLE segmentations)")
    parser.add_argument("--img_root", required=True, help="frames (<img_root>/<file_name>) or images folder")
    parser.add_argument("--videos", help="YouTube-VIS JSON whose videos/file_names the --results refer to")
    parser.add_argument("--panoptic_root", help="folder of the panoptic id PNGs (R + 256 G + 256^2 B)")
    parser.add_argument("--out", required=True, help="cache directory (created; re-runs resume)")
    add_model_arguments(parser)
    add_crop_arguments(parser)
    from wsovvis.pseudo.launcher import add_launcher_arguments

    add_launcher_arguments(parser)


def slurm_task(argdict: dict) -> int:
    """The ``--launcher slurm`` job: this command, run on the node (the cache resumes)."""
    from wsovvis.utils.logging import setup_logging

    setup_logging()
    return main(argparse.Namespace(**dict(argdict, launcher="local")))


def _submit(args: argparse.Namespace) -> int:
    """One SLURM task (the cache index takes one writer at a time, so the work is not split)."""
    from pathlib import Path

    from wsovvis.pseudo.launcher import submit, task_args, wait

    folder = args.slurm_folder or Path(args.out) / "slurm"
    (job,) = submit(slurm_task, [(task_args(args),)], args, folder, "wsovvis-embed")
    print(f"embed: submitted job {job.job_id}; logs in {folder}")
    if not args.slurm_wait:
        return 0
    results, errors = wait([job])
    for e in errors:
        print(f"embed: {e}")
    return 3 if errors else int(results[0] or 0)


def main(args: argparse.Namespace) -> int:
    if getattr(args, "launcher", "local") == "slurm":
        return _submit(args)
    source = next(s for s in ("tubes", "results", "panoptic", "coco") if getattr(args, s))
    embedder = build_from_args(args, recorded_weights_file(args.out))
    embed_source(
        source,
        getattr(args, source),
        args.out,
        embedder,
        img_root=args.img_root,
        videos=args.videos,
        panoptic_root=args.panoptic_root,
        settings=crop_settings(args),
        batch_size=args.batch_size,
        num_workers=args.num_workers,
        overwrite=args.overwrite,
        progress=not args.no_progress,
    )
    return 0
