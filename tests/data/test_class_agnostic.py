"""Class-agnostic copy: keeps every video and track, remembers the old class, rejects images-only JSON."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from wsovvis.data.class_agnostic import make_class_agnostic
from wsovvis.errors import WsovvisError

REPO = Path(__file__).resolve().parents[2]


def test_make_class_agnostic(synthetic_data):
    gt = json.loads(synthetic_data.gt_json.read_text())
    out = make_class_agnostic(gt, 3, "thing")
    assert out["categories"] == [{"id": 3, "name": "thing", "supercategory": "thing"}]
    assert out["videos"] == gt["videos"] and len(out["annotations"]) == len(gt["annotations"])
    assert [a["orig_category_id"] for a in out["annotations"]] == [a["category_id"] for a in gt["annotations"]]
    assert {a["category_id"] for a in out["annotations"]} == {3}
    assert len({a["category_id"] for a in gt["annotations"]}) > 1  # the input really had several classes
    with pytest.raises(WsovvisError, match="val.json: has no 'annotations'"):
        make_class_agnostic({"videos": [], "categories": []}, source="val.json")


def test_tool_script(synthetic_data, tmp_path):
    out = tmp_path / "agn.json"
    r = subprocess.run([sys.executable, str(REPO / "tools" / "make_class_agnostic_ytvis_json.py"), "--in_json",
                        str(synthetic_data.gt_json), "--out_json", str(out)], capture_output=True, text=True,
                       cwd=REPO)
    assert r.returncode == 0, r.stderr
    assert json.loads(out.read_text())["categories"][0]["name"] == "object"
    images_only = tmp_path / "val.json"
    images_only.write_text(json.dumps({"videos": [], "categories": []}))
    r = subprocess.run([sys.executable, "-m", "wsovvis", "agnostic", "--in_json", str(images_only), "--out_json",
                        str(tmp_path / "x.json")], capture_output=True, text=True, cwd=REPO)
    assert r.returncode == 2 and "has no 'annotations'" in r.stderr and not (tmp_path / "x.json").exists()
