"""`geofm infer` and `geofm export onnx` on a checkpoint trained by `geofm fit`."""

from __future__ import annotations

import os
import pickle
from pathlib import Path

import numpy as np
import pytest
import rasterio
import torch
import yaml
from rasterio.transform import from_origin

from geofm_core.cli import main

TRANSFORM = from_origin(500_000, 4_000_000, 30, 30)


def write_tif(path: Path, array: np.ndarray, nodata=None) -> None:
    array = array if array.ndim == 3 else array[None]
    path.parent.mkdir(parents=True, exist_ok=True)
    with rasterio.open(path, "w", driver="GTiff", height=array.shape[1], width=array.shape[2],
                       count=array.shape[0], dtype=array.dtype, crs="EPSG:32633",
                       transform=TRANSFORM, nodata=nodata) as dst:
        dst.write(array)


@pytest.fixture(scope="module")
def trained(tmp_path_factory) -> dict[str, Path]:
    """A tiny segmentation model trained for one epoch through `geofm fit`."""
    root = tmp_path_factory.mktemp("infer")
    rng = np.random.default_rng(0)
    for i in range(4):
        mask = rng.integers(0, 3, (32, 32)).astype(np.uint8)
        image = mask[None] * 100 + rng.normal(0, 30, (6, 32, 32))
        write_tif(root / "img" / f"c{i}.tif", image.astype(np.int16))
        write_tif(root / "lbl" / f"c{i}.tif", mask)
    scene = rng.integers(0, 3, (90, 110))
    image = (scene[None] * 100 + rng.normal(0, 30, (6, 90, 110))).astype(np.int16)
    image[:, :6, :9] = -9999
    write_tif(root / "scene.tif", image, nodata=-9999)
    config = {
        "seed_everything": 0,
        "trainer": {"max_epochs": 1, "accelerator": "cpu", "logger": False,
                    "enable_progress_bar": False, "default_root_dir": str(root / "run")},
        "model": {"class_path": "SemanticSegmentationTask", "init_args": {
            "num_classes": 3, "tiled_inference": {"crop": 32, "stride": 32},
            "model_args": {"backbone": "timm:test_resnet", "backbone_kwargs": {"in_chans": 6},
                           "decoder": "geofm:fcn",
                           "decoder_kwargs": {"channels": 8, "num_convs": 1}}}},
        "data": {"class_path": "GeoTiffSegmentationDataModule", "init_args": {
            "train_data_root": str(root / "img"), "train_label_data_root": str(root / "lbl"),
            "val_data_root": str(root / "img"), "val_label_data_root": str(root / "lbl"),
            "batch_size": 2, "num_classes": 3, "constant_scale": 0.01, "no_data_replace": 0,
            "means": [1.0] * 6, "stds": [1.0] * 6}},
    }
    (root / "config.yaml").write_text(yaml.safe_dump(config))
    assert main(["fit", "-c", str(root / "config.yaml")]) == 0
    return {"root": root, "ckpt": root / "run" / "checkpoints" / "last.ckpt",
            "scene": root / "scene.tif"}


def test_infer_writes_a_georeferenced_class_map(trained, tmp_path, capsys):
    out = tmp_path / "pred.tif"
    assert main(["infer", "--ckpt", str(trained["ckpt"]), str(trained["scene"]), str(out),
                 "--probabilities", "--no-progress"]) == 0
    with rasterio.open(out) as result:
        classes = result.read(1)
        assert result.crs.to_epsg() == 32633 and result.transform == TRANSFORM
        assert result.dtypes == ("uint8",) and result.nodata == 255
    assert (classes[:6, :9] == 255).all() and (classes[6:, 9:] < 3).all()
    # the checkpoint's tiling (crop 32, stride 32) applies: 3 x 4 tiles
    assert "12 tiles" in capsys.readouterr().out
    with rasterio.open(tmp_path / "pred_probabilities.tif") as probs:
        assert probs.count == 3 and probs.dtypes[0] == "float32"


def test_command_line_tiling_wins_over_the_checkpoint(trained, tmp_path, capsys):
    out = tmp_path / "pred.tif"
    assert main(["infer", "--ckpt", str(trained["ckpt"]), str(trained["scene"]), str(out),
                 "--crop", "64", "--stride", "48", "--no-progress"]) == 0
    assert "4 tiles" in capsys.readouterr().out  # rows at 0, 26; cols at 0, 46: 2 x 2


