"""`geofm embed` and `geofm predict` with an EmbeddingTask YAML, on the real chip."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import rasterio
import torch
import yaml
from rasterio.windows import Window

from geofm_core.cli import main as geofm

from .conftest import HLS_IN_S2, PRITHVI_KWARGS, prithvi_task, read_hls

gpd = pytest.importorskip("geopandas")
HLS_ARGS = ["--bands", ",".join(map(str, HLS_IN_S2)), "--scale", "0.0001"]


def _prithvi_args(name: str) -> list[str]:
    import json

    return ["--backbone", name, "--backbone-kwargs", json.dumps(PRITHVI_KWARGS), *HLS_ARGS,
            "--no-progress", "--seed", "0"]


@pytest.fixture(scope="module")
def chips(s2_chip, tmp_path_factory) -> Path:
    """Three 256 x 256 chips cut from the real chip, each with its own transform."""
    root = tmp_path_factory.mktemp("chips")
    with rasterio.open(s2_chip) as src:
        for name, (row, col) in {"c0": (0, 0), "c1": (0, 256), "c2": (256, 256)}.items():
            window = Window(col, row, 256, 256)
            profile = dict(src.profile, width=256, height=256,
                           transform=src.window_transform(window))
            with rasterio.open(root / f"{name}.tif", "w", **profile) as dst:
                dst.write(src.read(window=window))
    return root


def test_embed_a_folder_of_chips_and_a_dense_raster(prithvi, s2_chip, chips, tmp_path,
                                                    capsys) -> None:
    out = tmp_path / "chips.parquet"
    assert geofm(["embed", str(chips), *_prithvi_args(prithvi), "--chips", str(out)]) == 0
    assert "wrote" in capsys.readouterr().out
    table = gpd.read_parquet(out)
    assert list(table["id"]) == ["c0", "c1", "c2"]
    with rasterio.open(chips / "c2.tif") as src:
        assert table.crs == src.crs
        assert np.allclose(table.geometry.iloc[2].bounds, tuple(src.bounds))
    with torch.no_grad():
        direct = prithvi_task().embed(read_hls(chips / "c2.tif")[None])[0][0]
    assert np.allclose(table["embedding"].iloc[2], direct.numpy(), atol=1e-5)

    dense = tmp_path / "dense.tif"
    assert geofm(["embed", str(s2_chip), *_prithvi_args(prithvi), "--dense", str(dense),
                  "--crop", "256", "--dtype", "float16"]) == 0
    assert "16 px, 32 bands float16, 4 tiles" in capsys.readouterr().out
    with rasterio.open(dense) as dst:
        assert (dst.count, dst.shape) == (32, (32, 32))
        assert dst.tags()["backbone"] == prithvi
        # the tile at rows 256.., columns 256.. is chip c2
        values = dst.read(window=Window(16, 16, 16, 16))
    assert np.allclose(values, prithvi_task().model(read_hls(chips / "c2.tif")[None])
                       .dense[0].detach().numpy(), atol=2e-2)  # float16


def test_embed_with_the_backbone_of_a_trained_checkpoint(s2_chip, tmp_path) -> None:
    from lightning.pytorch import Trainer

    from geofm_core.tasks import SemanticSegmentationTask

    torch.manual_seed(0)
    task = SemanticSegmentationTask(num_classes=2, model_args={
        "backbone": "timm:test_resnet", "backbone_kwargs": {"in_chans": 6},
        "decoder": "geofm:fcn", "decoder_kwargs": {"channels": 8, "num_convs": 1}})
    image = read_hls(s2_chip, Window(0, 0, 64, 64))
    batch = {"image": image[None], "mask": (image[3] > 0.2).long()[None]}
    loader = torch.utils.data.DataLoader([batch], batch_size=None)
    trainer = Trainer(accelerator="cpu", max_epochs=1, logger=False, enable_progress_bar=False,
                      enable_checkpointing=False, enable_model_summary=False,
                      default_root_dir=tmp_path)
    trainer.fit(task, train_dataloaders=loader)
    ckpt = tmp_path / "seg.ckpt"
    trainer.save_checkpoint(ckpt)
    out = tmp_path / "e.parquet"
    assert geofm(["embed", str(s2_chip), "--ckpt", str(ckpt), *HLS_ARGS, "--tile", "256",
                  "--pooling", "max", "--chips", str(out), "--no-progress"]) == 0
    table = gpd.read_parquet(out)
    assert len(table) == 4
    with torch.no_grad():
        features = task.eval().model.backbone(read_hls(s2_chip, Window(256, 0, 256, 256))[None])
    assert np.allclose(table["embedding"].iloc[1], features[-1].amax((2, 3))[0].numpy(),
                       atol=1e-5)


def test_predict_from_yaml_writes_geoparquet_and_dense_chips(prithvi, chips, tmp_path) -> None:
    config = {
        "trainer": {"accelerator": "cpu", "logger": False, "enable_progress_bar": False,
                    "default_root_dir": str(tmp_path / "run")},
        "model": {"class_path": "EmbeddingTask", "init_args": {
            "backbone": prithvi, "backbone_kwargs": PRITHVI_KWARGS, "pooling": "cls",
            "dense": True}},
        "data": {"class_path": "GeoTiffClassificationDataModule", "init_args": {
            "predict_data_root": str(chips), "output_bands": HLS_IN_S2,
            "constant_scale": 0.0001, "batch_size": 2, "num_workers": 0}},
    }
    path = tmp_path / "embed.yaml"
    path.write_text(yaml.safe_dump(config))
    assert geofm(["predict", "-c", str(path)]) == 0
    out = tmp_path / "run" / "predictions"
    table = gpd.read_parquet(out / "embeddings.parquet")
    assert sorted(table["id"]) == ["c0", "c1", "c2"]
    row = table[table["id"] == "c1"].iloc[0]
    with torch.no_grad():
        tokens = prithvi_task().model.backbone(read_hls(chips / "c1.tif")[None])[-1]
    assert np.allclose(row["embedding"], tokens[0, 0].numpy(), atol=1e-5)
    with rasterio.open(chips / "c1.tif") as src:
        assert table.crs == src.crs
        assert np.allclose(row.geometry.bounds, tuple(src.bounds))
        with rasterio.open(out / "c1_emb.tif") as dst:
            assert (dst.count, dst.shape) == (32, (16, 16))
            assert dst.bounds == src.bounds
    # a second run refuses to overwrite, --overwrite replaces
    assert geofm(["predict", "-c", str(path)]) != 0
    assert geofm(["predict", "-c", str(path), "--overwrite"]) == 0
    # fit is refused with one readable error
    assert geofm(["fit", "-c", str(path)]) != 0


@pytest.mark.parametrize(("extra", "message"), [
    (["--chips", "out.csv"], "--chips out.csv: the file should end in .parquet"),
    (["--dense", "out.png"], "--dense out.png: the file should end in .tif"),
    ([], "writes nothing without an output"),
    (["--chips", "o.parquet", "--ckpt", "x.ckpt"], "needs one backbone"),
])
def test_usage_errors(s2_chip, extra, message, tmp_path, capsys, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    args = ["embed", str(s2_chip), *extra, "--backbone", "timm:test_resnet"]
    assert geofm(args) == 1
    assert message in capsys.readouterr().err
    assert list(tmp_path.iterdir()) == []


def test_input_and_backbone_errors(s2_chip, chips, tmp_path, capsys) -> None:
    out = str(tmp_path / "o.parquet")
    cases = [
        (["embed", str(tmp_path / "nope.tif"), "--backbone", "timm:test_resnet", "--chips", out],
         "input " + str(tmp_path / "nope.tif") + " does not exist"),
        (["embed", str(s2_chip), "--backbone", "timm:no_such_net", "--chips", out],
         "unknown backbone 'timm:no_such_net'"),
        (["embed", str(s2_chip), "--backbone", "timm:test_resnet", "--chips", out],
         "the backbone takes 3 input bands (the first layer"),
        (["embed", str(chips), "--backbone", "timm:test_resnet", "--dense",
          str(tmp_path / "d.tif")], "--dense embeds one raster"),
        (["embed", str(s2_chip), "--backbone", "timm:test_resnet", "--backbone-kwargs",
          "{in_chans: 6}", "--chips", out], "--backbone-kwargs is not JSON"),
    ]
    for args, message in cases:
        assert geofm(args) == 1, args
        assert message in capsys.readouterr().err
    assert list(tmp_path.iterdir()) == []
