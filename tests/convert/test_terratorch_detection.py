"""``geofm convert terratorch`` on TerraTorch's object detection configs.

The configs are written the way TerraTorch 1.2 documents them (its
examples/confs/object_detection_*.yaml: ``ObjectDetectionTask`` with
``ObjectDetectionModelFactory``, ``framework``, ``backbone_*``, ``necks`` ending in
``FeaturePyramidNetworkNeck``, ``framework_min_size``..., ``class_names`` starting with
``Background``), with small backbones.
"""

from __future__ import annotations

import copy
import inspect
from pathlib import Path
from typing import Any

import pytest
import yaml

from geofm_core.convert.terratorch import convert_config, is_terratorch_config, render
from geofm_core.convert.terratorch.tables import DETECTION_FRAMEWORKS, DETECTION_KWARGS
from geofm_core.testing import convert_terratorch_config

TRAINER: dict[str, Any] = {
    "accelerator": "cpu", "max_epochs": 1, "precision": "16-mixed",
    "callbacks": [
        {"class_path": "LearningRateMonitor", "init_args": {"logging_interval": "epoch"}},
        {"class_path": "ModelCheckpoint",
         "init_args": {"mode": "max", "monitor": "val_map", "filename": "best-{epoch:02d}"}},
    ],
}
OPTIMIZER = {"class_path": "torch.optim.AdamW", "init_args": {"lr": 1e-4, "weight_decay": 0.05}}
SCHEDULER = {"class_path": "CosineAnnealingLR", "init_args": {"T_max": 20}}
VHR10_DATA = {"class_path": "terratorch.datamodules.mVHR10DataModule",
              "init_args": {"root": "data/VHR10", "batch_size": 8, "num_workers": 2}}
VHR10_NAMES = ["Background", "Airplane", "Ships", "Storage tank", "Baseball diamond",
               "Tennis court", "Basketball court", "Ground track field", "Harbor", "Bridge",
               "Vehicle"]


def od_config(model_args: dict[str, Any], data: dict[str, Any] | None = None,
              **task_args: Any) -> dict[str, Any]:
    """A TerraTorch object detection config, as its examples write them."""
    return {
        "seed_everything": 0,
        "trainer": copy.deepcopy(TRAINER),
        "data": copy.deepcopy(data or VHR10_DATA),
        "model": {"class_path": "terratorch.tasks.ObjectDetectionTask", "init_args": {
            "model_factory": "ObjectDetectionModelFactory", "model_args": model_args,
            "freeze_backbone": False, "freeze_decoder": False, **task_args}},
        "optimizer": copy.deepcopy(OPTIMIZER),
        "lr_scheduler": copy.deepcopy(SCHEDULER),
    }


# examples/confs/object_detection_vhr10_vit.yaml's layout on a tiny Prithvi.
PRITHVI_FASTER_RCNN = {
    "framework": "faster-rcnn", "backbone": "prithvi_eo_v2_300", "num_classes": 11,
    "framework_min_size": 896, "framework_max_size": 896,
    "backbone_pretrained": False, "backbone_embed_dim": 32, "backbone_depth": 4,
    "backbone_num_heads": 4, "backbone_bands": ["RED", "GREEN", "BLUE"],
    "necks": [{"name": "SelectIndices", "indices": [0, 1, 2, 3]},
              {"name": "ReshapeTokensToImage"},
              {"name": "LearnedInterpolateToPyramidal"},
              {"name": "FeaturePyramidNetworkNeck"}],
}
# examples/confs/object_detection_substation_resnet50.yaml's layout on resnet18.
TIMM_MASK_RCNN = {
    "framework": "mask-rcnn", "backbone": "timm_resnet18", "backbone_pretrained": False,
    "framework_min_size": 224, "framework_max_size": 224, "num_classes": 2, "in_channels": 3,
    "necks": [{"name": "FeaturePyramidNetworkNeck"}],
}


def lines(items: list[str], path: str) -> list[str]:
    """The report lines about ``path`` (the key path before the colon)."""
    return [item for item in items if item.split(": ", 1)[0] == path]