def test_onnx_backend_and_export_match_pytorch(trained, tmp_path, capsys):
    common = [str(trained["scene"])]
    assert main(["infer", "--ckpt", str(trained["ckpt"]), *common, str(tmp_path / "a.tif"),
                 "--probabilities", "--no-progress"]) == 0
    assert main(["infer", "--ckpt", str(trained["ckpt"]), *common, str(tmp_path / "b.tif"),
                 "--probabilities", "--no-progress", "--backend", "onnx"]) == 0
    with rasterio.open(tmp_path / "a_probabilities.tif") as a, \
            rasterio.open(tmp_path / "b_probabilities.tif") as b:
        np.testing.assert_allclose(a.read(), b.read(), atol=1e-4)
    assert main(["export", "onnx", "--ckpt", str(trained["ckpt"]), "--output",
                 str(tmp_path / "m.onnx"), "--image-size", "64"]) == 0
    assert "dynamic batch and spatial size" in capsys.readouterr().out
    assert (tmp_path / "m.onnx").stat().st_size > 0


def test_existing_output_is_refused(trained, tmp_path, capsys):
    out = tmp_path / "pred.tif"
    out.write_bytes(b"precious")
    assert main(["infer", "--ckpt", str(trained["ckpt"]), str(trained["scene"]), str(out),
                 "--no-progress"]) == 1
    assert "--overwrite" in capsys.readouterr().err and out.read_bytes() == b"precious"


@pytest.mark.parametrize(("output", "extra", "message"), [
    ("pred.gpkg", [], "is a vector file; give a GeoTIFF"),
    ("pred.tif", ["--score-threshold", "0.3"], "--score-threshold is for detection"),
])
def test_detection_options_refused_for_a_map_checkpoint(trained, tmp_path, capsys, output,
                                                        extra, message):
    out = tmp_path / output
    assert main(["infer", "--ckpt", str(trained["ckpt"]), str(trained["scene"]), str(out),
                 "--no-progress", *extra]) == 1
    assert message in capsys.readouterr().err and not out.exists()


class Exploit:
    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def _bad_checkpoints(trained, tmp_path):
    truncated = tmp_path / "truncated.ckpt"
    truncated.write_bytes(trained["ckpt"].read_bytes()[:5000])
    exploit = Exploit()
    exploit.marker = tmp_path / "pwned"
    malicious = tmp_path / "malicious.ckpt"
    with open(malicious, "wb") as f:
        pickle.dump({"state_dict": {}, "x": exploit}, f)
    foreign = tmp_path / "foreign.ckpt"
    ckpt = torch.load(trained["ckpt"], weights_only=True)
    ckpt["hyper_parameters"]["model_args"]["decoder_kwargs"]["channels"] = 16
    torch.save(ckpt, foreign)
    return {
        "missing": (tmp_path / "nope.ckpt", "does not exist"),
        "truncated": (truncated, "not a readable checkpoint"),
        "malicious": (malicious, "refused to load"),
        "foreign": (foreign, "weights of another model"),
    }


@pytest.mark.parametrize("case", ["missing", "truncated", "malicious", "foreign"])
def test_bad_checkpoints_give_one_clear_error(trained, tmp_path, capsys, case):
    path, message = _bad_checkpoints(trained, tmp_path)[case]
    out = tmp_path / "pred.tif"
    assert main(["infer", "--ckpt", str(path), str(trained["scene"]), str(out)]) == 1
    err = capsys.readouterr().err
    assert message in err and str(path) in err and "Traceback" not in err
    assert not out.exists() and not (tmp_path / "pwned").exists()


