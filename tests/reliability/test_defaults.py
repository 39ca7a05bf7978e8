"""Defaults are safe: each task trains, validates and predicts with only its required arguments.

Required here means: the task class with a backbone (and a decoder for pixel-wise tasks)
and the number of classes where there are classes; the data module with its folders.
No loss, ignore_index, learning rate, optimizer, normalisation or batch size is given
(TerraTorch 1.2's segmentation task crashes at its first step with its default
``ignore_index``). The trainer only gets the limits that keep the test short.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import rasterio
import torch

from geofm_core.cli import main

from .conftest import BANDS, write_config

TASKS = ["segmentation", "regression", "classification", "multilabel"]


def _minimal(task: str, data: dict[str, Path]) -> tuple[dict[str, Any], dict[str, Any]]:
    backbone = {"backbone": "timm:test_resnet", "backbone_kwargs": {"in_chans": BANDS}}
    if task == "segmentation":
        model = {"class_path": "SemanticSegmentationTask", "init_args": {
            "model_args": backbone | {"decoder": "geofm:fcn"}, "num_classes": 3}}
        init = {"train_data_root": str(data["seg"]), "img_pattern": "*_img.tif",
                "label_pattern": "*_mask.tif", "num_classes": 3}
        return model, {"class_path": "GeoTiffSegmentationDataModule", "init_args": init}
    if task == "regression":
        model = {"class_path": "PixelwiseRegressionTask", "init_args": {
            "model_args": backbone | {"decoder": "geofm:fcn"}}}
        init = {"train_data_root": str(data["reg"]), "img_pattern": "*_img.tif",
                "label_pattern": "*_target.tif"}
        return model, {"class_path": "GeoTiffRegressionDataModule", "init_args": init}
    if task == "classification":
        model = {"class_path": "ClassificationTask", "init_args": {
            "model_args": backbone, "num_classes": 3}}
        init = {"train_data_root": str(data["cls"])}
        return model, {"class_path": "GeoTiffClassificationDataModule", "init_args": init}
    model = {"class_path": "MultiLabelClassificationTask", "init_args": {
        "model_args": backbone, "num_classes": 3}}
    init = {"train_data_root": str(data["multi"]),
            "train_label_data_root": str(data["multi_labels"])}
    return model, {"class_path": "GeoTiffMultiLabelDataModule", "init_args": init}


@pytest.mark.parametrize("task", TASKS)
def test_required_arguments_only(task: str, tmp_path: Path, dataset: dict[str, Path]) -> None:
    model, data = _minimal(task, dataset)
    fit = {
        "trainer": {"max_epochs": 1, "limit_train_batches": 2, "limit_val_batches": 1,
                    "logger": False, "enable_progress_bar": False,
                    "default_root_dir": str(tmp_path / "run")},
        "model": model, "data": data,
    }
    config = write_config(fit, tmp_path / "fit.yaml")
    assert main(["fit", "-c", str(config)]) == 0
    ckpt = tmp_path / "run" / "checkpoints" / "last.ckpt"
    state = torch.load(ckpt, map_location="cpu", weights_only=True)
    assert all(torch.isfinite(v).all() for v in state["state_dict"].values()
               if v.is_floating_point())
    # validate on the training folder, predict a folder of scenes
    args = ["-c", str(config), "--ckpt_path", str(ckpt),
            "--data.init_args.val_data_root", data["init_args"]["train_data_root"]]
    if "train_label_data_root" in data["init_args"]:
        args += ["--data.init_args.val_label_data_root",
                 data["init_args"]["train_label_data_root"]]
    assert main(["validate", *args]) == 0
    args = ["-c", str(config), "--ckpt_path", str(ckpt),
            "--data.init_args.predict_data_root", str(dataset["predict"]),
            "--data.init_args.predict_img_pattern", "*.tif"]
    assert main(["predict", *args]) == 0
    outputs = sorted((tmp_path / "run" / "predictions").rglob("*.*"))
    assert outputs, "geofm predict wrote nothing"
    if task in ("segmentation", "regression"):
        with rasterio.open(next(p for p in outputs if p.suffix == ".tif")) as written:
            assert written.crs is not None and written.count == 1
