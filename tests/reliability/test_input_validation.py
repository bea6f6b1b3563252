"""Bad inputs are errors naming the file and the item (issue #11 item 6 and the error boundary of item 2)."""

from __future__ import annotations

import errno
import json
import os
import shutil

import numpy as np
import pytest
from PIL import Image

from wsovvis.cli import main as cli_main
from wsovvis.data import ytvis
from wsovvis.data.convert import convert
from wsovvis.data.dataset import read_frame, truncated_image
from wsovvis.data.synthetic import generate_dataset
from wsovvis.errors import WsovvisError


@pytest.fixture(scope="module")
def small(tmp_path_factory):
    return generate_dataset(tmp_path_factory.mktemp("validation"), num_videos=2, num_frames=3, height=32, width=48,
                            seed=5, progress=False)


def _copy(ds, tmp_path):
    root = tmp_path / "set"
    shutil.copytree(ds.root, root)
    return root


def test_one_rgb_png_in_a_palette_video_is_named_not_split_into_tracks(small, tmp_path, capsys):
    root = _copy(small, tmp_path)
    odd = root / "Annotations" / "synth_0000" / "00001.png"
    ids = np.asarray(Image.open(odd))
    Image.fromarray(np.stack([ids, ids * 0, ids * 0], -1).astype(np.uint8), mode="RGB").save(odd)
    report = convert(root / "Annotations", root / "JPEGImages", tmp_path / "out.json", progress=False)
    skipped = {s["video"]: s for s in report["skipped"]}
    assert skipped["synth_0000"]["reason"] == "mixed_id_formats"
    assert str(odd) in skipped["synth_0000"]["detail"] and "rgb" in skipped["synth_0000"]["detail"]
    assert report["counts"]["videos_converted"] == 1
    # `check` against the mask folder names the odd file too
    rc = cli_main(["check", str(small.gt_json), "--img_root", str(root / "JPEGImages"), "--mask_root",
                   str(root / "Annotations"), "--no_progress"])
    out = capsys.readouterr().out
    assert rc == 1 and "mixed_id_formats" in out and "00001.png" in out


def test_non_finite_gt_numbers_are_errors(small, tmp_path, capsys):
    data = json.loads(small.gt_json.read_text())
    data["annotations"][0]["areas"][0] = float("nan")
    data["annotations"][1]["bboxes"][1] = [1.0, 2.0, float("inf"), 3.0]
    bad = tmp_path / "nan_gt.json"
    bad.write_text(json.dumps(data))  # json writes NaN / Infinity literals
    kinds = {p.kind for p in ytvis.validate(json.loads(bad.read_text()))}
    assert "non_finite" in kinds
    rc = cli_main(["check", str(bad), "--no_progress"])
    out = capsys.readouterr().out
    assert rc in (1, 2) and "annotations[0].areas[0]" in (out + capsys.readouterr().err)
    rc = cli_main(["eval", "--gt", str(bad), "--results", str(small.gt_json)])
    err = capsys.readouterr().err
    assert rc == 2 and "annotations[0].areas[0]" in err and "finite" in err


def test_file_names_may_not_leave_the_image_root(small, tmp_path):
    data = json.loads(small.gt_json.read_text())
    data["videos"][0]["file_names"][1] = "../../etc/passwd"
    problems = [p for p in ytvis.validate(data) if p.kind == "path_outside_root"]
    assert problems and problems[0].path == "videos[0].file_names[1]" and "etc/passwd" in str(problems[0])
    bad = tmp_path / "escape.json"
    bad.write_text(json.dumps(data))
    with pytest.raises(WsovvisError, match=r"file_names\[1\].*leaves the image root"):
        ytvis.load(bad)
    assert not ytvis.escapes_root("a/../b.jpg") and ytvis.escapes_root("/abs.jpg")


def _truncate(path, keep=0.6):
    raw = path.read_bytes()
    path.write_bytes(raw[: int(len(raw) * keep)])


def test_truncated_frames_are_named(small, tmp_path):
    root = _copy(small, tmp_path)
    frame = root / "JPEGImages" / "synth_0001" / "00002.jpg"
    assert truncated_image(frame) is None
    _truncate(frame)
    assert "truncated JPEG" in truncated_image(frame)
    with pytest.raises(WsovvisError, match=rf"{frame}: frame \(video v\) is a truncated JPEG.*data.bad_frames=skip"):
        read_frame(frame, "v")
    png = root / "Annotations" / "synth_0000" / "00000.png"
    _truncate(png, 0.9)
    assert "truncated PNG" in truncated_image(png)


