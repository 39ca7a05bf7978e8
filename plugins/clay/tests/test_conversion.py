"""TerraTorch configs using Clay convert with `geofm convert terratorch`, and train.

The configs are written as a TerraTorch user writes them (TerraTorch's task, factories,
necks, decoder and backbone names). TerraTorch's ``clay_v1_base`` takes and ignores
architecture keywords; geofm's takes ``dim``/``depth``/..., used here only to keep the
encoder tiny (``backbone_pretrained: false``, random init).
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from geofm_clay._conversion import TERRATORCH
from geofm_clay.backbones import build_clay

from geofm_core.cli import main
from geofm_core.convert.rules import rename_key
from geofm_core.registry import get_registry
from geofm_core.testing import (
    convert_terratorch_config,
    sen1floods11_chips,
    terratorch_segmentation_config,
)

BANDS = ["COASTAL_AEROSOL", "BLUE", "GREEN", "RED", "RED_EDGE_1", "RED_EDGE_2", "RED_EDGE_3",
         "NIR_BROAD", "NIR_NARROW", "WATER_VAPOR", "CIRRUS", "SWIR_1", "SWIR_2"]
TINY = {"backbone_dim": 24, "backbone_depth": 4, "backbone_heads": 2,
        "backbone_dim_head": 8, "backbone_mlp_ratio": 2.0}


def test_rules_name_registered_components():
    registry = get_registry()
    for rule in TERRATORCH.components:
        assert registry.get(rule.kind, f"clay:{rule.target}").metadata is not None


def test_terratorch_checkpoint_keys_map_onto_the_backbone(parity):
    # TerraTorch's Embedder keeps the official encoder under clay_encoder. (its
    # transform_state_dict); the fixture's keys are the official ones.
    official = [k.removeprefix("model.encoder.") for k in parity("v1").state_dict
                if k.startswith("model.encoder.")]
    ours = set(build_clay("clay_v1_base", bands=["RED"], dim=40, depth=2, heads=2,
                          dim_head=8, mlp_ratio=2.0).state_dict())
    keys = TERRATORCH.components[0].keys
    assert {rename_key(keys, f"clay_encoder.{k}")[0] for k in official} == ours


def _terratorch_config(root: Path, run: Path, model_args: dict) -> dict:
    factory = model_args.pop("factory")
    return terratorch_segmentation_config(root, run, model_args, model_factory=factory,
                                          bands=BANDS, dataset_bands=BANDS, batch_size=2)


def _convert(tmp_path: Path, config: dict, capsys: pytest.CaptureFixture[str]) -> (
        tuple[int, dict | None, str]):
    capsys.readouterr()
    code, converted, _ = convert_terratorch_config(config, tmp_path)
    captured = capsys.readouterr()
    return code, converted, captured.out + captured.err


@pytest.fixture
def chips(tmp_path: Path) -> Path:
    return sen1floods11_chips(tmp_path, copies=2)


def test_encoder_decoder_config_with_clay_v1_base_converts_and_trains(chips, tmp_path, capsys):
    model_args = {"factory": "EncoderDecoderFactory", "backbone": "clay_v1_base",
                  "backbone_pretrained": False, "backbone_img_size": 64,
                  "backbone_bands": BANDS, **TINY,
                  "necks": [{"name": "SelectIndices", "indices": [-1]},
                            {"name": "ReshapeTokensToImage"}],
                  "decoder": "FCNDecoder", "num_classes": 2}
    config = _terratorch_config(chips, tmp_path / "run", model_args)
    code, converted, report = _convert(tmp_path, config, capsys)
    assert code == 0, report
    assert converted is not None
    args = converted["model"]["init_args"]["model_args"]
    assert args["backbone"] == "clay:clay_v1_base"
    kwargs = args["backbone_kwargs"]
    assert kwargs["bands"] == BANDS and kwargs["gsd"] == 1.0 and kwargs["dim"] == 24
    assert kwargs["encode_metadata"] is False
    assert "img_size" not in kwargs
    assert "gsd: 1.0" in report  # TerraTorch's default written out, with a note
    assert main(["fit", "-c", str(tmp_path / "geofm.yaml"), "--trainer.fast_dev_run", "1"]) == 0


def test_clay_model_factory_without_necks_converts(tmp_path, capsys):
    model_args = {"factory": "ClayModelFactory", "backbone": "clay_v1_base",
                  "in_channels": 6, "pretrained": False, "decoder": "FCNDecoder",
                  "num_classes": 2}
    code, converted, report = _convert(tmp_path, _terratorch_config(tmp_path, tmp_path, model_args),
                                       capsys)
    assert code == 0, report
    assert converted is not None
    args = converted["model"]["init_args"]["model_args"]
    assert args["backbone"] == "clay:clay_v1_base"
    # TerraTorch's default bands (Clay's names) and the implicit reshape, written out
    assert args["backbone_kwargs"]["bands"] == ["blue", "green", "red", "nir", "swir16", "swir22"]
    assert args["backbone_kwargs"]["pretrained"] is False
    assert {"name": "geofm:reshape_tokens_to_image"} in args["necks"]
    assert "in_channels" in report


def test_visual_prompt_tuning_is_reported_as_not_converted(tmp_path, capsys):
    model_args = {"factory": "EncoderDecoderFactory", "backbone": "clay_v1_base",
                  "backbone_vpt": True, "backbone_vpt_n_tokens": 4,
                  "backbone_bands": ["BLUE"], "decoder": "FCNDecoder", "num_classes": 2}
    _, _, report = _convert(tmp_path, _terratorch_config(tmp_path, tmp_path, model_args), capsys)
    assert "no visual prompt tuning" in report


def test_clay_1_5_factory_is_refused_with_the_geofm_way(tmp_path, capsys):
    model_args = {"factory": "Clay1_5ModelFactory", "backbone": "clay15", "dim": 192,
                  "depth": 6, "heads": 4, "dim_head": 48, "mlp_ratio": 2, "decoder": "FCNDecoder",
                  "num_classes": 10}
    _, _, report = _convert(tmp_path, _terratorch_config(tmp_path, tmp_path, model_args),
                            capsys)
    # listed as not converted (the converter keeps the plugin's refusal as the reason)
    assert "not converted" in report
    assert re.search(r"MAE pre-training model.*backbone: clay:clay_v1_5_tiny", report, re.S), report


def test_a_terratorch_task_checkpoint_converts(parity, tmp_path, capsys):
    # A TerraTorch SemanticSegmentationTask checkpoint of clay_v1_base + FCNDecoder: the
    # encoder under model.encoder.clay_encoder.* (TerraTorch's Embedder) with the parity
    # fixture's official weights. The decoder and head tensors are the converted geofm
    # task's own (this test is about the backbone's keys; the core tests TerraTorch's FCN
    # names).
    import torch

    from geofm_core.convert.terratorch.checkpoint import convert_checkpoint
    from geofm_core.tasks import SemanticSegmentationTask

    fixture = parity("v1")
    arch = {f"backbone_{k}": v for k, v in fixture.arch.items()}
    model_args = {"factory": "EncoderDecoderFactory", "backbone": "clay_v1_base",
                  "backbone_pretrained": False, "backbone_bands": ["BLUE", "RED", "SWIR_1"],
                  **arch, "necks": [{"name": "SelectIndices", "indices": [-1]},
                                    {"name": "ReshapeTokensToImage"}],
                  "decoder": "FCNDecoder", "decoder_channels": 8, "num_classes": 2}
    config = _terratorch_config(tmp_path, tmp_path, model_args)
    code, converted, report = _convert(tmp_path, config, capsys)
    assert code == 0 and converted is not None, report
    init = converted["model"]["init_args"]
    task = SemanticSegmentationTask(**{k: v for k, v in init.items()
                                       if k in ("model_factory", "model_args")})
    state = {k: v for k, v in task.state_dict().items() if not k.startswith("model.backbone.")}
    encoder = {k.removeprefix("model.encoder."): v for k, v in fixture.state_dict.items()
               if k.startswith("model.encoder.")}
    state.update({f"model.encoder.clay_encoder.{k}": v for k, v in encoder.items()})
    ckpt = tmp_path / "terratorch.ckpt"
    torch.save({"state_dict": state, "epoch": 1}, ckpt)
    result = convert_checkpoint(ckpt, tmp_path / "terratorch.yaml")
    weights = result.checkpoint["state_dict"]
    for key, value in encoder.items():
        assert torch.equal(weights[f"model.backbone.{key}"], value), key
