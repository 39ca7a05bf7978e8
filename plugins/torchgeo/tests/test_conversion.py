"""``geofm convert terratorch`` writes TerraTorch's torchgeo backbones as torchgeo: names."""

from __future__ import annotations

from typing import Any

import pytest
from geofm_torchgeo._conversion import TERRATORCH, target_of
from geofm_torchgeo._zoo import TERRATORCH_NAMES

from geofm_core.convert.terratorch import convert_config, map_backbone


def model(model_args: dict[str, Any]) -> dict[str, Any]:
    return {"model": {"class_path": "terratorch.tasks.SemanticSegmentationTask",
                      "init_args": {"model_factory": "EncoderDecoderFactory",
                                    "model_args": model_args}}}


def backbone_of(config: dict[str, Any]) -> tuple[str, dict[str, Any], list[str]]:
    conversion = convert_config(config)
    args = conversion.config["model"]["init_args"]["model_args"]
    return args["backbone"], args.get("backbone_kwargs", {}), conversion.unmapped


def test_every_terratorch_name_has_a_rule() -> None:
    names = {n for rule in TERRATORCH.components for n in rule.names}
    assert names == set(TERRATORCH_NAMES)
    assert target_of("resnet50", "SENTINEL2_ALL_MOCO") == "resnet50_sentinel2_all_moco"
    assert target_of("dofa_small_patch16_224", None) == "dofa_small_patch16_224"


@pytest.mark.parametrize(("name", "target"), [
    ("ssl4eos12_resnet50_sentinel2_all_moco", "torchgeo:resnet50_sentinel2_all_moco"),
    ("satlas_swin_b_sentinel2_mi_ms", "torchgeo:swin_v2_b_sentinel2_mi_ms_satlas"),
    ("ssl4eol_vit_small_patch16_224_landsat_oli_sr_moco",
     "torchgeo:vit_small_patch16_224_landsat_oli_sr_moco"),
    ("satlas_resnet152_sentinel2_mi_rgb", "torchgeo:resnet152_sentinel2_mi_rgb_satlas"),
    ("dofa_base_patch16_224", "torchgeo:dofa_base_patch16_224_dofa_mae"),
])
def test_map_backbone(name: str, target: str) -> None:
    assert map_backbone(name)[:2] == (target, "torchgeo")


def test_a_config_converts_with_its_bands_and_pretrained() -> None:
    name, kwargs, unmapped = backbone_of(model({
        "backbone": "ssl4eos12_resnet50_sentinel2_all_moco", "backbone_pretrained": True,
        "backbone_model_bands": ["BLUE", "GREEN", "RED"], "backbone_in_chans": 3,
        "backbone_out_indices": [1, 2, 3, 4], "decoder": "UperNetDecoder", "num_classes": 2}))
    assert name == "torchgeo:resnet50_sentinel2_all_moco"
    assert kwargs == {"pretrained": True, "bands": ["BLUE", "GREEN", "RED"],
                      "out_indices": [1, 2, 3, 4]}
    assert unmapped == []


def test_terratorch_builds_without_weights_unless_pretrained() -> None:
    name, kwargs, _ = backbone_of(model({
        "backbone": "satlas_swin_b_sentinel2_mi_ms", "backbone_model_bands": ["RED"],
        "decoder": "UperNetDecoder", "num_classes": 2}))
    assert name == "torchgeo:swin_v2_b_sentinel2_mi_ms_satlas"
    assert kwargs == {"bands": ["RED"], "pretrained": False}


def test_terratorch_rules_match_the_registered_components() -> None:
    from geofm_core.convert.book import rule_problems

    # Every target is registered, every keyword a rule writes is in the real signature.
    assert rule_problems("terratorch", source="torchgeo") == []
