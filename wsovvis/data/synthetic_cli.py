"""Generate seeded synthetic sample videos: JPEG frames, GT id PNGs and a YouTube-VIS GT JSON."""

from __future__ import annotations

import argparse

from wsovvis.data.synthetic import SHAPES, generate_dataset


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--out", required=True, help="output folder (JPEGImages/, Annotations/, gt.json)")
    p.add_argument("--num_videos", type=int, default=4)
    p.add_argument("--num_frames", type=int, default=8)
    p.add_argument("--height", type=int, default=96)
    p.add_argument("--width", type=int, default=128)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--num_categories", type=int, default=5, help=f"first K of: {', '.join(SHAPES)}")
    p.add_argument("--min_objects", type=int, default=2)
    p.add_argument("--max_objects", type=int, default=4)
    p.add_argument("--no_progress", action="store_true", help="no progress bar")


def main(args: argparse.Namespace) -> int:
    ds = generate_dataset(
        args.out,
        num_videos=args.num_videos,
        num_frames=args.num_frames,
        height=args.height,
        width=args.width,
        seed=args.seed,
        num_categories=args.num_categories,
        min_objects=args.min_objects,
        max_objects=args.max_objects,
        progress=not args.no_progress,
    )
    print(f"wrote {len(ds.video_names)} videos, {ds.num_tracks} tracks: {ds.gt_json}")
    return 0
