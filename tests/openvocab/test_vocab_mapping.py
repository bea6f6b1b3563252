"""Open-vocabulary evaluation on your own data: names -> the GT's ids, base/novel partitions, drops."""

from __future__ import annotations

import json

import pytest

from tests.openvocab.helpers import make_colour_videos, write_vocab_txt
from wsovvis.cli import main as cli_main
from wsovvis.errors import WsovvisError
from wsovvis.evaluation import evaluate
from wsovvis.openvocab.vocab import align_vocab, load_vocab, name_key


@pytest.fixture(scope="module")
def videos(tmp_path_factory):
    return make_colour_videos(tmp_path_factory.mktemp("vm"), num_videos=4, num_frames=3, h=48, w=64, objects=2,
                              seed=3)


def test_name_key_and_alignment(tmp_path):
    assert name_key("Traffic_Light") == name_key("traffic  light") == "traffic light"
    ref = tmp_path / "ref.json"
    ref.write_text(json.dumps({"categories": [{"id": 10, "name": "dog", "partition": 0},
                                              {"id": 42, "name": "traffic_light", "partition": 2}]}))
    txt = write_vocab_txt(tmp_path / "v.txt", ["Traffic Light", "dog"])
    v = align_vocab(load_vocab(txt), load_vocab(ref))
    assert v.ids == [42, 10] and v.names == ["Traffic Light", "dog"]
    assert [c["partition"] for c in v.categories] == [2, 0]
    bad = write_vocab_txt(tmp_path / "b.txt", ["dog", "cat", "emu"])
    with pytest.raises(WsovvisError, match=r"b.txt: 2 name\(s\) not among the 2 categories of .*ref.json: "
                                           r"'cat', 'emu'"):
        align_vocab(load_vocab(bad), load_vocab(ref))


def test_text_vocabulary_in_another_order_maps_to_the_gt_ids(videos, tmp_path, capsys):
    """A text vocabulary in reversed order: by line order every id would be wrong; by name every one is right."""
    gt = json.loads(videos["gt"].read_text())
    names = [c["name"] for c in gt["categories"]][::-1]
    vocab = write_vocab_txt(tmp_path / "vocab.txt", names)
    emb, out = tmp_path / "emb", tmp_path / "labelled.json"
    assert cli_main(["agnostic", "--in_json", str(videos["gt"]), "--out_json", str(tmp_path / "tubes.json")]) == 0
    assert cli_main(["embed", "--tubes", str(tmp_path / "tubes.json"), "--img_root", str(videos["img_root"]),
                     "--out", str(emb), "--model", "colorhist:", "--num_workers", "0", "--no_progress"]) == 0
    res = tmp_path / "res.json"
    common = ["label", "--tubes", str(tmp_path / "tubes.json"), "--embeddings", str(emb), "--vocab", str(vocab)]
    assert cli_main([*common, "--out", str(out), "--results_out", str(res), "--categories_from",
                     str(videos["gt"])]) == 0
    stats = evaluate(videos["gt"], res, flavor="lvvis")
    assert stats["AP"] >= 0.9
    # the same vocabulary numbered by line order: most results carry ids of other categories -> refused
    res_lines = tmp_path / "res_lines.json"
    assert cli_main([*common, "--out", str(tmp_path / "l2.json"), "--results_out", str(res_lines)]) == 0
    by_line = evaluate(videos["gt"], res_lines, flavor="lvvis", allow_drops=True)
    assert by_line["AP"] < stats["AP"]


def test_vocab_command_adds_partitions_for_lvvis_eval(videos, tmp_path, capsys):
    gt = json.loads(videos["gt"].read_text())
    plain = dict(gt, categories=[{k: v for k, v in c.items() if k != "partition"} for c in gt["categories"]])
    plain_path = tmp_path / "plain.json"
    plain_path.write_text(json.dumps(plain))
    preds = [{"video_id": a["video_id"], "category_id": a["category_id"], "score": 0.9,
              "segmentations": a["segmentations"]} for a in gt["annotations"]]
    # the GT itself as a tube JSON is fine as results; the GT without partitions is not, for --flavor lvvis
    assert cli_main(["eval", "--gt", str(plain_path), "--results", str(videos["gt"]), "--flavor", "lvvis"]) == 2
    assert "partition" in capsys.readouterr().err
    novel = [gt["categories"][0]["name"].upper(), gt["categories"][1]["name"]]
    out = tmp_path / "lvvis.json"
    assert cli_main(["vocab", "--from", str(plain_path), "--novel", ",".join(novel), "--out", str(out)]) == 0
    got = json.loads(out.read_text())
    assert [c["partition"] for c in got["categories"]] == [2, 2] + [0] * (len(gt["categories"]) - 2)
    assert got["videos"] == gt["videos"] and got["annotations"] == gt["annotations"]
    stats = evaluate(out, preds, flavor="lvvis")
    assert stats["novel"]["AP"] == pytest.approx(1.0) and stats["base"]["AP"] == pytest.approx(1.0)
    # names that match no category, and (with --base) categories in neither list, are errors naming them
    assert cli_main(["vocab", "--from", str(plain_path), "--novel", "unicorn", "--out", str(tmp_path / "x.json")]) == 2
    assert "'unicorn'" in capsys.readouterr().err
    assert cli_main(["vocab", "--from", str(plain_path), "--novel", novel[1], "--base", novel[0],
                     "--out", str(tmp_path / "y.json")]) == 2
    assert "in neither --base nor --novel" in capsys.readouterr().err
    assert cli_main(["vocab", "--from", str(plain_path), "--novel", novel[1], "--out", str(plain_path)]) == 2
