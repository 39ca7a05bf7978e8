"""A TerraTorch config on a TorchGeo backbone converts with `geofm convert` and trains.

The config is written as a TerraTorch user writes it (TerraTorch's task, factory, data
module and backbone names); `geofm convert terratorch` turns it into a geofm config, and
`geofm fit --trainer.fast_dev_run 1` runs that on the real Sen1Floods11 chip with the
weight set's file (random values, official layout) in torch.hub's cache.
"""

from __future__ import annotations

import yaml

from geofm_core.cli import main
from geofm_core.data.bands import SENTINEL2_L1C_BANDS
from geofm_core.testing import (
    convert_terratorch_config,
    fit_fast_dev_run,
    sen1floods11_chips,
    shared_data,
    terratorch_segmentation_config,
)


def test_terratorch_config_with_an_ssl4eo_resnet_converts_and_trains(tmp_path, offline_weights,
                                                                      capsys):
    chips = sen1floods11_chips(tmp_path)
    offline_weights("resnet18", "SENTINEL2_ALL_MOCO")
    model_args = {"backbone": "ssl4eos12_resnet18_sentinel2_all_moco",
                  "backbone_pretrained": True,
                  "backbone_model_bands": list(SENTINEL2_L1C_BANDS),
                  "decoder": "FCNDecoder", "num_classes": 2}
    code, config, converted = convert_terratorch_config(
        terratorch_segmentation_config(chips, tmp_path / "run", model_args), tmp_path)
    assert code == 0 and config is not None
    model_args = config["model"]["init_args"]["model_args"]
    assert model_args["backbone"] == "torchgeo:resnet18_sentinel2_all_moco"
    assert model_args["backbone_kwargs"]["pretrained"] is True
    capsys.readouterr()
    fit_fast_dev_run(converted, tmp_path)


def test_geofm_init_picks_the_weights_pretrained_on_the_data_bands(tmp_path, capsys):
    data = shared_data("sen1floods11")
    import rasterio
    from rasterio.windows import Window

    for folder in ("images", "labels"):
        (tmp_path / folder).mkdir()
    for i in range(3):
        window = Window(i * 128, 0, 128, 128)
        for name, folder in (("Spain_7370579_S2Hand.tif", "images"),
                             ("Spain_7370579_LabelHand.tif", "labels")):
            with rasterio.open(data / name) as src:
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
