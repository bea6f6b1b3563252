#!/usr/bin/env python
"""Class-agnostic copy of a YouTube-VIS JSON (same as ``wsovvis agnostic``)."""

import sys
from pathlib import Path

# Run from a checkout without `pip install -e .`: the package sits beside tools/.
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from wsovvis.cli import run_module  # noqa: E402
from wsovvis.data import class_agnostic  # noqa: E402

if __name__ == "__main__":
    sys.exit(run_module(class_agnostic, sys.argv[1:], prog="make_class_agnostic_ytvis_json.py"))
