"""``wsovvis app`` without a browser: flags, start-up without models, handlers turning errors into messages."""

from __future__ import annotations

import os
import socket
from types import SimpleNamespace

import pytest

from wsovvis.cli import main as cli_main


@pytest.fixture(scope="module")
def app(tmp_path_factory):
    from wsovvis.app.session import SessionDirs, prepare_environment

    dirs = SessionDirs(tmp_path_factory.mktemp("app"))
    saved = {k: os.environ.get(k) for k in ("GRADIO_ANALYTICS_ENABLED", "GRADIO_TEMP_DIR", "GRADIO_RUN_HISTORY")}
    prepare_environment(dirs.root)
    from wsovvis.app.labeling import Labeler
    from wsovvis.app.ui import AppOptions, build_app

    demo = build_app(AppOptions(labeler=Labeler(), dirs=dirs))
    yield demo, dirs
    dirs.remove_all()
    for k, v in saved.items():  # later tests in this process see the environment they had
        if v is None:
            os.environ.pop(k, None)
        else:
            os.environ[k] = v


def _fn(demo, name: str):
    return next(f.fn for f in demo.fns.values() if getattr(f, "name", None) == name)


def _prop(demo, elem_id: str, key: str = "value"):
    return next(c["props"][key] for c in demo.config["components"] if c.get("props", {}).get("elem_id") == elem_id)


def test_starts_without_models_and_says_which_flags(app, tmp_path):
    demo, dirs = app
    banner = _prop(demo, "test-models")
    assert "--detector" in banner and "--segmenter" in banner and "error" in banner
    assert _prop(demo, "test-mode") == "detect" and "--detector" in _prop(demo, "batch-models")
    (tmp_path / "a.png").write_bytes(b"")
    request = SimpleNamespace(session_hash="abc")
    status = _fn(demo, "on_test")(str(tmp_path / "a.png"), "red", None, 0.1, "detect", "tubes", 100, request)[0]
    assert "no detector" in status and "--detector" in status
    status = _fn(demo, "on_batch")([], "", "red", None, 0.1, "detect", 100, 640, request)[0]
    assert "--detector" in status


def test_handlers_show_bad_input_and_internal_errors_as_messages(app, tmp_path):
    import gradio as gr

    from wsovvis.app.ui import _guarded

    demo, dirs = app
    request = SimpleNamespace(session_hash="abc")
    (tmp_path / "x.json").write_text("[1, 2]")
    out = _fn(demo, "on_open")(str(tmp_path / "x.json"), None, str(tmp_path), "", request)
    assert "x.json: is a results list" in out[0] and all(isinstance(o, type(gr.skip())) for o in out[1:])
    assert "open a YouTube-VIS JSON first" in _fn(demo, "on_save")(None, True, request)[0]
    assert "has no metrics.jsonl" in _fn(demo, "on_metrics")(str(tmp_path), request)[0]

    @_guarded(2)
    def broken():
        return {}["missing"]

    msg = broken()[0]
    assert "internal error (KeyError" in msg and "server log" in msg
    assert (dirs.root / "sessions" / "abc").is_dir()
    dirs.remove_session("abc")
    assert not (dirs.root / "sessions" / "abc").exists()


def test_bad_flags_exit_2_naming_the_flag(tmp_path, capsys):
    assert cli_main(["app", "--detector", str(tmp_path / "missing_owlv2"), "--port", "0"]) == 2
    assert "--detector" in capsys.readouterr().err
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        taken = s.getsockname()[1]
        assert cli_main(["app", "--port", str(taken)]) == 2
        assert f"--port {taken}: cannot listen there" in capsys.readouterr().err
    assert cli_main(["app", "--port", "0", "--max_preview_frames", "0"]) == 2
    assert cli_main(["app", "--port", "0", "--review_json", "x.json"]) == 2
    assert "--review_json and --frames go together" in capsys.readouterr().err


def test_the_browser_tests_network_guard_records_attempts(tmp_path):
    """The guard the browser test runs the server under does catch an attempt to go online."""
    import os
    import subprocess
    import sys

    from tests.app.browser import NET_GUARD

    (tmp_path / "sitecustomize.py").write_text(NET_GUARD)
    log = tmp_path / "net.log"
    code = ("import socket\ntry:\n    socket.getaddrinfo('api.gradio.app', 443)\nexcept OSError as e:\n    print(e)\n"
            "s = socket.socket(); s.bind(('127.0.0.1', 0)); s.listen()\n"
            "socket.create_connection(s.getsockname()).close()\n")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60,
                       env={**os.environ, "PYTHONPATH": str(tmp_path), "WSOVVIS_NET_LOG": str(log)})
    assert r.returncode == 0, r.stderr
    assert "network blocked" in r.stdout and log.read_text().splitlines() == ["lookup api.gradio.app"]


def test_review_and_metrics_handlers_wired_end_to_end(tmp_path):
    """Paths given on the command line open on page load; video switch, rename and save through the handlers."""
    import json

    from tests.app.helpers import write_review_set, write_run_dir
    from wsovvis.app.labeling import Labeler
    from wsovvis.app.session import SessionDirs
    from wsovvis.app.ui import AppOptions, build_app

    path, frames = write_review_set(tmp_path / "set")
    run = write_run_dir(tmp_path / "run")
    dirs = SessionDirs(tmp_path)
    demo = build_app(AppOptions(labeler=Labeler(), dirs=dirs, review_json=str(path), frame_root=str(frames),
                                run_dir=str(run), max_preview_frames=2))
    request = SimpleNamespace(session_hash="s1")
    out = _fn(demo, "on_page_load")(request)
    assert len(out) == 11 and "opened tubes.json: 2 videos, 4 tubes" in out[0]
    state = out[1]
    assert out[2]["value"] == 1 and out[5][0][:2] == [1, "cat"] and out[7].count("2 evaluations") == 1
    status, sheet, gif, rows, pick = _fn(demo, "on_video")(state, 2, request)
    assert rows == [[4, "dog", 0.8, "4/4", "0-3", "undecided"]] and "the GIF shows the first 2" in status
    assert pick["choices"] == [("#4 dog 0.80 [undecided]", 4)] and sheet.startswith(str(dirs.root))
    out = _fn(demo, "on_rename")(state, 2, [4], " bear ", request)
    assert "renamed 1 tube(s) to &#x27;bear&#x27;" in out[0] and out[4][0][1] == "bear"
    assert "choose a video first" in _fn(demo, "on_rename")(state, None, [4], "x", request)[0]
    status, saved = _fn(demo, "on_save")(state, True, request)
    assert saved == str(path.parent / "tubes.curated.json") and "1 renamed" in status
    assert json.loads(path.parent.joinpath("tubes.curated.json").read_text())["categories"][-1]["name"] == "bear"
    dirs.remove_all()