def test_faster_rcnn_on_prithvi_with_necks() -> None:
    conversion = convert_config(od_config(copy.deepcopy(PRITHVI_FASTER_RCNN),
                                          class_names=VHR10_NAMES), "vit.yaml")
    model = conversion.config["model"]
    assert model["class_path"] == "ObjectDetectionTask"
    init = model["init_args"]
    assert init["model_factory"] == "geofm:detection"
    args = init["model_args"]
    assert args["framework"] == "faster_rcnn"
    assert args["backbone"] == "prithvi:prithvi_eo_v2_300"
    assert args["backbone_kwargs"]["bands"] == ["RED", "GREEN", "BLUE"]
    assert args["backbone_kwargs"]["embed_dim"] == 32
    # TerraTorch's necks through the converter's neck rules; its FPN neck is geofm's own.
    assert args["necks"] == [
        {"name": "geofm:select_indices", "indices": [0, 1, 2, 3]},
        {"name": "geofm:reshape_tokens_to_image"},
        {"name": "geofm:learned_interpolate_to_pyramidal"}]
    assert "fpn_channels" not in args  # TerraTorch's default 256 is geofm's
    assert args["num_classes"] == 11
    # No resizing in TerraTorch's transform: min/max size are not written.
    assert "min_size" not in args and "max_size" not in args
    # TerraTorch's pyramid: no extra level, its anchor sizes for the 4 selected blocks.
    assert args["extra_block"] == "none"
    assert args["framework_kwargs"] == {"box_score_thresh": 0.5, "box_nms_thresh": 0.5,
                                        "anchor_sizes": [[32], [64], [128], [256]]}
    # No padding: TerraTorch's detection factory does not pad (its encoder-decoder does).
    assert "input_multiple" not in args
    assert init["class_names"] == VHR10_NAMES[1:]
    assert init["freeze_backbone"] is False and init["freeze_decoder"] is False
    assert "optimizer" not in init  # the top-level optimizer wins, as in TerraTorch
    notes = conversion.notes
    assert lines(notes, "model.init_args.model_args.framework_min_size")
    assert any("'Background' dropped" in n for n in lines(notes, "model.init_args.class_names"))
    assert conversion.config["trainer"]["callbacks"][1]["init_args"]["monitor"] == "val/map"
    assert lines(notes, "trainer.callbacks[1].init_args.monitor") == [
        "trainer.callbacks[1].init_args.monitor: val_map written as val/map (geofm's "
        "metric name)"]
    assert conversion.unmapped == []


def test_mask_rcnn_is_instance_segmentation() -> None:
    names = ["Background", "Substation"]
    config = od_config(copy.deepcopy(TIMM_MASK_RCNN), class_names=names,
                       score_threshold=0.3)
    config["trainer"]["callbacks"][1]["init_args"]["monitor"] = "val_segm_map"
    conversion = convert_config(config, "substation.yaml")
    model = conversion.config["model"]
    assert model["class_path"] == "InstanceSegmentationTask"
    args = model["init_args"]["model_args"]
    assert args["framework"] == "mask_rcnn"
    assert args["backbone"] == "timm:resnet18"
    assert args["backbone_kwargs"] == {"pretrained": False}
    assert "necks" not in args
    assert args["framework_kwargs"] == {"box_score_thresh": 0.3, "box_nms_thresh": 0.5}
    # A CNN's level count is not in the config: geofm's stride-fitted anchors, noted.
    assert args["extra_block"] == "none"
    assert lines(conversion.notes, "model.init_args.model_args.framework_kwargs.anchor_sizes")
    assert model["init_args"]["class_names"] == ["Substation"]
    assert conversion.config["trainer"]["callbacks"][1]["init_args"]["monitor"] == \
        "val/segm_map"
    assert lines(conversion.notes, "model.init_args.model_args.in_channels")


def test_mask_rcnn_val_map_monitor_becomes_the_mask_map() -> None:
    conversion = convert_config(od_config(copy.deepcopy(TIMM_MASK_RCNN)), "x.yaml")
    monitor = conversion.config["trainer"]["callbacks"][1]["init_args"]["monitor"]
    assert monitor == "val/segm_map"
    [note] = lines(conversion.notes, "trainer.callbacks[1].init_args.monitor")
    assert "TerraTorch logs no val_map for Mask R-CNN" in note


@pytest.mark.parametrize(("framework", "anchors"), [
    ("retinanet", [[16, 20, 25], [32, 40, 50], [64, 80, 101]]),
    ("fcos", [[8], [16], [32]])])