def test_predict_writes_one_georeferenced_file_per_input(trained, tmp_path, capsys):
    root = trained["root"]
    inputs = tmp_path / "inputs"
    (inputs / "east").mkdir(parents=True)
    (inputs / "west").mkdir()
    scene = trained["scene"].read_bytes()
    (inputs / "east" / "tile.tif").write_bytes(scene)  # same name, two folders
    (inputs / "west" / "tile.tif").write_bytes((root / "img" / "c0.tif").read_bytes())
    config = yaml.safe_load((root / "config.yaml").read_text())
    config["trainer"]["default_root_dir"] = str(tmp_path / "run")
    config["data"]["init_args"].update(predict_data_root=str(inputs), img_pattern="**/*.tif",
                                      eval_batch_size=1)  # the two inputs differ in size
    (tmp_path / "predict.yaml").write_text(yaml.safe_dump(config))
    argv = ["predict", "-c", str(tmp_path / "predict.yaml"), "--ckpt_path", str(trained["ckpt"])]
    assert main(argv) == 0
    out = tmp_path / "run" / "predictions"
    assert sorted(p.relative_to(out).as_posix() for p in out.rglob("*.tif")) == [
        "east/tile_pred.tif", "west/tile_pred.tif"]
    with rasterio.open(out / "east" / "tile_pred.tif") as pred:
        assert pred.shape == (90, 110) and pred.transform == TRANSFORM
        assert pred.crs.to_epsg() == 32633 and pred.dtypes == ("uint8",)
        classes = pred.read(1)
    assert (classes[:6, :9] == 255).all() and (classes[6:, 9:] < 3).all()
    before = (out / "west" / "tile_pred.tif").stat().st_mtime_ns
    assert main(argv) == 1  # outputs exist: refused before anything is written
    assert "exists" in capsys.readouterr().err
    assert (out / "west" / "tile_pred.tif").stat().st_mtime_ns == before


def test_a_checkpoint_of_the_python_api_works_with_infer(trained, tmp_path, capsys):
    """Trainer.fit(task, datamodule) without LightningCLI: the task records its class."""
    from lightning.pytorch import Trainer

    from geofm_core.data import GeoTiffSegmentationDataModule
    from geofm_core.io.checkpoints import TASK_CLASS_KEY
    from geofm_core.tasks import SemanticSegmentationTask

    root = trained["root"]
    task = SemanticSegmentationTask(
        num_classes=3, model_args={"backbone": "timm:test_resnet",
                                   "backbone_kwargs": {"in_chans": 6}, "decoder": "geofm:fcn",
                                   "decoder_kwargs": {"channels": 8, "num_convs": 1}})
    data = GeoTiffSegmentationDataModule(
        train_data_root=str(root / "img"), train_label_data_root=str(root / "lbl"),
        batch_size=2, num_classes=3, constant_scale=0.01, no_data_replace=0)
    trainer = Trainer(max_epochs=1, accelerator="cpu", logger=False, enable_progress_bar=False,
                      enable_model_summary=False, default_root_dir=tmp_path / "run")
    trainer.fit(task, datamodule=data)
    ckpt = tmp_path / "python.ckpt"
    trainer.save_checkpoint(ckpt)
    state = torch.load(ckpt, map_location="cpu", weights_only=True)
    assert state[TASK_CLASS_KEY] == "geofm_core.tasks.segmentation.SemanticSegmentationTask"
    assert "_class_path" not in (state.get("hyper_parameters") or {})  # no CLI was involved
    out = tmp_path / "pred.tif"
    assert main(["infer", "--ckpt", str(ckpt), str(trained["scene"]), str(out),
                 "--crop", "32", "--no-progress"]) == 0, capsys.readouterr().err
    with rasterio.open(out) as result:
        assert result.crs.to_epsg() == 32633 and (result.read(1)[6:, 9:] < 3).all()



def test_class_map_is_gis_ready(trained, tmp_path, capsys):
    """Colour table, class names as tags, probability band names and a QGIS style."""
    import json
    import xml.etree.ElementTree as ET

    from geofm_core.data.palette import class_colors

    out = tmp_path / "map.tif"
    assert main(["infer", "--ckpt", str(trained["ckpt"]), str(trained["scene"]), str(out),
                 "--probabilities", "--no-progress"]) == 0
    printed = capsys.readouterr().out
    with rasterio.open(out) as src:
        names = json.loads(src.tags(1)["class_names"])
        colormap = src.colormap(1)
        assert src.descriptions == ("class",)
        # GIS order in the message: width x height (the scene is 110 wide, 90 high).
        assert (src.width, src.height) == (110, 90) and "(110 x 90 px" in printed
    assert names == ["0", "1", "2"]  # the checkpoint names no classes: their indices
    assert [colormap[i][:3] for i in range(3)] == class_colors(3)
    with rasterio.open(tmp_path / "map_probabilities.tif") as src:
        assert src.descriptions == tuple(f"probability of {n}" for n in names)
    entries = ET.parse(tmp_path / "map.qml").getroot().findall(".//paletteEntry")
    assert [e.get("label") for e in entries] == names
    assert "map.qml (QGIS style" in printed
