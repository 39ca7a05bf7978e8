"""The Installation page's pip lines name real distributions, plugins and extras."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

tomllib = pytest.importorskip("tomllib")  # Python 3.11+

ROOT = Path(__file__).resolve().parents[2]
PAGE = ROOT / "docs" / "installation.md"


def _pyproject(folder: Path) -> dict:
    return tomllib.loads((folder / "pyproject.toml").read_text())


def test_every_local_pip_line_names_a_distribution_and_what_it_is() -> None:
    lines = re.findall(r"^pip install (\./[\w/]*)\s+# ([\w-]+)", PAGE.read_text(), re.M)
    assert len(lines) >= 4
    for path, name in lines:
        project = _pyproject(ROOT / path)["project"]
        assert project["name"] == name, path
    # Every plugin of the repository is on the page.
    plugins = {p.parent.name for p in (ROOT / "plugins").glob("*/pyproject.toml")}
    assert plugins <= {Path(p).name for p, _ in lines}


def test_extras_on_the_page_exist() -> None:
    extras = set(re.findall(r"pip install '\./\[(\w+)\]'", PAGE.read_text()))
    declared = set(_pyproject(ROOT)["project"]["optional-dependencies"])
    assert extras and extras <= declared


def test_optional_dependencies_said_to_come_with_the_core_do() -> None:
    core = " ".join(_pyproject(ROOT)["project"]["dependencies"]).lower()
    for name in ("tensorboard", "torchgeo", "timm", "rasterio", "safetensors"):
        assert name in core, name


def test_page_is_in_the_navigation_and_the_readme() -> None:
    assert "installation.md" in (ROOT / "mkdocs.yml").read_text()
    assert "docs/installation.md" in (ROOT / "README.md").read_text()


def test_home_page_shows_the_demo_figure() -> None:
    root = Path(__file__).resolve().parents[2]
    home = (root / "docs" / "index.md").read_text()
    assert "](assets/demo.png)" in home
    figure = root / "docs" / "assets" / "demo.png"
    assert figure.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert figure.stat().st_size < 400_000  # kept small in the repository
