"""The Prithvi plugin's TerraTorch conversion rules fit its real components."""

from __future__ import annotations

from geofm_core.convert.book import rule_problems


def test_terratorch_rules_match_the_registered_components() -> None:
    # Every target is registered, every keyword a rule writes is in the real signature.
    assert rule_problems("terratorch", source="prithvi") == []


def test_terratorch_names_convert_to_the_variants() -> None:
    from geofm_core.convert.terratorch import convert_config

    config = {"model": {"class_path": "terratorch.tasks.SemanticSegmentationTask", "init_args": {
        "model_factory": "PrithviModelFactory",
        "model_args": {"backbone": "prithvi_vit_300", "decoder": "UperNetDecoder",
                       "bands": ["BLUE", "GREEN"], "in_channels": 2, "num_classes": 2}}}}
    conversion = convert_config(config)
    args = conversion.config["model"]["init_args"]["model_args"]
    assert args["backbone"] == "prithvi:prithvi_eo_v2_300"
    assert args["backbone_kwargs"] == {"bands": ["BLUE", "GREEN"], "pretrained": True,
                                       "num_frames": 1, "position_grid": "interpolate",
                                       "drop_path_schedule": "uniform"}
    # 24 blocks, 4 levels for UperNet, then the tokens as images
    assert args["necks"] == [{"name": "geofm:select_indices", "indices": [5, 11, 17, 23]},
                             {"name": "geofm:reshape_tokens_to_image"}]
