"""JSON Lines reading shared by the layers (the engine writes ``metrics.jsonl``; viz plots it)."""

from __future__ import annotations

import json
from pathlib import Path


def read_jsonl(path: str | Path) -> list[dict]:
    """Parse a JSON Lines file into its object rows; a torn line (a writer killed mid-line) and
    non-object lines are ignored; a missing file gives ``[]``."""
    path = Path(path)
    if not path.is_file():
        return []
    rows = []
    for line in path.read_text(encoding="utf-8").splitlines():
        try:
            row = json.loads(line)
        except json.JSONDecodeError:
            continue
        if isinstance(row, dict):
            rows.append(row)
    return rows
