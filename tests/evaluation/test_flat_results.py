"""Results files read by the kernel's flat parser (`flat_results`) against the general reader and checks.

The oracle for every file: the same path evaluated with the pycocotools backend, which never uses the flat
parser (orjson/json + `check_results`). Files of the common shape must take the flat path and give identical
numbers; everything else must be declined and behave exactly as before (same numbers, warnings or message).
"""

from __future__ import annotations

import json

import numpy as np
import pytest

from wsovvis.errors import WsovvisError
from wsovvis.evaluation import batched, evaluate_full, evaluator, flat_results, kernel
from wsovvis.evaluation.inputs import check_inputs

from .helpers import box, make_gt, pred, random_case

MOD, WHY = kernel.load()
pytestmark = pytest.mark.skipif(MOD is None, reason=f"{WHY}; {kernel.BUILD_HINT}")


def _outcome(gt, path, backend, **kw):
    try:
        res = evaluate_full(gt, path, backend=backend, progress=False, **kw)
    except WsovvisError as e:
        return "error", str(e)
    return "ok", res


def _same_outcome(gt, path, **kw):
    """Kernel backend (flat parser when it accepts) vs pycocotools backend (general reader): identical."""
    a, b = _outcome(gt, path, "kernel", **kw), _outcome(gt, path, "pycocotools", **kw)
    assert a[0] == b[0], (a, b)
    if a[0] == "error":
        assert a[1] == b[1]
        return a[1]
    ra, rb = a[1], b[1]
    assert ra.stats == rb.stats
    np.testing.assert_array_equal(ra.precision, rb.precision)
    np.testing.assert_array_equal(ra.recall, rb.recall)
    np.testing.assert_array_equal(ra.num_results, rb.num_results)
    assert ra.info["warnings"] == rb.info["warnings"]
    assert ra.info["num_dropped"] == rb.info["num_dropped"]
    return ra


def _is_flat(gt, path, **kw) -> bool:
    return isinstance(check_inputs(gt, path, **kw).results, flat_results.FlatResults)


def _key_order(results, order):
    out = []
    for r in results:
        segs = [None if s is None else {k: s[k] for k in (("counts", "size") if order else ("size", "counts"))}
                for s in r["segmentations"]]
        keys = ("segmentations", "score", "video_id", "category_id") if order else tuple(r)
        out.append({k: (segs if k == "segmentations" else r[k]) for k in keys})
    return out


@pytest.mark.parametrize("seed", range(4))
@pytest.mark.parametrize("style", ["compact", "spaces", "indent", "reordered"])
def test_common_shape_takes_the_flat_path_with_identical_numbers(tmp_path, seed, style):
    rng = np.random.default_rng(seed)
    gt, results = random_case(rng, num_videos=5, num_frames=4, lvvis=seed % 2 == 1)
    flavor = "lvvis" if seed % 2 else "ytvis"
    if style == "reordered":
        results = _key_order(results, seed % 2 == 0)
    text = {
        "compact": lambda r: json.dumps(r, separators=(",", ":")),
        "spaces": json.dumps,
        "indent": lambda r: json.dumps(r, indent=2).replace("\n", "\r\n\t"),
        "reordered": json.dumps,
    }[style](results)
    path = tmp_path / "r.json"
    path.write_text(text)
    gt_path = tmp_path / "gt.json"
    gt_path.write_text(json.dumps(gt))
    assert _is_flat(gt_path, path, flavor=flavor)
    for agnostic in (False, True):
        _same_outcome(gt_path, path, flavor=flavor, class_agnostic=agnostic)
    # and against the in-memory list (no file at all)
    got = evaluate_full(gt, path, flavor=flavor, progress=False)
    ref = evaluate_full(gt, results, flavor=flavor, backend="pycocotools", progress=False)
    assert got.stats == ref.stats


def test_counts_with_backslashes_are_unescaped(tmp_path):
    """'\\' (char 92) is an RLE char, written as an escape in JSON: the parser unescapes it in place."""
    h, w = 8, 8
    m = np.zeros((h, w), bool)
    m[4:, 5] = True  # first run: 44 background pixels, encoded as the chars '\\' '1'
    gt = make_gt([(1, h, w, 3)], [1], [{"video_id": 1, "category_id": 1, "masks": [m, m, None]}])
    results = [pred(1, 1, 0.9, [m, m, m]), pred(1, 1, 0.4, [m, None, box(h, w, 0, 0, 8, 6)])]
    assert results[0]["segmentations"][0]["counts"].startswith("\\")
    path = tmp_path / "r.json"
    path.write_text(json.dumps(results))
    assert '"\\\\1' in path.read_text()
    flat = flat_results.read_flat(MOD, path)
    assert [flat[i] for i in range(2)] == results
    res = _same_outcome(gt, path)
    assert res.stats["AP"] > 0 and _is_flat(gt, path)


