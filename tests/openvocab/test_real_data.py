"""Real frames and real pseudo-masks: DAVIS 480p sequences with OSVOS masks -> convert -> embed (resumable)."""

from __future__ import annotations

import numpy as np

from wsovvis.cli import main as cli_main
from wsovvis.data import ytvis
from wsovvis.openvocab.cache import read_index
from wsovvis.openvocab.color_embedder import ColorHistEmbedder
from wsovvis.openvocab.embed import CropSettings, embed_source
from wsovvis.openvocab.embedder import build_embedder

SEQUENCES = ("bmx-trees", "soapbox")  # 2 and 3 OSVOS objects


def test_embed_real_davis_tubes(real_data, tmp_path):
    davis = real_data / "davis2016val_sample"
    masks, frames = tmp_path / "masks", tmp_path / "frames"
    masks.mkdir()
    frames.mkdir()
    for seq in SEQUENCES:
        (masks / seq).symlink_to(davis / "Pseudo_OSVOS_davis2017" / seq)
        (frames / seq).symlink_to(davis / "JPEGImages" / seq)
    tubes = tmp_path / "tubes.json"
    assert cli_main(["convert", "--mask_root", str(masks), "--img_root", str(frames), "--out_json", str(tubes),
                     "--no_progress"]) == 0
    ds = ytvis.load(tubes, require_annotations=True)
    assert len(ds.annotations) == 5
    out = tmp_path / "emb"
    emb = build_embedder("openclip:ViT-S-32", random_init=True)
    stats = embed_source("tubes", tubes, out, emb, img_root=frames, settings=CropSettings(topk_frames=3),
                         batch_size=8, progress=False)
    assert stats.written == 5 and stats.crops == 15 and not stats.skipped
    index, meta = read_index(out)
    assert set(index) == {(a["video_id"], a["track_id"]) for a in ds.annotations}
    for p in index.values():
        v = np.load(p)
        assert v.shape == (384,) and v.dtype == np.float16 and abs(np.linalg.norm(v.astype(np.float64)) - 1) < 2e-3
    # The colour stand-in sees no saturated pixel on a grey object: reported with its reason, not dropped.
    stats = embed_source("tubes", tubes, tmp_path / "emb_colour", ColorHistEmbedder(), img_root=frames,
                         settings=CropSettings(topk_frames=3), progress=False)
    assert stats.written + len(stats.skipped) == 5
    assert all("zero vector" in s["reason"] for s in stats.skipped)
