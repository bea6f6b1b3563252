"""RLE helpers (hand-computed COCO strings) and id-PNG decoding in every id format."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from wsovvis.data import masks, rle
from wsovvis.errors import WsovvisError

from .helpers import write_ids


def test_encode_hand_values():
    # column-major runs: [0,1,1,1] -> counts [1, 3] -> "13"
    assert rle.encode(np.array([[0, 1], [1, 1]], bool)) == {"size": [2, 2], "counts": "13"}
    m = np.zeros((3, 3), bool)
    m[1, 1] = True  # counts [4, 1, 4]; the third count is not delta-coded yet
    assert rle.encode(m) == {"size": [3, 3], "counts": "414"}
    m = np.zeros((40, 1), bool)
    m[35:] = True  # 35 needs two 5-bit groups: 'S' (3 | continuation) then '1'
    assert rle.encode(m) == {"size": [40, 1], "counts": "S15"}


def test_encode_id_map_hand_values_and_absent_ids():
    ids = np.array([[0, 2, 1], [1, 0, 2]])
    # column-major flat [0,1,2,0,1,2]; id 1 counts [1,1,2,1,1] -> deltas from index 3 -> "1120O"
    tids, rles = rle.encode_id_map(ids)
    assert tids == [1, 2]
    assert [r["counts"] for r in rles] == ["1120O", "2120"]
    # absent id -> empty mask; explicit order is kept
    assert [r["counts"] for r in rle.encode_ids(ids, [2, 9])] == ["2120", "6"]
    assert rle.encode_ids(ids, []) == []
    assert rle.encode_id_map(np.zeros((4, 5), np.uint8)) == ([], [])
    areas, boxes = rle.areas_and_boxes(rles)
    assert areas == [2, 2] and boxes == [[0.0, 0.0, 3.0, 2.0], [1.0, 0.0, 2.0, 2.0]]


@pytest.mark.parametrize("dtype", [np.uint8, np.uint16, np.int32])
def test_encode_id_map_matches_per_id_encoder(dtype):
    rng = np.random.default_rng(1)
    for _ in range(60):
        h, w = rng.integers(1, 24, size=2)
        ids = rng.integers(0, rng.integers(1, 8), size=(h, w)).astype(dtype)
        tids, got = rle.encode_id_map(ids)
        ref = rle.encode_stack(np.stack([ids == t for t in tids])) if tids else []
        assert [g["counts"] for g in got] == [r["counts"] for r in ref]
        for t, r in zip(tids, got):
            assert np.array_equal(rle.decode(r), ids == t)
            assert rle.area(r) == int((ids == t).sum()) and rle.bbox(r) == rle.mask_bbox(ids == t)


def test_decode_uncompressed_and_validators():
    r = {"size": [2, 2], "counts": [1, 3]}
    assert rle.decode(r).tolist() == [[False, True], [True, True]]
    assert rle.area(r) == 3 and rle.bbox(r) == [0.0, 0.0, 2.0, 2.0]
    assert rle.is_rle(r) and not rle.is_compressed(r) and rle.is_compressed({"size": [2, 2], "counts": "13"})
    assert not rle.is_rle({"size": [2], "counts": "13"}) and not rle.is_rle({"size": [2, True], "counts": "1"})
    assert rle.mask_bbox(np.zeros((3, 3), bool)) == [0.0, 0.0, 0.0, 0.0]


@pytest.mark.parametrize(
    "fmt, expect_format, reason_word, top",
    [("palette", "palette", "8-bit 'P'", 9), ("gray", "palette", "8-bit 'L'", 200),
     ("uint16", "uint16", "16-bit", 40000), ("rgb", "rgb", "65536", 70000)],
)
def test_id_formats_auto(tmp_path, fmt, expect_format, reason_word, top):
    ids = np.zeros((5, 7), np.int64)
    ids[1:3, 2:5] = top
    ids[4, 6] = 3
    p = tmp_path / "m.png"
    write_ids(p, ids, fmt)
    got, used, reason = masks.decode_ids(p)
    assert used == expect_format and reason_word in reason
    assert np.array_equal(got, ids)
    arr, used2 = masks.read_ids_with_format(p)
    assert arr.dtype == np.int32 and used2 == expect_format and np.array_equal(arr, ids)
    assert masks.png_size(p) == (5, 7)
    # an explicit, matching format gives the same ids
    assert np.array_equal(masks.read_ids(p, expect_format), ids)


def test_forced_format_mismatch_and_unknown(tmp_path):
    p = tmp_path / "m.png"
    write_ids(p, np.ones((3, 3), np.int64), "rgb")
    with pytest.raises(WsovvisError, match=r"m\.png: id_format 'uint16' expects .* got mode 'RGB'"):
        masks.read_ids(p, "uint16")
    with pytest.raises(WsovvisError, match="unknown id_format 'jpeg'"):
        masks.read_ids(p, "jpeg")
    Image.new("LA", (3, 3)).save(tmp_path / "la.png")
    with pytest.raises(WsovvisError, match="la.png.*'LA' is not an instance-id format"):
        masks.read_ids(tmp_path / "la.png")


def test_ignore_value(tmp_path):
    ids = np.array([[0, 1, 255], [2, 255, 1]])
    write_ids(tmp_path / "m.png", ids, "gray")
    assert masks.read_ids(tmp_path / "m.png", ignore_value=255).tolist() == [[0, 1, 0], [2, 0, 1]]


def test_truncated_and_corrupt_png(tmp_path):
    p = tmp_path / "t.png"
    masks.write_ids(p, np.arange(400).reshape(20, 20) % 7)
    p.write_bytes(p.read_bytes()[:-30])
    with pytest.raises(WsovvisError, match=r"t\.png: unreadable PNG"):
        masks.read_ids(p)
    c = tmp_path / "c.png"
    c.write_bytes(b"not a png at all")
    with pytest.raises(WsovvisError, match=r"c\.png: unreadable PNG"):
        masks.read_ids(c)
    with pytest.raises(WsovvisError, match=r"c\.png: unreadable PNG"):
        masks.png_size(c)


def test_write_ids_formats(tmp_path):
    small = np.array([[0, 3], [255, 1]])
    masks.write_ids(tmp_path / "s.png", small)
    with Image.open(tmp_path / "s.png") as im:
        assert im.mode == "P" and im.getpalette()[3:6] == [128, 0, 0]  # VOC colour of id 1
    big = np.array([[0, 300], [65535, 1]])
    masks.write_ids(tmp_path / "b.png", big)
    with Image.open(tmp_path / "b.png") as im:
        assert im.mode.startswith("I")
    assert np.array_equal(masks.read_ids(tmp_path / "b.png"), big)
    with pytest.raises(ValueError, match="16-bit"):
        masks.encode_ids_png(np.array([[70000]]))
    with pytest.raises(ValueError, match="non-negative"):
        masks.encode_ids_png(np.array([[-1]]))


def test_encode_id_stack_matches_pycocotools_over_frames():
    rng = np.random.default_rng(4)
    for trial in range(40):
        t, h, w = rng.integers(1, 5), *rng.integers(1, 20, size=2)
        n_ids = 60 if trial % 5 == 0 else int(rng.integers(1, 6))  # > 32 ids takes the argsort path
        stack = rng.integers(0, n_ids, size=(t, h, w))
        stack = np.where(rng.random((t, h, w)) < 0.5, 0, stack).astype(np.uint16)
        for f, items in enumerate(rle.encode_id_stack(stack)):
            ids = sorted(set(np.unique(stack[f]).tolist()) - {0})
            assert [i[0] for i in items] == ids
            ref = rle.encode_stack(np.stack([stack[f] == i for i in ids])) if ids else []
            assert [i[1] for i in items] == ref
            assert [i[2] for i in items] == [int((stack[f] == i).sum()) for i in ids]
            assert [i[3] for i in items] == [rle.mask_bbox(stack[f] == i) for i in ids]


def test_encode_id_stack_long_counts_and_empty_frames():
    # counts above 2^15 need 4+ characters and negative deltas; one frame has no object at all
    stack = np.zeros((3, 300, 400), np.uint8)
    stack[0, -1, -1] = 1
    stack[0, 0, 0] = 1
    stack[2, :, 1:] = 7
    stack[2, 5, 7] = 0
    out = rle.encode_id_stack(stack)
    assert out[1] == []
    for f, tid in ((0, 1), (2, 7)):
        [(got_id, got, area, box)] = out[f]
        m = stack[f] == tid
        assert got_id == tid and got == rle.encode(m) and area == int(m.sum()) and box == rle.mask_bbox(m)
    assert rle.encode_id_stack(np.zeros((2, 0, 5), np.uint8)) == [[], []]


def test_plain_png_fast_path_agrees_with_pil(tmp_path):
    ids = (np.arange(40 * 30).reshape(30, 40) // 37) % 9
    masks.write_ids(tmp_path / "p.png", ids)  # palette, no row filters: the zlib fast path
    assert masks._read_plain_png(tmp_path / "p.png") is not None
    grad = (np.arange(30 * 40).reshape(30, 40) % 251).astype(np.uint8)
    Image.fromarray(grad, mode="L").save(tmp_path / "l.png")  # PIL filters these rows: PIL path
    assert masks._read_plain_png(tmp_path / "l.png") is None
    for name in ("p.png", "l.png"):
        got, fmt, _ = masks.decode_ids(tmp_path / name)
        with Image.open(tmp_path / name) as im:
            assert np.array_equal(got, np.asarray(im)) and fmt == "palette"
    # flipped bits inside the compressed pixels: zlib's checksum fails, PIL reports the file
    data = bytearray((tmp_path / "p.png").read_bytes())
    start = data.index(b"IDAT") + 4
    data[start + 10] ^= 0xFF
    (tmp_path / "bad.png").write_bytes(bytes(data))
    assert masks._read_plain_png(tmp_path / "bad.png") is None
    with pytest.raises(WsovvisError, match=r"bad\.png: unreadable PNG"):
        masks.decode_ids(tmp_path / "bad.png")


needs_encoder = pytest.mark.skipif(not rle.has_compiled_encoder(),
                                   reason="wsovvis.data._rle_encode is not built (pip install -e . needs a C "
                                          "compiler); the numpy encoder is used")


@needs_encoder
def test_compiled_encoder_equals_numpy_over_dtypes_strides_and_id_counts():
    mod = rle._compiled_encoder()
    rng = np.random.default_rng(7)
    dtypes = [np.uint8, np.int8, np.uint16, np.int16, np.uint32, np.int32, np.uint64, np.int64]
    for trial in range(400):
        h, w = (int(v) for v in rng.integers(1, 30, size=2))
        n_ids = int(rng.choice([2, 5, 100])) if trial % 7 else 2**31 - 1  # huge ids: RGB-style maps
        ids = rng.integers(0, n_ids, size=(h, w + 2))
        ids = np.where(rng.random(ids.shape) < rng.random(), 0, ids)
        if trial % 4 == 0:  # long vertical runs: rows equal to the row above
            ids = np.repeat(ids[:1], h, axis=0)
        dtype = dtypes[trial % len(dtypes)] if n_ids < 100 else (np.int64 if trial % 2 else np.uint32)
        view = ids.astype(dtype)[:, 1:w + 1]  # padded rows, as the PNG reader's views have
        if trial % 3 == 0:
            view = view[::-1]  # negative row stride
        expect = rle.encode_id_stack(np.ascontiguousarray(view)[None])[0]
        assert mod.encode_frame(view) == expect, (trial, dtype)
    # what the numpy path checks by hand also holds here: long counts, negative deltas, edges of the frame
    stack = np.zeros((300, 400), np.uint8)
    stack[-1, -1] = stack[0, 0] = 1
    stack[:, 200:] = 7
    stack[5, 207] = 0
    got = mod.encode_frame(stack)
    assert [g[0] for g in got] == [1, 7]
    for tid, r, a, b in got:
        m = stack == tid
        assert r == rle.encode(m) and a == int(m.sum()) and b == rle.mask_bbox(m)
    assert mod.encode_frame(np.zeros((0, 5), np.uint8)) == [] and mod.encode_frame(np.zeros((4, 4), np.uint8)) == []


@needs_encoder
def test_compiled_encoder_rejects_what_it_cannot_read():
    mod = rle._compiled_encoder()
    with pytest.raises(ValueError, match="2-D"):
        mod.encode_frame(np.zeros((2, 2, 2), np.uint8))
    with pytest.raises(ValueError, match="native integers"):
        mod.encode_frame(np.zeros((2, 2), np.float32))
    with pytest.raises(ValueError, match="adjacent"):
        mod.encode_frame(np.zeros((4, 4), np.uint8)[:, ::2])
    # the Python wrapper copies what the kernel cannot read instead of failing
    ids = np.array([[0, 1], [2, 2]], np.uint8)
    odd = [np.asfortranarray(ids), ids.astype(">u2"), ids.astype(bool), np.zeros((3, 6), np.uint8)[:, ::2]]
    assert rle.encode_id_maps(odd) == [rle.encode_id_stack(np.ascontiguousarray(m, dtype=np.int64)[None])[0]
                                       for m in odd]


def test_numpy_encoder_is_forced_by_the_environment(monkeypatch):
    monkeypatch.setenv(rle.ENCODER_ENV, "numpy")
    assert not rle.has_compiled_encoder()
    ids = np.array([[0, 3], [3, 1]], np.uint8)
    assert rle.encode_id_maps([ids, ids * 0]) == [rle.encode_id_stack(ids[None])[0], []]