def test_items_are_what_the_general_reader_gives(tmp_path):
    rng = np.random.default_rng(5)
    _, results = random_case(rng)
    results[0]["score"] = 1  # an integer score reads as the same number
    path = tmp_path / "r.json"
    path.write_text(json.dumps(results))
    flat = flat_results.read_flat(MOD, path)
    assert flat is not None and len(flat) == len(results)
    for i, r in enumerate(results):
        assert flat[i] == r
        assert flat[i]["segmentations"] == r["segmentations"]
    assert flat[-1] == results[-1] and flat[1:3] == results[1:3]
    with pytest.raises(IndexError):
        flat[len(results)]


def test_pycocotools_matching_reads_flat_results_through_items(tmp_path):
    """The per-video path (used for frames of more than 2^32 pixels) takes flat results as a sequence."""
    rng = np.random.default_rng(6)
    gt, results = random_case(rng)
    path = tmp_path / "r.json"
    path.write_text(json.dumps(results))
    inp = check_inputs(gt, path)
    assert isinstance(inp.results, flat_results.FlatResults)
    rec, num_gt, num_res = evaluator._match_all(inp, False, False)
    ref = check_inputs(gt, results, use_kernel=False)
    rec2, num_gt2, num_res2 = evaluator._match_all(ref, False, False)
    for name in ("cat", "score", "rank", "matched", "ignored", "npig", "has_entry"):
        np.testing.assert_array_equal(getattr(rec, name), getattr(rec2, name))
    assert rec.matched.any()
    np.testing.assert_array_equal(num_res, num_res2)


def _base(h=6, w=7):
    m = box(h, w, 1, 1, 4, 5)
    gt = make_gt([(1, h, w, 2), (2, h, w, 2)], [1, 2], [{"video_id": v, "category_id": 1, "masks": [m, m]}
                                                         for v in (1, 2)])
    results = [pred(1, 1, 0.9, [m, m]), pred(2, 1, 0.8, [m, None]), pred(2, 2, 0.7, [None, m])]
    return gt, results, m


DECLINED = {
    "extra key": '[{"video_id":1,"category_id":1,"score":0.9,"segmentations":[null,null],"id":3}]',
    "duplicate key": '[{"video_id":1,"video_id":1,"category_id":1,"score":0.9,"segmentations":[null,null]}]',
    "missing key": '[{"video_id":1,"category_id":1,"segmentations":[null,null]}]',
    "float id": '[{"video_id":1.0,"category_id":1,"score":0.9,"segmentations":[null,null]}]',
    "huge id": '[{"video_id":12345678901234567890,"category_id":1,"score":0.9,"segmentations":[null,null]}]',
    "bool score": '[{"video_id":1,"category_id":1,"score":true,"segmentations":[null,null]}]',
    "NaN score": '[{"video_id":1,"category_id":1,"score":NaN,"segmentations":[null,null]}]',
    "overflowing score": '[{"video_id":1,"category_id":1,"score":1e400,"segmentations":[null,null]}]',
    "string score": '[{"video_id":1,"category_id":1,"score":"0.9","segmentations":[null,null]}]',
    "null segmentations": '[{"video_id":1,"category_id":1,"score":0.9,"segmentations":null}]',
    "uncompressed RLE": '[{"video_id":1,"category_id":1,"score":0.9,"segmentations":'
                        '[{"size":[6,7],"counts":[42]},null]}]',
    "polygon": '[{"video_id":1,"category_id":1,"score":0.9,"segmentations":[[1,2,3,4,5,6],null]}]',
    "unicode escape": '[{"video_id":1,"category_id":1,"score":0.9,"segmentations":'
                      '[{"size":[6,7],"counts":"\\u0030C"},null]}]',
    "non-RLE char": '[{"video_id":1,"category_id":1,"score":0.9,"segmentations":[{"size":[6,7],"counts":"~"},null]}]',
    "frame extra key": '[{"video_id":1,"category_id":1,"score":0.9,"segmentations":'
                       '[{"size":[6,7],"counts":"C","x":1},null]}]',
    "size of three": '[{"video_id":1,"category_id":1,"score":0.9,"segmentations":[{"size":[6,7,1],"counts":"C"}]}]',
    "mixed sizes": '[{"video_id":1,"category_id":1,"score":0.9,"segmentations":'
                   '[{"size":[6,7],"counts":"C"},{"size":[7,6],"counts":"C"}]}]',
    "empty list": "[]",
    "tube JSON": '{"videos": [], "annotations": []}',
    "trailing comma": '[{"video_id":1,"category_id":1,"score":0.9,"segmentations":[null,null]},]',
    "truncated": '[{"video_id":1,"category_id":1,"score":0.9,"segmentations":[null,null]}',
    "trailing garbage": '[{"video_id":1,"category_id":1,"score":0.9,"segmentations":[null,null]}] x',
    "leading zero": '[{"video_id":01,"category_id":1,"score":0.9,"segmentations":[null,null]}]',
    "bare dot": '[{"video_id":1,"category_id":1,"score":.9,"segmentations":[null,null]}]',
    "not UTF-8": b'[{"video_id":1,"category_id":1,"score":0.9,"segmentations":[null,null],"\xff":1}]',
}


