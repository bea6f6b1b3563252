#!/usr/bin/env python
"""Check a YouTube-VIS JSON against its frames and id PNGs (same as ``wsovvis check``)."""

import sys
from pathlib import Path

# Run from a checkout without `pip install -e .`: the package sits beside tools/.
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from wsovvis.cli import run_module  # noqa: E402
from wsovvis.data import check  # noqa: E402

if __name__ == "__main__":
    sys.exit(run_module(check, sys.argv[1:], prog="check_ytvis_json.py"))
