"""A TerraTorch config on a TorchGeo backbone converts with `geofm convert` and trains.

The config is written as a TerraTorch user writes it (TerraTorch's task, factory, data
module and backbone names); `geofm convert terratorch` turns it into a geofm config, and
`geofm fit --trainer.fast_dev_run 1` runs that on the real Sen1Floods11 chip with the
weight set's file (random values, official layout) in torch.hub's cache.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import yaml

from geofm_core.cli import main
from geofm_core.data.bands import SENTINEL2_L1C_BANDS

DATA = Path(__file__).resolve().parents[3].parent / "shared" / "data" / "sen1floods11"


def test_terratorch_config_with_an_ssl4eo_resnet_converts_and_trains(tmp_path, offline_weights,
                                                                      capsys):
    if not (DATA / "Spain_7370579_S2Hand.tif").exists():
        pytest.skip(f"real test rasters not found at {DATA} (see the project's data README)")
    chips = tmp_path / "chips"
    chips.mkdir()
    for name in ("Spain_7370579_S2Hand.tif", "Spain_7370579_LabelHand.tif"):
        shutil.copy(DATA / name, chips / name)
    offline_weights("resnet18", "SENTINEL2_ALL_MOCO")
    terratorch = {
        "seed_everything": 0,
        "trainer": {"accelerator": "cpu", "devices": 1, "logger": False,
                    "enable_progress_bar": False, "max_epochs": 1,
                    "default_root_dir": str(tmp_path / "run")},
        "data": {"class_path": "terratorch.datamodules.GenericNonGeoSegmentationDataModule",
                 "init_args": {
                     "batch_size": 1, "num_workers": 0, "num_classes": 2,
                     "train_data_root": str(chips), "val_data_root": str(chips),
                     "train_label_data_root": str(chips), "val_label_data_root": str(chips),
                     "img_grep": "*_S2Hand.tif", "label_grep": "*_LabelHand.tif",
                     "dataset_bands": list(SENTINEL2_L1C_BANDS),
                     "output_bands": list(SENTINEL2_L1C_BANDS),
                     "means": [1500.0] * 13, "stds": [1000.0] * 13, "no_label_replace": -1,
                     "no_data_replace": 0,
                     "train_transform": [{"class_path": "albumentations.RandomCrop",
                                          "init_args": {"height": 64, "width": 64}},
                                         {"class_path": "ToTensorV2"}],
                     "val_transform": [{"class_path": "albumentations.CenterCrop",
                                        "init_args": {"height": 64, "width": 64}},
                                       {"class_path": "ToTensorV2"}]}},
        "model": {"class_path": "terratorch.tasks.SemanticSegmentationTask", "init_args": {
            "model_factory": "EncoderDecoderFactory",
            "model_args": {"backbone": "ssl4eos12_resnet18_sentinel2_all_moco",
                           "backbone_pretrained": True,
                           "backbone_model_bands": list(SENTINEL2_L1C_BANDS),
                           "decoder": "FCNDecoder", "num_classes": 2},
            "loss": "ce", "ignore_index": -1}},
    }
    source, converted = tmp_path / "terratorch.yaml", tmp_path / "geofm.yaml"
    source.write_text(yaml.safe_dump(terratorch, sort_keys=False))
    assert main(["convert", "terratorch", str(source), "-o", str(converted)]) == 0
    config = yaml.safe_load(converted.read_text())
    model_args = config["model"]["init_args"]["model_args"]
    assert model_args["backbone"] == "torchgeo:resnet18_sentinel2_all_moco"
    assert model_args["backbone_kwargs"]["pretrained"] is True
    capsys.readouterr()
    assert main(["fit", "-c", str(converted), "--trainer.fast_dev_run", "1"]) == 0


def test_geofm_init_picks_the_weights_pretrained_on_the_data_bands(tmp_path, capsys):
    if not (DATA / "Spain_7370579_S2Hand.tif").exists():
        pytest.skip(f"real test rasters not found at {DATA} (see the project's data README)")
    import rasterio
    from rasterio.windows import Window

    for folder in ("images", "labels"):
        (tmp_path / folder).mkdir()
    for i in range(3):
        window = Window(i * 128, 0, 128, 128)
        for name, folder in (("Spain_7370579_S2Hand.tif", "images"),
                             ("Spain_7370579_LabelHand.tif", "labels")):
            with rasterio.open(DATA / name) as src:
                profile = src.profile | {"width": 128, "height": 128,
                                         "transform": src.window_transform(window)}
                with rasterio.open(tmp_path / folder / f"c{i}.tif", "w", **profile) as dst:
                    dst.write(src.read(window=window))
    out = tmp_path / "start.yaml"
    bands = "B1,B2,B3,B4,B5,B6,B7,B8,B8A,B9,B10,B11,B12"
    assert main(["init", "--images", str(tmp_path / "images"), "--labels",
                 str(tmp_path / "labels"), "--bands", bands, "-o", str(out)]) == 0
    text = out.read_text()
    backbone = yaml.safe_load(text)["model"]["init_args"]["model_args"]["backbone"]
    # the smallest registered feature-map backbone pretrained on all 13 L1C bands in order
    assert backbone == "torchgeo:resnet18_sentinel2_all_moco"
    assert "pretrained on exactly these bands: SENTINEL2_ALL_MOCO (CC-BY-4.0)" in text
    # labels without band names on the files and no --bands: the adaptable default
    assert main(["init", "--images", str(tmp_path / "images"), "--labels",
                 str(tmp_path / "labels"), "-o", str(out), "--overwrite"]) == 0
    assert "timm:resnet50" in out.read_text()
