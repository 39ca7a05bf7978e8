"""Streaming tiled inference on real GeoTIFFs written with rasterio."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import rasterio
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from rasterio.transform import from_origin

from geofm_core.errors import ConfigurationError
from geofm_core.inference.raster import OutputExistsError, Preprocessing, predict_raster
from geofm_core.inference.tiling import blend_weights, tile_windows, tiled_forward

TRANSFORM = from_origin(500_000, 4_200_000, 30, 30)


def write_raster(path: Path, data: np.ndarray, nodata=None, crs="EPSG:32618") -> Path:
    count, height, width = data.shape
    with rasterio.open(path, "w", driver="GTiff", height=height, width=width, count=count,
                       dtype=data.dtype, crs=crs, transform=TRANSFORM, nodata=nodata) as dst:
        dst.write(data)
    return path


def read(path: Path) -> tuple[np.ndarray, dict]:
    with rasterio.open(path) as src:
        return src.read(), src.profile


@pytest.fixture
def pointwise() -> torch.nn.Module:
    torch.manual_seed(0)
    return torch.nn.Conv2d(4, 3, 1)  # no spatial context: tiling cannot change its output


@pytest.mark.parametrize(("height", "width", "crop", "stride"), [
    (100, 130, 32, 24),   # overlaps, edges not a multiple of the stride, non-square
    (96, 64, 32, 32),     # stride == crop
    (20, 45, 32, 16),     # raster smaller than a tile in one direction
])
def test_streaming_equals_whole_image(tmp_path, pointwise, height, width, crop, stride):
    data = np.random.default_rng(1).normal(size=(4, height, width)).astype(np.float32)
    src = write_raster(tmp_path / "in.tif", data)
    result = predict_raster(pointwise, src, tmp_path / "out.tif", num_classes=3, crop=crop,
                            stride=stride, batch_size=3, probabilities=True, progress=False)
    classes, profile = read(result.output)
    probs, _ = read(result.probabilities)
    with torch.no_grad():
        whole = torch.softmax(pointwise(torch.from_numpy(data)[None]), 1)[0].numpy()
    np.testing.assert_allclose(probs, whole, atol=1e-5)
    assert (classes[0] == whole.argmax(0)).all()
    assert profile["crs"].to_epsg() == 32618 and profile["transform"] == TRANSFORM
    assert profile["dtype"] == "uint8"


def test_streaming_matches_in_memory_tiling_with_context(tmp_path):
    torch.manual_seed(0)
    conv = torch.nn.Conv2d(4, 2, 5, padding=2)  # spatial context: blending matters
    data = np.random.default_rng(2).integers(0, 3000, (4, 150, 97)).astype(np.uint16)
    src = write_raster(tmp_path / "in.tif", data)
    prep = Preprocessing(constant_scale=1e-3, means=[1.5] * 4, stds=[0.8] * 4, no_data_replace=0)
    out = predict_raster(conv, src, tmp_path / "o.tif", num_classes=2, crop=48, stride=32,
                         batch_size=5, preprocessing=prep, probabilities=True, progress=False)
    x = (torch.from_numpy(data.astype(np.float32)) * 1e-3 - 1.5) / 0.8
    with torch.no_grad():
        ref = tiled_forward(lambda t: torch.softmax(conv(t), 1), x[None], crop=48, stride=32)
    np.testing.assert_allclose(read(out.probabilities)[0], ref[0].numpy(), atol=1e-5)


def test_nodata_in_input_is_nodata_in_output(tmp_path, pointwise):
    data = np.random.default_rng(3).integers(1, 500, (4, 70, 80)).astype(np.int16)
    data[:, 5:15, 10:30] = -9999
    data[0, 40, 40] = -9999  # one band only: still a valid pixel
    src = write_raster(tmp_path / "in.tif", data, nodata=-9999)
    out = predict_raster(pointwise, src, tmp_path / "o.tif", num_classes=3, crop=32,
                         stride=24, progress=False)
    classes, profile = read(out.output)
    assert profile["nodata"] == 255
    assert (classes[0, 5:15, 10:30] == 255).all()
    assert (classes[0][data[0] != -9999] < 3).all() and classes[0, 40, 40] < 3


def test_regression_is_float32_with_nan_nodata(tmp_path):
    data = np.random.default_rng(4).normal(size=(2, 50, 61)).astype(np.float32) * 1000
    data[:, 0, :] = np.nan
    src = write_raster(tmp_path / "in.tif", data)

    def regress(tiles: torch.Tensor) -> torch.Tensor:
        return tiles[:, 0] * 0.5 + 0.123456

    out = predict_raster(regress, src, tmp_path / "o.tif", kind="regression", crop=32,
                         stride=20, progress=False)
    values, profile = read(out.output)
    assert profile["dtype"] == "float32" and math.isnan(profile["nodata"])
    assert np.isnan(values[0, 0]).all()
    np.testing.assert_allclose(values[0, 1:], data[0, 1:] * 0.5 + 0.123456, rtol=1e-5)


def test_multitemporal_stack(tmp_path):
    frames, bands = 3, 2
    data = np.random.default_rng(5).normal(size=(frames * bands, 40, 40)).astype(np.float32)
    src = write_raster(tmp_path / "in.tif", data)
    seen = []

    def forward(tiles: torch.Tensor) -> torch.Tensor:
        seen.append(tiles.shape)
        return tiles[:, :, 2]  # (N, C, T, H, W): the last frame's bands as 2 "classes"

    out = predict_raster(forward, src, tmp_path / "o.tif", num_classes=2, crop=32, stride=16,
                         preprocessing=Preprocessing(num_frames=frames), probabilities=True,
                         progress=False)
    assert seen[0][1:] == (bands, frames, 32, 32)
    probs = read(out.probabilities)[0]
    expected = torch.softmax(torch.from_numpy(data[4:6]), 0).numpy()
    np.testing.assert_allclose(probs, expected, atol=1e-5)


def test_cog_output(tmp_path, pointwise):
    data = np.random.default_rng(6).normal(size=(4, 600, 700)).astype(np.float32)
    src = write_raster(tmp_path / "in.tif", data)
    out = predict_raster(pointwise, src, tmp_path / "o.tif", num_classes=3, crop=128,
                         stride=128, batch_size=8, cog=True, progress=False)
    with rasterio.open(out.output) as result:
        assert result.profile["tiled"] and result.crs.to_epsg() == 32618
        assert result.overviews(1)  # COG carries overviews
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.tif", "o.tif"]


def test_failure_mid_run_leaves_no_file(tmp_path, pointwise):
    data = np.zeros((4, 200, 200), dtype=np.float32)
    src = write_raster(tmp_path / "in.tif", data)
    calls = []

    def failing(tiles: torch.Tensor) -> torch.Tensor:
        calls.append(1)
        if len(calls) == 3:
            raise RuntimeError("simulated crash")
        return pointwise(tiles)

    with pytest.raises(RuntimeError, match="simulated crash"):
        predict_raster(failing, src, tmp_path / "o.tif", num_classes=3, crop=32, stride=32,
                       batch_size=2, progress=False)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.tif"]
    predict_raster(pointwise, src, tmp_path / "o.tif", num_classes=3, crop=32, stride=32,
                   progress=False)  # a rerun completes
    assert (tmp_path / "o.tif").exists()


def test_existing_output_is_refused_unless_overwrite(tmp_path, pointwise):
    src = write_raster(tmp_path / "in.tif", np.zeros((4, 40, 40), dtype=np.float32))
    (tmp_path / "o.tif").write_bytes(b"keep me")
    with pytest.raises(OutputExistsError, match="overwrite"):
        predict_raster(pointwise, src, tmp_path / "o.tif", num_classes=3, crop=32, stride=16,
                       progress=False)
    assert (tmp_path / "o.tif").read_bytes() == b"keep me"
    predict_raster(pointwise, src, tmp_path / "o.tif", num_classes=3, crop=32, stride=16,
                   overwrite=True, progress=False)
    assert read(tmp_path / "o.tif")[0].shape == (1, 40, 40)


def test_input_without_crs_is_refused(tmp_path, pointwise):
    src = write_raster(tmp_path / "in.tif", np.zeros((4, 40, 40), dtype=np.float32), crs=None)
    with pytest.raises(ConfigurationError, match="has no CRS"):
        predict_raster(pointwise, src, tmp_path / "o.tif", num_classes=3, crop=32, stride=16,
                       progress=False)
    assert not (tmp_path / "o.tif").exists()


def test_band_out_of_range_names_the_file(tmp_path, pointwise):
    src = write_raster(tmp_path / "in.tif", np.zeros((4, 40, 40), dtype=np.float32))
    with pytest.raises(ConfigurationError, match=r"in.tif: band index 7 is out of range"):
        predict_raster(pointwise, src, tmp_path / "o.tif", num_classes=3, crop=32, stride=16,
                       preprocessing=Preprocessing(bands=[0, 1, 2, 7]), progress=False)


def test_bad_tiling_is_refused():
    with pytest.raises(ConfigurationError, match="stride"):
        tiled_forward(lambda t: t, torch.zeros(1, 1, 8, 8), crop=4, stride=5)


@settings(max_examples=60, deadline=None)
@given(st.integers(1, 300), st.integers(1, 300), st.integers(1, 64), st.data())
def test_tiles_cover_every_pixel_with_positive_weight(height, width, crop, data):
    stride = data.draw(st.integers(1, crop))
    blend = data.draw(st.sampled_from(["ramp", "average"]))
    weights = blend_weights(crop, stride, blend)
    assert (weights > 0).all()
    cover = torch.zeros(max(height, crop), max(width, crop))
    for row, col in tile_windows(max(height, crop), max(width, crop), crop, stride):
        cover[row : row + crop, col : col + crop] += weights
    assert (cover[:height, :width] > 0).all()


def test_labels_name_classes_and_describe_regression(tmp_path, pointwise):
    """Class names reach the tags and the QGIS style; regression gets description and units."""
    import json
    import xml.etree.ElementTree as ET

    from geofm_core.io.gis import OutputLabels

    data = np.random.default_rng(8).normal(size=(4, 64, 80)).astype(np.float32)
    src = write_raster(tmp_path / "in.tif", data)
    names = ("water", "land & sand", "cloud")
    out = predict_raster(pointwise, src, tmp_path / "o.tif", num_classes=3, crop=32,
                         stride=32, progress=False, labels=OutputLabels(names), cog=True)
    with rasterio.open(out.output) as result:
        assert json.loads(result.tags(1)["class_names"]) == list(names)
        assert result.tags(1)["class_1"] == "land & sand"
        assert len(result.colormap(1)) >= 3  # the COG copy keeps the colour table
    labels = [e.get("label") for e in ET.parse(out.extra["style"]).getroot().iter("paletteEntry")]
    assert labels == list(names)

    def height(tiles):
        return tiles[:, 0]

    reg = predict_raster(height, src, tmp_path / "h.tif", kind="regression", crop=32,
                         stride=32, progress=False,
                         labels=OutputLabels(description="canopy height", units="m"))
    with rasterio.open(reg.output) as result:
        assert result.descriptions == ("canopy height",) and result.units == ("m",)
    assert "style" not in reg.extra  # no style file for values
