"""YAML only: geofm fit / predict / infer / export of an ObjectDetectionTask on real water bodies.

The Sen1Floods11 S2 chip with its water polygons (``geofm_core.testing.water_bodies``):
a Faster R-CNN on resnet18 is fitted two steps, then predicted through Lightning's loop
(one GeoPackage per image), streamed through ``geofm infer`` and exported to ONNX.
"""

from __future__ import annotations

from pathlib import Path

import pyogrio
import pytest
import rasterio
import shapely
import yaml

from geofm_core.cli import main

CHIP = 128


@pytest.fixture(scope="module")
def fitted(tmp_path_factory) -> dict:
    from geofm_core.testing import water_bodies

    root = tmp_path_factory.mktemp("det_e2e")
    water = water_bodies(root / "data")
    data = {
        "train_data_root": str(water.images), "val_data_root": str(water.images),
        "predict_data_root": str(water.images), "img_pattern": "*_S2Hand.tif",
        "train_label_data_root": str(water.labels), "val_label_data_root": str(water.labels),
        "class_attribute": "class", "classes": ["water"], "chip_size": CHIP,
        "chip_stride": 96, "batch_size": 2, "dataset_bands": list(water.band_names),
        "means": [1500.0] * 6, "stds": [1000.0] * 6,
    }
    config = {
        "seed_everything": 0,
        "trainer": {"max_steps": 2, "accelerator": "cpu", "logger": False,
                    "enable_progress_bar": False, "default_root_dir": str(root / "run"),
                    "limit_val_batches": 1, "num_sanity_val_steps": 0},
        "model": {"class_path": "ObjectDetectionTask", "init_args": {
            "class_names": ["water"], "lr": 1e-4,
            "model_args": {"backbone": "timm:resnet18", "backbone_kwargs": {"in_chans": 6},
                           "necks": [{"name": "geofm:select_indices", "indices": [2, 3, 4]}],
                           "fpn_channels": 32,
                           "framework_kwargs": {"box_score_thresh": 0.0}}}},
        "data": {"class_path": "GeoTiffObjectDetectionDataModule", "init_args": data},
    }
    path = root / "config.yaml"
    path.write_text(yaml.safe_dump(config))
    assert main(["fit", "-c", str(path)]) == 0
    return {"root": root, "config": path, "ckpt": root / "run" / "checkpoints" / "last.ckpt",
            "image": water.image}


def _check_layer(path: Path, image: Path) -> int:
    import geopandas as gpd

    df = gpd.read_file(path, layer="detections")
    with rasterio.open(image) as src:
        assert df.crs == src.crs
        bounds = shapely.box(*src.bounds).buffer(1e-9)
    assert all(bounds.contains(g) for g in df.geometry)
    assert set(df.class_name) <= {"water"}
    return len(df)


def test_predict_writes_one_vector_file_per_image(fitted, tmp_path):
    out = fitted["root"] / "run" / "predictions" / f"{fitted['image'].stem}_pred.gpkg"
    assert main(["predict", "-c", str(fitted["config"]), "--ckpt_path",
                 str(fitted["ckpt"])]) == 0
    assert out.is_file()
    _check_layer(out, fitted["image"])  # the default writer: scores >= 0.5 (maybe none)
    writer = {"class_path": "geofm_core.inference.vector_writer.VectorPredictionWriter",
              "init_args": {"output_dir": str(tmp_path / "all"), "score_threshold": 0.0,
                            "format": "geojson"}}
    assert main(["predict", "-c", str(fitted["config"]), "--ckpt_path", str(fitted["ckpt"]),
                 "--trainer.callbacks+", yaml.safe_dump(writer, default_flow_style=True)
                 .strip()]) == 0
    found = tmp_path / "all" / f"{fitted['image'].stem}_pred.geojson"
    assert _check_layer(found, fitted["image"]) > 0


def test_infer_and_export_of_the_checkpoint(fitted, tmp_path, capsys):
    out = tmp_path / "water.gpkg"
    assert main(["infer", "--ckpt", str(fitted["ckpt"]), str(fitted["image"]), str(out),
                 "--crop", str(CHIP), "--stride", "112", "--score-threshold", "0",
                 "--no-progress"]) == 0
    assert _check_layer(out, fitted["image"]) > 0
    onnx_path = tmp_path / "det.onnx"
    assert main(["export", "onnx", "--ckpt", str(fitted["ckpt"]), "--output", str(onnx_path),
                 "--image-size", str(CHIP), "--check-images", str(fitted["image"])]) == 0
    assert "onnxruntime vs PyTorch" in capsys.readouterr().out
    import onnxruntime as ort

    session = ort.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"])
    assert session.get_inputs()[0].shape == [1, 6, CHIP, CHIP]
    assert pyogrio.read_info(out, layer="detections")["features"] > 0


def test_a_configured_geotiff_writer_becomes_a_vector_writer(fitted, tmp_path, capsys):
    """A converted TerraTorch config names GeoTiffPredictionWriter; detections need vectors."""
    writer = {"class_path": "geofm_core.inference.writer.GeoTiffPredictionWriter",
              "init_args": {"output_dir": str(tmp_path / "tt")}}
    assert main(["predict", "-c", str(fitted["config"]), "--ckpt_path", str(fitted["ckpt"]),
                 "--trainer.callbacks+", yaml.safe_dump(writer, default_flow_style=True)
                 .strip()]) == 0
    assert "replaced by VectorPredictionWriter" in capsys.readouterr().err
    assert (tmp_path / "tt" / f"{fitted['image'].stem}_pred.gpkg").is_file()
    assert not list((tmp_path / "tt").rglob("*.tif"))
