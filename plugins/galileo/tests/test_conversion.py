"""TerraTorch's Galileo names convert with `geofm convert terratorch`, and the result trains.

The config has the shape of TerraTorch's ``examples/confs/galileo_config.yaml`` (a
pixel-wise regression with ``galileo_tiny_encoder``, an ``IdentityDecoder``, learned
upscaling in the head and a frozen backbone), made small and pointed at the real
Sen1Floods11 chip; ``backbone_pretrained: false`` (random init).
"""

from __future__ import annotations

import pytest
from geofm_galileo._conversion import TERRATORCH, TERRATORCH_NAMES

from geofm_core.convert.terratorch.names import rule_book
from geofm_core.data.bands import SENTINEL2_L1C_BANDS
from geofm_core.testing import convert_terratorch_config, fit_fast_dev_run

BANDS = ["BLUE", "GREEN", "RED", "NIR_NARROW", "SWIR_1", "SWIR_2"]


def test_every_terratorch_name_has_a_rule_to_a_registered_variant():
    assert TERRATORCH_NAMES == {"galileo_nano_encoder": "galileo_nano",
                                "galileo_tiny_encoder": "galileo_tiny",
                                "galileo_base_encoder": "galileo_base"}
    assert {r.names[0] for r in TERRATORCH.components} == set(TERRATORCH_NAMES)
    assert rule_book() is not None


def terratorch_config(chips, run) -> dict:
    root = str(chips)
    return {
        "seed_everything": 42,
        "trainer": {"accelerator": "cpu", "devices": 1, "logger": False,
                    "enable_progress_bar": False, "max_epochs": 1,
                    "default_root_dir": str(run)},
        "data": {"class_path": "GenericNonGeoPixelwiseRegressionDataModule", "init_args": {
            "batch_size": 1, "num_workers": 0,
            "train_transform": [{"class_path": "albumentations.RandomCrop",
                                 "init_args": {"height": 32, "width": 32}},
                                {"class_path": "ToTensorV2"}],
            "val_transform": [{"class_path": "albumentations.CenterCrop",
                               "init_args": {"height": 32, "width": 32}},
                              {"class_path": "ToTensorV2"}],
            "dataset_bands": list(SENTINEL2_L1C_BANDS), "output_bands": BANDS,
            "rgb_indices": [2, 1, 0],
            "train_data_root": root, "train_label_data_root": root,
            "val_data_root": root, "val_label_data_root": root,
            "img_grep": "*_S2Hand.tif", "label_grep": "*_LabelHand.tif",
            "means": [1500.0] * 6, "stds": [1000.0] * 6,
            "no_label_replace": -1, "no_data_replace": 0}},
        "model": {"class_path": "terratorch.tasks.PixelwiseRegressionTask", "init_args": {
            "model_args": {"decoder": "IdentityDecoder", "backbone": "galileo_tiny_encoder",
                           "backbone_pretrained": False, "backbone_bands": BANDS,
                           "head_dropout": 0.5, "head_final_act": "torch.nn.ReLU",
                           "head_learned_upscale_layers": 2},
            "loss": "rmse", "ignore_index": -1, "freeze_backbone": True,
            "freeze_decoder": False, "model_factory": "EncoderDecoderFactory"}},
        "optimizer": {"class_path": "torch.optim.AdamW",
                      "init_args": {"lr": 1.3e-4, "weight_decay": 0.048}},
        "lr_scheduler": {"class_path": "ReduceLROnPlateau",
                         "init_args": {"monitor": "val/loss"}},
    }


def test_terratorch_galileo_config_converts_and_trains(chips, tmp_path, capsys):
    code, config, converted = convert_terratorch_config(
        terratorch_config(chips, tmp_path / "run"), tmp_path)
    assert code == 0 and config is not None
    model_args = config["model"]["init_args"]["model_args"]
    assert model_args["backbone"] == "galileo:galileo_tiny"
    assert model_args["backbone_kwargs"]["bands"] == BANDS
    assert model_args["backbone_kwargs"].get("pretrained") is False
    capsys.readouterr()
    fit_fast_dev_run(converted, tmp_path)


def test_without_backbone_bands_the_data_bands_are_written(chips, tmp_path, capsys):
    # Galileo maps channels by band name: its default bands (ten S2 bands) are not the six
    # channels this data module gives, so the converter writes the data's output_bands.
    config = terratorch_config(chips, tmp_path / "run")
    del config["model"]["init_args"]["model_args"]["backbone_bands"]
    capsys.readouterr()
    code, converted, path = convert_terratorch_config(config, tmp_path)
    report = capsys.readouterr().err
    assert code == 0 and converted is not None
    assert converted["model"]["init_args"]["model_args"]["backbone_kwargs"]["bands"] == BANDS
    assert "written as the data's output_bands" in report
    fit_fast_dev_run(path, tmp_path)


def test_backbones_without_the_rule_flag_get_no_bands(tmp_path):
    # the same data on a timm backbone: nothing is written into its kwargs
    config = terratorch_config(tmp_path, tmp_path / "run")
    config["model"]["init_args"]["model_args"] = {
        "backbone": "timm_resnet18", "decoder": "FCNDecoder", "backbone_pretrained": False}
    _, converted, _ = convert_terratorch_config(config, tmp_path)
    assert converted is not None
    assert "bands" not in converted["model"]["init_args"]["model_args"].get("backbone_kwargs", {})


@pytest.mark.parametrize("name", ["galileo_nano_encoder", "galileo_base_encoder"])
def test_the_other_names_convert(name, tmp_path, chips):
    config = terratorch_config(chips, tmp_path / "run")
    config["model"]["init_args"]["model_args"]["backbone"] = name
    code, converted, _ = convert_terratorch_config(config, tmp_path)
    assert code == 0 and converted is not None
    backbone = converted["model"]["init_args"]["model_args"]["backbone"]
    assert backbone == f"galileo:{name.removesuffix('_encoder')}"
