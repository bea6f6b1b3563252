"""Read exported TFRecord shards back, and check them (``wsovvis export check``).

The check reads every record (CRC-verified), parses the ``Example`` and verifies what a Scenic or
TFDS reader relies on: the image key of a known profile holding a JPEG whose header size matches
``image/height``/``image/width`` (scenic), one ``objects/label``/``id``/``area``/``is_crowd`` per box,
boxes ``[ymin, xmin, ymax, xmax]`` in [0, 1] with min <= max, labels inside ``label_map.json``.
"""

from __future__ import annotations

import glob
import os
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from wsovvis.errors import WsovvisError
from wsovvis.export import tfrecord
from wsovvis.export.example_proto import Features, decode_example
from wsovvis.export.shards import jpeg_size
from wsovvis.utils.io import read_json

MAX_LISTED = 20


def expand_paths(specs: list[str]) -> list[Path]:
    """Files, globs, or a shard prefix (``DIR/train`` -> ``DIR/train-*-of-*.tfrecord``), sorted and de-duplicated."""
    out: list[Path] = []
    for spec in specs:
        if Path(spec).is_file():
            out.append(Path(spec))
            continue
        hits = sorted(glob.glob(spec)) or sorted(glob.glob(f"{spec}-?????-of-?????.tfrecord"))
        if not hits:
            raise WsovvisError(f"{spec}: no TFRecord file, glob match or shard prefix ({spec}-NNNNN-of-NNNNN.tfrecord)")
        out.extend(Path(h) for h in hits)
    return list(dict.fromkeys(out))


def read_examples(paths: list[str | os.PathLike]) -> Iterator[tuple[Path, int, Features]]:
    """``(file, record index, features)`` of every record of every file, in file order."""
    for path in paths:
        for i, data in enumerate(tfrecord.read_records(path)):
            yield Path(path), i, decode_example(data, where=f"{path}: record {i}")


def _problems_of(feats: Features, num_classes: int | None) -> tuple[str | None, list[str]]:
    profile = "scenic" if "image/encoded" in feats else "tfds" if "image" in feats else None
    problems = []
    if profile is None:
        return None, ["no image key ('image/encoded' for scenic, 'image' for tfds)"]
    image_key = "image/encoded" if profile == "scenic" else "image"
    required = [image_key, "image/filename", "image/id", "objects/bbox", "objects/label", "objects/id",
                "objects/area", "objects/is_crowd"] + (["image/height", "image/width"] if profile == "scenic" else [])
    missing = [k for k in required if k not in feats]
    if missing:
        problems.append(f"missing key(s) {missing}")
    expected_kinds = {image_key: "bytes", "image/filename": "bytes", "objects/bbox": "float"}
    for key, (kind, values) in feats.items():
        want = expected_kinds.get(key, "int64" if key.startswith(("image/", "objects/")) else None)
        if key == "objects/segmentation":
            want = "bytes"
        if want and values and kind != want:
            problems.append(f"{key}: {kind} list, expected {want}")
    if missing:
        return profile, problems
    images = feats[image_key][1]
    if len(images) != 1:
        return profile, problems + [f"{image_key}: {len(images)} values, expected 1"]
    size = jpeg_size(images[0])
    if size is None:
        problems.append(f"{image_key}: not a JPEG")
    elif profile == "scenic" and size != (feats["image/height"][1][0], feats["image/width"][1][0]):
        problems.append(f"JPEG is {size[0]}x{size[1]} but image/height x image/width is "
                        f"{feats['image/height'][1][0]}x{feats['image/width'][1][0]}")
    box = np.asarray(feats["objects/bbox"][1], dtype=np.float64)
    if box.size % 4:
        return profile, problems + [f"objects/bbox has {box.size} values, not a multiple of 4"]
    n = box.size // 4
    for key in ("objects/label", "objects/id", "objects/area", "objects/is_crowd"):
        if len(feats[key][1]) != n:
            problems.append(f"{key} has {len(feats[key][1])} values for {n} boxes")
    if "objects/segmentation" in feats and len(feats["objects/segmentation"][1]) != n:
        problems.append(f"objects/segmentation has {len(feats['objects/segmentation'][1])} masks for {n} boxes")
    box = box.reshape(-1, 4)
    if n and (box.min() < 0 or box.max() > 1 or np.any(box[:, 2] < box[:, 0]) or np.any(box[:, 3] < box[:, 1])):
        problems.append("objects/bbox outside [0, 1] or with min > max (expected ymin, xmin, ymax, xmax)")
    labels = feats["objects/label"][1]
    if num_classes is not None and labels and (min(labels) < 0 or max(labels) >= num_classes):
        problems.append(f"objects/label outside 0..{num_classes - 1} (label_map.json)")
    return profile, problems


def check_tfrecords(paths: list[Path], label_map_path: str | os.PathLike | None = None) -> dict:
    """Read and verify every record; returns ``{ok, files, counts: {records, boxes, empty_images, by_profile},
    problems: [{file, record, image_id, message}]}``. Damaged framing (CRC) stops at that file and is a problem."""
    num_classes = None
    lm_path = Path(label_map_path) if label_map_path else (paths[0].parent / "label_map.json" if paths else None)
    if lm_path is not None and lm_path.is_file():
        num_classes = int(read_json(lm_path, "label map")["num_classes"])
    problems: list[dict] = []
    counts = Counter()
    profiles = Counter()
    seen_ids: dict[int, str] = {}
    for path in paths:
        try:
            for _, i, feats in read_examples([path]):
                counts["records"] += 1
                profile, probs = _problems_of(feats, num_classes)
                profiles[profile or "unknown"] += 1
                image_id = feats.get("image/id", ("int64", [None]))[1][0]
                if image_id is not None:
                    if image_id in seen_ids:
                        probs.append(f"image/id {image_id} also in {seen_ids[image_id]}")
                    seen_ids[image_id] = f"{path.name} record {i}"
                n = len(feats.get("objects/bbox", ("float", []))[1]) // 4
                counts["boxes"] += n
                counts["empty_images"] += n == 0
                problems += [{"file": str(path), "record": i, "image_id": image_id, "message": m} for m in probs]
        except WsovvisError as e:
            problems.append({"file": str(path), "record": None, "image_id": None, "message": str(e)})
    return {"ok": not problems, "files": [str(p) for p in paths], "label_map": str(lm_path) if num_classes else None,
            "counts": {**dict(counts), "by_profile": dict(profiles)}, "problems": problems}
