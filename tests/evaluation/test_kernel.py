"""The compiled kernel (`wsovvis.evaluation._rle_kernel`) against pycocotools / numpy / the Python matching, and
the two evaluation backends against each other (the pycocotools path is also what runs when the kernel is absent).
"""

from __future__ import annotations

import logging
import shutil
import sysconfig
from pathlib import Path

import numpy as np
import pytest
from pycocotools import mask as mask_utils

from wsovvis.errors import WsovvisError
from wsovvis.evaluation import STAT_NAMES, batched, evaluate_full, kernel
from wsovvis.evaluation.inputs import check_results, load_gt
from wsovvis.evaluation.matching import match_group, out_of_range
from wsovvis.evaluation.params import MATCH_THRS
from wsovvis.evaluation.reference import reference_evaluate
from wsovvis.evaluation.rle_batch import check_rles

from .helpers import box, make_gt, pred, random_case

MOD, WHY = kernel.load()
needs_kernel = pytest.mark.skipif(MOD is None, reason=f"{WHY}; {kernel.BUILD_HINT}")


def encode_counts(counts: list[int]) -> str:
    """Compressed-RLE string of a list of run lengths, written from the format description in rle_batch.py."""
    out = []
    for i, x in enumerate(counts):
        if i > 2:
            x -= counts[i - 2]
        more = True
        while more:
            c = x & 0x1F
            x >>= 5
            more = x != -1 if c & 0x10 else x != 0
            out.append(chr(c + (0x20 if more else 0) + 48))
    return "".join(out)


def runs_of(mask: np.ndarray) -> list[int]:
    flat = mask.flatten(order="F").astype(np.int8)
    edges = np.flatnonzero(np.diff(flat)) + 1
    runs = np.diff(np.concatenate(([0], edges, [flat.size]))).tolist()
    return ([0] if flat[0] else []) + runs


def random_masks(rng: np.random.Generator, h: int, w: int, n: int) -> list[np.ndarray]:
    masks = []
    for i in range(n):
        kind = i % 5
        if kind == 0:
            m = rng.random((h, w)) < rng.random()
        elif kind == 1:
            y0, x0 = rng.integers(0, h), rng.integers(0, w)
            m = box(h, w, y0, x0, rng.integers(y0, h + 1), rng.integers(x0, w + 1))
        elif kind == 2:  # whole columns: runs that cross column boundaries
            m = np.zeros((h, w), bool)
            m[:, rng.integers(0, w):rng.integers(0, w + 1)] = True
        elif kind == 3:
            m = np.zeros((h, w), bool) if rng.random() < 0.5 else np.ones((h, w), bool)
        else:
            m = box(h, w, 1, 1, h - 1, w - 1) ^ (rng.random((h, w)) < 0.05)
        masks.append(m)
    return masks


def scan(masks_per_track: list[list], h: int, w: int, need=None) -> kernel.Scan:
    tracks = [[None if m is None else {"size": [h, w], "counts": encode_counts(runs_of(m))} for m in ms]
              for ms in masks_per_track]
    n = len(tracks)
    return kernel.scan(MOD, tracks, np.full(n, h), np.full(n, w), need)


def test_encoder_is_the_coco_format():
    rng = np.random.default_rng(0)
    for m in random_masks(rng, 13, 9, 60):
        assert encode_counts(runs_of(m)) == mask_utils.encode(np.asfortranarray(m.astype(np.uint8)))["counts"].decode()


@needs_kernel
def test_scan_areas_and_frame_index_match_pycocotools():
    rng = np.random.default_rng(1)
    h, w = 17, 11
    masks = random_masks(rng, h, w, 200)
    tracks = [[m if rng.random() < 0.8 else None for m in masks[i : i + 7]] for i in range(0, 200, 7)]
    sc = scan(tracks, h, w)
    expect = [(i, t, int(m.sum())) for i, ms in enumerate(tracks) for t, m in enumerate(ms) if m is not None]
    assert list(zip(sc.track.tolist(), sc.t.tolist(), sc.area.tolist())) == expect
    assert len(sc.bad) == 0
    flat = [{"size": [h, w], "counts": encode_counts(runs_of(m))} for ms in tracks for m in ms if m is not None]
    assert sc.area.tolist() == check_rles(flat, h * w)[1].tolist()


