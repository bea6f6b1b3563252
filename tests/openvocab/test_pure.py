"""Pure functions with hand-computed values: crops, hue embedder, attribution, vocabularies, cache files."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from PIL import Image

from wsovvis.data import masks as mask_io
from wsovvis.errors import WsovvisError
from wsovvis.openvocab import cache, sources
from wsovvis.openvocab.attribute import attribute, class_probs
from wsovvis.openvocab.color_embedder import ColorHistEmbedder, nearest_colour, rgb_to_hsv
from wsovvis.openvocab.crops import crop_blend, mask_box, square_box
from wsovvis.openvocab.embedder import build_embedder, parse_spec
from wsovvis.openvocab.vocab import cache_key, load_templates, load_vocab, prompt_name


def test_square_box_hand_values():
    # box x=10..19, y=20..24; pad 0.1 -> side ceil(10 * 1.2) = 12 centred on (15, 22.5)
    assert square_box((10, 20, 10, 5), 0.1) == (9, 17, 12)
    assert square_box((0, 0, 4, 4), 0.0) == (0, 0, 4)
    assert square_box((5, 5, 1, 1), 1.0) == (4, 4, 3)


def test_mask_box():
    m = np.zeros((6, 8), bool)
    assert mask_box(m) is None
    m[2:4, 3:7] = True
    assert mask_box(m) == (3, 2, 4, 2)


def test_crop_blend_inside_image():
    image = np.zeros((4, 6, 3), np.uint8)
    image[:] = (200, 100, 50)
    mask = np.zeros((4, 6), bool)
    mask[1:3, 2:4] = True  # box (2, 1, 2, 2); pad 0.5 -> side 4 at (1, 0)
    crop = crop_blend(image, mask, pad_ratio=0.5, bg_alpha=0.25, fill=(100, 100, 100))
    assert crop.shape == (4, 4, 3) and crop.dtype == np.uint8
    inside = mask[0:4, 1:5]
    assert (crop[inside] == (200, 100, 50)).all()
    # 0.25 * pixel + 0.75 * fill: 125, 100, 87.5 -> 88
    assert (crop[~inside] == (125, 100, 88)).all()


def test_crop_blend_outside_image_is_fill():
    image = np.full((5, 5, 3), 40, np.uint8)
    mask = np.zeros((5, 5), bool)
    mask[0, 0] = True  # box (0, 0, 1, 1), pad 1 -> side 3 at (-1, -1)
    crop = crop_blend(image, mask, pad_ratio=1.0, bg_alpha=0.5, fill=(0, 0, 0))
    assert crop.shape == (3, 3, 3)
    assert (crop[0, :] == 0).all() and (crop[:, 0] == 0).all()
    assert (crop[1, 1] == 40).all()
    assert (crop[1:, 1:][[0, 1, 1], [1, 0, 1]] == 20).all()
    assert crop_blend(image, np.zeros((5, 5), bool), 0.1, 0.3, (0, 0, 0)) is None


def test_rgb_to_hsv_known_colours():
    rgb = torch.tensor([[1, 0, 0], [1, 1, 0], [0, 1, 0], [0, 1, 1], [0, 0, 1], [1, 0, 1], [0.5, 0.5, 0.5]],
                       dtype=torch.float32).T[None]  # [1, 3, 7]
    hue, sat, val = rgb_to_hsv(rgb)
    assert torch.allclose(hue[0, :6], torch.tensor([0.0, 60, 120, 180, 240, 300]))
    assert torch.allclose(sat[0], torch.tensor([1.0] * 6 + [0.0]))
    assert val[0, 6] == 0.5


def test_colour_embedder_matches_names():
    emb = ColorHistEmbedder()
    crops = torch.zeros(3, 3, 32, 32)
    crops[0, 0] = 1.0  # pure red
    crops[1, 2] = 1.0  # pure blue
    crops[2] = 0.5  # grey: no saturated pixel votes
    f = emb.encode_images(crops)
    t = emb.encode_texts(["a photo of a red object.", "a blue thing", "green"])
    f = f / f.norm(dim=1, keepdim=True).clamp_min(1e-12)
    t = t / t.norm(dim=1, keepdim=True)
    cos = f @ t.T
    assert cos[0, 0] == pytest.approx(1.0, abs=1e-5) and cos[1, 1] == pytest.approx(1.0, abs=1e-5)
    assert cos[0, 1] < 1e-6 and cos[0, 2] < 0.05  # 240 / 120 degrees away
    assert f[2].abs().sum() == 0
    with pytest.raises(WsovvisError, match="no colour name in 'a dog'"):
        emb.encode_texts(["a dog"])
    assert nearest_colour(350.0, ["red", "blue"]) == "red"
    assert emb.preprocess(Image.new("RGB", (50, 20), (255, 0, 0))).shape == (3, 32, 32)


def test_spec_parsing_and_registry():
    assert parse_spec("openclip:ViT-B-32") == ("openclip", "ViT-B-32")
    with pytest.raises(WsovvisError, match="unknown scheme 'clip'"):
        parse_spec("clip:ViT-B-32")
    with pytest.raises(WsovvisError, match="must look like"):
        parse_spec("ViT-B-32")
    assert build_embedder("colorhist:12").dim == 12
    with pytest.raises(WsovvisError, match="has no weights"):
        build_embedder("colorhist:", weights="x.pt")


def test_class_probs_hand_values():
    p = class_probs(np.array([[1.0, 0.0]]), np.array([[1.0, 0.0], [0.0, 1.0]]), temperature=0.5)
    e2 = math.exp(2.0)
    assert p[0] == pytest.approx([e2 / (e2 + 1), 1 / (e2 + 1)])
    with pytest.raises(WsovvisError, match="temperature"):
        class_probs(np.ones((1, 2)), np.ones((1, 2)), 0.0)


def test_attribute_topk_background_unknown():
    probs = np.array([[0.6, 0.3, 0.1], [0.2, 0.3, 0.5], [0.45, 0.45, 0.1]])
    a = attribute(probs, num_vocab=2, topk=2)
    assert a[0].labels == [(0, 0.6), (1, 0.3)] and a[0].rejected is None
    assert a[1].labels == [] and a[1].rejected.startswith("background") and a[1].best == (1, 0.3)
    assert a[2].labels == [(0, 0.45), (1, 0.45)]  # stable order on ties
    b = attribute(probs[:, :2] / probs[:, :2].sum(1, keepdims=True), num_vocab=2, topk=1, reject_below=0.55)
    assert b[0].labels == [(0, pytest.approx(2 / 3))]
    assert b[2].rejected.startswith("unknown (best p=0.500")


def test_vocab_loading(tmp_path):
    txt = tmp_path / "v.txt"
    txt.write_text("# comment\nred\n\ntraffic_light\n")
    v = load_vocab(txt)
    assert v.ids == [1, 2] and v.names == ["red", "traffic_light"]
    j = tmp_path / "gt.json"
    j.write_text('{"videos": [], "categories": [{"id": 5, "name": "cat", "partition": 2}, {"id": 9, "name": "dog"}]}')
    v = load_vocab(j)
    assert v.ids == [5, 9] and v.categories[0] == {"id": 5, "name": "cat", "partition": 2}
    (tmp_path / "list.json").write_text('[{"id": 1, "name": "a"}]')
    assert load_vocab(tmp_path / "list.json").names == ["a"]
    txt.write_text("red\nblue\nred\n")
    with pytest.raises(WsovvisError, match=r"v.txt: line 3 repeats the name 'red' \(also line 1\)"):
        load_vocab(txt)
    j.write_text('{"categories": [{"id": 1, "name": "a"}, {"id": 2}]}')
    with pytest.raises(WsovvisError, match=r"gt.json: categories\[1\] \(id 2\) needs a non-empty string 'name'"):
        load_vocab(j)
    with pytest.raises(WsovvisError, match="does not exist"):
        load_vocab(tmp_path / "nope.txt")
    assert prompt_name("bow_(weapon)") == "bow (weapon)" and prompt_name(" traffic_light ") == "traffic light"


def test_templates(tmp_path):
    assert load_templates("single") == ("a photo of a {}.",)
    assert len(load_templates("default")) == 12
    f = tmp_path / "t.txt"
    f.write_text("a {} here\nno slot\n")
    with pytest.raises(WsovvisError, match="t.txt: line 2"):
        load_templates(str(f))


def test_cache_key_depends_on_every_input():
    fp = {"spec": "openclip:ViT-B-32", "weights_sha256": "ab"}
    k = cache_key(fp, ("a {}",), ["x", "y"])
    assert k == cache_key(dict(fp), ("a {}",), ["x", "y"])
    assert len({k, cache_key({**fp, "weights_sha256": "cd"}, ("a {}",), ["x", "y"]),
                cache_key({**fp, "spec": "openclip:ViT-B-16"}, ("a {}",), ["x", "y"]),
                cache_key(fp, ("the {}",), ["x", "y"]), cache_key(fp, ("a {}",), ["y", "x"])}) == 5


def test_index_parse_torn_tail(tmp_path):
    p = tmp_path / cache.INDEX_NAME
    p.write_text("video_id\ttrack_id\tfeat_file\n1\t2\t1_2.npy\nx\t1\t1.npy\n3\t4\t3_")
    entries, bad, header = cache.parse_index(p)
    assert entries == [((1, 2), "1_2.npy")] and bad == 2 and header == sources.VIDEO_INDEX_HEADER
    with pytest.raises(WsovvisError, match="index header"):
        cache.parse_index(p, sources.IMAGE_INDEX_HEADER)


def test_feature_files(tmp_path):
    p = tmp_path / "1_1.npy"
    cache.write_feat(p, np.arange(5, dtype=np.float32))
    assert np.load(p).dtype == np.float16 and cache.valid_feat(p, 5) and not cache.valid_feat(p, 6)
    p.write_bytes(p.read_bytes()[:-3])
    assert not cache.valid_feat(p, 5)


def test_top_frames():
    frames = [(0, 10), (1, 30), (2, 30), (3, 5)]
    assert sources._top_frames(frames, 2) == [(1, 30), (2, 30)]
    assert sources._top_frames(frames, 1) == [(1, 30)]
    assert sources._top_frames(frames, 0) == frames


def test_panoptic_rgb_id_decoding(tmp_path):
    ids = np.zeros((3, 4), np.int64)
    ids[0, 0], ids[1, 1], ids[2, 3] = 70_001, 300, 5
    p = tmp_path / "pan.png"
    p.write_bytes(mask_io.encode_rgb_ids_png(ids))
    rgb = np.asarray(Image.open(p).convert("RGB"))
    assert tuple(rgb[0, 0]) == (113, 17, 1)  # 113 + 256 * 17 + 65536 * 1 = 70001
    assert tuple(rgb[1, 1]) == (44, 1, 0)  # 44 + 256 = 300
    assert (mask_io.read_ids(p, "rgb") == ids).all()


def test_seg_to_rle_polygon_and_area():
    poly = [[1, 1, 5, 1, 5, 4, 1, 4]]
    rle = sources.seg_to_rle(poly, 8, 8)
    assert list(rle["size"]) == [8, 8] and sources.seg_area(poly, 8, 8) > 0


def test_text_embeddings_cache_and_model_mismatch(tmp_path):
    from wsovvis.openvocab.vocab import text_embeddings

    emb = ColorHistEmbedder()
    calls = []

    def build():
        calls.append(1)
        return emb

    a = text_embeddings(emb.fingerprint(), ["red", "blue"], ("a {} object",), tmp_path, build)
    b = text_embeddings(emb.fingerprint(), ["red", "blue"], ("a {} object",), tmp_path, build)
    assert len(calls) == 1 and np.array_equal(a, b) and a.shape == (2, 36)
    assert np.allclose(np.linalg.norm(a, axis=1), 1)
    with pytest.raises(WsovvisError, match="is not the one that made the image embeddings"):
        text_embeddings({"spec": "openclip:ViT-B-32", "weights_sha256": "00"}, ["red"], ("{}",), tmp_path, build)
