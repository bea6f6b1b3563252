"""The README written beside exported TFRecord shards: what the files hold, how to read them, which class names."""

from __future__ import annotations

from pathlib import Path

from wsovvis.export.tfds_meta import LABELS_FILE

_DESC_EXTRA = {"scenic": ["image/height", "image/width"], "tfds": []}


def readme_snippet(prefix: Path, num_shards: int, profile: str, lm: dict,
                   tfds_dataset: tuple[str, str] | None = None) -> str:
    """Markdown text for ``README.md``; ``lm`` is the label map (`wsovvis.export.shards.label_map`);
    ``tfds_dataset``: (name, version) of the TFDS metadata written beside tfds-profile shards."""
    pattern = f"{prefix.name}-*-of-{num_shards:05d}.tfrecord"
    names = lm["names"]
    shown = ", ".join(repr(n) for n in names[:30]) + (f", ... ({len(names) - 30} more)" if len(names) > 30 else "")
    image_key = "image/encoded" if profile == "scenic" else "image"
    extra = "".join(f'\n    "{k}": tf.io.FixedLenFeature([], tf.int64),' for k in _DESC_EXTRA[profile])
    mapped = "" if lm["contiguous_ids"] else " (the ids were not contiguous; `label_map.json` maps them)"
    if tfds_dataset:
        name, version = tfds_dataset
        data_dir = prefix.parent.parent.parent if prefix.parent.name == version else "<data_dir>"
        steps = f"""This folder is also a TFDS dataset (`dataset_info.json`, `features.json`, `{LABELS_FILE}`:
the TFDS COCO features, ClassLabel names below, one entry per exported split), so TFDS opens it as is:
`tfds.builder_from_directory("{prefix.parent}")`, or, with the folder at `<data_dir>/{name}/{version}/`,
`tfds.builder("{name}", data_dir="{data_dir}")` (pick a name that is not in the TFDS catalog). For Scenic:

1. register `DecodeCocoExample` in `DECODERS` under `'{name}:{version}'` (its `'lvis:1.2.0'` entry is the model);
2. set `config.dataset_configs.train.tfds_names = ['{name}']`, `splits = ['{prefix.name}']` (and `data_dir`
   where your setup passes it to `tfds.builder`)."""
    else:
        steps = """1. make them a TFDS dataset (or export with `--profile tfds`, which writes the TFDS metadata and the
   serialized keys of TFDS COCO);
2. register `DecodeCocoExample` for it in `DECODERS` (Scenic's README suggests starting from it);
3. set `config.dataset_configs.train.tfds_names = ['<name>']` and `splits = ['train']`."""
    return f"""# TFRecords written by `wsovvis export tfrecord` (profile: {profile})

Files: `{pattern}`: {num_shards} shard(s); image k (in sorted image id order) is in shard k mod {num_shards}.
Each record is a `tf.train.Example`:

- `{image_key}`: the JPEG bytes (JPEG files copied as they are, other formats re-encoded as JPEG)
- `image/filename` (bytes), `image/id` (int64){", `image/height`, `image/width` (int64)" if profile == "scenic" else ""}
- `objects/bbox` (float): `[ymin, xmin, ymax, xmax]` per object, normalised by the image size, clipped to [0, 1]
- `objects/label` (int64): 0-based index over the categories sorted by id = position in `label_map.json` `names`
- `objects/id`, `objects/is_crowd` (int64), `objects/area` (int64: {"box w*h" if profile == "scenic" else
  "the COCO area, truncated"}){"; `objects/segmentation`: one 0/255 PNG per object when exported with masks"
  if profile == "scenic" else ""}

Written without TensorFlow: records framed with the masked CRC-32C (`crc32c` package), `Example` bytes
encoded directly in protobuf wire format (checked against the `protobuf` runtime and bytes TensorFlow
wrote). `wsovvis export check {prefix}` reads them back and verifies every record.

## Reading them with TensorFlow (Scenic's CenterNet COCO feature description)

```python
import tensorflow as tf
files = sorted(tf.io.gfile.glob("{prefix.parent}/{pattern}"))
desc = {{
    "{image_key}": tf.io.FixedLenFeature([], tf.string),
    "image/id": tf.io.FixedLenFeature([], tf.int64),{extra}
    "objects/bbox": tf.io.VarLenFeature(tf.float32),
    "objects/label": tf.io.VarLenFeature(tf.int64),
    "objects/id": tf.io.VarLenFeature(tf.int64),
    "objects/area": tf.io.VarLenFeature(tf.int64),
    "objects/is_crowd": tf.io.VarLenFeature(tf.int64),
}}

def decode(record):  # -> the nested dict OWL-ViT's DecodeCocoExample consumes
    f = tf.io.parse_single_example(record, desc)
    obj = {{k.split("/")[1]: tf.sparse.to_dense(v) for k, v in f.items() if k.startswith("objects/")}}
    obj["bbox"] = tf.reshape(obj["bbox"], [-1, 4])
    obj["is_crowd"] = tf.cast(obj["is_crowd"], tf.bool)
    return {{"image": tf.io.decode_jpeg(f["{image_key}"], channels=3), "image/id": f["image/id"], "objects": obj}}

ds = tf.data.TFRecordDataset(files).map(decode)
```

## Scenic OWL-ViT fine-tuning

Scenic's OWL-ViT input pipeline (`scenic/projects/owl_vit/preprocessing/input_pipeline.py`) reads datasets only
through `tfds.builder(name, data_dir=...)` (`config.dataset_configs.train.tfds_names`, `.splits`,
`.decoder_kwarg_list`) and decodes them with a decoder registered in its `DECODERS` table under
`'<name>:<version>'`. To fine-tune on these files (e.g. from `configs/clip_b32_finetune.py`):

{steps}

## Class names

Scenic turns labels into text with `['padding'] + names`, looked up at `label + 1`, so the ClassLabel
names must be, in this order ({lm["num_classes"]} classes{mapped}):

{shown}

Classes that an image lacks can be given as negatives (`negative_text_labels`).
"""
