"""The export's fast I/O path: batched writev framing and the one-read file reader equal the plain versions."""

from __future__ import annotations

import os

import numpy as np
import pytest

from wsovvis.export import example_proto, shards, tfrecord


def _records(rng, n):
    return [[rng.bytes(int(k)) for k in rng.choice([0, 3, 70, 5000, 70000], size=rng.integers(0, 4))]
            for _ in range(n)]


@pytest.mark.parametrize("flush_bytes,max_pieces", [(1 << 20, 512), (1, 512), (1 << 30, 7)])
def test_record_writer_equals_write_record_parts(tmp_path, flush_bytes, max_pieces):
    rng = np.random.default_rng(1)
    recs = _records(rng, 60)
    with open(tmp_path / "ref", "wb") as f:
        sizes = [tfrecord.write_record_parts(f, parts) for parts in recs]
    with open(tmp_path / "new", "wb") as f:
        w = tfrecord.RecordWriter(f.fileno(), flush_bytes=flush_bytes, max_pieces=max_pieces)
        assert [w.write(parts) for parts in recs] == sizes
        w.flush()
    assert (tmp_path / "new").read_bytes() == (tmp_path / "ref").read_bytes()
    assert list(tfrecord.read_records(tmp_path / "new")) == [b"".join(p) for p in recs]


def test_record_writer_finishes_partial_writes(tmp_path, monkeypatch):
    """A regular file may take fewer bytes than a writev offers: the rest goes out, in order."""
    real = os.writev
    calls = []

    def short_writev(fd, bufs):
        budget = 1000 + 37 * len(calls)  # never all of it, a cut inside a piece every time
        calls.append(budget)
        out = []
        for b in bufs:
            b = bytes(b)[:budget - sum(map(len, out))]
            out.append(b)
            if sum(map(len, out)) >= budget:
                break
        return real(fd, out)

    monkeypatch.setattr(tfrecord.os, "writev", short_writev)
    recs = _records(np.random.default_rng(2), 20)
    with open(tmp_path / "x", "wb") as f:
        w = tfrecord.RecordWriter(f.fileno())
        for parts in recs:
            w.write(parts)
        w.flush()
    assert len(calls) > 5
    assert list(tfrecord.read_records(tmp_path / "x")) == [b"".join(p) for p in recs]


def test_encoded_parts_pass_big_values_through_uncopied():
    img = os.urandom(70000)
    feats = {"image/encoded": ("bytes", [img]), "image/id": ("int64", [70000]), "objects/area": ("int64", [409920]),
             "objects/bbox": ("float", [0.25, 0.5, 0.75, 1.0])}
    parts = example_proto.encode_example_parts(feats)
    assert any(p is img for p in parts)
    assert b"".join(parts) == example_proto.encode_example_protobuf(feats)


def test_read_bytes(tmp_path):
    for n in (0, 1, 65536, 3 << 20):
        p = tmp_path / f"f{n}"
        data = os.urandom(n)
        p.write_bytes(data)
        assert shards.read_bytes(str(p)) == data
    with pytest.raises(FileNotFoundError):
        shards.read_bytes(str(tmp_path / "missing"))


def test_read_bytes_reads_past_a_stale_size(tmp_path, monkeypatch):
    """A file that grew (or shrank) after its fstat is still read to its end."""
    data = os.urandom(100000)
    (tmp_path / "f").write_bytes(data)
    for stale in (10, 200000):
        monkeypatch.setattr(shards.os, "fstat", lambda fd, s=stale: os.stat_result((0,) * 6 + (s,) + (0,) * 3))
        assert shards.read_bytes(str(tmp_path / "f")) == data


def test_record_writer_starts_writeback_in_contiguous_ranges(tmp_path, monkeypatch):
    calls = []
    real = tfrecord.start_writeback
    monkeypatch.setattr(tfrecord, "start_writeback", lambda fd, off, n: (calls.append((off, n)), real(fd, off, n)))
    recs = _records(np.random.default_rng(3), 40)
    with open(tmp_path / "x", "wb") as f:
        w = tfrecord.RecordWriter(f.fileno(), flush_bytes=50000, writeback_bytes=100000)
        for parts in recs:
            w.write(parts)
        w.flush()
    size = (tmp_path / "x").stat().st_size
    assert len(calls) >= 3 and calls[0][0] == 0 and all(n >= 100000 for _, n in calls)
    assert all(a + n == b for (a, n), (b, _) in zip(calls, calls[1:])) and calls[-1][0] + calls[-1][1] <= size
    assert list(tfrecord.read_records(tmp_path / "x")) == [b"".join(p) for p in recs]


