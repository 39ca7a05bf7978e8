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


COMPONENTS = [
    {"kind": "backbone", "name": "acme:resnet50_s2", "source": "acme", "metadata": {
        "modalities": ["multispectral"], "bands": [], "any_bands": False, "patch_size": None,
        "parameters": 23_500_000, "weights": [
            {"name": "S2_ALL_MOCO", "bands": ["COASTAL_AEROSOL", "BLUE", "GREEN", "RED",
                                              "RED_EDGE_1", "RED_EDGE_2", "RED_EDGE_3"],
             "modalities": [], "license": "CC-BY-4.0"},
            {"name": "S1_VV_VH", "bands": ["VV", "VH"], "modalities": ["sar"], "license": ""},
        ]}},
    {"kind": "backbone", "name": "acme:tiny", "source": "acme", "metadata": {
        "modalities": ["any"], "bands": [], "any_bands": True, "patch_size": 16,
        "parameters": 5_000, "weights": []}},
    {"kind": "backbone", "name": "old:plain", "source": "old"},
    {"kind": "decoder", "name": "acme:fpn", "source": "acme"},
]


def test_model_zoo_has_a_row_per_backbone_and_weight_set() -> None:
    table = _hooks().model_zoo(COMPONENTS)
    rows = [line for line in table.splitlines() if line.startswith("| `")]
    assert len(rows) == 3  # two weight sets, one backbone without weights
    first, second, tiny = rows
    assert "`S2_ALL_MOCO`" in first and "7: COASTAL_AEROSOL, BLUE, GREEN, ..." in first
    assert "multispectral" in first and "23.5M" in first and "CC-BY-4.0" in first
    assert "`backbone: acme:resnet50_s2`" in first
    assert "VV, VH" in second and "sar" in second and "unknown" in second
    assert "none" in tiny and "| any |" in tiny and "| 16 |" in tiny
    assert "Without metadata: `old:plain`" in table and "acme:fpn" not in table


def test_plugin_pages_one_per_source_with_signatures() -> None:
    described = [
        {"kind": "backbone", "name": "acme:tiny", "source": "acme", "distribution": "acme",
         "version": "1.0", "description": "a <tiny> net", "signature": "(in_chans: int = 3)",
         "doc": "Tiny.\n\nArgs:\n    in_chans: bands."},
        {"kind": "decoder", "name": "acme:broken", "source": "acme", "error": "ImportError: x"},
        {"kind": "loss", "name": "geofm:dice", "source": "geofm", "signature": "()", "doc": ""},
    ]
    pages = _hooks().plugin_pages(described)
    assert sorted(pages) == ["plugins/acme.md", "plugins/geofm.md"]
    acme = pages["plugins/acme.md"]
    assert "acme:tiny(in_chans: int = 3)" in acme and "in_chans: bands." in acme
    assert "a &lt;tiny&gt; net" in acme and "Cannot be described here" in acme


def test_describe_all_runs_once_for_every_component() -> None:
    """The real generator input: one subprocess describes every registered component."""
    hooks = _hooks()
    described = hooks._described()
    listed = {c["name"] for c in hooks._components()}
    assert {d["name"] for d in described} == listed
    assert not [d["name"] for d in described if "error" in d]
    assert all("signature" in d for d in described)
