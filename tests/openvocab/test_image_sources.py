"""Image datasets: COCO panoptic (RGB id PNGs) and COCO instances JSON, keyed ``<image_id>_<segment_id>``."""

from __future__ import annotations

import json

import numpy as np
import pytest

from tests.openvocab.helpers import PALETTE, make_coco_images
from wsovvis.cli import main as cli_main
from wsovvis.errors import WsovvisError
from wsovvis.openvocab.cache import INDEX_NAME, SKIPPED_NAME, read_index
from wsovvis.openvocab.color_embedder import ColorHistEmbedder
from wsovvis.openvocab.embed import embed_source


def _colour_of(vec: np.ndarray, emb: ColorHistEmbedder) -> str:
    t = emb.encode_texts(list(PALETTE)).numpy()
    t /= np.linalg.norm(t, axis=1, keepdims=True)
    return PALETTE[int(np.argmax(t @ vec.astype(np.float32)))]


@pytest.mark.parametrize("source", ["panoptic", "coco"])
def test_image_segments_embedded_by_key(tmp_path, source):
    d = make_coco_images(tmp_path / "data")
    out = tmp_path / f"emb_{source}"
    argv = ["embed", f"--{source}", str(d[source]), "--img_root", str(d["images"]), "--out", str(out),
            "--model", "colorhist:", "--num_workers", "0", "--no_progress"]
    if source == "panoptic":
        argv += ["--panoptic_root", str(d["panoptic_root"])]
    assert cli_main(argv) == 0
    lines = (out / INDEX_NAME).read_text().splitlines()
    assert lines[0] == "image_id\tsegment_id\tfeat_file"
    index, meta = read_index(out)
    assert meta["kind"] == "image" and set(index) == set(d["truth"])
    assert (out / "1_70001.npy").is_file() and (out / "7_66000.npy").is_file()  # ids decoded from all 3 channels
    emb = ColorHistEmbedder()
    for key, name in d["truth"].items():
        assert _colour_of(np.load(index[key]), emb) == name, key


def test_missing_image_and_absent_segment_are_reported(tmp_path):
    d = make_coco_images(tmp_path / "data")
    pan = json.loads(d["panoptic"].read_text())
    pan["annotations"][0]["segments_info"].append({"id": 999, "category_id": 1})  # not painted in the PNG
    (d["images"] / "000000000007.jpg").unlink()
    bad = tmp_path / "pan_bad.json"
    bad.write_text(json.dumps(pan))
    out = tmp_path / "emb"
    stats = embed_source("panoptic", bad, out, ColorHistEmbedder(), img_root=d["images"],
                         panoptic_root=d["panoptic_root"], progress=False)
    assert stats.written == 2 and len(stats.skipped) == 4
    rep = json.loads((out / SKIPPED_NAME).read_text())
    reasons = {(r["image_id"], r["segment_id"]): r["reason"] for r in rep["instances"]}
    assert "segment id 999 does not occur" in reasons[(1, 999)]
    assert "000000000007.jpg" in reasons[(7, 513)] and "unreadable" in reasons[(7, 513)]
    # the same command again embeds nothing new and reports the same instances
    stats = embed_source("panoptic", bad, out, ColorHistEmbedder(), img_root=d["images"],
                         panoptic_root=d["panoptic_root"], progress=False)
    assert stats.written == 0 and stats.already_done == 2 and len(stats.skipped) == 4


def test_bad_coco_inputs_name_file_and_item(tmp_path):
    d = make_coco_images(tmp_path / "data")
    inst = json.loads(d["coco"].read_text())
    inst["annotations"][1]["segmentation"] = "oops"
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps(inst))
    with pytest.raises(WsovvisError, match=r"bad.json: annotations\[1\]: segmentation must be a polygon list or"):
        embed_source("coco", bad, tmp_path / "e", ColorHistEmbedder(), img_root=d["images"], progress=False)
    inst["annotations"][1]["image_id"] = 12345
    bad.write_text(json.dumps(inst))
    with pytest.raises(WsovvisError, match=r"annotations\[1\]: image_id 12345 is not in 'images'"):
        embed_source("coco", bad, tmp_path / "e", ColorHistEmbedder(), img_root=d["images"], progress=False)
    with pytest.raises(WsovvisError, match="--panoptic needs --panoptic_root"):
        embed_source("panoptic", d["panoptic"], tmp_path / "e2", ColorHistEmbedder(), img_root=d["images"],
                     progress=False)
