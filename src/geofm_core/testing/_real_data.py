"""Real-raster scaffolding for plugin tests: the Sen1Floods11 chip and configs that train on it.

A plugin proves its backbone trains by running ``geofm fit --trainer.fast_dev_run 1`` on
the real Sentinel-2 chip in the workplace's shared data folder, and proves TerraTorch's
names convert by writing the config a TerraTorch user writes. These helpers give both
configs, so that a plugin's test states only its model arguments.
"""

from __future__ import annotations

import csv
import os
import shutil
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest
import yaml

from geofm_core.data.bands import SENTINEL2_L1C_BANDS

__all__ = [
    "SEN1FLOODS11_CHIP",
    "convert_terratorch_config",
    "csv_trainer",
    "fit_fast_dev_run",
    "logged_metric_keys",
    "segmentation_fit_config",
    "sen1floods11_chips",
    "shared_data",
    "terratorch_segmentation_config",
]

#: The name the Sen1Floods11 sample chip's files start with.
SEN1FLOODS11_CHIP = "Spain_7370579"
_DATA_ENV = "GEOFM_SHARED_DATA"


def shared_data(*parts: str) -> Path:
    """A path in the shared data folder; the calling test is skipped when it is absent.

    The folder is ``$GEOFM_SHARED_DATA`` when set, else the first ``shared/data`` found
    beside or above the working directory (tests run from the project's root, whose
    sibling ``../shared/data`` the data README describes).

    Args:
        *parts: Path parts below the data folder, e.g. ``"sen1floods11"``.
    """
    if os.environ.get(_DATA_ENV):
        roots = [Path(os.environ[_DATA_ENV])]
    else:
        here = Path.cwd().resolve()
        roots = [base / "shared" / "data" for base in (here, *here.parents)]
    for root in roots:
        if root.is_dir():
            path = root.joinpath(*parts)
            if path.exists():
                return path
    pytest.skip(f"real test rasters {'/'.join(parts) or 'shared/data'} not found "
                f"(set {_DATA_ENV} or see the project's data README)")


def sen1floods11_chips(folder: Path, *, copies: int = 1,
                       kinds: Sequence[str] = ("S2Hand", "LabelHand")) -> Path:
    """Copy the real Sen1Floods11 chip's files into ``folder/chips``; return that folder.

    Args:
        folder: Where the ``chips`` folder is made (a test's ``tmp_path``).
        copies: How many copies of the chip: a decoder with batch norm on pooled
            features (UperNet's pyramid pooling) needs two samples per training batch.
        kinds: Which of the chip's files: ``S2Hand`` (13-band L1C), ``LabelHand``
            (water mask), ``S1Hand`` (VV, VH).
    """
    data = shared_data("sen1floods11")
    root = folder / "chips"
    root.mkdir(parents=True, exist_ok=True)
    for copy in range(copies):
        prefix = SEN1FLOODS11_CHIP if copy == 0 else f"Copy{copy}_7370579"
        for kind in kinds:
            shutil.copy(data / f"{SEN1FLOODS11_CHIP}_{kind}.tif", root / f"{prefix}_{kind}.tif")
    return root


def _trainer(run: Path) -> dict[str, Any]:
    return {"accelerator": "cpu", "devices": 1, "logger": False,
            "enable_progress_bar": False, "enable_model_summary": False,
            "default_root_dir": str(run)}


def segmentation_fit_config(
    root: Path,
    run: Path,
    model_args: dict[str, Any],
    *,
    bands: Sequence[str] = SENTINEL2_L1C_BANDS,
    dataset_bands: Sequence[str] = SENTINEL2_L1C_BANDS,
    img_pattern: str = "*_S2Hand.tif",
    means: Sequence[float] | None = None,
    stds: Sequence[float] | None = None,
    batch_size: int = 1,
    crop: int = 64,
    **data_args: Any,
) -> dict[str, Any]:
    """A geofm water-segmentation fit config on chips made by :func:`sen1floods11_chips`.

    Args:
        root: The chips folder (training and validation both).
        run: The trainer's ``default_root_dir``.
        model_args: ``geofm:encoder_decoder``'s arguments (backbone, necks, decoder, ...).
        bands: The bands the model gets (``output_bands``), by name.
        dataset_bands: The bands of the image files, in order.
        img_pattern: Which files are images (labels are ``*_LabelHand.tif``).
        means: Per-band means (default 1500 for each of ``bands``: L1C reflectance).
        stds: Per-band standard deviations (default 1000 each).
        batch_size: Samples per batch.
        crop: Random (training) and centre (validation) crop size in pixels.
        **data_args: More ``GeoTiffSegmentationDataModule`` arguments.
    """
    n = len(bands)
    return {
        "seed_everything": 0,
        "trainer": _trainer(run),
        "model": {"class_path": "SemanticSegmentationTask", "init_args": {
            "model_factory": "geofm:encoder_decoder", "model_args": model_args,
            "num_classes": 2, "ignore_index": -1}},
        "data": {"class_path": "GeoTiffSegmentationDataModule", "init_args": {
            "train_data_root": str(root), "val_data_root": str(root),
            "img_pattern": img_pattern, "label_pattern": "*_LabelHand.tif",
            "dataset_bands": list(dataset_bands), "output_bands": list(bands),
            "means": list(means or [1500.0] * n), "stds": list(stds or [1000.0] * n),
            "num_classes": 2, "ignore_index": -1, "batch_size": batch_size,
            "num_workers": 0, "train_augmentations": [{"random_crop": crop}],
            "val_augmentations": [{"center_crop": crop}], **data_args}},
    }