def test_one_stage_frameworks(framework: str, anchors: list[list[int]]) -> None:
    model_args = {
        "framework": framework, "backbone": "timm_resnet18", "backbone_pretrained": False,
        "backbone_out_indices": [2, 3, 4],
        "num_classes": 3, "framework_detections_per_img": 50, "framework_topk_candidates": 500,
        "framework_anchor_generator": "mine",
        "necks": [{"name": "FeaturePyramidNetworkNeck", "out_channel": 128}]}
    conversion = convert_config(od_config(model_args, iou_threshold=0.4), "one.yaml")
    args = conversion.config["model"]["init_args"]["model_args"]
    assert conversion.config["model"]["class_path"] == "ObjectDetectionTask"
    assert args["framework"] == framework
    assert args["fpn_channels"] == 128
    assert args["framework_kwargs"] == {"detections_per_img": 50, "topk_candidates": 500,
                                        "score_thresh": 0.5, "nms_thresh": 0.4,
                                        "anchor_sizes": anchors}
    # A module-valued torchvision argument cannot be written in YAML: reported, not kept.
    [dropped] = conversion.unmapped
    assert dropped.startswith("model.init_args.model_args.framework_anchor_generator: mine")


def test_monitors_of_callbacks_and_scheduler_are_renamed() -> None:
    config = od_config({"framework": "fcos", "backbone": "timm_resnet18", "num_classes": 2})
    config["trainer"]["callbacks"].append(
        {"class_path": "EarlyStopping", "init_args": {"monitor": "val_map_50", "mode": "max"}})
    config["lr_scheduler"] = {"class_path": "ReduceLROnPlateau",
                              "init_args": {"monitor": "val_mar_100", "mode": "max"}}
    conversion = convert_config(config, "x.yaml")
    callbacks = conversion.config["trainer"]["callbacks"]
    assert [c.get("init_args", {}).get("monitor") for c in callbacks] == [
        None, "val/map", "val/map_50"]
    assert conversion.config["lr_scheduler"]["init_args"]["monitor"] == "val/mar_100"
    # Only detection tasks' metric names change: a segmentation monitor stays.
    seg = convert_config({"model": {"class_path": "terratorch.tasks.SemanticSegmentationTask",
                                    "init_args": {"model_factory": "EncoderDecoderFactory",
                                                  "model_args": {"backbone": "timm_resnet18",
                                                                 "decoder": "FCNDecoder",
                                                                 "num_classes": 2}}},
                          "trainer": copy.deepcopy(TRAINER)}, "seg.yaml")
    assert seg.config["trainer"]["callbacks"][1]["init_args"]["monitor"] == "val_map"


def test_explicit_framework_thresholds_win() -> None:
    model_args = {**copy.deepcopy(TIMM_MASK_RCNN), "framework": "faster-rcnn",
                  "framework_box_score_thresh": 0.05}
    conversion = convert_config(od_config(model_args, score_threshold=0.7), "x.yaml")
    kwargs = conversion.config["model"]["init_args"]["model_args"]["framework_kwargs"]
    assert kwargs == {"box_score_thresh": 0.05, "box_nms_thresh": 0.5}
    assert any("0.7 dropped" in n for n in lines(conversion.notes,
                                                 "model.init_args.score_threshold"))


def test_unknown_and_unconvertible_settings_are_reported() -> None:
    model_args = {"framework": "detr", "backbone": "timm_resnet18", "num_classes": 3,
                  "mystery": 1, "necks": [{"name": "FeaturePyramidNetworkNeck", "x": 2},
                                          {"name": "NoSuchNeck"}]}
    config = od_config(model_args, class_names=["a", "b", "c", "d"], ignore_index=2,
                       boxes_field="bbox", labels_field="label", mystery_task_arg=True)
    conversion = convert_config(config, "bad.yaml")
    out = conversion.config["model"]["init_args"]
    assert out["model_args"]["framework"] == "detr"  # kept as is, reported
    joined = "\n".join(conversion.unmapped)
    for path in ("model_args.framework: detr", "model_args.mystery: 1",
                 "model_args.necks[0]: ", "model_args.necks[1]: ", "class_names: ",
                 "ignore_index: 2", "boxes_field: bbox", "mystery_task_arg: true"):
        assert f"model.init_args.{path}" in joined, path
    assert "DETR models have no geofm counterpart" in joined
    # 4 names for num_classes 3 (2 object classes): class_names dropped, num_classes kept.
    assert "class_names" not in out and out["model_args"]["num_classes"] == 3
    # TerraTorch's own label key: a note (geofm reads TorchGeo's 'label').
    assert lines(conversion.notes, "model.init_args.labels_field")


def test_other_model_factory_is_kept_and_reported() -> None:
    config = od_config({"framework": "faster-rcnn", "backbone": "timm_resnet18"})
    config["model"]["init_args"]["model_factory"] = "EncoderDecoderFactory"
    conversion = convert_config(config, "x.yaml")
    init = conversion.config["model"]["init_args"]
    assert init["model_factory"] == "EncoderDecoderFactory"
    [line] = lines(conversion.unmapped, "model.init_args.model_factory")
    assert "ObjectDetectionModelFactory only" in line