def test_read_ahead_switches_on_after_a_slow_read_only(tmp_path, monkeypatch):
    paths = []
    for i in range(120):
        (tmp_path / f"{i}.bin").write_bytes(b"x")
        paths.append(str(tmp_path / f"{i}.bin"))
    paths[30] = str(tmp_path / "missing.bin")  # advising it must not fail: its own read reports it
    advised = []
    real_fadvise = os.posix_fadvise
    monkeypatch.setattr(shards.os, "posix_fadvise",
                        lambda fd, off, n, how: (advised.append(os.readlink(f"/proc/self/fd/{fd}")),
                                                 real_fadvise(fd, off, n, how)))
    ahead = shards.ReadAhead(paths)
    for i in range(5):  # page-cache reads: nothing advised
        ahead.before(i)
        ahead.after(i, 1e-6)
    assert advised == []
    ahead.before(5)
    ahead.after(5, 0.01)  # a disk read: the next READ_AHEAD files are advised, each once
    for i in range(6, 9):
        ahead.before(i)
        ahead.after(i, 1e-6)
    assert advised == paths[7:8 + shards.READ_AHEAD]  # not the file being read: the read itself asks for it
    for i in range(9, 120):
        ahead.before(i)
        ahead.after(i, 1e-6)
    # on while reading up to 4*READ_AHEAD images past the slow one, then off
    assert advised == [p for p in paths[7:5 + 5 * shards.READ_AHEAD] if "missing" not in p]
    ahead = shards.ReadAhead(paths)
    advised.clear()
    ahead.after(0, 0.01)
    for i in range(1, 120):
        ahead.before(i)
        ahead.after(i, 1e-6)
    assert advised == [p for p in paths[2:5 * shards.READ_AHEAD] if "missing" not in p]


def test_export_with_read_ahead_and_writeback_writes_the_same_bytes(synthetic_data, tmp_path, monkeypatch):
    import json

    from wsovvis.data import coco as coco_io

    data = coco_io.ytvis_to_coco(json.loads(synthetic_data.gt_json.read_text()))
    shards.export_tfrecord(data, synthetic_data.img_root, tmp_path / "a" / "train", num_shards=2, progress=False)
    advised = []
    monkeypatch.setattr(shards, "SLOW_READ_S", -1.0)  # every read counts as a disk read: read-ahead always on
    monkeypatch.setattr(shards.os, "posix_fadvise", lambda fd, off, n, how: advised.append(how))
    kw = tfrecord.RecordWriter.__init__.__kwdefaults__
    for key, value in (("flush_bytes", 4096), ("max_pieces", 7), ("writeback_bytes", 10000)):  # tiny batches
        monkeypatch.setitem(kw, key, value)
    shards.export_tfrecord(data, synthetic_data.img_root, tmp_path / "b" / "train", num_shards=2, progress=False)
    # per shard, all but image 0 (read before the first slow read) and 1 (being read when switched on)
    assert len(advised) == len(data["images"]) - 2 * 2 and set(advised) == {os.POSIX_FADV_WILLNEED}
    for a, b in zip(shards.shard_paths(tmp_path / "a" / "train", 2), shards.shard_paths(tmp_path / "b" / "train", 2)):
        assert a.read_bytes() == b.read_bytes() and a.stat().st_size > 0


def test_shard_records_equal_the_protobuf_runtimes_bytes(synthetic_data, tmp_path):
    """Writer + direct encoder end to end: each record is what protobuf serializes for that image's features
    (scenic: no key is a prefix of another, so upb's order is C++'s); masks on, for several-value bytes lists."""
    import json

    from wsovvis.data import coco as coco_io
    from wsovvis.export.examples import image_features

    data = coco_io.ytvis_to_coco(json.loads(synthetic_data.gt_json.read_text()))
    data["annotations"][0]["bbox"] = [-3.5, 2.0, 500.0, 7.25]  # clipped
    shards.export_tfrecord(data, synthetic_data.img_root, tmp_path / "o" / "train", num_shards=2,
                           segmentation=True, progress=False)
    label_of = {c["id"]: i for i, c in enumerate(sorted(data["categories"], key=lambda c: c["id"]))}
    anns = {}
    for a in sorted(data["annotations"], key=lambda a: a["id"]):
        anns.setdefault(a["image_id"], []).append(a)
    images = sorted(data["images"], key=lambda im: im["id"])
    n = 0
    for k, path in enumerate(shards.shard_paths(tmp_path / "o" / "train", 2)):
        for im, record in zip(images[k::2], tfrecord.read_records(path), strict=True):
            jpeg = (synthetic_data.img_root / im["file_name"]).read_bytes()
            feats, _ = image_features("scenic", im, jpeg, anns.get(im["id"], []), label_of, segmentation=True)
            assert record == example_proto.encode_example_protobuf(feats)
            n += 1
    assert n == len(images)
