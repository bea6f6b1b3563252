#!/usr/bin/env python
"""Mask PNGs (VideoCutLER / DAVIS naming) -> YouTube-VIS JSON tubes (same as ``wsovvis convert``)."""

import sys
from pathlib import Path

# Run from a checkout without `pip install -e .`: the package sits beside tools/.
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from wsovvis.cli import run_module  # noqa: E402
from wsovvis.data import convert  # noqa: E402

if __name__ == "__main__":
    sys.exit(run_module(convert, sys.argv[1:], prog="convert_videocutler_png_to_json.py"))
