"""TerraTorch's dataset-specific datamodules: rewritten for geofm, or reported with advice.

The multi-temporal crop test writes the dataset's real layout (``training_chips`` with
``*_merged.tif`` stacks of 3 frames x 6 HLS bands and ``*.mask.tif`` labels 1..13, split
files beside the folders) and reads a batch through the converted datamodule.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
import rasterio
from affine import Affine

from geofm_core.convert.terratorch import convert_config

TRANSFORM = Affine(30.0, 0.0, 500000.0, 0.0, -30.0, 4000000.0)


def write_tif(path: Path, array: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with rasterio.open(path, "w", driver="GTiff", height=array.shape[1], width=array.shape[2],
                       count=array.shape[0], dtype=array.dtype, crs="EPSG:32617",
                       transform=TRANSFORM) as dst:
        dst.write(array)


def config(data: dict[str, Any], task: str = "SemanticSegmentationTask",
           num_classes: int = 2) -> dict[str, Any]:
    return {
        "model": {"class_path": f"terratorch.tasks.{task}", "init_args": {
            "model_factory": "EncoderDecoderFactory",
            "model_args": {"backbone": "timm_resnet18", "decoder": "FCNDecoder",
                           "num_classes": num_classes}}},
        "data": data,
    }


def data_args(conversion: Any) -> dict[str, Any]:
    return dict(conversion.config["data"]["init_args"])


def test_multi_temporal_crop_becomes_the_segmentation_datamodule_over_its_layout(
        tmp_path: Path) -> None:
    root = tmp_path / "multi-temporal-crop-classification"
    rng = np.random.default_rng(0)
    for folder, split, ids in (("training_chips", "training_data.txt", ["chip_000_001",
                                                                       "chip_000_002"]),
                               ("validation_chips", "validation_data.txt", ["chip_001_000"])):
        for chip in ids:
            write_tif(root / folder / f"{chip}_merged.tif",
                      rng.integers(0, 3000, size=(18, 32, 32)).astype(np.int16))
            write_tif(root / folder / f"{chip}.mask.tif",
                      rng.integers(1, 14, size=(1, 32, 32)).astype(np.uint8))
        (root / split).write_text("\n".join(ids) + "\n")
    # examples/tutorials/PrithviEOv2/configs/prithvi_v2_eo_300_tl_unet_multitemporal_crop.yaml
    conversion = convert_config(config({
        "class_path": "terratorch.datamodules.MultiTemporalCropClassificationDataModule",
        "init_args": {"batch_size": 2, "num_workers": 0, "data_root": str(root),
                      "expand_temporal_dimension": True, "use_metadata": False,
                      "reduce_zero_label": True},
    }, num_classes=13))
    data = conversion.config["data"]
    assert data["class_path"] == "GeoTiffSegmentationDataModule"
    args = data_args(conversion)
    assert args["train_data_root"] == f"{root}/training_chips"
    assert args["test_split"] == f"{root}/validation_data.txt"
    assert (args["img_pattern"], args["label_pattern"]) == ("*_merged.tif", "*.mask.tif")
    assert args["expand_temporal_dimension"] is True and args["reduce_zero_label"] is True
    assert args["num_classes"] == 13 and args["ignore_index"] == -1
    assert args["means"][0] == pytest.approx(494.905781)
    assert not conversion.unmapped, conversion.unmapped
    assert any("MultiTemporalCropClassificationDataModule written as" in n
               for n in conversion.notes)

    from geofm_core.data import GeoTiffSegmentationDataModule

    module = GeoTiffSegmentationDataModule(**args)
    module.setup("fit")
    batch = next(iter(module.train_dataloader()))
    assert tuple(batch["image"].shape) == (2, 6, 3, 32, 32)
    mask = batch["mask"]
    assert int(mask.min()) >= 0 and int(mask.max()) <= 12  # labels 1..13 reduced by one


def test_sen1floods11_and_burn_scars_modules_write_their_folders() -> None:
    conversion = convert_config(config({
        "class_path": "terratorch.datamodules.Sen1Floods11NonGeoDataModule",
        "init_args": {"data_root": "/data/sen1floods11", "batch_size": 4,
                      "bands": ["BLUE", "GREEN", "RED", "NIR_NARROW", "SWIR_1", "SWIR_2"]},
    }))
    args = data_args(conversion)
    hand = "/data/sen1floods11/v1.1/data/flood_events/HandLabeled"
    assert args["train_data_root"] == f"{hand}/S2Hand"
    assert args["val_label_data_root"] == f"{hand}/LabelHand"
    assert args["val_split"] == ("/data/sen1floods11/v1.1/splits/flood_handlabeled/"
                                 "flood_valid_data.txt")
    assert args["constant_scale"] == 0.0001
    assert len(args["dataset_bands"]) == 13 and len(args["means"]) == 6
    assert args["means"][0] == pytest.approx(0.1412956)  # BLUE's, not the first band's
    converted = convert_config(config({
        "class_path": "FireScarsNonGeoDataModule",
        "init_args": {"data_root": "scars", "bands": ["RED", "COASTAL_AEROSOL"]}}))
    assert any(u.startswith("data.init_args.bands: [COASTAL_AEROSOL]")
               for u in converted.unmapped)
    scars = data_args(converted)
    assert scars["output_bands"] == ["RED"] and len(scars["means"]) == 1
    assert (scars["train_data_root"], scars["test_data_root"]) == (
        "scars/training", "scars/validation")
    assert "train_split" not in scars


def test_torch_nongeo_datamodule_becomes_the_torchgeo_datamodule() -> None:
    # examples/confs/eurosat.yaml
    conversion = convert_config(config({
        "class_path": "terratorch.datamodules.TorchNonGeoDataModule",
        "init_args": {"cls": "torchgeo.datamodules.EuroSATDataModule", "batch_size": 32,
                      "num_workers": 0,
                      "transforms": [{"class_path": "albumentations.Resize",
                                      "init_args": {"height": 224, "width": 224}}]},
        "dict_kwargs": {"root": "./EuroSat", "bands": ["B02", "B03", "B04"]},
    }, task="ClassificationTask"))
    assert conversion.config["data"] == {
        "class_path": "torchgeo.datamodules.EuroSATDataModule",
        "init_args": {"batch_size": 32, "num_workers": 0},
        "dict_kwargs": {"root": "./EuroSat", "bands": ["B02", "B03", "B04"]},
    }
    assert any(u.startswith("data.init_args.transforms") for u in conversion.unmapped)


def test_a_one_modality_multimodal_module_becomes_the_generic_one() -> None:
    modal = {"class_path": "terratorch.datamodules.GenericMultiModalDataModule",
             "init_args": {"task": "segmentation", "batch_size": 2, "modalities": ["S2L2A"],
                           "train_data_root": {"S2L2A": "data/S2"}, "train_label_data_root":
                           "data/labels", "image_grep": {"S2L2A": "*_S2.tif"},
                           "label_grep": "*_Label.tif", "means": {"S2L2A": [1.0, 2.0]},
                           "stds": {"S2L2A": [0.5, 0.5]}, "num_classes": 2,
                           "concat_bands": True}}
    conversion = convert_config(config(modal))
    assert conversion.config["data"]["class_path"] == "GeoTiffSegmentationDataModule"
    args = data_args(conversion)
    assert (args["train_data_root"], args["img_pattern"], args["means"]) == (
        "data/S2", "*_S2.tif", [1.0, 2.0])
    two = config(modal)
    two["data"]["init_args"]["modalities"] = ["S2L2A", "S1"]
    reported = convert_config(two)
    assert reported.config["data"]["class_path"].endswith("GenericMultiModalDataModule")
    line = next(u for u in reported.unmapped if u.startswith("data.class_path"))
    assert "stack the modalities' bands into one GeoTIFF" in line


@pytest.mark.parametrize(("class_path", "geofm_module"), [
    ("terratorch.datamodules.Sen4MapLucasDataModule", "GeoTiffClassificationDataModule"),
    ("terratorch.datamodules.MChesapeakeLandcoverNonGeoDataModule",
     "GeoTiffSegmentationDataModule"),
    ("terratorch.datamodules.MBigEarthNonGeoDataModule", "GeoTiffMultiLabelDataModule"),
    ("terratorch.datamodules.Landslide4SenseNonGeoDataModule", "GeoTiffSegmentationDataModule"),
])
def test_other_specialised_modules_are_reported_with_the_geofm_module_to_use(
        class_path: str, geofm_module: str) -> None:
    conversion = convert_config(config({"class_path": class_path,
                                        "init_args": {"batch_size": 4}}))
    assert conversion.config["data"]["class_path"] == class_path
    line = next(u for u in conversion.unmapped if u.startswith("data.class_path"))
    assert geofm_module in line and "not converted" in line
