"""`geofm init`: a starter config written from the data, right by construction."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import rasterio
import yaml
from rasterio.transform import from_origin

from geofm_core.cli import main

BANDS = ["BLUE", "GREEN", "RED", "NIR_NARROW"]


def _write(path: Path, array: np.ndarray, nodata=None, names=None) -> None:
    array = array if array.ndim == 3 else array[None]
    path.parent.mkdir(parents=True, exist_ok=True)
    with rasterio.open(path, "w", driver="GTiff", width=array.shape[2], height=array.shape[1],
                       count=array.shape[0], dtype=array.dtype, crs="EPSG:32633",
                       transform=from_origin(500_000, 4_000_000, 10, 10), nodata=nodata) as dst:
        dst.write(array)
        for i, name in enumerate(names or [], start=1):
            dst.set_band_description(i, name)


@pytest.fixture
def folders(tmp_path: Path) -> tuple[Path, Path]:
    rng = np.random.default_rng(3)
    for i in range(10):
        image = rng.normal(1000, 200, (4, 40, 48)).astype(np.int16)
        image[:, 0, :3] = -9999
        _write(tmp_path / "img" / f"tile{i}.tif", image, nodata=-9999, names=BANDS)
        mask = rng.choice([0, 1, 3], size=(40, 48), p=[0.6, 0.3, 0.1]).astype(np.uint8)
        mask[5, :5] = 255
        _write(tmp_path / "lbl" / f"tile{i}.tif", mask, nodata=255)
    return tmp_path / "img", tmp_path / "lbl"


def test_init_writes_a_config_that_trains(folders, tmp_path, capsys) -> None:
    images, labels = folders
    out = tmp_path / "cfg" / "starter.yaml"
    out.parent.mkdir()
    assert main(["init", "--images", str(images), "--labels", str(labels), "-o", str(out)]) == 0
    text = out.read_text()
    config = yaml.safe_load(text)
    data, model = config["data"]["init_args"], config["model"]["init_args"]
    assert data["dataset_bands"] == BANDS  # from the files' band descriptions
    assert data["num_classes"] == model["num_classes"] == 4  # classes 0, 1, 3 (2 unused)
    assert data["ignore_index"] == model["ignore_index"] == -1  # label nodata ignored
    assert "3: " in text and "2: 0 (0.0%)" in text  # class frequencies as comments
    train = Path(data["train_split"]).read_text().split()
    val = Path(data["val_split"]).read_text().split()
    assert (len(train), len(val)) == (8, 2) and not set(train) & set(val)
    assert model["tiled_inference"]["crop"] == 32  # the 40 x 48 chips' largest multiple of 32
    if model["model_args"]["backbone"] == "timm:resnet50":  # no plugin has weights for them
        assert model["model_args"]["backbone_kwargs"]["in_chans"] == 4
    else:  # an installed plugin's weight set on (most of) these bands, selected by name
        assert set(data.get("output_bands", BANDS)) <= set(BANDS)
    # The statistics are the training split's, as geofm stats computes them.
    stats_config = tmp_path / "stats.yaml"
    stats_config.write_text(yaml.safe_dump({"data": config["data"]}))
    capsys.readouterr()
    assert main(["stats", "-c", str(stats_config), "--json"]) == 0
    stats = json.loads(capsys.readouterr().out)
    np.testing.assert_allclose(data["means"], stats["means"], rtol=1e-5)
    np.testing.assert_allclose(data["stds"], stats["stds"], rtol=1e-5)
    # It trains as written (a tiny backbone instead of the default, offline).
    model["model_args"]["backbone"] = "timm:test_resnet"
    model["model_args"]["backbone_kwargs"] = {"in_chans": len(data["means"]),
                                              "pretrained": False}
    config["trainer"].update(logger=False, fast_dev_run=1, default_root_dir=str(tmp_path / "r"),
                             accelerator="cpu", enable_progress_bar=False)
    runnable = tmp_path / "runnable.yaml"
    runnable.write_text(yaml.safe_dump(config))
    assert main(["fit", "-c", str(runnable)]) == 0


def test_init_refuses_existing_files_and_bad_folders(folders, tmp_path, capsys) -> None:
    images, labels = folders
    out = tmp_path / "c.yaml"
    out.write_text("mine\n")
    assert main(["init", "--images", str(images), "--labels", str(labels), "-o", str(out)]) == 1
    assert "--overwrite" in capsys.readouterr().err and out.read_text() == "mine\n"
    assert not (tmp_path / "c.train.txt").exists()  # nothing half-written
    assert main(["init", "--images", str(tmp_path / "none"), "--labels", str(labels),
                 "-o", str(tmp_path / "d.yaml")]) == 1
    assert "--images" in capsys.readouterr().err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["c.yaml", "img", "lbl"]


def test_init_names_bands_and_marks_a_negative_label_value_as_unlabelled(tmp_path, capsys):
    rng = np.random.default_rng(4)
    for i in range(4):  # no band descriptions; -1 marks unlabelled pixels (no nodata set)
        _write(tmp_path / "img" / f"t{i}.tif", rng.normal(900, 90, (3, 32, 32)).astype("int16"))
        mask = rng.choice([-1, 0, 1], size=(32, 32), p=[0.1, 0.5, 0.4]).astype(np.int16)
        _write(tmp_path / "lbl" / f"t{i}.tif", mask)
    args = ["init", "--images", str(tmp_path / "img"), "--labels", str(tmp_path / "lbl")]
    assert main([*args, "--bands", "B4,B3", "-o", str(tmp_path / "a.yaml")]) == 1
    assert "--bands names 2 bands but the images hold 3" in capsys.readouterr().err
    assert main([*args, "--bands", "B4,B3,BLU", "-o", str(tmp_path / "a.yaml")]) == 1
    assert "--bands: unknown band name 'BLU'" in capsys.readouterr().err
    assert not (tmp_path / "a.yaml").exists()
    assert main([*args, "--bands", "B04,b03,B02", "-o", str(tmp_path / "a.yaml")]) == 0
    text = (tmp_path / "a.yaml").read_text()
    config = yaml.safe_load(text)
    data, model = config["data"]["init_args"], config["model"]["init_args"]
    assert data["dataset_bands"] == ["RED", "GREEN", "BLUE"]
    assert data["ignore_index"] == model["ignore_index"] == -1
    assert data["num_classes"] == 2
    assert "label value -1" in text and "ignore_index -1" in text
    # two negative values: which one means "no label" is not guessed
    mask = np.full((32, 32), -2, np.int16)
    _write(tmp_path / "lbl" / "t0.tif", mask)
    assert main([*args, "-o", str(tmp_path / "b.yaml")]) == 1
    assert "at most one negative value" in capsys.readouterr().err


def test_init_from_class_subfolders_writes_a_classification_config_that_trains(tmp_path):
    rng = np.random.default_rng(5)
    for name, level, count in (("water", 200, 5), ("forest", 900, 4), ("urban", 1500, 1)):
        for i in range(count):
            image = rng.normal(level, 50, (3, 32, 32)).astype(np.int16)
            _write(tmp_path / "scenes" / name / f"{name}{i}.tif", image,
                   names=["B04", "B03", "B02"])
    out = tmp_path / "cls.yaml"
    assert main(["init", "--images", str(tmp_path / "scenes"), "-o", str(out)]) == 0
    text = out.read_text()
    config = yaml.safe_load(text)
    data = config["data"]["init_args"]
    assert config["model"]["class_path"] == "ClassificationTask"
    assert data["class_names"] == ["forest", "urban", "water"] and data["num_classes"] == 3
    assert data["dataset_bands"] == ["RED", "GREEN", "BLUE"]
    assert "water: 5 (50.0%)" in text
    train = (tmp_path / "cls.train.txt").read_text().split()
    val = (tmp_path / "cls.val.txt").read_text().split()
    assert sorted(train + val) == sorted(f"{n}/{n}{i}" for n, c in
                                         (("water", 5), ("forest", 4), ("urban", 1))
                                         for i in range(c))
    assert {v.split("/")[0] for v in val} == {"water", "forest"}  # urban's one chip trains
    assert len(data["means"]) == 3
    config["model"]["init_args"]["model_args"] = {
        "backbone": "timm:test_resnet", "backbone_kwargs": {"in_chans": 3, "pretrained": False}}
    config["trainer"].update(logger=False, fast_dev_run=1, accelerator="cpu",
                             enable_progress_bar=False, default_root_dir=str(tmp_path / "r"))
    runnable = tmp_path / "runnable.yaml"
    runnable.write_text(yaml.safe_dump(config))
    assert main(["fit", "-c", str(runnable)]) == 0
    assert main(["init", "--images", str(tmp_path / "scenes" / "water"), "-o",
                 str(tmp_path / "x.yaml")]) == 1