@needs_kernel
def test_scan_rejects_every_kind_of_broken_counts_without_hanging():
    h, w = 8, 10
    rng = np.random.default_rng(2)
    good = encode_counts(runs_of(rng.random((h, w)) < 0.5))
    broken = {
        "other resolution": encode_counts(runs_of(rng.random((h + 1, w)) < 0.5)),
        "truncated": good[:-1],
        "extra value": good + "1",
        "unterminated": good + "P",
        "empty": "",
        "char below '0'": good[:2] + "!" + good[3:],
        "char above 'o'": good[:2] + "p" + good[3:],
        "non-ascii": good + "\u00e9",
        "negative first run": encode_counts([-3, 5, h * w - 2]),
        # sums to the frame size modulo 2^32 (pycocotools' uint32 arithmetic) through a negative run
        "negative later run": encode_counts([0, -5, h * w + 5]),
        "run past the frame": encode_counts([h * w + 1]),
        "absurdly long value": "o" * 20 + "0",
    }
    frames = [[{"size": [h, w], "counts": s} for s in broken.values()] + [{"size": [h, w], "counts": good}]]
    frames[0] += [{"size": [h, w]}, {"size": [h, w], "counts": 7}, "not a dict"]
    assert len(scan([[]], h, w).t) == 0  # a track without frames
    sc = kernel.scan(MOD, frames, np.array([h]), np.array([w]))
    bad_t = sc.bad[:, 1].tolist()
    assert bad_t == [t for t in range(len(frames[0])) if t != len(broken)], dict(zip(broken, sc.bad))
    assert sc.t.tolist() == [len(broken)]
    # the pycocotools-path check agrees except where it cannot see a negative run behind a wrapped total
    _, _, bad_py = check_rles([{"counts": s} for s in broken.values()], h * w)
    assert [k for k, b in zip(broken, bad_py) if not b] == ["negative later run"]


@needs_kernel
def test_scan_accepts_bytes_zero_length_runs_and_leading_foreground():
    h, w = 5, 4
    counts = [0, 3, 0, 2, 4, 0, 6, 5]  # leading foreground, a 0 background run, a 0 foreground run
    assert sum(counts) == h * w
    flat = np.zeros(h * w, bool)
    pos = 0
    for i, c in enumerate(counts):
        flat[pos : pos + c] = i % 2 == 1
        pos += c
    mask = flat.reshape((w, h)).T
    s = encode_counts(counts)
    tracks = [[{"counts": s}, {"counts": s.encode()}], [{"counts": encode_counts(runs_of(mask))}]]
    sc = kernel.scan(MOD, tracks, np.full(2, h), np.full(2, w))
    assert sc.area.tolist() == [int(mask.sum())] * 3
    out = np.zeros(3, dtype=np.int64)
    kernel.intersect(MOD, sc, [0, 1], [0, 0], [0, 1], [2], [0], [0], out)  # str and bytes frames vs the mask
    assert out.tolist() == [int(mask.sum())] * 2 + [0]