@pytest.mark.parametrize("name", sorted(DECLINED))
def test_declined_files_behave_as_before(tmp_path, name):
    gt, _, _ = _base()
    raw = DECLINED[name]
    path = tmp_path / "r.json"
    path.write_bytes(raw if isinstance(raw, bytes) else raw.encode())
    assert flat_results.read_flat(MOD, path) is None
    _same_outcome(gt, path, allow_drops=True)


@pytest.mark.parametrize("score", ["0.1", "-0", "5", "1E+2", "1e-7", "0.30000000000000004", "2.5e-308",
                                   "123456789012345678", "9007199254740993", "0.1000000000000000055511151231257827"])
def test_scores_read_as_the_general_reader_reads_them(tmp_path, score):
    path = tmp_path / "r.json"
    path.write_text(f'[{{"video_id":1,"category_id":1,"score":{score},"segmentations":[]}}]')
    flat = flat_results.read_flat(MOD, path)
    assert flat is not None
    assert flat.score[0] == float(json.loads(score))


def test_problems_found_by_the_checks_get_the_general_message(tmp_path):
    gt, results, m = _base()
    gt_path = tmp_path / "gt.json"
    gt_path.write_text(json.dumps(gt))
    path = tmp_path / "r.json"

    def run(rs, **kw):
        path.write_text(json.dumps(rs))
        assert flat_results.read_flat(MOD, path) is not None  # the parser accepts: the checks decide
        return _same_outcome(gt_path, path, **kw)

    ok = run(results)
    assert ok.info["num_results"] == 3
    assert "video ids not in the GT: 9" in run(results + [pred(9, 1, 0.5, [m, m])])
    assert "whose segmentation list length is not the video length" in run(results + [pred(1, 1, 0.5, [m])])
    lenient = run(results + [pred(1, 1, 0.5, [m])], lenient=True)
    assert any("--lenient" in w for w in lenient.info["warnings"])
    wrong = pred(1, 1, 0.5, [m, m])
    wrong["segmentations"][1]["size"] = [7, 6]
    wrong["segmentations"][0]["size"] = [7, 6]
    assert "RLE size [7, 6] != video 1 size" in run(results + [wrong])
    bad = pred(2, 1, 0.5, [m, m])
    bad["segmentations"][1]["counts"] = "0"
    msg = run(results + [bad])
    assert msg.startswith(f"{path}: result[3].segmentations[1] (video 2): malformed compressed RLE")
    # dropped categories: same warning and count on both paths; above 5% an error unless allowed
    many = results * 10 + [pred(1, 7, 0.5, [m, m])]
    dropped = run(many)
    assert dropped.info["num_dropped"] == 1 and _is_flat(gt_path, path)
    assert any("dropped 2 result(s)" in w for w in run(results + [pred(1, 7, 0.5, [m, m])] * 2,
                                                        allow_drops=True).info["warnings"])
    assert "--allow_drops" in run(results + [pred(1, 7, 0.5, [m, m])] * 2)
    # all results of one category the GT lacks
    assert "--allow_drops" in run([pred(1, 7, 0.5, [m, m])])


def test_missing_and_unreadable_files_get_the_general_message(tmp_path):
    gt, _, _ = _base()
    with pytest.raises(WsovvisError, match="results JSON does not exist"):
        evaluate_full(gt, tmp_path / "nope.json", backend="kernel")
    for text in ("[{", ""):
        (tmp_path / "r.json").write_text(text)
        assert flat_results.read_flat(MOD, tmp_path / "r.json") is None
        with pytest.raises(WsovvisError, match=r"r\.json: unreadable results JSON"):
            evaluate_full(gt, tmp_path / "r.json", backend="kernel")


def test_parser_never_reads_past_a_truncated_buffer(tmp_path):
    """Every prefix of a valid file is declined (only the whole file parses)."""
    _, results, _ = _base()
    raw = json.dumps(results).encode()
    for n in range(len(raw)):
        assert MOD.parse_results(bytearray(raw[:n])) is None, n
    assert MOD.parse_results(bytearray(raw)) is not None
    with pytest.raises(BufferError):
        MOD.parse_results(raw)  # bytes are read-only: counts are unescaped in place


