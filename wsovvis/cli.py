"""The ``wsovvis`` console command.

Each subcommand lives in the module that owns its concept; that module defines
``add_arguments(parser)`` and ``main(args) -> int``. Modules are imported only when their
command runs, so ``wsovvis eval`` never pays for importing torch.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

from wsovvis.errors import describe_failure
from wsovvis.utils.logging import setup_logging

# name -> (module, one-line help)
COMMANDS: dict[str, tuple[str, str]] = {
    "synth": ("wsovvis.data.synthetic_cli", "generate seeded synthetic sample videos with GT masks and JSON"),
    "convert": ("wsovvis.data.convert", "mask PNGs -> YouTube-VIS JSON tubes, with skip rules and a skip report"),
    "agnostic": ("wsovvis.data.class_agnostic", "class-agnostic copy of a YouTube-VIS JSON"),
    "check": ("wsovvis.data.check", "check a YouTube-VIS JSON against its frames and masks"),
    "visualize": ("wsovvis.viz.contact_sheet", "contact sheets (and GIFs) of GT or result tubes"),
    "eval": ("wsovvis.evaluation.cli", "YouTube-VIS / LV-VIS video mask AP"),
    "pseudo": ("wsovvis.pseudo.cli", "pseudo tubes: per-frame instance-id PNGs from raw videos"),
    "embed": ("wsovvis.openvocab.embed_cli", "CLIP/SigLIP embedding cache of tubes or image segments"),
    "label": ("wsovvis.openvocab.label_cli", "attribute categories of a vocabulary to pseudo tubes"),
    "classify": ("wsovvis.openvocab.classify_cli", "open-vocabulary classification of predicted tubes"),
    "vocab": ("wsovvis.openvocab.vocab_cli", "base/novel partitions on your own categories (for --flavor lvvis)"),
    "demo": ("wsovvis.demo", "the whole pipeline end to end on generated sample videos"),
    "export": ("wsovvis.export.cli", "export to COCO JSON or sharded TFRecords (OWL-ViT/Scenic, TFDS); check them"),
    "import": ("wsovvis.export.import_cli", "COCO / LVIS / COCO-panoptic images -> one-frame YouTube-VIS videos"),
    "app": ("wsovvis.app.cli", "web app: try prompts, label a batch, review tubes, read run metrics"),
    "autolabel": ("wsovvis.autolabel.cli", "text-prompted labels (OWLv2 boxes -> SAM2 masks) of images, as COCO"),
    "selftrain": ("wsovvis.engine.selftrain", "self-training rounds: train, keep confident predictions, retrain"),
}


def _load(name: str):
    module, _ = COMMANDS[name]
    return importlib.import_module(module)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="wsovvis", description=__doc__.splitlines()[0])
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, (_, help_text) in COMMANDS.items():
        sub.add_parser(name, help=help_text, add_help=False)
    return parser


def run_module(module, argv: Sequence[str], prog: str) -> int:
    """Parse ``argv`` with the module's arguments and run it.

    The one error boundary of every command: `WsovvisError` and the failures of `describe_failure` print
    ``error: ...`` and exit 2 (``--verbose`` also prints the traceback); Ctrl-C exits 130 and SIGTERM 143
    (both run the cleanup of worker pools on the way out).
    """
    import logging
    import traceback

    from wsovvis.utils.workers import Terminated, sigterm_raises

    parser = argparse.ArgumentParser(prog=prog, description=(module.__doc__ or "").strip().splitlines()[0])
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging; tracebacks of errors")
    module.add_arguments(parser)
    args = parser.parse_args(list(argv))
    setup_logging(logging.DEBUG if args.verbose else logging.INFO)
    try:
        with sigterm_raises():
            return int(module.main(args) or 0)
    except KeyboardInterrupt as e:
        print("terminated" if isinstance(e, Terminated) else "interrupted", file=sys.stderr)
        return 143 if isinstance(e, Terminated) else 130
    except Exception as e:
        message = describe_failure(e)
        if message is None:
            raise
        if args.verbose:
            traceback.print_exc()
        print(f"error: {message}", file=sys.stderr)
        return 2


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser()
    if not argv or argv[0] in ("-h", "--help"):
        parser.print_help()
        return 0 if argv else 1
    verbose = [a for a in argv[:1] if a in ("-v", "--verbose")]
    rest = argv[len(verbose):]
    if not rest or rest[0] not in COMMANDS:
        parser.error(f"unknown command {rest[0] if rest else ''!r}; choose from {', '.join(COMMANDS)}")
    name = rest[0]
    return run_module(_load(name), verbose + rest[1:], prog=f"wsovvis {name}")


if __name__ == "__main__":
    sys.exit(main())