def test_framework_kwargs_table_matches_torchvision() -> None:
    """Every framework_kwargs name written is a real keyword of torchvision's detector."""
    detection = pytest.importorskip("torchvision.models.detection")
    classes = {"faster_rcnn": detection.FasterRCNN, "mask_rcnn": detection.MaskRCNN,
               "retinanet": detection.RetinaNet, "fcos": detection.FCOS}
    assert set(DETECTION_FRAMEWORKS.values()) == set(classes)
    for framework, names in DETECTION_KWARGS.items():
        params = inspect.signature(classes[framework]).parameters
        missing = [n for n in names if n not in params]
        assert not missing, (framework, missing)
        # the first two are the score and NMS thresholds
        assert "score" in names[0] and "nms" in names[1]


# -- data ------------------------------------------------------------------------


def test_mvhr10_becomes_torchgeo_vhr10() -> None:
    data = {"class_path": "terratorch.datamodules.mVHR10DataModule",
            "init_args": {"root": "data/VHR10", "batch_size": 4, "num_workers": 0,
                          "image_size": 512, "second_level_split_proportions": [0.8, 0.1, 0.1],
                          "boxes_output_tag": "boxes"}}
    conversion = convert_config(od_config(copy.deepcopy(TIMM_MASK_RCNN), data), "x.yaml")
    assert conversion.config["data"] == {
        "class_path": "torchgeo.datamodules.VHR10DataModule",
        "init_args": {"root": "data/VHR10", "batch_size": 4, "num_workers": 0,
                      "patch_size": 512, "val_split_pct": 0.1, "test_split_pct": 0.1}}
    notes = "\n".join(conversion.notes)
    assert "ImageNet" in notes and "boxes_output_tag" in notes
    torchgeo = pytest.importorskip("torchgeo.datamodules")
    params = inspect.signature(torchgeo.VHR10DataModule).parameters
    for key in ("batch_size", "num_workers", "patch_size", "val_split_pct", "test_split_pct"):
        assert key in params


def test_torchgeo_datamodules_are_kept() -> None:
    direct = {"class_path": "torchgeo.datamodules.VHR10DataModule",
              "init_args": {"root": "data", "batch_size": 2}}
    wrapped = {"class_path": "terratorch.datamodules.TorchNonGeoDataModule",
               "init_args": {"cls": "torchgeo.datamodules.VHR10DataModule", "batch_size": 2,
                             "root": "data"}}
    for data in (direct, wrapped):
        conversion = convert_config(od_config(copy.deepcopy(TIMM_MASK_RCNN), data), "x.yaml")
        assert conversion.config["data"] == direct
        assert not [u for u in conversion.unmapped if u.startswith("data")]


@pytest.mark.parametrize("name", ["GenericNonGeoObjectDetectionDataModule",
                                  "od_aed_elephant.ElephantDataModule",
                                  "SubstationDataModule"])
def test_terratorch_only_detection_datamodules_get_advice(name: str) -> None:
    data = {"class_path": f"terratorch.datamodules.{name}", "init_args": {"batch_size": 2}}
    conversion = convert_config(od_config(copy.deepcopy(TIMM_MASK_RCNN), data), "x.yaml")
    [line] = lines(conversion.unmapped, "data.class_path")
    assert "GeoTiffObjectDetectionDataModule" in line
    assert "GeoTiffInstanceSegmentationDataModule" in line
    assert conversion.config["data"] == data  # kept as is


def test_cli_writes_the_report_and_yaml(tmp_path: Path) -> None:
    config = od_config(copy.deepcopy(PRITHVI_FASTER_RCNN), class_names=VHR10_NAMES)
    assert is_terratorch_config(config)
    code, converted, path = convert_terratorch_config(config, tmp_path)
    assert code == 0 and converted is not None
    assert converted["model"]["class_path"] == "ObjectDetectionTask"
    text = path.read_text()
    assert "framework_min_size: 896 dropped" in text
    assert yaml.safe_load(render(convert_config(config))) == converted


def test_detection_checkpoints_are_refused_with_the_reason(tmp_path: Path) -> None:
    from geofm_core.convert.terratorch.checkpoint import convert_checkpoint
    from geofm_core.errors import ConfigurationError

    config = tmp_path / "od.yaml"
    config.write_text(yaml.safe_dump(od_config(copy.deepcopy(TIMM_MASK_RCNN))))
    with pytest.raises(ConfigurationError, match="object detection checkpoints are not conv"):
        convert_checkpoint(tmp_path / "missing.ckpt", config)