@needs_kernel
@pytest.mark.parametrize("hw", [(17, 11), (1, 9), (9, 1)])
def test_intersections_match_bitmaps(hw):
    h, w = hw
    rng = np.random.default_rng(3)
    a = random_masks(rng, h, w, 40)
    b = random_masks(rng, h, w, 25)
    sc = scan([a, b], h, w)
    idx_a = np.flatnonzero(sc.track == 0)
    idx_b = np.flatnonzero(sc.track == 1)
    # all pairs in one bucket; slot = i * len(b) + j
    out = np.zeros(len(a) * len(b), dtype=np.int64)
    kernel.intersect(MOD, sc, idx_a, np.zeros(len(a)), sc.t[idx_a] * len(b), idx_b, np.zeros(len(b)), sc.t[idx_b],
                     out)
    expect = np.array([[int((x & y).sum()) for y in b] for x in a])
    np.testing.assert_array_equal(out.reshape(len(a), len(b)), expect)
    # buckets: only equal buckets meet, and several pairs can add into one slot
    out = np.zeros(1, dtype=np.int64)
    kernel.intersect(MOD, sc, idx_a, np.arange(len(a)) % 3, np.zeros(len(a)), idx_b, np.arange(len(b)) % 3,
                     np.zeros(len(b)), out)
    assert out[0] == sum(expect[i, j] for i in range(len(a)) for j in range(len(b)) if i % 3 == j % 3)


@needs_kernel
def test_intersect_and_greedy_refuse_bad_indices():
    h, w = 4, 4
    sc = scan([[box(h, w, 0, 0, 2, 2)], [box(h, w, 1, 1, 3, 3)]], h, w)
    out = np.zeros(1, dtype=np.int64)
    with pytest.raises(ValueError, match="slot"):
        kernel.intersect(MOD, sc, [0], [0], [5], [1], [0], [0], out)
    with pytest.raises(ValueError, match="a_frame"):
        kernel.intersect(MOD, sc, [9], [0], [0], [1], [0], [0], out)
    with pytest.raises(ValueError, match="not sorted"):
        MOD.intersect(sc.frames, *(np.array(x, dtype=np.int64) for x in ([0, 0], [1, 0], [0, 0], [1], [0], [0])), out)
    with pytest.raises(ValueError, match="group 0"):
        kernel.greedy(MOD, np.zeros(1), np.array([[2, 1, 0, 0, 0]]), np.zeros((1, 4), bool), np.zeros(1, bool),
                      np.zeros((1, 4), bool), np.array(MATCH_THRS))


@needs_kernel
@pytest.mark.parametrize("crowd_ignored", [True, False])
def test_greedy_matches_the_python_matching(crowd_ignored):
    rng = np.random.default_rng(4 + crowd_ignored)
    groups, ious, gts, dts, expect = [], [], [], [], []
    base = d_row = g_row = 0
    for _ in range(150):
        nd, ng = int(rng.integers(0, 9)), int(rng.integers(0, 6))
        iou = rng.choice([0.0, 0.5, 0.55, 0.7, 0.95, 1.0], size=(nd, ng)) * (rng.random((nd, ng)) < 0.8)
        crowd = rng.random(ng) < 0.3
        g_area = rng.choice([0.0, 100.0, 16384.0, 30000.0, 65536.0, 1e6], size=ng)
        d_area = rng.choice([0.0, 100.0, 16384.0, 30000.0, 65536.0, 1e6], size=nd)
        matched, ignored, _ = match_group(iou, crowd, g_area, d_area, crowd_ignored)
        expect.append((matched, ignored))
        groups.append([nd, ng, base, d_row, g_row])
        ious.append(iou.ravel() if nd and ng else np.zeros(0))
        base += nd * ng if nd and ng else 0
        d_row += nd
        g_row += ng
        gts.append((crowd, g_area))
        dts.append(d_area)
    g_crowd = np.concatenate([c for c, _ in gts])
    g_ignore = out_of_range(np.concatenate([a for _, a in gts])).T | (g_crowd[:, None] & crowd_ignored)
    d_out = out_of_range(np.concatenate(dts)).T
    matched, ignored = kernel.greedy(MOD, np.concatenate(ious), np.array(groups), g_ignore, g_crowd, d_out,
                                     np.array(MATCH_THRS))
    np.testing.assert_array_equal(matched, np.concatenate([m for m, _ in expect]))
    np.testing.assert_array_equal(ignored, np.concatenate([i for _, i in expect]))


def _same(a, b) -> None:
    assert a.stats == b.stats
    np.testing.assert_array_equal(a.precision, b.precision)
    np.testing.assert_array_equal(a.recall, b.recall)
    np.testing.assert_array_equal(a.num_gt, b.num_gt)
    np.testing.assert_array_equal(a.num_results, b.num_results)
    assert a.base == b.base and a.novel == b.novel