def test_training_data_truncated_frame_fails_or_skips_by_config(small, tmp_path):
    from wsovvis.data.dataset import YTVISClipDataset
    from wsovvis.data.transforms import ClipAugmentation

    root = _copy(small, tmp_path)
    frame = root / "JPEGImages" / "synth_0001" / "00002.jpg"
    _truncate(frame)
    kw = dict(num_frames=2, frame_range=2, augmentation=ClipAugmentation(min_sizes=[32], max_size=64))
    with pytest.raises(WsovvisError, match=rf"{frame} is a truncated JPEG.*synth_0001.*data.bad_frames=skip"):
        YTVISClipDataset(small.gt_json, root / "JPEGImages", **kw)
    ds = YTVISClipDataset(small.gt_json, root / "JPEGImages", bad_frames="skip", **kw)
    assert len(ds) == 1 and [s.name for s in ds.skipped] == ["synth_0001"]
    assert "truncated frame" in ds.skipped[0].reason and str(frame) in ds.skipped[0].reason


def test_synth_absurd_size_fails_before_allocating(tmp_path, capsys):
    rc = cli_main(["synth", "--out", str(tmp_path / "s"), "--num_frames", "10000", "--height", "8000", "--width",
                   "8000", "--no_progress"])
    err = capsys.readouterr().err
    assert rc == 2 and "GiB of memory" in err and "Traceback" not in err
    assert not (tmp_path / "s").exists()


def test_deeply_nested_json_is_a_message(tmp_path, capsys):
    deep = tmp_path / "deep.json"
    deep.write_text("[" * 100_000 + "]" * 100_000)
    for argv in (["check", str(deep), "--no_progress"], ["eval", "--gt", str(deep), "--results", str(deep)]):
        rc = cli_main(argv)
        err = capsys.readouterr().err
        assert rc == 2 and str(deep) in err and "Traceback" not in err, (argv, err[-500:])


def test_output_path_problems_are_messages(small, tmp_path, capsys):
    blocker = tmp_path / "afile"
    blocker.write_text("x")
    rc = cli_main(["convert", "--mask_root", str(small.mask_root), "--img_root", str(small.img_root), "--out_json",
                   str(blocker / "out.json"), "--no_progress"])
    err = capsys.readouterr().err
    assert rc == 2 and "\nerror: " in "\n" + err and str(blocker) in err and "Traceback" not in err
    rc = cli_main(["convert", "--mask_root", str(small.mask_root), "--img_root", str(small.img_root), "--out_json",
                   str(tmp_path), "--no_progress"])  # a directory as the output file
    err = capsys.readouterr().err
    assert rc == 2 and "\nerror: " in "\n" + err and "Traceback" not in err


def test_full_disk_is_a_message_and_verbose_shows_the_traceback(small, tmp_path, capsys, monkeypatch):
    import wsovvis.utils.io as io_mod

    real = io_mod.os.fsync

    def no_space(fd):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(io_mod.os, "fsync", no_space)
    argv = ["convert", "--mask_root", str(small.mask_root), "--img_root", str(small.img_root), "--out_json",
            str(tmp_path / "o.json"), "--no_progress"]
    rc = cli_main(argv)
    err = capsys.readouterr().err
    assert rc == 2 and "No space left on device" in err and "Traceback" not in err
    rc = cli_main(["--verbose", *argv])
    err = capsys.readouterr().err
    assert rc == 2 and "Traceback" in err and "error: " in err
    monkeypatch.setattr(io_mod.os, "fsync", real)
    assert not list(tmp_path.glob(".*.tmp")), "a failed write leaves no temp file"


def test_symlink_loop_in_a_mask_folder_is_a_message(small, tmp_path, capsys):
    root = _copy(small, tmp_path)
    loop = root / "Annotations" / "synth_0000" / "loop.png"
    os.symlink(loop, loop)
    rc = cli_main(["convert", "--mask_root", str(root / "Annotations"), "--img_root", str(root / "JPEGImages"),
                   "--out_json", str(tmp_path / "o.json"), "--no_progress"])
    captured = capsys.readouterr()
    assert rc in (0, 2) and "Traceback" not in captured.err
    if rc == 0:  # the looping entry is skipped as a video problem, named in the report
        report = json.loads((tmp_path / "o.skipped.json").read_text())
        assert any("loop.png" in s["detail"] for s in report["skipped"]), report["skipped"]
    else:
        assert "loop.png" in captured.err
