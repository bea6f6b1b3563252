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
