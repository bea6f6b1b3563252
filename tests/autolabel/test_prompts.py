"""Prompt sets from vocabulary files and prompt maps (ensembles, ids, errors naming the file and entry)."""

from __future__ import annotations

import json

import pytest

from wsovvis.autolabel.prompts import load_prompt_set
from wsovvis.errors import WsovvisError


def test_default_prompts_are_the_names_in_words(tmp_path):
    v = tmp_path / "v.json"
    v.write_text(json.dumps({"categories": [{"id": 5, "name": "traffic_light"}, {"id": 9, "name": "bow_(weapon)"}]}))
    ps = load_prompt_set(v)
    assert ps.prompts == ("traffic light", "bow (weapon)") and ps.class_ids == (5, 9)
    assert ps.names == {5: "traffic_light", 9: "bow_(weapon)"}


def test_prompt_map_forms(tmp_path):
    v = tmp_path / "v.txt"
    v.write_text("person\ncar\n")
    m = tmp_path / "m.json"
    m.write_text(json.dumps({"a person": "person", "a pedestrian": "Person", "an automobile": 2}))
    ps = load_prompt_set(v, m)
    assert ps.prompts == ("a person", "a pedestrian", "an automobile") and ps.class_ids == (1, 1, 2)
    m.write_text(json.dumps({"car": ["a car", "a sedan"]}))
    ps = load_prompt_set(v, m)
    assert ps.prompts == ("a car", "a sedan") and ps.class_ids == (2, 2)  # person is not searched for


@pytest.mark.parametrize("content, message", [
    ({"car": "a sedan"}, "write {class: [prompts]}"),
    ({"a dog": "dog"}, "unknown class 'dog'"),
    ({"a car": 7}, "class id 7"),
    ({}, "the prompt map is empty"),
    ({"car": [1]}, "non-empty strings"),
    ([1, 2], "must be an object"),
])
def test_prompt_map_errors(tmp_path, content, message):
    v = tmp_path / "v.txt"
    v.write_text("person\ncar\n")
    m = tmp_path / "m.json"
    m.write_text(json.dumps(content))
    with pytest.raises(WsovvisError, match="m.json") as e:
        load_prompt_set(v, m)
    assert message in str(e.value)


def test_text_map_and_vocab_errors(tmp_path):
    v = tmp_path / "v.txt"
    v.write_text("person\ncar\n")
    m = tmp_path / "m.txt"
    m.write_text("a person\n")
    with pytest.raises(WsovvisError, match=r"m.txt: line 1: expected 'prompt = class name'"):
        load_prompt_set(v, m)
    with pytest.raises(WsovvisError, match="--prompt_map file does not exist"):
        load_prompt_set(v, tmp_path / "nope.txt")
    dup = tmp_path / "d.json"
    dup.write_text(json.dumps([{"id": 1, "name": "car"}, {"id": 2, "name": "car "}]))
    with pytest.raises(WsovvisError, match=r"d.json: the vocabulary repeats the class name"):
        load_prompt_set(dup)
