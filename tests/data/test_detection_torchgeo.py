"""TorchGeo's own detection trainers on geofm's detection data, through `geofm fit` YAML."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

pytest.importorskip("geopandas")
pytest.importorskip("pycocotools")  # torchmetrics' MeanAveragePrecision backend

from geofm_core.testing import fit_fast_dev_run, water_bodies


def config(tmp_path: Path, task: str, data: str) -> dict:
    water = water_bodies(tmp_path / "water", size=128)
    run = tmp_path / "run"
    return {
        "seed_everything": 0,
        "trainer": {"accelerator": "cpu", "devices": 1, "logger": False,
                    "enable_progress_bar": False, "enable_model_summary": False,
                    "default_root_dir": str(run)},
        "model": {"class_path": f"torchgeo.trainers.{task}", "init_args": {
            # TorchGeo's Mask R-CNN offers resnet50 only
            "backbone": "resnet18" if task == "ObjectDetectionTask" else "resnet50",
            "weights": None, "in_channels": 3, "num_classes": 2,
            **({"model": "faster-rcnn"} if task == "ObjectDetectionTask" else {})}},
        "data": {"class_path": data, "init_args": {
            "train_data_root": str(water.images), "val_data_root": str(water.images),
            "train_label_data_root": str(water.labels),
            "val_label_data_root": str(water.labels), "img_pattern": "*_S2Hand.tif",
            "class_attribute": "class", "classes": ["water"], "chip_size": 64,
            "min_box_size": 2, "dataset_bands": water.band_names,
            "output_bands": ["RED", "GREEN", "BLUE"], "means": [1500.0] * 3,
            "stds": [1000.0] * 3, "batch_size": 2, "train_augmentations": ["hflip"]}},
    }


def test_torchgeo_object_detection_task_fits(tmp_path: Path) -> None:
    start = time.perf_counter()
    fit_fast_dev_run(config(tmp_path, "ObjectDetectionTask",
                            "GeoTiffObjectDetectionDataModule"), tmp_path)
    print(f"faster-rcnn fast_dev_run: {time.perf_counter() - start:.1f} s")


def test_torchgeo_instance_segmentation_task_fits(tmp_path: Path) -> None:
    start = time.perf_counter()
    fit_fast_dev_run(config(tmp_path, "InstanceSegmentationTask",
                            "GeoTiffInstanceSegmentationDataModule"), tmp_path)
    print(f"mask-rcnn fast_dev_run: {time.perf_counter() - start:.1f} s")
