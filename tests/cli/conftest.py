"""Tiny GeoTIFF datasets written with rasterio, and YAML configs for `geofm fit|test|...`."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

# Imported here, not first inside a test using capsys: Lightning binds its log handler to
# the sys.stderr of the moment, which capsys closes after that test.
import lightning.pytorch  # noqa: F401
import numpy as np
import pytest
import yaml

rasterio = pytest.importorskip("rasterio")
from rasterio.transform import from_origin  # noqa: E402

SIZE = 32
BANDS = 6
CLASSES = ["water", "land", "cloud"]


def write_tif(path: Path, array: np.ndarray, nodata: float | None = None) -> None:
    """Write a (bands, H, W) or (H, W) array as a georeferenced GeoTIFF."""
    if array.ndim == 2:
        array = array[None]
    path.parent.mkdir(parents=True, exist_ok=True)
    with rasterio.open(
        path, "w", driver="GTiff", height=array.shape[1], width=array.shape[2],
        count=array.shape[0], dtype=array.dtype, crs="EPSG:32633",
        transform=from_origin(500000, 4000000, 30, 30), nodata=nodata,
    ) as dst:
        dst.write(array)


def _image(rng: np.random.Generator, pattern: np.ndarray) -> np.ndarray:
    # Bands carry the label pattern plus noise so that a few steps can learn something.
    noise = rng.normal(0, 0.3, (BANDS, SIZE, SIZE))
    return (pattern[None] + noise).astype(np.float32)


@pytest.fixture(scope="session")
def geotiff_data(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Folders of 6-band 32x32 chips for the four tasks (shared by the session)."""
    root = tmp_path_factory.mktemp("geotiffs")
    rng = np.random.default_rng(0)
    for i in range(4):
        mask = rng.integers(0, len(CLASSES), (SIZE, SIZE)).astype(np.uint8)
        write_tif(root / "seg" / f"chip{i}_img.tif", _image(rng, mask.astype(np.float32)))
        write_tif(root / "seg" / f"chip{i}_mask.tif", mask)
        target = rng.normal(0, 1, (SIZE, SIZE)).astype(np.float32)
        target[0, :4] = -9999  # nodata: ignored
        write_tif(root / "reg" / f"chip{i}_img.tif", _image(rng, target), nodata=None)
        write_tif(root / "reg" / f"chip{i}_target.tif", target, nodata=-9999)
        label = i % len(CLASSES)
        write_tif(root / "cls" / CLASSES[label] / f"chip{i}.tif",
                  _image(rng, np.full((SIZE, SIZE), label, np.float32)))
        write_tif(root / "multi" / f"chip{i}.tif",
                  _image(rng, np.full((SIZE, SIZE), label, np.float32)))
    rows = ["file," + ",".join(CLASSES)]
    rows += [f"chip{i}.tif," + ",".join("1" if c in (i % 3, (i + 1) % 3) else "0"
                                        for c in range(3)) for i in range(4)]
    (root / "multi_labels.csv").write_text("\n".join(rows) + "\n")
    for i in range(2):
        write_tif(root / "predict" / f"scene{i}.tif",
                  rng.normal(0, 1, (BANDS, SIZE + 8, SIZE)).astype(np.float32))
    return {k: root / k for k in ("seg", "reg", "cls", "multi", "predict")} | {
        "multi_labels": root / "multi_labels.csv"
    }


def _data_section(task: str, data: dict[str, Path]) -> dict[str, Any]:
    common: dict[str, Any] = {
        "batch_size": 2, "num_workers": 0, "means": [0.0] * BANDS, "stds": [1.0] * BANDS,
        "predict_data_root": str(data["predict"]), "drop_last": False,
    }
    if task == "segmentation":
        root = str(data["seg"])
        return {"class_path": "GeoTiffSegmentationDataModule", "init_args": common | {
            "train_data_root": root, "val_data_root": root, "test_data_root": root,
            "img_pattern": "*_img.tif", "label_pattern": "*_mask.tif",
            "predict_img_pattern": "*.tif", "num_classes": 3, "class_names": list(CLASSES),
        }}
    if task == "regression":
        root = str(data["reg"])
        return {"class_path": "GeoTiffRegressionDataModule", "init_args": common | {
            "train_data_root": root, "val_data_root": root, "test_data_root": root,
            "img_pattern": "*_img.tif", "label_pattern": "*_target.tif",
            "predict_img_pattern": "*.tif",
        }}
    if task == "classification":
        root = str(data["cls"])
        return {"class_path": "GeoTiffClassificationDataModule", "init_args": common | {
            "train_data_root": root, "val_data_root": root, "test_data_root": root,
            "class_names": list(CLASSES),
        }}
    root = str(data["multi"])
    labels = str(data["multi_labels"])
    return {"class_path": "GeoTiffMultiLabelDataModule", "init_args": common | {
        "train_data_root": root, "val_data_root": root, "test_data_root": root,
        "train_label_data_root": labels, "val_label_data_root": labels,
        "test_label_data_root": labels, "class_names": list(CLASSES),
    }}


TASK_CLASSES = {
    "segmentation": "SemanticSegmentationTask",
    "regression": "PixelwiseRegressionTask",
    "classification": "ClassificationTask",
    "multilabel": "MultiLabelClassificationTask",
}


def timm_model_args(task: str, backbone: str = "timm:test_resnet") -> dict[str, Any]:
    """Model arguments of geofm:encoder_decoder on a tiny timm backbone."""
    args: dict[str, Any] = {
        "backbone": backbone, "backbone_kwargs": {"in_chans": BANDS},
    }
    if task in ("segmentation", "regression"):
        args["decoder"] = "geofm:fcn"
        args["decoder_kwargs"] = {"channels": 8, "num_convs": 1}
    return args


MakeConfig = Callable[..., Path]


@pytest.fixture
def make_config(tmp_path: Path, geotiff_data: dict[str, Path]) -> MakeConfig:
    """Write a config for ``task`` into tmp_path; ``model``/``trainer`` entries override."""

    def make(task: str, name: str = "config.yaml", model: dict[str, Any] | None = None,
             trainer: dict[str, Any] | None = None, model_args: dict[str, Any] | None = None,
             ) -> Path:
        init_args: dict[str, Any] = {
            "model_factory": "geofm:encoder_decoder",
            "model_args": model_args if model_args is not None else timm_model_args(task),
            "lr": 1e-3,
        }
        if task != "regression":
            init_args["num_classes"] = 3
            init_args["class_names"] = list(CLASSES)
        init_args.update(model or {})
        config = {
            "seed_everything": 0,
            "trainer": {
                "accelerator": "cpu", "devices": 1, "max_epochs": 1,
                # every validation and test chip (1.0: a fraction; an int 1 is one batch):
                # the report tests count figures and confusion-matrix pixels of all 4
                "limit_train_batches": 2, "limit_val_batches": 1.0, "limit_test_batches": 1.0,
                "limit_predict_batches": 2, "num_sanity_val_steps": 0,
                "logger": {"class_path": "lightning.pytorch.loggers.CSVLogger",
                           "init_args": {"save_dir": str(tmp_path / "logs")}},
                "default_root_dir": str(tmp_path / "run"), "enable_progress_bar": False,
                "enable_model_summary": False,
            } | (trainer or {}),
            "model": {"class_path": TASK_CLASSES[task], "init_args": init_args},
            "data": _data_section(task, geotiff_data),
        }
        path = tmp_path / name
        path.write_text(yaml.safe_dump(config, sort_keys=False))
        return path

    return make