def terratorch_segmentation_config(
    root: Path,
    run: Path,
    model_args: dict[str, Any],
    *,
    model_factory: str = "EncoderDecoderFactory",
    bands: Sequence[str] = SENTINEL2_L1C_BANDS,
    dataset_bands: Sequence[str] = SENTINEL2_L1C_BANDS,
    img_grep: str = "*_S2Hand.tif",
    means: Sequence[float] | None = None,
    stds: Sequence[float] | None = None,
    batch_size: int = 1,
    crop: int = 64,
) -> dict[str, Any]:
    """The same fit as :func:`segmentation_fit_config`, as a TerraTorch user writes it.

    TerraTorch's task, generic data module and albumentations crops; ``model_args`` use
    TerraTorch's names (``backbone_*`` keywords, ``FCNDecoder``, ...), for
    ``geofm convert terratorch`` to translate.

    Args:
        root: The chips folder (images and labels, training and validation).
        run: The trainer's ``default_root_dir``.
        model_args: TerraTorch's ``model_args``.
        model_factory: TerraTorch's factory name.
        bands: ``output_bands``.
        dataset_bands: The bands of the image files, in order.
        img_grep: Which files are images (labels are ``*_LabelHand.tif``).
        means: Per-band means (default 1500 each).
        stds: Per-band standard deviations (default 1000 each).
        batch_size: Samples per batch.
        crop: Crop size in pixels.
    """
    n = len(bands)
    size = {"init_args": {"height": crop, "width": crop}}
    trainer = _trainer(run)
    del trainer["enable_model_summary"]
    return {
        "seed_everything": 0,
        "trainer": {**trainer, "max_epochs": 1},
        "data": {"class_path": "terratorch.datamodules.GenericNonGeoSegmentationDataModule",
                 "init_args": {
                     "batch_size": batch_size, "num_workers": 0, "num_classes": 2,
                     "train_data_root": str(root), "val_data_root": str(root),
                     "train_label_data_root": str(root), "val_label_data_root": str(root),
                     "img_grep": img_grep, "label_grep": "*_LabelHand.tif",
                     "dataset_bands": list(dataset_bands), "output_bands": list(bands),
                     "means": list(means or [1500.0] * n),
                     "stds": list(stds or [1000.0] * n),
                     "no_label_replace": -1, "no_data_replace": 0,
                     "train_transform": [{"class_path": "albumentations.RandomCrop", **size},
                                         {"class_path": "ToTensorV2"}],
                     "val_transform": [{"class_path": "albumentations.CenterCrop", **size},
                                       {"class_path": "ToTensorV2"}]}},
        "model": {"class_path": "terratorch.tasks.SemanticSegmentationTask", "init_args": {
            "model_factory": model_factory, "model_args": model_args,
            "loss": "ce", "ignore_index": -1}},
    }


def fit_fast_dev_run(config: dict[str, Any] | Path, folder: Path) -> None:
    """Run ``geofm fit -c <config> --trainer.fast_dev_run 1`` in-process; it must succeed.

    Args:
        config: A config (written to ``folder/fit.yaml``) or the path of one.
        folder: Where the config is written.
    """
    from geofm_core.cli import main

    if isinstance(config, Path):
        path = config
    else:
        path = folder / "fit.yaml"
        path.write_text(yaml.safe_dump(config, sort_keys=False))
    assert main(["fit", "-c", str(path), "--trainer.fast_dev_run", "1"]) == 0


def convert_terratorch_config(config: dict[str, Any], folder: Path
                              ) -> tuple[int, dict[str, Any] | None, Path]:
    """Run ``geofm convert terratorch`` on a TerraTorch config, in-process.

    Args:
        config: The TerraTorch config (written to ``folder/terratorch.yaml``).
        folder: Where both configs are written.

    Returns:
        The exit code, the converted config (None when none was written) and its path
        (``folder/geofm.yaml``).
    """
    from geofm_core.cli import main

    source, converted = folder / "terratorch.yaml", folder / "geofm.yaml"
    source.write_text(yaml.safe_dump(config, sort_keys=False))
    code = main(["convert", "terratorch", str(source), "-o", str(converted)])
    loaded = yaml.safe_load(converted.read_text()) if converted.exists() else None
    return code, loaded, converted


def csv_trainer(folder: Path, max_epochs: int = 2) -> dict[str, Any]:
    """A quiet CPU ``trainer`` section for CLI tests: CSV metrics under ``folder/logs``.

    Checkpoints go next to the metrics (``folder/logs/...``); predictions and other run
    outputs under ``folder/run``. Read the metrics with :func:`logged_metric_keys`.
    """
    return {
        "accelerator": "cpu", "devices": 1, "max_epochs": max_epochs,
        "num_sanity_val_steps": 0,
        "logger": {"class_path": "lightning.pytorch.loggers.CSVLogger",
                   "init_args": {"save_dir": str(folder / "logs")}},
        "default_root_dir": str(folder / "run"), "enable_progress_bar": False,
        "enable_model_summary": False,
    }


def logged_metric_keys(root: Path) -> set[str]:
    """Every metric name in the ``metrics.csv`` files of CSV loggers below ``root``."""
    keys: set[str] = set()
    for path in root.rglob("metrics.csv"):
        with path.open() as f:
            keys |= set(next(csv.reader(f)))
    return keys
