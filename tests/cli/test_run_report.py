"""What a run shows: TensorBoard out of the box, figures, the summary, per-class metrics."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from geofm_core.cli import main

from .conftest import BANDS, CLASSES, MakeConfig


def _geofm_exe() -> str:
    return str(Path(sys.executable).with_name("geofm"))


def _events(root: Path) -> dict[str, list[str]]:
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    found = sorted(root.rglob("events.out.tfevents.*"))
    assert found, f"no TensorBoard events under {root}"
    tags: dict[str, list[str]] = {"images": [], "scalars": []}
    for path in found:
        events = EventAccumulator(str(path), size_guidance={"images": 0})
        events.Reload()
        for kind in tags:
            tags[kind] += events.Tags()[kind]
    return tags


def test_fit_with_tensorboard_prints_a_summary_in_a_real_process(
        make_config: MakeConfig, tmp_path: Path) -> None:
    config = make_config("segmentation", model={"plot_on_val": 3}, trainer={
        "max_epochs": 2, "enable_model_summary": True,
        "logger": {"class_path": "lightning.pytorch.loggers.TensorBoardLogger",
                   "init_args": {"save_dir": str(tmp_path / "tb")}}})
    proc = subprocess.run([_geofm_exe(), "fit", "-c", str(config)], capture_output=True,
                          text=True, timeout=600, check=False)
    output = proc.stdout + proc.stderr
    assert proc.returncode == 0, output
    assert "Traceback" not in output
    # Lightning's noise is gone: no advertisement, no FLOPs column, no LeafSpec warning.
    assert "litlogger" not in output and "FLOPs" not in output and "LeafSpec" not in output
    assert "Total params" in output  # the model summary itself stays
    # The summary: best checkpoint by val/mIoU (the segmentation default), last checkpoint,
    # per-class metrics and the confusion matrix with class names.
    assert "best val/mIoU:" in proc.stdout
    best = proc.stdout.split("best val/mIoU:")[1].split("-> ")[1].split("\n")[0]
    assert Path(best).is_file() and Path(best).name.startswith("best-")
    assert "last checkpoint: " in proc.stdout
    table = proc.stdout.split("per-class val metrics:")[1]
    header = table.strip().splitlines()[0].split()
    assert header == ["CLASS", "IOU", "PRECISION", "RECALL", "F1"]
    assert all(f"\n{name} " in table for name in CLASSES)
    assert "val confusion matrix" in proc.stdout
    tags = _events(tmp_path / "tb")
    assert "val/confusion_matrix" in tags["images"]
    assert sum(t.startswith("val/prediction_") for t in tags["images"]) == 3
    assert {"val/mIoU", "val/precision_water", "val/recall_land", "val/F1_cloud"} <= set(
        tags["scalars"])


def test_best_checkpoint_follows_miou_and_the_plateau_maximises(
        make_config: MakeConfig, tmp_path: Path) -> None:
    from geofm_core.tasks import SemanticSegmentationTask

    task = SemanticSegmentationTask(model=torch.nn.Conv2d(BANDS, 3, 1), num_classes=3)
    assert (task.monitor, task.mode) == ("val/mIoU", "max")
    scheduler = task.configure_optimizers()["lr_scheduler"]["scheduler"]  # type: ignore[index]
    assert scheduler.mode == "max"


def test_csv_logger_gets_png_figures(make_config: MakeConfig, tmp_path: Path) -> None:
    config = make_config("segmentation", model={"plot_on_val": 2})
    assert main(["fit", "-c", str(config)]) == 0
    figures = sorted((tmp_path / "logs").rglob("figures/*.png"))
    assert [f.name for f in figures] == ["val_prediction_chip0_img_epoch0.png",
                                         "val_prediction_chip1_img_epoch0.png"]


def test_validate_prints_per_class_metrics_and_confusion_matrix(
        make_config: MakeConfig, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    config = make_config("classification")
    assert main(["fit", "-c", str(config)]) == 0
    ckpt = sorted((tmp_path / "logs").rglob("last.ckpt"))[-1]
    capsys.readouterr()
    assert main(["validate", "-c", str(config), "--ckpt_path", str(ckpt)]) == 0
    out = capsys.readouterr().out
    assert "per-class val metrics:" in out and "val confusion matrix" in out
    matrix = out.split("val confusion matrix")[1].strip().splitlines()[2:5]
    counts = np.array([[int(v) for v in row.split()[1:]] for row in matrix])
    assert counts.shape == (3, 3)
    # Every validation chip once (the YAML `limit_val_batches: 1` reaches Lightning as 1.0).
    assert counts.sum() == 4


def test_segmentation_figure_has_fixed_colours_and_a_legend(geotiff_data) -> None:
    from geofm_core.data import GeoTiffSegmentationDataModule

    root = str(geotiff_data["seg"])
    data = GeoTiffSegmentationDataModule(
        train_data_root=root, val_data_root=root, img_pattern="*_img.tif",
        label_pattern="*_mask.tif", batch_size=2, class_names=list(CLASSES), ignore_index=255)
    data.setup("fit")
    sample = data.datasets["train"][0]
    mask = sample["mask"].clone()
    mask[:4] = 255  # ignored pixels
    figure = data.plot({"image": sample["image"], "mask": mask, "prediction": mask.clamp(max=2)})
    legend = figure.legends[0]
    assert [t.get_text() for t in legend.get_texts()] == CLASSES
    mask_image = figure.axes[1].images[0]
    assert np.ma.is_masked(mask_image.get_array())  # ignore pixels are left blank
    assert mask_image.get_clim() == (-0.5, 2.5)  # class i has colour i in every panel