# -- a converted config builds and trains ----------------------------------------


@pytest.mark.parametrize("case", ["prithvi_faster_rcnn", "timm_mask_rcnn", "retinanet", "fcos"])
def test_converted_model_builds_and_predicts(case: str) -> None:
    """The converted init_args build geofm's real task; its model predicts on a chip."""
    import torch

    import geofm_core.tasks.detection as tasks

    one_stage = {"framework": case, "backbone": "timm_resnet18", "backbone_pretrained": False,
                 "backbone_out_indices": [2, 3, 4], "num_classes": 3,
                 "framework_detections_per_img": 50,
                 "necks": [{"name": "FeaturePyramidNetworkNeck", "out_channel": 64}]}
    model_args = {"prithvi_faster_rcnn": PRITHVI_FASTER_RCNN, "timm_mask_rcnn": TIMM_MASK_RCNN
                  }.get(case, one_stage)
    names = {"prithvi_faster_rcnn": VHR10_NAMES, "timm_mask_rcnn": ["Background", "Substation"]
             }.get(case, ["Background", "a", "b"])
    conversion = convert_config(od_config(copy.deepcopy(model_args), class_names=names))
    model = conversion.config["model"]
    task = getattr(tasks, model["class_path"])(**model["init_args"])
    task.eval()
    with torch.no_grad():
        [out] = task.model(torch.randn(1, 3, 64, 64))
    assert task.model.num_classes == model["init_args"]["model_args"]["num_classes"]
    assert task.model.framework == model["init_args"]["model_args"]["framework"]
    assert {"boxes", "labels", "scores"} <= set(out)
    assert ("masks" in out) == (case == "timm_mask_rcnn")


@pytest.mark.parametrize(("framework", "data_module", "monitor"), [
    ("faster-rcnn", "GeoTiffObjectDetectionDataModule", "val/map"),
    ("mask-rcnn", "GeoTiffInstanceSegmentationDataModule", "val/segm_map")])
def test_converted_config_fits_on_water_bodies(tmp_path: Path, framework: str,
                                               data_module: str, monitor: str) -> None:
    """A converted TerraTorch config trains on the real water bodies, checkpointing on
    its renamed monitor (TerraTorch's ``val_map``)."""
    from geofm_core.testing import water_bodies

    water = water_bodies(tmp_path / "data")  # the real S2 chip, six bands, 512 x 512
    channels = len(water.band_names)
    model_args = {"framework": framework, "backbone": "timm_resnet18",
                  "backbone_pretrained": False, "backbone_in_chans": channels,
                  "num_classes": 2, "framework_min_size": 128, "framework_max_size": 128,
                  "in_channels": channels,
                  "necks": [{"name": "FeaturePyramidNetworkNeck", "out_channel": 32}]}
    config = od_config(model_args, class_names=["Background", "water"])
    config["trainer"] = {
        "accelerator": "cpu", "devices": 1, "max_epochs": 1, "limit_train_batches": 1,
        "limit_val_batches": 1, "num_sanity_val_steps": 0, "logger": False,
        "enable_progress_bar": False, "default_root_dir": str(tmp_path / "run"),
        "callbacks": [{"class_path": "ModelCheckpoint", "init_args": {
            "dirpath": str(tmp_path / "ckpt"), "mode": "max", "monitor": "val_map",
            "filename": "best"}}]}
    code, converted, _ = convert_terratorch_config(config, tmp_path)
    assert code == 0 and converted is not None
    assert converted["trainer"]["callbacks"][0]["init_args"]["monitor"] == monitor
    split = {"data_root": str(water.images), "label_data_root": str(water.labels)}
    converted["data"] = {"class_path": data_module, "init_args": {
        **{f"{stage}_{key}": value for stage in ("train", "val") for key, value in split.items()},
        "img_pattern": "*_S2Hand.tif", "class_attribute": water.class_attribute,
        "classes": water.classes, "chip_size": 128, "means": [1500.0] * channels,
        "stds": [1000.0] * channels, "batch_size": 2, "num_workers": 0}}
    from geofm_core.cli import main

    path = tmp_path / "fit.yaml"
    path.write_text(yaml.safe_dump(converted, sort_keys=False))
    assert main(["fit", "-c", str(path)]) == 0
    # The renamed monitor exists: Lightning stops on a monitor it cannot find.
    assert (tmp_path / "ckpt" / "best.ckpt").is_file()
