#!/usr/bin/env python
"""Class-agnostic copy of a YouTube-VIS JSON (same as ``wsovvis agnostic``)."""

import sys

from wsovvis.cli import run_module
from wsovvis.data import class_agnostic

if __name__ == "__main__":
    sys.exit(run_module(class_agnostic, sys.argv[1:], prog="make_class_agnostic_ytvis_json.py"))