def test_every_byte_in_counts_is_classified_like_the_bytewise_rule():
    """The word-at-a-time test of counts chars agrees with the rule: RLE chars '0'..'o' except a raw '\\'."""
    head = b'[{"video_id":1,"category_id":1,"score":0.5,"segmentations":[{"size":[1,1],"counts":"'
    tail = b'"}]}]'
    for b in range(256):
        for k in (0, 3, 7, 8, 12, 19):
            s = bytearray(b"0123456789:;<=>?@ABC")
            s[k] = b
            parsed = MOD.parse_results(bytearray(head + bytes(s) + tail))
            ok = 48 <= b <= 111 and b != 92
            assert (parsed is not None) == ok, (b, k)
            if ok:
                assert MOD.flat_item(parsed[0], 0)[0]["counts"] == s.decode()
    # escaped backslashes anywhere, including across the 8-byte steps
    for k in range(12):
        text = "0" * k + "\\" + "a" * (11 - k) + "\\\\"
        parsed = MOD.parse_results(bytearray(head + json.dumps(text)[1:-1].encode() + tail))
        assert MOD.flat_item(parsed[0], 0)[0]["counts"] == text


def test_mutated_files_are_read_as_json_reads_them_or_declined():
    """Random byte edits of a small file: whatever the parser accepts is valid JSON of the common shape, and
    every result reads exactly as ``json.loads`` reads it."""
    rng = np.random.default_rng(0)
    _, results, _ = _base()
    raw = json.dumps(results, indent=1).encode()
    alphabet = b' \t\n\r",:[]{}\\0123456789.eE+-nultrufalsecountsizevideo_idcategory_idscoresegmentations\xff'
    accepted = 0
    for _ in range(3000):
        buf = bytearray(raw)
        for _ in range(int(rng.integers(1, 4))):
            k = int(rng.integers(0, len(buf)))
            op = rng.integers(0, 3)
            if op == 0:
                buf[k] = alphabet[int(rng.integers(0, len(alphabet)))]
            elif op == 1:
                del buf[k]
            else:
                buf.insert(k, alphabet[int(rng.integers(0, len(alphabet)))])
        text = bytes(buf)
        parsed = MOD.parse_results(buf)
        if parsed is None:
            continue
        accepted += 1
        ref = json.loads(text)
        flat = flat_results.FlatResults(MOD, parsed)
        assert [flat[i] for i in range(len(flat))] == ref, text
    assert accepted > 100  # edits inside counts strings, numbers and whitespace keep the common shape


@pytest.mark.parametrize("threads", [1, 3])
def test_threaded_chunks_give_the_same_numbers_and_the_first_bad_frame(tmp_path, monkeypatch, threads):
    """Many small chunks scanned in threads (forced, whatever the core count): same numbers as the per-video
    path, and a bad frame is reported as the first one in scan order even when a later chunk also has one."""
    rng = np.random.default_rng(11)
    gt, results = random_case(rng, num_videos=8, num_frames=4, h=20, w=24, num_cats=3)
    monkeypatch.setattr(batched, "CHUNK_SLOTS", 9)
    monkeypatch.setattr(batched, "num_workers", lambda n: min(threads, n))
    path = tmp_path / "r.json"
    path.write_text(json.dumps(results))
    for agnostic in (False, True):
        _same_outcome(gt, path, class_agnostic=agnostic)
    late = max(i for i, r in enumerate(results) if any(r["segmentations"]))
    early = min(i for i, r in enumerate(results) if r["video_id"] == 2 and any(r["segmentations"]))
    for i in (late, early):
        t = next(t for t, s in enumerate(results[i]["segmentations"]) if s is not None)
        results[i]["segmentations"][t]["counts"] = "0"
    path.write_text(json.dumps(results))
    msg = _same_outcome(gt, path)
    t = next(t for t, s in enumerate(results[early]["segmentations"]) if s is not None)
    assert msg.startswith(f"{path}: result[{early}].segmentations[{t}] (video 2): malformed"), msg


def test_real_model_predictions_take_the_flat_path(real_data):
    """Real mmtracking predictions on YouTube-VIS 2019 (absent frames, real RLE with escapes): read by the flat
    parser, and the same numbers as the general reader gives, per-category and class-agnostic."""
    root = real_data / "ytvis2019_mmtracking_demo"
    gt, res = root / "ytvis_format_DERIVED.json", root / "results_mmtracking_format.json"
    assert "\\\\" in res.read_text()
    assert _is_flat(gt, res)
    for agnostic in (False, True):
        out = _same_outcome(gt, res, class_agnostic=agnostic)
        assert out.stats["AP"] > 0
