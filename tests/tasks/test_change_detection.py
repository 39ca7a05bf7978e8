"""Change detection end to end on a real change pair: geofm fit|validate|test|predict, infer."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
import rasterio
import torch
import yaml

from geofm_core.cli import main
from geofm_core.errors import ConfigurationError
from geofm_core.models.change import ChangeDetectionFactory
from geofm_core.tasks import ChangeDetectionTask
from geofm_core.testing import change_pairs, csv_trainer, logged_metric_keys, write_change_pair

MODEL_ARGS: dict[str, Any] = {
    "backbone": "timm:test_resnet", "backbone_kwargs": {"in_chans": 3},
    "decoder": "geofm:fcn", "decoder_kwargs": {"channels": 8, "num_convs": 1},
}


def _build(fusion: str) -> Any:
    return ChangeDetectionFactory().build_model("change_detection", fusion=fusion, **MODEL_ARGS)


def test_one_backbone_for_both_dates_and_the_fusions() -> None:
    x = torch.randn(2, 2, 3, 40, 56)
    swapped = x.flip(1)
    torch.manual_seed(0)
    diff = _build("diff").eval()
    torch.manual_seed(0)
    concat = _build("concat").eval()
    with torch.no_grad():
        assert diff(x).output.shape == (2, 2, 40, 56)
        # |after - before| of shared features: the order of the dates does not matter
        torch.testing.assert_close(diff(x).output, diff(swapped).output)
        assert not torch.allclose(concat(x).output, concat(swapped).output)
    backbone = sum(p.numel() for p in diff.backbone.parameters())
    assert sum(p.numel() for n, p in diff.named_parameters() if n.startswith("backbone.")) \
        == backbone  # one backbone, no per-date copy
    # concat doubles the channels the decoder takes
    first = lambda m: next(c for c in m.decoder.modules() if isinstance(c, torch.nn.Conv2d))  # noqa: E731
    assert first(concat).in_channels == 2 * first(diff).in_channels
    with pytest.raises(ConfigurationError, match="2 dates"):
        diff(torch.randn(2, 3, 40, 56))
    with pytest.raises(ConfigurationError, match="not 'segmentation'"):
        ChangeDetectionFactory().build_model("segmentation", **MODEL_ARGS)
    with pytest.raises(ConfigurationError, match="fusion"):
        ChangeDetectionFactory().build_model("change_detection", fusion="sum", **MODEL_ARGS)


def test_task_defaults_are_binary_change() -> None:
    task = ChangeDetectionTask(model_args=MODEL_ARGS)
    assert task.class_names == ["no_change", "change"] and task.monitor == "val/IoU_change"
    multi = ChangeDetectionTask(model_args=MODEL_ARGS, num_classes=3)
    assert multi.monitor == "val/mIoU" and multi.num_classes == 3


def _config(tmp_path: Path, pairs: Path, fusion: str) -> Path:
    root = str(pairs)
    config = {
        "seed_everything": 0,
        "trainer": csv_trainer(tmp_path, max_epochs=3),
        "model": {"class_path": "ChangeDetectionTask", "init_args": {
            "model_args": {**MODEL_ARGS, "fusion": fusion}, "lr": 0.01,
            "tiled_inference": {"crop": 32, "stride": 24}}},
        "data": {"class_path": "GeoTiffChangeDetectionDataModule", "init_args": {
            "train_data_root": root, "val_data_root": root, "test_data_root": root,
            "predict_data_root": root, "batch_size": 2, "means": [100.0] * 3,
            "stds": [50.0] * 3, "train_augmentations": ["hflip", {"random_crop": 32}]}},
    }
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    return path


@pytest.mark.parametrize("fusion", ["diff", "concat"])
def test_fit_validate_test_predict_and_infer_from_yaml(tmp_path: Path, fusion: str) -> None:
    pairs = change_pairs(tmp_path / "pairs", count=4, size=48)
    config = _config(tmp_path, pairs, fusion)
    assert main(["fit", "-c", str(config)]) == 0
    ckpt = next((tmp_path / "logs").rglob("last.ckpt"))
    assert any(p.name.startswith("best-") for p in ckpt.parent.iterdir())
    for command in ("validate", "test", "predict"):
        assert main([command, "-c", str(config), "--ckpt_path", str(ckpt)]) == 0, command
    assert {"val/IoU_change", "val/mIoU", "val/F1", "test/IoU_change", "train/loss_epoch"} \
        <= logged_metric_keys(tmp_path / "logs")
    predictions = sorted((tmp_path / "run").rglob("*_pred.tif"))
    assert len(predictions) == 4
    with rasterio.open(predictions[0]) as out, \
            rasterio.open(pairs / predictions[0].name.replace("_pred", "")) as before:
        assert out.shape == before.shape and out.transform == before.transform

    scene = write_change_pair(tmp_path / "scene", "scene", 150, 180, (70, 100), blocks=4,
                              block=16, seed=7)
    outputs = [tmp_path / f"change{i}.tif" for i in range(2)]
    for output in outputs:
        assert main(["infer", "--ckpt", str(ckpt), str(scene["before"]), str(output),
                     "--after", str(scene["after"]), "--crop", "32", "--stride", "24",
                     "--no-progress"]) == 0
    with rasterio.open(outputs[0]) as out, rasterio.open(scene["before"]) as before, \
            rasterio.open(scene["label"]) as label, rasterio.open(outputs[1]) as again:
        assert (out.crs, out.transform, out.shape) == (before.crs, before.transform,
                                                       before.shape)
        change, truth = out.read(1), label.read(1)
        np.testing.assert_array_equal(change, again.read(1))  # deterministic
    assert set(np.unique(change)) <= {0, 1}
    iou = np.logical_and(change == 1, truth == 1).sum() / np.logical_or(change == 1,
                                                                       truth == 1).sum()
    assert iou > 0


def test_infer_refuses_one_date_and_misregistered_dates(tmp_path: Path,
                                                        capsys: pytest.CaptureFixture[str]) -> None:
    task = ChangeDetectionTask(model_args=MODEL_ARGS)
    import lightning.pytorch as pl

    ckpt = tmp_path / "task.ckpt"
    trainer = pl.Trainer(logger=False, enable_checkpointing=False, enable_progress_bar=False,
                         enable_model_summary=False)
    trainer.strategy.connect(task)
    trainer.save_checkpoint(ckpt)
    a = write_change_pair(tmp_path / "a", "a", 200, 200, 40)
    b = write_change_pair(tmp_path / "b", "b", 260, 300, 40)  # another window: other origin
    capsys.readouterr()
    assert main(["infer", "--ckpt", str(ckpt), str(a["before"]), str(tmp_path / "o.tif"),
                 "--no-progress"]) == 1
    assert "--after AFTER.tif" in capsys.readouterr().err
    assert main(["infer", "--ckpt", str(ckpt), str(a["before"]), str(tmp_path / "o.tif"),
                 "--after", str(b["after"]), "--no-progress"]) == 1
    err = capsys.readouterr().err
    assert "not co-registered" in err and "a_before.tif" in err and "b_after.tif" in err
    assert not (tmp_path / "o.tif").exists()


def test_torchgeo_change_detection_task_trains_through_geofm_fit(tmp_path: Path) -> None:
    pytest.importorskip("torchgeo")
    pairs = change_pairs(tmp_path / "pairs", count=2, size=48)
    config = yaml.safe_load(_config(tmp_path, pairs, "diff").read_text())
    config["model"] = {"class_path": "torchgeo.trainers.ChangeDetectionTask", "init_args": {
        "model": "unet", "backbone": "resnet18", "weights": None, "in_channels": 3,
        "task": "binary", "loss": "bce"}}
    # TorchGeo's binary change masks are (B, 1, H, W); smp's U-Net needs multiples of 32
    config["data"]["init_args"] |= {"mask_channel": True,
                                    "val_augmentations": [{"center_crop": 32}]}
    config["trainer"] |= {"max_epochs": 1, "limit_train_batches": 1, "limit_val_batches": 1}
    path = tmp_path / "torchgeo.yaml"
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    assert main(["fit", "-c", str(path)]) == 0
    assert {"val_loss", "val_BinaryJaccardIndex", "val_BinaryF1Score"} <= logged_metric_keys(
        tmp_path / "logs")


def test_the_docs_page_config_trains(tmp_path: Path) -> None:
    page = Path(__file__).resolve().parents[2] / "docs" / "change-detection.md"
    block = next(b for b in page.read_text().split("```yaml\n")[1:] if "seed_everything" in b)
    config = yaml.safe_load(block.split("```")[0])
    pairs = change_pairs(tmp_path / "pairs", count=2, size=40)
    data = config["data"]["init_args"]
    for stage in ("train", "val", "test", "predict"):
        data[f"{stage}_data_root"] = str(pairs)
    # the page's run, tiny: no download, small crops, one batch per stage
    config["model"]["init_args"]["model_args"]["backbone_kwargs"]["pretrained"] = False
    data |= {"batch_size": 2, "train_augmentations": ["hflip", {"random_crop": 32}],
             "val_augmentations": [{"center_crop": 32}]}
    config["model"]["init_args"]["tiled_inference"] = {"crop": 32, "stride": 24}
    config["trainer"] |= {"accelerator": "cpu", "logger": False, "enable_progress_bar": False,
                          "default_root_dir": str(tmp_path / "run")}
    path = tmp_path / "change.yaml"
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    assert main(["fit", "-c", str(path), "--trainer.fast_dev_run", "1"]) == 0
