"""The web app: try prompts on one image, label a batch to a COCO ZIP, review tubes, read a run's metrics.

Served by Gradio on 127.0.0.1 (``--host`` / ``--port``); works offline (no telemetry, no fonts or
scripts from the internet). Every file it makes goes to a temporary folder per browser session,
removed when the server stops. Without ``--detector`` the Test and Batch tabs say which flags are
missing; Review and Metrics need no model.
"""

from __future__ import annotations

import argparse
import socket
import threading

from wsovvis.errors import WsovvisError
from wsovvis.utils.logging import get_logger

log = get_logger(__name__)


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--host", default="127.0.0.1", help="address to serve on (0.0.0.0: every interface)")
    p.add_argument("--port", type=int, default=7860, help="port (0: any free port)")
    p.add_argument("--detector", help="OWLv2 save_pretrained folder, or standin:colour (Test/Batch tabs)")
    p.add_argument("--segmenter", help="SAM2 save_pretrained folder, or standin:colour (segment mode)")
    p.add_argument("--device", help="cpu, cuda, cuda:1, mps (default: the best available)")
    p.add_argument("--review_json", default="", help="open this YouTube-VIS JSON in the Review tab")
    p.add_argument("--frames", default="", help="its frame folder (file_names are relative to it)")
    p.add_argument("--videos_json", default="", help="for a results list: the JSON listing its videos")
    p.add_argument("--run_dir", default="", help="open this training run in the Metrics tab")
    p.add_argument("--max_preview_frames", type=int, default=16,
                   help="frames of a video labelled in Test and shown in Review GIFs")
    p.add_argument("--tmp_dir", help="parent of the per-session temporary folder (default: the system temp)")


def _check_port(host: str, port: int) -> int:
    """A free port: ``port`` itself (error if taken) or, for 0, one the OS picks."""
    if not 0 <= port <= 65535:
        raise WsovvisError(f"--port {port}: must be 0..65535")
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as s:
        try:
            s.bind((host, port))
        except OSError as e:
            raise WsovvisError(f"--host {host} --port {port}: cannot listen there ({e.strerror}); choose another "
                               "--port (0 picks a free one)") from e
        return s.getsockname()[1]


def _preload() -> None:
    import importlib

    for name in ("wsovvis.autolabel.prompts", "wsovvis.autolabel.images", "wsovvis.autolabel.run",
                 "wsovvis.autolabel.export", "wsovvis.autolabel.draw"):
        importlib.import_module(name)


def main(args: argparse.Namespace) -> int:
    from pathlib import Path

    from wsovvis.app.session import SessionDirs, prepare_environment

    port = _check_port(args.host, args.port)
    if args.max_preview_frames < 1:
        raise WsovvisError(f"--max_preview_frames must be >= 1, got {args.max_preview_frames}")
    if bool(args.review_json) != bool(args.frames):
        raise WsovvisError("--review_json and --frames go together (the JSON and the folder its file_names are "
                           "relative to)")
    if args.tmp_dir and not Path(args.tmp_dir).is_dir():
        raise WsovvisError(f"{args.tmp_dir}: --tmp_dir is not a folder")
    from wsovvis.app.labeling import build_labeler

    labeler = build_labeler(args.detector, args.segmenter, args.device)
    dirs = SessionDirs(args.tmp_dir)
    prepare_environment(dirs.root)
    from wsovvis.app.ui import CSS, AppOptions, build_app

    opts = AppOptions(labeler=labeler, dirs=dirs, review_json=args.review_json, frame_root=args.frames,
                      videos_json=args.videos_json, run_dir=args.run_dir,
                      max_preview_frames=args.max_preview_frames)
    demo = build_app(opts)
    if labeler.ready:
        # The labelling modules pull in torch (seconds): import them while the page loads, not on the first click.
        threading.Thread(target=_preload, name="wsovvis-preload", daemon=True).start()
    log.info("session files under %s (removed on exit)", dirs.root)
    if args.host not in ("127.0.0.1", "localhost", "::1"):
        log.warning("--host %s: the app (no login) is reachable from other machines, and it reads and writes "
                    "files on this one", args.host)
    demo.queue(default_concurrency_limit=4)  # model calls are limited to one at a time in ui.build_app
    try:
        demo.launch(server_name=args.host, server_port=port, share=False, inbrowser=False, show_error=False,
                    allowed_paths=[str(dirs.root)], css=CSS, footer_links=[], run_history=False,
                    enable_monitoring=False, ssr_mode=False, mcp_server=False, quiet=False)
    finally:
        dirs.remove_all()
    return 0
