"""ObjectDetectionTask and InstanceSegmentationTask on water bodies of the real Sen1Floods11 chip.

The boxes and masks are the connected water regions of the chip's hand label
(``rasterio.features.shapes``), cut into 128 px crops of four Sentinel-2 bands.
"""

import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import rasterio
import torch
from affine import Affine
from lightning.pytorch import Trainer
from rasterio import features
from shapely.geometry import shape
from torch.utils.data import DataLoader

from geofm_core import ConfigurationError
from geofm_core.inference.checkpoint import load_task
from geofm_core.io.weights import save_weights
from geofm_core.tasks import InstanceSegmentationTask, ObjectDetectionTask
from geofm_core.testing import SEN1FLOODS11_CHIP, shared_data

CROP = 128
BANDS = [1, 2, 3, 8]  # B2, B3, B4, B8A (0-based in the 13-band chip)
MODEL_ARGS = {
    "backbone": "timm:resnet18", "backbone_kwargs": {"in_chans": len(BANDS)},
    "necks": [{"name": "geofm:select_indices", "indices": [2, 3, 4]}],
    "fpn_channels": 32,
}


def water_samples(count: int = 4, min_area: int = 16, max_objects: int = 12
                  ) -> list[dict[str, Any]]:
    """Crops of the real chip with the boxes and masks of their water regions."""
    folder = shared_data("sen1floods11")
    image_path = folder / f"{SEN1FLOODS11_CHIP}_S2Hand.tif"
    with rasterio.open(image_path) as src:
        image = src.read([b + 1 for b in BANDS]).astype(np.float32)
    with rasterio.open(folder / f"{SEN1FLOODS11_CHIP}_LabelHand.tif") as src:
        label = src.read(1)
    mean = image.mean(axis=(1, 2), keepdims=True)
    std = image.std(axis=(1, 2), keepdims=True) + 1e-6
    image = (image - mean) / std
    samples = []
    for i in range(count):
        row, col = (i // 4) * CROP, (i % 4) * CROP
        water = (label[row:row + CROP, col:col + CROP] == 1).astype(np.uint8)
        regions = [shape(geom) for geom, _ in features.shapes(
            water, mask=water == 1, connectivity=8, transform=Affine.identity())]
        regions = sorted((r for r in regions if r.area >= min_area), key=lambda r: -r.area)
        regions = regions[:max_objects]
        boxes = torch.tensor([r.bounds for r in regions], dtype=torch.float32).reshape(-1, 4)
        masks = np.stack([features.rasterize([r], out_shape=water.shape, dtype="uint8")
                          for r in regions]) if regions else np.zeros((0, CROP, CROP), "uint8")
        samples.append({
            "image": torch.from_numpy(image[:, row:row + CROP, col:col + CROP].copy()),
            "bbox_xyxy": boxes,
            "label": torch.ones(len(regions), dtype=torch.int64),
            "mask": torch.from_numpy(masks),
            "filename": str(image_path),
            "window": torch.tensor([row, col, CROP, CROP]),
        })
    return samples


def collate(samples: list[dict[str, Any]]) -> dict[str, Any]:
    """The TorchGeo 0.8 detection batch: stacked images, lists of per-image targets."""
    return {
        "image": torch.stack([s["image"] for s in samples]),
        "bbox_xyxy": [s["bbox_xyxy"] for s in samples],
        "label": [s["label"] for s in samples],
        "mask": [s["mask"] for s in samples],
        "filename": [s["filename"] for s in samples],
        "window": torch.stack([s["window"] for s in samples]),
    }


@pytest.fixture(scope="module")
def samples() -> list[dict[str, Any]]:
    found = water_samples()
    assert all(len(s["label"]) > 0 for s in found), "the crops hold water regions"
    return found


def loader(samples, batch_size: int = 2) -> DataLoader:
    return DataLoader(samples, batch_size=batch_size, collate_fn=collate)


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
    batch = collate(samples[:2])
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
    batch = collate(samples[:2])
    batch["boxes"] = batch.pop("bbox_xyxy")
    with pytest.raises(ConfigurationError, match=r"missing \['bbox_xyxy'\].*TorchGeo < 0\.8"):
        task.training_step(batch, 0)
    instance = InstanceSegmentationTask(model_args=MODEL_ARGS, class_names=["water"])
    batch = collate(samples[:2])
    del batch["mask"]
    with pytest.raises(ConfigurationError, match=r"missing \['mask'\]"):
        instance.training_step(batch, 0)


def test_labels_outside_the_object_classes(samples):
    task = ObjectDetectionTask(model_args=MODEL_ARGS, class_names=["water"])
    batch = collate(samples[:2])
    batch["label"] = [labels * 0 for labels in batch["label"]]
    with pytest.raises(ConfigurationError, match=r"labels range 0\.\.0 but object labels are "
                                                 r"1\.\.1 \(0 is the background"):
        task.training_step(batch, 0)


def test_missing_pycocotools_names_the_extra(monkeypatch):
    monkeypatch.setitem(sys.modules, "pycocotools", None)
    monkeypatch.setitem(sys.modules, "faster_coco_eval", None)
    with pytest.raises(ConfigurationError, match=r"pip install geofm-core\[detection\]"):
        ObjectDetectionTask(model_args=MODEL_ARGS, class_names=["water"])
