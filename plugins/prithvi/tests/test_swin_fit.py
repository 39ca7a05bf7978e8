"""Prithvi Swin trains end to end: geofm fit on a real chip, and a converted TerraTorch config
and checkpoint (TerraTorch's logits, from ``scripts/make_swin_fixtures.py``)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import torch
from safetensors.torch import load_file

from geofm_core.convert.terratorch import convert_config
from geofm_core.convert.terratorch.checkpoint import convert_checkpoint
from geofm_core.data.bands import SENTINEL2_L1C_BANDS
from geofm_core.inference.checkpoint import load_task
from geofm_core.testing import (
    convert_terratorch_config,
    fit_fast_dev_run,
    segmentation_fit_config,
    sen1floods11_chips,
    terratorch_segmentation_config,
)

FIXTURES = Path(__file__).parent / "fixtures"
# Sentinel-2 B2, B3, B4, B8A, B11, B12 (0-based 1, 2, 3, 8, 11, 12): Prithvi's HLS bands.
HLS = [SENTINEL2_L1C_BANDS[i] for i in (1, 2, 3, 8, 11, 12)]
TINY = {"embed_dim": 8, "depths": [2, 2, 2, 2], "num_heads": [1, 2, 2, 4], "window_size": 4}


@pytest.fixture
def chips(tmp_path: Path) -> Path:
    """The real chip twice (UperNet's pooled batch norm needs two samples in training)."""
    return sen1floods11_chips(tmp_path, copies=2)


def test_tiny_swin_with_upernet_fits_a_real_chip(chips, tmp_path):
    model_args = {"backbone": "prithvi:prithvi_swin_b",
                  "backbone_kwargs": {**TINY, "bands": HLS},
                  "decoder": "upernet:upernet", "decoder_kwargs": {"channels": 8}}
    fit_fast_dev_run(segmentation_fit_config(chips, tmp_path / "run", model_args, bands=HLS,
                                             batch_size=2, crop=60), tmp_path)


def _terratorch_config(chips: Path, tmp_path: Path) -> dict[str, Any]:
    model_args = {"backbone": "prithvi_swin_B", "backbone_pretrained": False,
                  "backbone_bands": HLS, "backbone_pretrain_img_size": 224,
                  "backbone_drop_path_rate": 0.2, "backbone_num_frames": 1,
                  **{f"backbone_{k}": v for k, v in TINY.items()},
                  "decoder": "UperNetDecoder", "decoder_channels": 8, "num_classes": 2}
    return terratorch_segmentation_config(chips, tmp_path / "run", model_args, bands=HLS,
                                          batch_size=2, crop=60)


def test_terratorch_swin_config_converts_and_trains(chips, tmp_path, capsys):
    code, config, converted = convert_terratorch_config(_terratorch_config(chips, tmp_path),
                                                        tmp_path)
    assert code == 0 and config is not None
    args = config["model"]["init_args"]["model_args"]
    assert args["backbone"] == "prithvi:prithvi_swin_b"
    assert args["decoder"] == "upernet:upernet"
    kwargs = args["backbone_kwargs"]
    assert kwargs["img_size"] == 224 and kwargs["drop_path_rate"] == 0.2
    assert kwargs["bands"] == HLS and "num_frames" not in kwargs
    assert "necks" not in args  # four feature maps, channels first: no reshaping
    capsys.readouterr()
    fit_fast_dev_run(converted, tmp_path)


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
