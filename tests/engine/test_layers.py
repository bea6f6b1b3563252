"""Layering: lower packages never import higher ones (data <- modeling <- engine; viz and evaluation
import no engine), checked statically over every module, lazy imports inside functions included."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PKG = Path(__file__).resolve().parents[2] / "wsovvis"

FORBIDDEN = {
    "data": ("wsovvis.modeling", "wsovvis.engine"),
    "modeling": ("wsovvis.engine",),
    "viz": ("wsovvis.engine",),
    "evaluation": ("wsovvis.engine", "wsovvis.viz"),
}


def _imports(path: Path) -> list[tuple[int, str]]:
    out = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
        if isinstance(node, ast.Import):
            out += [(node.lineno, a.name) for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            out.append((node.lineno, node.module))
    return out


@pytest.mark.parametrize("package", sorted(FORBIDDEN))
def test_lower_layers_do_not_import_higher_ones(package):
    bad = []
    for path in sorted((PKG / package).rglob("*.py")):
        for line, module in _imports(path):
            if module.startswith(FORBIDDEN[package]):
                bad.append(f"{path.relative_to(PKG.parent)}:{line} imports {module}")
    assert not bad, "\n".join(bad)
