"""Object detection and instance segmentation from YAML only: geofm fit|validate|test|predict.

The data are the real Sen1Floods11 chip and its hand-labelled water bodies as polygons in
another CRS (EPSG:3857, reprojected by the data module), cut into 64 px chips.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from geofm_core.cli import main
from geofm_core.testing import csv_trainer, logged_metric_keys, water_bodies

MODEL_ARGS: dict[str, Any] = {
    "backbone": "timm:resnet18", "backbone_kwargs": {"in_chans": 6},
    "necks": [{"name": "geofm:select_indices", "indices": [2, 3, 4]}],
    "fpn_channels": 32,
}


def _config(tmp_path: Path, task: str, datamodule: str) -> tuple[Path, Any]:
    water = water_bodies(tmp_path / "water", crs="EPSG:3857", fmt="geojson", size=128)
    root, labels = str(water.images), str(water.labels.parent)
    config = {
        "seed_everything": 0,
        "trainer": csv_trainer(tmp_path),
        "model": {"class_path": task, "init_args": {
            "model_args": MODEL_ARGS, "class_names": water.classes, "lr": 1e-3}},
        "data": {"class_path": datamodule, "init_args": {
            "train_data_root": root, "val_data_root": root, "test_data_root": root,
            "predict_data_root": root, "train_label_data_root": labels,
            "val_label_data_root": labels, "test_label_data_root": labels,
            "img_pattern": "*_S2Hand.tif", "label_pattern": "*_water.geojson",
            "class_attribute": water.class_attribute, "classes": water.classes,
            "chip_size": 64, "batch_size": 2, "means": [1000.0] * 6, "stds": [500.0] * 6,
            "train_augmentations": ["hflip"]}},
    }
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    return path, water


@pytest.mark.parametrize(("task", "datamodule", "expected"), [
    ("ObjectDetectionTask", "GeoTiffObjectDetectionDataModule",
     {"val/map", "val/map_50", "val/map_water", "test/map", "train/loss_epoch"}),
    ("InstanceSegmentationTask", "GeoTiffInstanceSegmentationDataModule",
     {"val/segm_map", "val/bbox_map", "test/segm_map_50", "train/loss_epoch"}),
])
def test_fit_validate_test_from_yaml(tmp_path: Path, task: str, datamodule: str,
                                     expected: set[str]) -> None:
    config, _ = _config(tmp_path, task, datamodule)
    assert main(["fit", "-c", str(config)]) == 0
    ckpt = next((tmp_path / "logs").rglob("last.ckpt"))
    assert any(p.name.startswith("best-") for p in ckpt.parent.iterdir())
    for command in ("validate", "test"):
        assert main([command, "-c", str(config), "--ckpt_path", str(ckpt)]) == 0, command
    logged = logged_metric_keys(tmp_path / "logs")
    assert expected <= logged, sorted(expected - logged)


@pytest.mark.parametrize("page", ["object-detection.md", "instance-segmentation.md"])
def test_the_docs_complete_config_runs(tmp_path: Path, page: str) -> None:
    """The page's complete config, as written but for a small backbone and the real chip."""
    import re

    text = (Path(__file__).resolve().parents[2] / "docs" / page).read_text()
    config = yaml.safe_load(re.findall(r"```yaml\n(.*?)```", text, flags=re.S)[0])
    water = water_bodies(tmp_path / "water", size=128)
    model, data = config["model"]["init_args"], config["data"]["init_args"]
    framework = model["model_args"]["framework"]
    # the pages' backbones are pretrained (a download); the rest of the page is kept
    model["model_args"] = {**MODEL_ARGS, "framework": framework, "fpn_channels": 32}
    model["class_names"] = water.classes
    for stage in ("train", "val", "test", "predict"):
        if f"{stage}_data_root" in data:
            data[f"{stage}_data_root"] = str(water.images)
        if f"{stage}_label_data_root" in data:
            data[f"{stage}_label_data_root"] = str(water.labels)
    bands = len(water.band_names)
    data |= {"class_attribute": water.class_attribute, "classes": water.classes,
             "output_bands": list(range(bands)), "means": [1000.0] * bands,
             "stds": [500.0] * bands, "chip_size": 64, "chip_stride": 64, "batch_size": 2,
             "num_workers": 0}
    # the page trains in 16-mixed, for a GPU; this runs on the CPU
    config["trainer"] = {**config["trainer"], **csv_trainer(tmp_path), "precision": "32"}
    path = tmp_path / "page.yaml"
    path.write_text(yaml.safe_dump(config))
    assert main(["fit", "-c", str(path), "--trainer.fast_dev_run", "1"]) == 0
