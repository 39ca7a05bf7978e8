"""The mkdocs hook that generates the component tables."""

from __future__ import annotations

import importlib.util
from pathlib import Path

HOOKS = Path(__file__).resolve().parents[2] / "docs" / "hooks.py"


def _hooks():
    spec = importlib.util.spec_from_file_location("geofm_docs_hooks", HOOKS)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_angle_brackets_in_descriptions_survive_markdown() -> None:
    """`smp:<name>` descriptions were swallowed as HTML tags."""
    cell = _hooks()._cell("any smp encoder as smp:<name> | a & b")
    assert "&lt;name&gt;" in cell and "\\|" in cell and "&amp;" in cell