CASES = [("ytvis", False), ("ytvis", True), ("lvvis", False), ("lvvis", True)]


@needs_kernel
@pytest.mark.parametrize("seed", range(5))
@pytest.mark.parametrize("flavor,agnostic", CASES)
def test_backends_give_identical_numbers(seed, flavor, agnostic, monkeypatch):
    rng = np.random.default_rng(1000 + seed)
    gt, results = random_case(rng, num_videos=6, num_frames=5, h=20, w=24, num_cats=4, lvvis=flavor == "lvvis",
                              crowd=0.2)
    if seed == 4:  # many small chunks: videos spread over several kernel scans
        monkeypatch.setattr(batched, "CHUNK_SLOTS", 7)
    kw = dict(flavor=flavor, class_agnostic=agnostic, progress=False)
    fast = evaluate_full(gt, results, backend="kernel", **kw)
    slow = evaluate_full(gt, results, backend="pycocotools", **kw)
    assert fast.info["backend"] == "kernel" and slow.info["backend"] == "pycocotools"
    _same(fast, slow)
    assert any(v > 0 for v in fast.stats.values())


@needs_kernel
def test_backends_agree_with_lenient_lengths_and_more_than_100_predictions():
    rng = np.random.default_rng(7)
    gt, results = random_case(rng, num_videos=2, num_cats=2, num_frames=4)
    results = results + [dict(r, score=float(rng.random())) for r in results for _ in range(60)]
    for i, r in enumerate(results):
        if i % 4 == 1:
            r["segmentations"] = r["segmentations"][:2]
        elif i % 4 == 2:
            r["segmentations"] = r["segmentations"] + r["segmentations"][:2]
    for agnostic in (False, True):
        kw = dict(lenient=True, class_agnostic=agnostic, progress=False)
        fast = evaluate_full(gt, results, backend="kernel", **kw)
        _same(fast, evaluate_full(gt, results, backend="pycocotools", **kw))


def test_many_categories_match_the_reference():
    """Accumulation runs all categories of an area range at once: check it on 30 categories, crowd included."""
    rng = np.random.default_rng(8)
    gt, results = random_case(rng, num_videos=10, num_frames=2, num_cats=30, lvvis=True, crowd=0.3)
    for flavor in ("ytvis", "lvvis"):
        res = evaluate_full(gt, results, flavor=flavor, progress=False)
        ref = reference_evaluate(gt, results, flavor=flavor)
        np.testing.assert_array_equal(res.precision, ref["precision"])
        np.testing.assert_array_equal(res.recall, ref["recall"])
        assert all(res.stats[k] == ref[k] for k in STAT_NAMES)


@pytest.mark.parametrize("backend", ["kernel", "pycocotools"])
@pytest.mark.parametrize("where", ["gt", "result"])
def test_bad_rle_message_names_the_first_bad_frame(backend, where):
    if backend == "kernel" and MOD is None:
        pytest.skip(WHY)
    h, w = 6, 7
    m = box(h, w, 1, 1, 4, 5)
    gt = make_gt([(1, h, w, 2), (2, h, w, 2)], [1], [{"video_id": v, "category_id": 1, "masks": [m, m]}
                                                      for v in (1, 2)])
    results = [pred(v, 1, 0.9, [m, m]) for v in (1, 2, 2)]
    bad = encode_counts([h * w - 1])
    if where == "gt":
        gt["annotations"][1]["segmentations"][1]["counts"] = bad
        expect = "<memory>: annotations[1].segmentations[1] (video 2)"
    else:
        results[2]["segmentations"][0]["counts"] = bad
        results[1]["segmentations"][1]["counts"] = bad
        expect = "<results>: result[1].segmentations[1] (video 2)"
    with pytest.raises(WsovvisError, match=r"do not add up to 6x7 pixels") as e:
        evaluate_full(gt, results, backend=backend, progress=False)
    assert str(e.value).startswith(expect), str(e.value)


