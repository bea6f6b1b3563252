"""TFDS metadata beside ``tfds``-profile shards, so that TFDS (and Scenic, which loads through it) opens them.

Writes what a TFDS builder leaves in its version folder: ``dataset_info.json`` (name, version, one entry
per split with its shard lengths and ``filepathTemplate: "{SPLIT}-{SHARD_X_OF_Y}.{FILEFORMAT}"`` = our
``train-00000-of-00004.tfrecord`` names), ``features.json`` (the TFDS COCO features: ``image`` JPEG,
``image/filename``, ``image/id``, ``objects`` = Sequence of ``id``, ``area``, ``bbox`` (REL_YXYX),
``label`` (ClassLabel), ``is_crowd`` (bool)) and ``objects-label.labels.txt`` (the class names).
With the shards in ``<data_dir>/<name>/<version>/``, ``tfds.builder(name, data_dir=data_dir)`` loads
them; ``tfds.builder_from_directory(folder)`` works wherever they are. Exporting another split into the
same folder adds its entry and keeps the others.
"""

from __future__ import annotations

import re
from pathlib import Path

from wsovvis.errors import WsovvisError
from wsovvis.utils.io import atomic_write_json, atomic_write_text, read_json

FILEPATH_TEMPLATE = "{SPLIT}-{SHARD_X_OF_Y}.{FILEFORMAT}"
LABELS_FILE = "objects-label.labels.txt"
_TENSOR = "tensorflow_datasets.core.features.tensor_feature.Tensor"


def _scalar(dtype: str) -> dict:
    return {"pythonClassName": _TENSOR, "tensor": {"dtype": dtype, "encoding": "none", "shape": {}}}


def features_json(num_classes: int) -> dict:
    """The TFDS COCO FeaturesDict, serialized as TFDS 4.9 writes ``features.json``."""
    objects = {
        "area": _scalar("int64"),
        "bbox": {"boundingBox": {"bboxFormat": "REL_YXYX", "dtype": "float32", "shape": {"dimensions": ["4"]}},
                 "pythonClassName": "tensorflow_datasets.core.features.bounding_boxes.BBoxFeature"},
        "id": _scalar("int64"),
        "is_crowd": _scalar("bool"),
        "label": {"classLabel": {"numClasses": str(num_classes)},
                  "pythonClassName": "tensorflow_datasets.core.features.class_label_feature.ClassLabel"},
    }
    return {"featuresDict": {"features": {
        "image": {"image": {"dtype": "uint8", "encodingFormat": "jpeg", "shape": {"dimensions": ["-1", "-1", "3"]}},
                  "pythonClassName": "tensorflow_datasets.core.features.image_feature.Image"},
        "image/filename": {"pythonClassName": "tensorflow_datasets.core.features.text_feature.Text", "text": {}},
        "image/id": _scalar("int64"),
        "objects": {"pythonClassName": "tensorflow_datasets.core.features.sequence_feature.Sequence",
                    "sequence": {"feature": {"featuresDict": {"features": objects},
                                             "pythonClassName": "tensorflow_datasets.core.features.features_dict."
                                                                "FeaturesDict"},
                                 "length": "-1"}},
    }}, "pythonClassName": "tensorflow_datasets.core.features.features_dict.FeaturesDict"}


def default_name_and_version(out_dir: Path) -> tuple[str, str]:
    """``<data_dir>/<name>/<x.y.z>/`` -> (name, x.y.z); any other folder -> (its name, 1.0.0)."""
    if re.fullmatch(r"\d+\.\d+\.\d+", out_dir.name) and out_dir.parent.name:
        return out_dir.parent.name, out_dir.name
    return out_dir.name, "1.0.0"


def check_split_name(split: str) -> None:
    if not re.fullmatch(r"[A-Za-z0-9_]+", split):
        raise WsovvisError(f"{split!r}: a TFDS split name may hold only letters, digits and '_' "
                           "(name the --out prefix like 'train' or 'validation')")


def write_tfds_metadata(out_dir: Path, split: str, shard_paths: list[Path], shard_lengths: list[int],
                        names: list[str], *, name: str | None = None, version: str | None = None,
                        overwrite: bool = False) -> Path:
    """Add (or replace) ``split`` in the folder's TFDS metadata; returns the ``dataset_info.json`` path.

    Raises `WsovvisError` when the folder's existing class names differ (every split of one TFDS dataset
    shares its ClassLabel) unless ``overwrite``.
    """
    check_split_name(split)
    bad = [n for n in names if "\n" in n or not n]
    if bad:
        raise WsovvisError(f"category names {bad[:3]!r}: TFDS class names must be non-empty single lines")
    d_name, d_version = default_name_and_version(out_dir)
    name, version = name or d_name, version or d_version
    info_path, labels_path = out_dir / "dataset_info.json", out_dir / LABELS_FILE
    splits: list[dict] = []
    if info_path.is_file() and labels_path.is_file():
        old_names = labels_path.read_text(encoding="utf-8").splitlines()
        if old_names != names and not overwrite:
            raise WsovvisError(f"{labels_path}: the folder's TFDS class names ({len(old_names)}) differ from this "
                               f"export's ({len(names)}); export every split with the same categories, or pass "
                               "--overwrite to start the folder's metadata anew")
        if old_names == names:
            old = read_json(info_path, "TFDS dataset_info.json")
            splits = [s for s in old.get("splits", []) if isinstance(s, dict) and s.get("name") != split]
    splits.append({"filepathTemplate": FILEPATH_TEMPLATE, "name": split,
                   "numBytes": str(sum(p.stat().st_size for p in shard_paths)),
                   "shardLengths": [str(n) for n in shard_lengths]})
    info = {"description": "COCO-style detection data exported by `wsovvis export tfrecord --profile tfds`",
            "fileFormat": "tfrecord", "name": name, "splits": sorted(splits, key=lambda s: s["name"]),
            "version": version}
    atomic_write_text(labels_path, "".join(f"{n}\n" for n in names))
    atomic_write_json(out_dir / "features.json", features_json(len(names)), indent=2)
    atomic_write_json(info_path, info, indent=2)
    return info_path
