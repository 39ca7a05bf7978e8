"""ObjectDetectionTask and InstanceSegmentationTask on water bodies of the real Sen1Floods11 chip.

The boxes and masks are the connected water regions of the chip's hand label
(``geofm_core.testing.water_bodies``), cut by the instance data module into 128 px chips
of four Sentinel-2 bands.
"""

import sys
from pathlib import Path
from typing import Any

import pytest
import torch
from lightning.pytorch import Trainer
from torch.utils.data import DataLoader

from geofm_core import ConfigurationError
from geofm_core.data.detection import GeoTiffInstanceSegmentationDataModule, collate_detection
from geofm_core.inference.checkpoint import load_task
from geofm_core.io.weights import save_weights
from geofm_core.tasks import InstanceSegmentationTask, ObjectDetectionTask
from geofm_core.testing import water_bodies

CROP = 128
BANDS = ["BLUE", "GREEN", "RED", "NIR_NARROW"]  # B2, B3, B4, B8A of the L1C chip
MODEL_ARGS = {
    "backbone": "timm:resnet18", "backbone_kwargs": {"in_chans": len(BANDS)},
    "necks": [{"name": "geofm:select_indices", "indices": [2, 3, 4]}],
    "fpn_channels": 32,
}


@pytest.fixture(scope="module")
def samples(tmp_path_factory) -> list[dict[str, Any]]:
    """Four 128 px chips of the real chip's corner, with their water regions (>= 4 px)."""
    water = water_bodies(tmp_path_factory.mktemp("water"), bands=BANDS, size=2 * CROP)
    data = GeoTiffInstanceSegmentationDataModule(
        train_data_root=str(water.images), train_label_data_root=str(water.labels),
        img_pattern="*_S2Hand.tif", label_pattern="*_water.gpkg",
        class_attribute=water.class_attribute, classes=water.classes, chip_size=CROP,
        min_box_size=4, means=[1000.0] * len(BANDS), stds=[500.0] * len(BANDS))
    dataset = data.dataset("train")
    found = [dataset[i] for i in range(len(dataset))]
    assert len(found) == 4 and all(len(s["label"]) > 0 for s in found), \
        "the crops hold water regions"
    return found


def loader(samples, batch_size: int = 2) -> DataLoader:
    return DataLoader(samples, batch_size=batch_size, collate_fn=collate_detection)


def trainer(tmp_path: Path, steps: int = 2) -> Trainer:
    return Trainer(max_steps=steps, limit_val_batches=1, num_sanity_val_steps=0,
                   accelerator="cpu", logger=False, enable_checkpointing=False,
                   enable_progress_bar=False, enable_model_summary=False,
                   default_root_dir=tmp_path)


def fit(task, samples, tmp_path: Path) -> Trainer:
    run = trainer(tmp_path)
    run.fit(task, train_dataloaders=loader(samples), val_dataloaders=loader(samples[:2]))
    return run


@pytest.mark.parametrize("framework", ["faster_rcnn", "fcos"])
def test_object_detection_fits_and_validates_map(samples, tmp_path, framework):
    torch.manual_seed(0)
    task = ObjectDetectionTask(model_args={**MODEL_ARGS, "framework": framework},
                               class_names=["water"])
    assert task.num_classes == 2 and task.class_names == ["water"]
    assert task.monitor == "val/map" and task.mode == "max" and task.vector_output
    run = fit(task, samples, tmp_path)
    metrics = run.callback_metrics
    for key in ("val/map", "val/map_50", "val/map_75", "val/mar_100", "val/map_water",
                "train/loss"):
        assert key in metrics, sorted(metrics)
        assert torch.isfinite(metrics[key])
    assert -1 <= float(metrics["val/map"]) <= 1
    if framework == "faster_rcnn":
        assert "train/loss_objectness" in metrics
    test = run.test(task, dataloaders=loader(samples[:2]), verbose=False)[0]
    assert {"test/map", "test/map_50", "test/map_water"} <= set(test)


def test_instance_segmentation_fits_and_validates_bbox_and_segm_map(samples, tmp_path):
    torch.manual_seed(0)
    task = InstanceSegmentationTask(
        model_args={**MODEL_ARGS, "framework_kwargs": {"box_detections_per_img": 20}},
        num_classes=2)
    assert task.model.framework == "mask_rcnn" and task.monitor == "val/segm_map"
    run = fit(task, samples, tmp_path)
    metrics = run.callback_metrics
    for key in ("val/bbox_map", "val/segm_map", "val/bbox_map_50", "val/segm_map_50",
                "val/segm_mar_100", "val/segm_map_1", "train/loss_mask"):
        assert key in metrics, sorted(metrics)
    predictions = run.predict(task, dataloaders=loader(samples[:2]))
    out = predictions[0]
    assert {"prediction_bbox_xyxy", "prediction_label", "prediction_score",
            "prediction_mask", "filename", "window"} <= set(out)
    for boxes, masks in zip(out["prediction_bbox_xyxy"], out["prediction_mask"], strict=True):
        assert masks.dtype == torch.uint8 and masks.shape == (boxes.shape[0], CROP, CROP)


