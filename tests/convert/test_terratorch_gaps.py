"""Gaps found by converting TerraTorch's own example and test configs (issue 14).

Each config below copies the shape of one of TerraTorch's examples/confs or
tests/resources/configs files, cut to the keys that matter.
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest
import yaml

from geofm_core.cli import main as geofm
from geofm_core.convert.terratorch import convert_config, convert_file
from geofm_core.errors import ConfigurationError

BANDS = ["BLUE", "GREEN", "RED", "NIR_NARROW", "SWIR_1", "SWIR_2"]


def base_config() -> dict[str, Any]:
    """A small sen1floods11_vit.yaml-like config (Prithvi + UperNet, generic data)."""
    return {
        "trainer": {"accelerator": "cpu", "max_epochs": 1},
        "model": {"class_path": "terratorch.tasks.SemanticSegmentationTask", "init_args": {
            "model_factory": "EncoderDecoderFactory",
            "model_args": {
                "backbone": "prithvi_eo_v2_300", "backbone_pretrained": False,
                "backbone_bands": list(BANDS), "decoder": "UperNetDecoder",
                "num_classes": 2,
            },
            "loss": "ce", "optimizer": "AdamW",
        }},
        "data": {"class_path": "terratorch.datamodules.GenericNonGeoSegmentationDataModule",
                 "init_args": {"batch_size": 2, "num_classes": 2, "img_grep": "*.tif",
                               "label_grep": "*.tif", "train_data_root": "data"}},
    }


def model_args(conversion: Any) -> dict[str, Any]:
    return dict(conversion.config["model"]["init_args"]["model_args"])


def joined(items: list[str]) -> str:
    return "\n".join(items)


# ------------------------------------------------------------------------- callbacks


def test_state_dict_aware_checkpoints_become_lightning_model_checkpoints() -> None:
    config = base_config()
    # examples/confs/galileo_config.yaml: a full checkpoint and a weights-only copy.
    shared = {"monitor": "val/loss", "every_n_epochs": 2, "save_top_k": 1}
    config["trainer"]["callbacks"] = [
        {"class_path": "StateDictAwareModelCheckpoint",
         "init_args": {"filename": "{epoch}", **shared}},
        {"class_path": "StateDictAwareModelCheckpoint",
         "init_args": {"filename": "{epoch}_state_dict", "save_weights_only": True, **shared}},
        {"class_path": "terratorch.cli_tools.StateDictAwareModelCheckpoint",
         "init_args": {"monitor": "val/mIoU", "mode": "max", "save_best_only": True}},
        {"class_path": "CustomWriter", "init_args": {"output_dir": "preds"}},
        {"class_path": "StudioDeploySaveConfigCallback"},
    ]
    conversion = convert_config(config)
    callbacks = conversion.config["trainer"]["callbacks"]
    assert callbacks == [
        {"class_path": "lightning.pytorch.callbacks.ModelCheckpoint",
         "init_args": {"filename": "{epoch}", **shared}},
        {"class_path": "lightning.pytorch.callbacks.ModelCheckpoint",
         "init_args": {"monitor": "val/mIoU", "mode": "max", "save_top_k": 1}},
        {"class_path": "geofm_core.inference.writer.GeoTiffPredictionWriter",
         "init_args": {"output_dir": "preds"}},
    ]
    unmapped = joined(conversion.unmapped)
    assert "trainer.callbacks[1]" in unmapped and "Lightning refuses" in unmapped
    assert not any(n.startswith("trainer.callbacks[1]") for n in conversion.notes)
    assert "trainer.callbacks[4]" in unmapped and "StudioDeploySaveConfigCallback" in unmapped
    notes = joined(conversion.notes)
    assert "trainer.callbacks[2].init_args.save_best_only: true written as save_top_k" in notes
    assert "GeoTiffPredictionWriter" in notes


def test_the_converted_checkpoint_callbacks_build_a_lightning_trainer() -> None:
    from jsonargparse import ArgumentParser
    from lightning.pytorch import Trainer
    from lightning.pytorch.callbacks import ModelCheckpoint

    config = base_config()
    config["trainer"]["callbacks"] = [
        {"class_path": "StateDictAwareModelCheckpoint",
         "init_args": {"filename": "{epoch}", "monitor": "val/loss"}},
        {"class_path": "StateDictAwareModelCheckpoint",
         "init_args": {"filename": "{epoch}_sd", "monitor": "val/loss",
                       "save_weights_only": True}},
    ]
    trainer_config = {**convert_config(config).config["trainer"], "logger": False}
    parser = ArgumentParser()
    parser.add_class_arguments(Trainer, "trainer")
    # Lightning refuses two ModelCheckpoint callbacks with one state key when building.
    trainer = parser.instantiate_classes(parser.parse_object({"trainer": trainer_config})).trainer
    assert isinstance(trainer, Trainer)
    assert len([c for c in trainer.callbacks if isinstance(c, ModelCheckpoint)]) == 1


def test_predict_output_dir_goes_to_the_converted_writer() -> None:
    config = {"predict_output_dir": "out/preds", **base_config()}  # before the trainer
    config["trainer"]["callbacks"] = [{"class_path": "terratorch.cli_tools.CustomWriter"}]
    conversion = convert_config(config)
    assert conversion.config["trainer"]["callbacks"] == [
        {"class_path": "geofm_core.inference.writer.GeoTiffPredictionWriter",
         "init_args": {"output_dir": "out/preds"}}]
    assert "predict_output_dir" not in conversion.config
    assert not any(u.startswith("predict_output_dir") for u in conversion.unmapped)
    config["trainer"].pop("callbacks")
    assert any(u.startswith("predict_output_dir: out/preds")
               for u in convert_config(config).unmapped)


def test_without_a_checkpoint_callback_the_default_checkpoints_are_noted() -> None:
    conversion = convert_config(base_config())
    assert any(n.startswith("trainer.callbacks: no checkpoint callback") for n in conversion.notes)
    config = base_config()
    config["trainer"]["enable_checkpointing"] = False
    assert not any("no checkpoint callback" in n for n in convert_config(config).notes)


def test_stray_trainer_keys_are_listed_not_copied() -> None:
    config = base_config()
    config["trainer"]["class_path"] = "lightning.pytorch.Trainer"
    config["trainer"]["max_epoch"] = 3
    conversion = convert_config(config)
    assert "class_path" not in conversion.config["trainer"]
    assert "max_epoch" not in conversion.config["trainer"]
    unmapped = joined(conversion.unmapped)
    assert "trainer.class_path: lightning.pytorch.Trainer (not an argument of Lightning" in unmapped
    assert "trainer.max_epoch: 3" in unmapped
    assert conversion.config["trainer"]["max_epochs"] == 1


def test_keys_beside_class_path_and_init_args_are_listed() -> None:
    config = base_config()
    config["data"]["dict_kwargs"] = {"prefetch_factor": 2}
    config["model"]["dict_kwargs"] = {"extra": 1}
    conversion = convert_config(config)
    assert "dict_kwargs" not in conversion.config["data"]
    unmapped = joined(conversion.unmapped)
    assert "data.dict_kwargs: {prefetch_factor: 2}" in unmapped
    assert "model.dict_kwargs: {extra: 1}" in unmapped
    config["data"] = {"class_path": "terratorch.datamodules.FireScarsNonGeoDataModule",
                      "init_args": {"data_root": "scars"}, "dict_kwargs": {"x": 1}}
    assert "data.dict_kwargs: {x: 1}" in joined(convert_config(config).unmapped)


# ------------------------------------------------------------------------- model


def test_lr_overrides_follow_the_component_names() -> None:
    config = base_config()
    # examples/confs/sen1floods11_vit_dual_lr.yaml
    config["model"]["init_args"]["lr_overrides"] = {
        "encoder": 1e-5, "model.neck.0": 1e-4, "decoder": 2e-4, "blocks": 1e-6}
    conversion = convert_config(config)
    assert conversion.config["model"]["init_args"]["lr_overrides"] == {
        "backbone": 1e-5, "model.necks.0": 1e-4, "decoder": 2e-4, "blocks": 1e-6}
    notes = joined(conversion.notes)
    assert "lr_overrides.encoder: written as backbone" in notes
    assert "lr_overrides.model.neck.0: written as model.necks.0" in notes


def test_the_renamed_lr_override_matches_geofm_parameters() -> None:
    config = base_config()
    args = config["model"]["init_args"]
    args["model_args"].update(backbone_embed_dim=32, backbone_depth=2, backbone_num_heads=2,
                              decoder_channels=8)
    args["lr_overrides"] = {"encoder": 1e-5}
    converted = convert_config(config).config["model"]["init_args"]
    from geofm_core.tasks import SemanticSegmentationTask

    task = SemanticSegmentationTask(**converted)
    groups = {g["name"]: g for g in task.parameter_groups()}
    assert groups["backbone"]["lr"] == 1e-5
    assert groups["backbone"]["params"]


def test_integer_prithvi_bands_stay_new_bands() -> None:
    config = base_config()
    # tests/resources/configs/manufactured-finetune_prithvi_eo_v2_600_int.yaml: six
    # integer bands, new to the pretrained model in TerraTorch.
    config["model"]["init_args"]["model_args"].update(
        backbone_bands=[1, 2, [3, 5], 6], backbone_pretrained=True)
    conversion = convert_config(config)
    bands = model_args(conversion)["backbone_kwargs"]["bands"]
    assert bands == ["BAND_1", "BAND_2", "BAND_3", "BAND_4", "BAND_5", "BAND_6"]
    note = next(n for n in conversion.notes if n.startswith(
        "model.init_args.model_args.backbone_bands"))
    assert "new bands" in note and "random" in note
    # geofm reads them as new bands: none gets a pretrained channel.
    from geofm_prithvi.weights import resolve_bands

    assert [index for _, index in resolve_bands(bands)] == [None] * 6
    named = base_config()
    assert model_args(convert_config(named))["backbone_kwargs"]["bands"] == BANDS


def test_backbone_pretrain_img_size_is_dropped_as_terratorch_ignores_it() -> None:
    config = base_config()
    # examples/confs/sen4map_ViT-L.yaml, sen1floods11_vit_smp.yaml
    config["model"]["init_args"]["model_args"]["backbone_pretrain_img_size"] = 512
    conversion = convert_config(config)
    assert "pretrain_img_size" not in model_args(conversion)["backbone_kwargs"]
    assert not any("pretrain_img_size" in u for u in conversion.unmapped)
    assert any(n.startswith("model.init_args.model_args.backbone_pretrain_img_size: 512 "
                            "dropped: TerraTorch's Prithvi ViT takes and ignores it")
               for n in conversion.notes)


@pytest.mark.parametrize(("where", "value"), [
    ("data", 2), ("class_names", ["water", "land"]),
])
def test_a_model_class_count_the_data_contradicts_is_listed(where: str, value: Any) -> None:
    config = base_config()
    config["model"]["init_args"]["model_args"]["num_classes"] = 3
    if where == "data":
        config["data"]["init_args"]["num_classes"] = value
    else:
        config["data"]["init_args"].pop("num_classes")
        config["model"]["init_args"]["class_names"] = value
    conversion = convert_config(config)
    assert model_args(conversion)["num_classes"] == 3
    line = next(u for u in conversion.unmapped
                if u.startswith("model.init_args.model_args.num_classes: 3"))
    assert "says 2" in line
    agreed = convert_config(base_config())
    assert not any("num_classes" in u for u in agreed.unmapped)


# ------------------------------------------------------------------------- files


def test_a_non_utf8_config_is_one_clear_error(tmp_path: Path,
                                              capsys: pytest.CaptureFixture[str]) -> None:
    source = tmp_path / "latin1.yaml"
    source.write_bytes(yaml.safe_dump(base_config()).encode() + "# r\xe9sum\xe9\n".encode(
        "latin-1"))
    with pytest.raises(ConfigurationError, match=r"latin1\.yaml is not UTF-8"):
        convert_file(source)
    assert geofm(["convert", "terratorch", str(source)]) == 1
    err = capsys.readouterr().err
    assert "Traceback" not in err and "is not UTF-8 text" in err


@pytest.mark.parametrize("target", ["missing/out.yaml", "folder"])
def test_output_into_a_missing_folder_or_onto_a_folder_is_one_clear_error(
        tmp_path: Path, target: str, capsys: pytest.CaptureFixture[str]) -> None:
    source = tmp_path / "tt.yaml"
    source.write_text(yaml.safe_dump(base_config()))
    (tmp_path / "folder").mkdir()
    before = sorted(p.name for p in tmp_path.rglob("*"))
    assert geofm(["convert", "terratorch", str(source), "-o", str(tmp_path / target)]) == 1
    err = capsys.readouterr().err
    assert "Traceback" not in err
    assert ("does not exist" if "missing" in target else "is a folder") in err
    assert sorted(p.name for p in tmp_path.rglob("*")) == before


def test_base_config_is_untouched_by_conversion() -> None:
    config = base_config()
    before = copy.deepcopy(config)
    convert_config(config)
    assert config == before
