"""Package-level checks: every CLI command is wired, every subpackage ships in a wheel."""

from __future__ import annotations

import importlib
import subprocess
import sys

import pytest

from tests.conftest import REPO_ROOT
from wsovvis.cli import COMMANDS, main


@pytest.mark.parametrize("name", sorted(COMMANDS))
def test_every_command_module_has_the_cli_interface(name):
    module = importlib.import_module(COMMANDS[name][0])
    assert callable(module.add_arguments) and callable(module.main)
    assert (module.__doc__ or "").strip(), f"{name}: the module docstring is the command's description"


@pytest.mark.parametrize("name", sorted(COMMANDS))
def test_every_command_answers_help(name, capsys):
    with pytest.raises(SystemExit) as e:
        main([name, "--help"])
    assert e.value.code == 0
    assert f"wsovvis {name}" in capsys.readouterr().out


def test_unknown_command_fails_listing_the_commands(capsys):
    with pytest.raises(SystemExit) as e:
        main(["frobnicate"])
    assert e.value.code == 2
    err = capsys.readouterr().err
    assert "frobnicate" in err and "convert" in err and "eval" in err


def test_bad_input_exits_2_with_a_message_naming_the_file(tmp_path):
    bad = tmp_path / "broken.json"
    bad.write_text("{not json")
    r = subprocess.run([sys.executable, "-m", "wsovvis", "check", str(bad), "--img_root", str(tmp_path)],
                       capture_output=True, text=True, cwd=REPO_ROOT)
    assert r.returncode == 2
    assert str(bad) in r.stderr and "error:" in r.stderr


def test_every_package_directory_is_a_regular_package():
    """setuptools' find_packages skips folders without __init__.py: a wheel would silently lack them."""
    missing = [str(d.relative_to(REPO_ROOT)) for d in (REPO_ROOT / "wsovvis").rglob("*")
               if d.is_dir() and d.name != "__pycache__" and any(d.glob("*.py")) and not (d / "__init__.py").is_file()]
    assert missing == []
