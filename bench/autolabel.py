"""Benchmark: text-prompted auto-labelling throughput with random-weight models of the released sizes.

Models are built from configs in memory (no weights, nothing downloaded) at the sizes of the public
checkpoints: OWLv2 base/16 (``google/owlv2-base-patch16-ensemble``: ViT-B/16 at 960 px, CLIP text
encoder) and SAM2.1 Hiera (``--sam2 tiny``: the transformers default config = SAM2.1-hiera-tiny;
``base_plus``: SAM2.1-hiera-base-plus's backbone sizes), image and video variants. Random weights
detect arbitrary boxes; the cost of a forward pass does not depend on the weights, so the
detector and the segmenter are timed apart on a fixed number of boxes per image.

* images: ``--images`` random images of ``--hw``; detector (all ``--prompts`` in one forward) and
  segmenter (``--boxes`` boxes per image) timed separately -> images/s of each and of both together.
* large vocabulary: ``--vocab_prompts`` prompts (LV-VIS size by default), the detector with its text
  queries embedded once (what `Owlv2Detector` does) against the model's forward re-encoding them
  for every image, side by side -> the speed-up.
* video: ``--frames`` frames; the ``owlv2_sam2`` engine's two parts: detection on key frames (every
  ``--key_every``) and SAM2 video tracking of ``--boxes`` objects over every frame -> frames/s.

Runs on CPU, and on CUDA (float16) too when a GPU is available (``--devices`` to choose). Prints one
JSON line per measurement and a table; the first call of each part is a warm-up and not timed.

    .venv/bin/python bench/autolabel.py                          # defaults: 4 images, 16 frames
    .venv/bin/python bench/autolabel.py --images 2 --frames 6    # quick look
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
os.environ.setdefault("HF_HUB_OFFLINE", "1")

import torch  # noqa: E402

from wsovvis.autolabel.models import Owlv2Detector, Sam2Segmenter, Sam2VideoTracker, device_and_dtype  # noqa: E402

PROMPTS = ["person", "dog", "cat", "car", "bicycle", "bird", "horse", "boat", "a red ball", "a wooden chair"]


def _tokenizer(tmp: Path):
    from transformers import CLIPTokenizer

    chars = "abcdefghijklmnopqrstuvwxyz"
    vocab = {c: i for i, c in enumerate(chars)}
    vocab.update({c + "</w>": len(chars) + i for i, c in enumerate(chars)})
    vocab.update({"<|startoftext|>": len(vocab), "<|endoftext|>": len(vocab) + 1})
    (tmp / "vocab.json").write_text(json.dumps(vocab))
    (tmp / "merges.txt").write_text("#version: 0.2\n")
    return CLIPTokenizer(vocab=str(tmp / "vocab.json"), merges=str(tmp / "merges.txt"))


def owlv2_base(tmp: Path, device: str, dtype):
    from transformers import Owlv2Config, Owlv2ForObjectDetection, Owlv2ImageProcessor, Owlv2Processor

    cfg = Owlv2Config(vision_config={"image_size": 960, "patch_size": 16}, text_config={"max_position_embeddings": 16})
    model = Owlv2ForObjectDetection(cfg).eval().to(device, dtype)
    proc = Owlv2Processor(image_processor=Owlv2ImageProcessor(size={"height": 960, "width": 960}),
                          tokenizer=_tokenizer(tmp))
    return Owlv2Detector(model, proc, device, dtype)


def _hiera(size: str):
    from transformers import Sam2HieraDetConfig, Sam2VisionConfig

    if size == "tiny":
        return None  # the transformers defaults are SAM2.1-hiera-tiny
    hiera = Sam2HieraDetConfig(hidden_size=112, num_attention_heads=2, blocks_per_stage=[2, 3, 16, 3],
                               embed_dim_per_stage=[112, 224, 448, 896], num_attention_heads_per_stage=[2, 4, 8, 16],
                               global_attention_blocks=[12, 16, 20],
                               window_positional_embedding_background_size=[14, 14])
    return Sam2VisionConfig(backbone_config=hiera, backbone_channel_list=[896, 448, 224, 112])


def sam2(size: str, device: str, dtype):
    from transformers import Sam2Config, Sam2ImageProcessor, Sam2Model, Sam2Processor

    vision = _hiera(size)
    cfg = Sam2Config(vision_config=vision) if vision is not None else Sam2Config()
    model = Sam2Model(cfg).eval().to(device, dtype)
    return Sam2Segmenter(model, Sam2Processor(image_processor=Sam2ImageProcessor()), device, dtype)


def sam2_video(size: str, device: str, dtype):
    from transformers import (
        Sam2ImageProcessor,
        Sam2VideoConfig,
        Sam2VideoModel,
        Sam2VideoProcessor,
        Sam2VideoVideoProcessor,
    )

    vision = _hiera(size)
    cfg = Sam2VideoConfig(vision_config=vision) if vision is not None else Sam2VideoConfig()
    model = Sam2VideoModel(cfg).eval().to(device, dtype)
    proc = Sam2VideoProcessor(image_processor=Sam2ImageProcessor(), video_processor=Sam2VideoVideoProcessor())
    return Sam2VideoTracker(model, proc, device, dtype)


def _sync(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def _boxes(rng, n: int, h: int, w: int) -> np.ndarray:
    x1 = rng.uniform(0, w * 0.7, n)
    y1 = rng.uniform(0, h * 0.7, n)
    return np.stack([x1, y1, x1 + rng.uniform(20, w * 0.3, n), y1 + rng.uniform(20, h * 0.3, n)], 1).astype(np.float32)


def bench_device(device: str, args, rows: list[dict]) -> None:
    dev, dtype = device_and_dtype(device)
    rng = np.random.default_rng(0)
    h, w = args.hw
    with tempfile.TemporaryDirectory() as tmp:
        det = owlv2_base(Path(tmp), dev, dtype)
    seg = sam2(args.sam2, dev, dtype)
    images = [rng.integers(0, 255, (h, w, 3), dtype=np.uint8) for _ in range(args.images + 1)]
    boxes = _boxes(rng, args.boxes, h, w)
    det.detect(images[0], PROMPTS)
    seg.segment(images[0], boxes)  # warm-up
    t_det = t_seg = 0.0
    for im in images[1:]:
        _sync(dev)
        t0 = time.perf_counter()
        det.detect(im, PROMPTS)
        _sync(dev)
        t1 = time.perf_counter()
        seg.segment(im, boxes)
        _sync(dev)
        t_det += t1 - t0
        t_seg += time.perf_counter() - t1
    n = args.images
    base = {"device": dev, "dtype": str(dtype).replace("torch.", ""), "hw": [h, w], "sam2": args.sam2}
    rows.append(dict(base, part="images: OWLv2 detect", n=n, seconds=round(t_det, 3), per_s=round(n / t_det, 3),
                     prompts=len(PROMPTS)))
    rows.append(dict(base, part="images: SAM2 segment", n=n, seconds=round(t_seg, 3), per_s=round(n / t_seg, 3),
                     boxes=args.boxes))
    rows.append(dict(base, part="images: both", n=n, seconds=round(t_det + t_seg, 3),
                     per_s=round(n / (t_det + t_seg), 3)))
    del seg
    if args.vocab_prompts:
        # a large vocabulary (LV-VIS: 1,196 classes): text queries embedded once vs by the model's forward per image
        many = [f"{PROMPTS[i % len(PROMPTS)]} {i}" for i in range(args.vocab_prompts)]
        times = {}
        for cached in (True, False):
            det.cache_text = cached
            det.detect(images[0], many)  # warm-up (and the one-off text embedding when cached)
            _sync(dev)
            t0 = time.perf_counter()
            for im in images[1:]:
                det.detect(im, many)
            _sync(dev)
            times[cached] = time.perf_counter() - t0
        det.cache_text = True
        for cached in (True, False):
            how = "cached" if cached else "per image"
            rows.append(dict(base, part=f"images: OWLv2 {len(many)} prompts, text {how}", n=n,
                             seconds=round(times[cached], 3), per_s=round(n / times[cached], 3),
                             speedup_of_cache=round(times[False] / times[True], 2)))
    trk = sam2_video(args.sam2, dev, dtype)
    frames = rng.integers(0, 255, (args.frames, h, w, 3), dtype=np.uint8)
    prompts = dict(enumerate(_boxes(rng, args.boxes, h, w), 1))
    trk.propagate(frames[:2], prompts)  # warm-up
    keys = range(0, args.frames, args.key_every)
    _sync(dev)
    t0 = time.perf_counter()
    for k in keys:
        det.detect(frames[k], PROMPTS)
    _sync(dev)
    t1 = time.perf_counter()
    trk.propagate(frames, prompts)
    _sync(dev)
    t2 = time.perf_counter()
    f = args.frames
    rows.append(dict(base, part=f"video: OWLv2 on {len(keys)} key frames", n=f, seconds=round(t1 - t0, 3),
                     per_s=round(f / (t1 - t0), 3)))
    rows.append(dict(base, part=f"video: SAM2 tracking {args.boxes} objects", n=f, seconds=round(t2 - t1, 3),
                     per_s=round(f / (t2 - t1), 3)))
    rows.append(dict(base, part="video: both", n=f, seconds=round(t2 - t0, 3), per_s=round(f / (t2 - t0), 3)))


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--images", type=int, default=4)
    p.add_argument("--frames", type=int, default=16)
    p.add_argument("--key_every", type=int, default=5)
    p.add_argument("--boxes", type=int, default=8, help="boxes per image / objects tracked (8)")
    p.add_argument("--hw", type=int, nargs=2, default=(480, 640), metavar=("H", "W"))
    p.add_argument("--sam2", choices=("tiny", "base_plus"), default="tiny")
    p.add_argument("--vocab_prompts", type=int, default=1196,
                   help="also time detection with this many prompts, text cached vs per image (0 = skip)")
    p.add_argument("--devices", default="auto", help="comma list (cpu,cuda); auto = cpu plus cuda when available")
    p.add_argument("--threads", type=int, default=0, help="torch CPU threads (0 = torch default)")
    args = p.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    devices = args.devices.split(",") if args.devices != "auto" else (
        ["cpu"] + (["cuda"] if torch.cuda.is_available() else []))
    rows: list[dict] = []
    for d in devices:
        bench_device(d, args, rows)
    print(f"torch {torch.__version__}, CPU threads {torch.get_num_threads()}"
          + (f", GPU {torch.cuda.get_device_name(0)}" if torch.cuda.is_available() else ", no GPU"))
    for r in rows:
        print(json.dumps(r))
    print(f"\n{'device':<8} {'part':<52} {'n':>4} {'seconds':>9} {'per s':>9}")
    for r in rows:
        print(f"{r['device']:<8} {r['part']:<52} {r['n']:>4} {r['seconds']:>9.3f} {r['per_s']:>9.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
