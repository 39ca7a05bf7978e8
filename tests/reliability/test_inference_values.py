"""What reaches the model at inference, and what the checkpoint keeps of the data settings.

Through the real ``geofm fit`` / ``geofm infer``: NaN pixels are filled before the model
and written as nodata, so valid pixels around them keep finite predictions; statistics
given as a file are stored as values, so editing the file later changes nothing.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import rasterio
import torch

from geofm_core.cli import main

from .conftest import BANDS, seg_config, write_config, write_tif


def test_infer_fills_a_nan_block_and_writes_it_as_nodata(
    tmp_path: Path, trained: dict[str, Path]
) -> None:
    rng = np.random.default_rng(1)
    image = rng.normal(0, 1, (BANDS, 64, 80)).astype(np.float32)
    image[:, 20:36, 30:50] = np.nan  # a block of missing pixels, all bands
    image[1, 50, 10] = np.inf  # and one band of one pixel
    source = write_tif(tmp_path / "holes.tif", image)
    out = tmp_path / "pred.tif"
    assert main(["infer", "--ckpt", str(trained["ckpt"]), str(source), str(out),
                 "--no-progress", "--probabilities"]) == 0
    with rasterio.open(out) as src:
        classes = src.read(1)
        nodata = src.nodata
    with rasterio.open(tmp_path / "pred_probabilities.tif") as src:
        probs = src.read()
    missing = np.zeros(classes.shape, bool)
    missing[20:36, 30:50] = True
    missing[50, 10] = True
    assert nodata == 255
    assert (classes[missing] == 255).all()
    assert (classes[~missing] < 3).all()
    assert np.isnan(probs[:, missing]).all()
    valid = probs[:, ~missing]
    assert np.isfinite(valid).all()
    np.testing.assert_allclose(valid.sum(axis=0), 1.0, atol=1e-4)
    # the model saw the band mean there (0: the checkpoint's means are 0, stds 1)
    filled = write_tif(tmp_path / "filled.tif", np.nan_to_num(image, nan=0.0, posinf=0.0))
    assert main(["infer", "--ckpt", str(trained["ckpt"]), str(filled),
                 str(tmp_path / "ref.tif"), "--no-progress", "--probabilities"]) == 0
    with rasterio.open(tmp_path / "ref_probabilities.tif") as src:
        np.testing.assert_allclose(src.read()[:, ~missing], valid, atol=1e-6)


def test_checkpoint_keeps_the_statistics_not_the_file(
    tmp_path: Path, dataset: dict[str, Path]
) -> None:
    stats = tmp_path / "stats.yaml"
    stats.write_text(f"means: {[0.5] * BANDS}\nstds: {[2.0] * BANDS}\n")
    config = seg_config(dataset, tmp_path / "run", means=str(stats), stds=str(stats))
    config["trainer"]["logger"] = False
    assert main(["fit", "-c", str(write_config(config, tmp_path / "config.yaml"))]) == 0
    ckpt = tmp_path / "run" / "checkpoints" / "last.ckpt"
    saved = torch.load(ckpt, map_location="cpu", weights_only=True)
    data_hp = saved["datamodule_hyper_parameters"]
    assert data_hp["means"] == [0.5] * BANDS and data_hp["stds"] == [2.0] * BANDS
    scene = dataset["predict"] / "scene0.tif"

    def infer(name: str) -> np.ndarray:
        out = tmp_path / name
        assert main(["infer", "--ckpt", str(ckpt), str(scene), str(out), "--no-progress",
                     "--probabilities"]) == 0
        with rasterio.open(out.with_name(f"{out.stem}_probabilities.tif")) as src:
            return src.read()

    before = infer("before.tif")
    stats.write_text(f"means: {[100.0] * BANDS}\nstds: {[0.01] * BANDS}\n")
    np.testing.assert_array_equal(infer("after.tif"), before)