def test_fallback_warns_once_and_gives_the_same_numbers(monkeypatch, caplog):
    rng = np.random.default_rng(9)
    gt, results = random_case(rng)
    expect = evaluate_full(gt, results, backend="pycocotools", progress=False)
    monkeypatch.delenv(kernel.ENV_VAR, raising=False)
    monkeypatch.setattr(kernel, "_state", {"module": None, "why": "wsovvis.evaluation._rle_kernel is not built (test)"})
    with caplog.at_level(logging.WARNING, logger="wsovvis.evaluation.kernel"):
        got = [evaluate_full(gt, results, progress=False) for _ in range(2)]
    warnings = [r.getMessage() for r in caplog.records if "_rle_kernel" in r.getMessage()]
    assert len(warnings) == 1 and "pip install --no-build-isolation --no-deps -e ." in warnings[0]
    for g in got:
        assert g.info["backend"] == "pycocotools"
        _same(g, expect)
    with pytest.raises(WsovvisError, match="backend 'kernel' requested but .* not built"):
        evaluate_full(gt, results, backend="kernel")
    with pytest.raises(WsovvisError, match="unknown evaluation backend 'gpu'"):
        evaluate_full(gt, results, backend="gpu")


def test_stale_build_is_not_used(monkeypatch):
    import sys
    import types

    fake = types.ModuleType("wsovvis.evaluation._rle_kernel")
    fake.ABI = kernel.ABI - 1
    monkeypatch.setitem(sys.modules, "wsovvis.evaluation._rle_kernel", fake)
    monkeypatch.setattr(kernel, "_state", {})
    mod, why = kernel.load()
    assert mod is None and "stale" in why


def test_env_var_selects_the_backend(monkeypatch):
    rng = np.random.default_rng(10)
    gt, results = random_case(rng)
    monkeypatch.setenv(kernel.ENV_VAR, "pycocotools")
    assert evaluate_full(gt, results, progress=False).info["backend"] == "pycocotools"


def test_input_check_verdicts_do_not_depend_on_the_kernel():
    h, w = 4, 5
    m = box(h, w, 0, 0, 2, 2)
    gt = make_gt([(1, h, w, 2)], [1], [{"video_id": 1, "category_id": 1, "masks": [m, m]}])
    good = pred(1, 1, 0.5, [m, None])
    c = good["segmentations"][0]["counts"]
    variants = [
        good,
        dict(good, segmentations=[{"size": (h, w), "counts": c}, None]),  # tuple size: accepted (slow path)
        dict(good, segmentations=[{"size": [h, w], "counts": c.encode()}, None]),
        dict(good, segmentations=[{"size": [float(h), w], "counts": c}, None]),
        dict(good, segmentations=[{"size": [h, w + 1], "counts": c}, None]),
        dict(good, segmentations=[{"counts": c}, None]),
        dict(good, segmentations=[[1, 2], None]),
        dict(good, score=1),
        dict(good, score=np.float32(0.5)),
    ]
    _, parsed = load_gt(gt, "ytvis")
    for v in variants:
        outcomes = []
        for use_kernel in (True, False):
            try:
                outcomes.append(check_results([v], "<r>", parsed["videos"], {1}, False, use_kernel)[0])
            except WsovvisError as e:
                outcomes.append(str(e))
        assert outcomes[0] == outcomes[1], v


def test_kernel_is_built_where_a_compiler_exists():
    """A silent build failure (the extension is optional) would only show as a slow evaluator: fail loudly."""
    cc = (sysconfig.get_config_var("CC") or "cc").split()[0]
    header = Path(sysconfig.get_paths()["include"]) / "Python.h"
    if not shutil.which(cc) or not header.exists():
        pytest.skip(f"no C compiler ({cc}) or Python headers ({header}): the pycocotools path is used")
    assert MOD is not None, f"{WHY}; {kernel.BUILD_HINT}"
