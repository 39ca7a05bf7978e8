"""Prithvi Swin trains end to end: geofm fit on a real chip, and a converted TerraTorch config
and checkpoint (TerraTorch's logits, from ``scripts/make_swin_fixtures.py``)."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import pytest
import torch
import yaml
from safetensors.torch import load_file

from geofm_core.cli import main
from geofm_core.convert.terratorch import convert_config
from geofm_core.convert.terratorch.checkpoint import convert_checkpoint
from geofm_core.data.bands import SENTINEL2_L1C_BANDS
from geofm_core.inference.checkpoint import load_task

DATA = Path(__file__).resolve().parents[3].parent / "shared" / "data" / "sen1floods11"
FIXTURES = Path(__file__).parent / "fixtures"
# Sentinel-2 B2, B3, B4, B8A, B11, B12 (0-based 1, 2, 3, 8, 11, 12): Prithvi's HLS bands.
HLS = [SENTINEL2_L1C_BANDS[i] for i in (1, 2, 3, 8, 11, 12)]
TINY = {"embed_dim": 8, "depths": [2, 2, 2, 2], "num_heads": [1, 2, 2, 4], "window_size": 4}


@pytest.fixture
def chips(tmp_path: Path) -> Path:
    """The real chip twice (UperNet's pooled batch norm needs two samples in training)."""
    if not (DATA / "Spain_7370579_S2Hand.tif").exists():
        pytest.skip(f"real test rasters not found at {DATA} (see the project's data README)")
    root = tmp_path / "chips"
    root.mkdir()
    for copy in ("a", "b"):
        for kind in ("S2Hand", "LabelHand"):
            shutil.copy(DATA / f"Spain_7370579_{kind}.tif", root / f"{copy}_{kind}.tif")
    return root


def _trainer(tmp_path: Path) -> dict[str, Any]:
    return {"accelerator": "cpu", "devices": 1, "logger": False, "enable_progress_bar": False,
            "enable_model_summary": False, "default_root_dir": str(tmp_path / "run")}


def test_tiny_swin_with_upernet_fits_a_real_chip(chips, tmp_path):
    root = str(chips)
    config = {
        "seed_everything": 0,
        "trainer": _trainer(tmp_path),
        "model": {"class_path": "SemanticSegmentationTask", "init_args": {
            "model_factory": "geofm:encoder_decoder", "num_classes": 2, "ignore_index": -1,
            "model_args": {"backbone": "prithvi:prithvi_swin_b",
                           "backbone_kwargs": {**TINY, "bands": HLS},
                           "decoder": "upernet:upernet", "decoder_kwargs": {"channels": 8}}}},
        "data": {"class_path": "GeoTiffSegmentationDataModule", "init_args": {
            "train_data_root": root, "val_data_root": root,
            "img_pattern": "*_S2Hand.tif", "label_pattern": "*_LabelHand.tif",
            "dataset_bands": list(SENTINEL2_L1C_BANDS), "output_bands": HLS,
            "means": [1500.0] * 6, "stds": [1000.0] * 6, "num_classes": 2,
            "ignore_index": -1, "batch_size": 2, "num_workers": 0,
            "train_augmentations": [{"random_crop": 60}],
            "val_augmentations": [{"center_crop": 60}]}},
    }
    path = tmp_path / "fit.yaml"
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    assert main(["fit", "-c", str(path), "--trainer.fast_dev_run", "1"]) == 0


def _terratorch_config(chips: Path, tmp_path: Path) -> dict[str, Any]:
    root = str(chips)
    crop = {"init_args": {"height": 60, "width": 60}}
    return {
        "seed_everything": 0,
        "trainer": {**_trainer(tmp_path), "max_epochs": 1},
        "data": {"class_path": "terratorch.datamodules.GenericNonGeoSegmentationDataModule",
                 "init_args": {
                     "batch_size": 2, "num_workers": 0, "num_classes": 2,
                     "train_data_root": root, "val_data_root": root,
                     "train_label_data_root": root, "val_label_data_root": root,
                     "img_grep": "*_S2Hand.tif", "label_grep": "*_LabelHand.tif",
                     "dataset_bands": list(SENTINEL2_L1C_BANDS), "output_bands": HLS,
                     "means": [1500.0] * 6, "stds": [1000.0] * 6, "no_label_replace": -1,
                     "no_data_replace": 0,
                     "train_transform": [{"class_path": "albumentations.RandomCrop", **crop},
                                         {"class_path": "ToTensorV2"}],
                     "val_transform": [{"class_path": "albumentations.CenterCrop", **crop},
                                       {"class_path": "ToTensorV2"}]}},
        "model": {"class_path": "terratorch.tasks.SemanticSegmentationTask", "init_args": {
            "model_factory": "EncoderDecoderFactory",
            "model_args": {"backbone": "prithvi_swin_B", "backbone_pretrained": False,
                           "backbone_bands": HLS, "backbone_pretrain_img_size": 224,
                           "backbone_drop_path_rate": 0.2, "backbone_num_frames": 1,
                           **{f"backbone_{k}": v for k, v in TINY.items()},
                           "decoder": "UperNetDecoder", "decoder_channels": 8,
                           "num_classes": 2},
            "loss": "ce", "ignore_index": -1}},
    }


def test_terratorch_swin_config_converts_and_trains(chips, tmp_path, capsys):
    source, converted = tmp_path / "terratorch.yaml", tmp_path / "geofm.yaml"
    source.write_text(yaml.safe_dump(_terratorch_config(chips, tmp_path), sort_keys=False))
    assert main(["convert", "terratorch", str(source), "-o", str(converted)]) == 0
    args = yaml.safe_load(converted.read_text())["model"]["init_args"]["model_args"]
    assert args["backbone"] == "prithvi:prithvi_swin_b"
    assert args["decoder"] == "upernet:upernet"
    kwargs = args["backbone_kwargs"]
    assert kwargs["img_size"] == 224 and kwargs["drop_path_rate"] == 0.2
    assert kwargs["bands"] == HLS and "num_frames" not in kwargs
    assert "necks" not in args  # four feature maps, channels first: no reshaping
    capsys.readouterr()
    assert main(["fit", "-c", str(converted), "--trainer.fast_dev_run", "1"]) == 0


def test_terratorch_names_map_to_the_swin_variants():
    from geofm_core.convert.terratorch.names import map_backbone

    assert map_backbone("prithvi_swin_B") == ("prithvi:prithvi_swin_b", "prithvi", {})
    assert map_backbone("prithvi_swin_L")[:2] == ("prithvi:prithvi_swin_l", "prithvi")
    assert map_backbone("timm_prithvi_swin_L")[:2] == ("prithvi:prithvi_swin_l", "prithvi")
    config = {"model": {"class_path": "terratorch.tasks.SemanticSegmentationTask",
                        "init_args": {"model_factory": "PrithviModelFactory", "model_args": {
                            "backbone": "prithvi_swin_L", "decoder": "UperNetDecoder",
                            "bands": ["RED", "GREEN"], "in_channels": 2, "num_classes": 2,
                            "backbone_patch_size": 4}}}}
    args = convert_config(config).config["model"]["init_args"]["model_args"]
    assert args["backbone"] == "prithvi:prithvi_swin_l"
    assert args["backbone_kwargs"] == {"bands": ["RED", "GREEN"], "pretrained": True}


def test_converted_terratorch_swin_upernet_checkpoint_gives_its_logits(tmp_path):
    previous = torch.get_float32_matmul_precision()
    torch.set_float32_matmul_precision("highest")
    try:
        result = convert_checkpoint(FIXTURES / "swin_upernet.ckpt", FIXTURES / "swin_upernet.yaml")
        path = tmp_path / "converted.ckpt"
        torch.save(result.checkpoint, path)
        task = load_task(path)
        ref = load_file(str(FIXTURES / "swin_upernet.ref.safetensors"))
        with torch.no_grad():
            logits = task.model(ref["input"]).output
    finally:
        torch.set_float32_matmul_precision(previous)
    assert logits.shape == ref["logits"].shape
    assert float((logits - ref["logits"]).abs().max()) <= 1e-5
