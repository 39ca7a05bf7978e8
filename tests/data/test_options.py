"""The chip data modules declare their shared options once; every tool still sees them all.

Each task's data module declares only its own options and passes the rest to
``GeoTiffChipDataModule`` as ``**kwargs``. These tests hold the CLI (``geofm fit --help``
per data module, ``--print_config``, type validation), ``save_hyperparameters`` and the
class signature to the full list.
"""

from __future__ import annotations

import inspect
import json

import numpy as np
import pytest
import yaml
from jsonargparse import ArgumentParser
from lightning.pytorch import LightningDataModule

from geofm_core.cli import main
from geofm_core.data import datamodules
from geofm_core.data.datamodules import GeoTiffChipDataModule
from geofm_core.errors import ConfigurationError
from geofm_core.signatures import accepted_arguments

from .conftest import write_tif

SHARED = [name for name in inspect.signature(GeoTiffChipDataModule.__init__).parameters
          if name != "self"]
OWN = {
    "GeoTiffSegmentationDataModule": ["label_pattern", "no_label_replace", "num_classes",
                                      "class_names", "ignore_index", "reduce_zero_label"],
    "GeoTiffRegressionDataModule": ["label_pattern", "no_label_replace"],
    "GeoTiffClassificationDataModule": ["num_classes", "class_names"],
    "GeoTiffMultiLabelDataModule": ["num_classes", "class_names"],
}
REQUIRED = {"GeoTiffSegmentationDataModule": {"num_classes": 2}}


def shared_help() -> dict[str, str]:
    """First words of each shared option's documented help."""
    doc = inspect.getdoc(GeoTiffChipDataModule) or ""
    lines = [line.strip() for line in doc.split("Args:")[1].splitlines()]
    return {line.split(":")[0]: line.split(":", 1)[1].strip()[:20] for line in lines
            if ":" in line and line.split(":")[0] in SHARED}


def test_the_shared_signature_is_the_whole_list():
    assert len(SHARED) == 28 and set(shared_help()) == set(SHARED)
    for name, own in OWN.items():
        cls = getattr(datamodules, name)
        accepted = accepted_arguments(cls, follow_kwargs=True)
        assert accepted is not None and not accepted.any_keyword
        assert sorted(accepted.names) == sorted(SHARED + own)  # each option once
        init = cls.__dict__.get("__init__")
        if init is not None:  # only its own options, the rest passed on
            params = inspect.signature(init).parameters
            assert list(params)[1:] == [*own, "kwargs"]
    with pytest.raises(ConfigurationError, match="use GeoTiff"):
        GeoTiffChipDataModule(batch_size=2)


@pytest.mark.parametrize("name", list(OWN))
def test_fit_help_lists_every_option_with_its_help(name, capsys):
    assert main(["fit", "--data.help", name]) == 0
    out = " ".join(capsys.readouterr().out.split())  # help text is wrapped
    for option in SHARED + OWN[name]:
        assert f"--data.{option} " in out
    for option, text in shared_help().items():
        assert " ".join(text.split()) in out, option


@pytest.mark.parametrize("name", list(OWN))
def test_print_config_and_hparams_hold_every_option(name, tmp_path, capsys):
    write_tif(tmp_path / "chip.tif", np.zeros((2, 4, 4), np.uint8))
    config = {
        "model": {"class_path": "SemanticSegmentationTask", "init_args": {
            "num_classes": 2,
            "model_args": {"backbone": "timm:test_resnet", "decoder": "geofm:fcn"}}},
        "data": {"class_path": name, "init_args": {
            "train_data_root": str(tmp_path), "batch_size": 3, **REQUIRED.get(name, {})}},
    }
    path = tmp_path / "config.yaml"
    path.write_text(json.dumps(config))
    assert main(["fit", "-c", str(path), "--print_config"]) == 0
    printed = yaml.safe_load(capsys.readouterr().out)["data"]["init_args"]
    assert list(printed) == OWN[name] + SHARED
    assert printed["batch_size"] == 3 and printed["constant_scale"] == 1.0
    # save_hyperparameters (checkpoints keep these, inference reads them back)
    cls = getattr(datamodules, name)
    direct = cls(train_data_root=str(tmp_path), batch_size=3, **REQUIRED.get(name, {}))
    assert dict(direct.hparams) == printed


@pytest.mark.parametrize("name", list(OWN))
@pytest.mark.parametrize(("option", "value"), [("batch_size", "two"), ("drop_last", "maybe")])
def test_types_are_validated_for_shared_options(name, option, value):
    parser = ArgumentParser(exit_on_error=False)
    parser.add_subclass_arguments(LightningDataModule, "data")
    with pytest.raises(Exception, match=rf"(?s)Parser key \"{option}\".*{value}"):
        parser.parse_object({"data": {"class_path": f"geofm_core.data.{name}",
                                      "init_args": {option: value}}})


def test_stats_checks_shared_options_by_name_and_type(tmp_path, capsys):
    for init, expected in (({"img_patern": "*.tif"}, "Did you mean 'img_pattern'"),
                           ({"batch_size": "two"}, "argument 'batch_size' expects int")):
        config = {"data": {"class_path": "GeoTiffSegmentationDataModule",
                           "init_args": {"train_data_root": str(tmp_path), "num_classes": 2,
                                         **init}}}
        (tmp_path / "c.yaml").write_text(json.dumps(config))
        assert main(["stats", "-c", str(tmp_path / "c.yaml")]) == 1
        assert expected in capsys.readouterr().err