def test_predict_checkpoint_round_trip_and_weights_path(samples, tmp_path):
    torch.manual_seed(0)
    task = ObjectDetectionTask(model_args=MODEL_ARGS, class_names=["water"],
                               lr_overrides={"backbone": 1e-5})
    groups = task.parameter_groups()
    assert groups[0]["name"] == "backbone" and groups[0]["lr"] == 1e-5
    run = fit(task, samples, tmp_path)
    batch = collate_detection(samples[:2])
    out = run.predict(task, dataloaders=loader(samples[:2]))[0]
    assert set(out) == {"prediction_bbox_xyxy", "prediction_label", "prediction_score",
                        "filename", "window"}
    assert out["filename"] == batch["filename"] and torch.equal(out["window"], batch["window"])
    assert len(out["prediction_bbox_xyxy"]) == 2
    for labels in out["prediction_label"]:
        assert labels.dtype == torch.int64 and bool((labels == 1).all())

    path = tmp_path / "det.ckpt"
    run.save_checkpoint(path)
    loaded = load_task(path)
    assert type(loaded) is ObjectDetectionTask and loaded.class_names == ["water"]
    task.eval()
    with torch.no_grad():
        expected, actual = task.detections(batch["image"]), loaded.detections(batch["image"])
    for e, a in zip(expected, actual, strict=True):
        for key in ("boxes", "labels", "scores"):
            torch.testing.assert_close(a[key], e[key])

    weights = save_weights(task.model.state_dict(), tmp_path / "det.safetensors")
    again = ObjectDetectionTask(model_args=MODEL_ARGS, num_classes=2, weights_path=str(weights))
    for (name, a), b in zip(task.model.state_dict().items(),
                            again.model.state_dict().values(), strict=True):
        assert torch.equal(a, b), name


def test_freeze_backbone_keeps_its_weights(samples, tmp_path):
    torch.manual_seed(0)
    task = ObjectDetectionTask(model_args=MODEL_ARGS, class_names=["water"],
                               freeze_backbone=True)
    before = {k: v.clone() for k, v in task.model.backbone.state_dict().items()}
    fpn_before = task.model.fpn.inner_blocks[0][0].weight.clone()
    run = trainer(tmp_path)
    run.fit(task, train_dataloaders=loader(samples))
    for key, value in task.model.backbone.state_dict().items():
        assert torch.equal(value, before[key]), key  # batch-norm statistics too
    assert not torch.equal(task.model.fpn.inner_blocks[0][0].weight, fpn_before)


# -- errors ----------------------------------------------------------------------------


def test_class_names_and_num_classes_must_agree():
    with pytest.raises(ConfigurationError, match=r"counts the background.*K \+ 1 = 2"):
        ObjectDetectionTask(model_args=MODEL_ARGS, class_names=["water"], num_classes=1)
    with pytest.raises(ConfigurationError, match="needs the object classes"):
        ObjectDetectionTask(model_args=MODEL_ARGS)


def test_mask_rcnn_in_object_detection_task():
    with pytest.raises(ConfigurationError, match="InstanceSegmentationTask"):
        ObjectDetectionTask(model_args={**MODEL_ARGS, "framework": "mask_rcnn"},
                            class_names=["water"])


def test_batch_without_boxes_is_named(samples):
    task = ObjectDetectionTask(model_args=MODEL_ARGS, class_names=["water"])
    batch = collate_detection(samples[:2])
    batch["boxes"] = batch.pop("bbox_xyxy")
    with pytest.raises(ConfigurationError, match=r"missing \['bbox_xyxy'\].*TorchGeo < 0\.8"):
        task.training_step(batch, 0)
    instance = InstanceSegmentationTask(model_args=MODEL_ARGS, class_names=["water"])
    batch = collate_detection(samples[:2])
    del batch["mask"]
    with pytest.raises(ConfigurationError, match=r"missing \['mask'\]"):
        instance.training_step(batch, 0)


def test_labels_outside_the_object_classes(samples):
    task = ObjectDetectionTask(model_args=MODEL_ARGS, class_names=["water"])
    batch = collate_detection(samples[:2])
    batch["label"] = [labels * 0 for labels in batch["label"]]
    with pytest.raises(ConfigurationError, match=r"labels range 0\.\.0 but object labels are "
                                                 r"1\.\.1 \(0 is the background"):
        task.training_step(batch, 0)


def test_missing_pycocotools_names_the_extra(monkeypatch):
    monkeypatch.setitem(sys.modules, "pycocotools", None)
    monkeypatch.setitem(sys.modules, "faster_coco_eval", None)
    with pytest.raises(ConfigurationError, match=r"pip install geofm-core\[detection\]"):
        ObjectDetectionTask(model_args=MODEL_ARGS, class_names=["water"])
