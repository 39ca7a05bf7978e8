"""GeoParquet vectors and streamed dense GeoTIFFs of the real Sen1Floods11 chip."""

from __future__ import annotations

import tracemalloc
from pathlib import Path

import numpy as np
import pytest
import rasterio
import torch
from affine import Affine
from rasterio.windows import Window

from geofm_core.data.preprocessing import Preprocessing
from geofm_core.errors import ConfigurationError, OutputExistsError
from geofm_core.inference.embedding import embed_chips, embed_dense
from geofm_core.io.geoparquet import write_embeddings

from .conftest import HLS_IN_S2, prithvi_task, read_hls

gpd = pytest.importorskip("geopandas")
HLS = Preprocessing(bands=HLS_IN_S2, constant_scale=1e-4)


def test_tiles_as_geoparquet_with_footprints_on_the_raster(prithvi, s2_chip, tmp_path) -> None:
    task = prithvi_task()
    rows, crs = embed_chips(task.model, [s2_chip], HLS, tile=192, batch_size=4)
    out = write_embeddings(tmp_path / "tiles.parquet", rows, crs, inputs=[s2_chip],
                           metadata={"backbone": "tiny"})
    table = gpd.read_parquet(out)
    with rasterio.open(s2_chip) as src:
        assert table.crs == src.crs
        bounds, transform = src.bounds, src.transform
    # 512 px in tiles of 192: starts 0, 192 and 320 (the last moved back to the edge)
    assert len(table) == 9
    assert list(table["row_off"].unique()) == [0, 192, 320]
    assert np.allclose(table.total_bounds, [bounds.left, bounds.bottom, bounds.right,
                                            bounds.top])
    row = table.iloc[4]  # the centre tile
    assert row["id"] == "Spain_7370579_S2Hand_r192_c192"
    left, top = transform @ (192, 192)
    right, bottom = transform @ (384, 384)
    assert np.allclose(row.geometry.bounds, [left, bottom, right, top])
    with torch.no_grad():
        direct = task.embed(read_hls(s2_chip, Window(192, 192, 192, 192))[None])[0][0]
    assert np.asarray(row["embedding"]).shape == (32,)
    assert np.allclose(row["embedding"], direct.numpy(), atol=1e-5)
    import pyarrow.parquet as pq

    schema = pq.read_schema(out)
    kind = schema.field("embedding").type
    assert kind.list_size == 32 and str(kind.value_type) == "float"
    assert schema.metadata[b"geofm:backbone"] == b"tiny"


def test_chips_in_other_crs_are_refused_or_reprojected(landsat, s2_chip, tmp_path) -> None:
    torch.manual_seed(0)
    from geofm_core.tasks import EmbeddingTask

    task = EmbeddingTask(backbone="timm:test_resnet")
    rgb = Preprocessing(bands=[0, 1, 2])
    with pytest.raises(ConfigurationError, match="one GeoParquet file has one CRS: pass --crs"):
        embed_chips(task.model, [landsat, s2_chip], rgb, tile=256)
    rows, crs = embed_chips(task.model, [landsat, s2_chip], rgb, tile=400, crs="EPSG:4326")
    table = gpd.read_parquet(write_embeddings(tmp_path / "x.parquet", rows, crs))
    assert table.crs == "EPSG:4326"
    with rasterio.open(landsat) as src:
        from rasterio.warp import transform_bounds

        expected = transform_bounds(src.crs, "EPSG:4326", *src.bounds)
    landsat_rows = table[table["file"] == str(landsat)]
    assert len(landsat_rows) == 4
    assert np.allclose(landsat_rows.total_bounds, expected, atol=1e-3)


def test_dense_geotiff_is_the_backbones_patch_grid(prithvi, s2_chip, tmp_path) -> None:
    task = prithvi_task()
    result = embed_dense(task.model, s2_chip, tmp_path / "dense.tif", HLS, crop=128,
                         batch_size=3, tags={"backbone": "tiny"})
    assert result.tiles == 16 and result.patch == 16 and result.shape == (32, 32)
    with rasterio.open(tmp_path / "dense.tif") as dst, rasterio.open(s2_chip) as src:
        assert dst.count == 32 and dst.shape == (32, 32) and dst.crs == src.crs
        assert dst.transform == src.transform @ Affine.scale(16)
        assert dst.bounds == src.bounds
        assert dst.tags()["patch_size"] == "16" and dst.descriptions[0] == "emb_0"
        dense = dst.read()
    with torch.no_grad():  # the tile at pixel rows 128..256, columns 256..384
        direct = task.embed(read_hls(s2_chip, Window(256, 128, 128, 128))[None])[1][0]
    assert np.allclose(dense[:, 8:16, 16:24], direct.numpy(), atol=1e-5)
    # One tile over the whole chip differs (attention sees the whole chip), but it is
    # the same function of its input: the untiled run equals the backbone on the chip.
    whole = embed_dense(task.model, s2_chip, tmp_path / "whole.tif", HLS, crop=512)
    assert whole.tiles == 1
    with rasterio.open(tmp_path / "whole.tif") as dst, torch.no_grad():
        full = task.embed(read_hls(s2_chip)[None])[1][0]
        assert np.allclose(dst.read(), full.numpy(), atol=1e-5)


def test_overlapping_tiles_average_the_patches_they_share(prithvi, s2_chip, tmp_path) -> None:
    task = prithvi_task()
    embed_dense(task.model, s2_chip, tmp_path / "o.tif", HLS, crop=256, stride=128)
    with rasterio.open(tmp_path / "o.tif") as dst:
        dense = dst.read()
    with torch.no_grad():
        tiles = {(r, c): task.embed(read_hls(s2_chip, Window(c, r, 256, 256))[None])[1][0]
                 for r in (0, 128, 256) for c in (0, 128, 256)}
    # Patch rows/cols 8..15 lie in tiles starting at 0 and at 128 of each axis.
    shared = (tiles[0, 0][:, 8:16, 8:16] + tiles[0, 128][:, 8:16, 0:8]
              + tiles[128, 0][:, 0:8, 8:16] + tiles[128, 128][:, 0:8, 0:8]) / 4
    assert np.allclose(dense[:, 8:16, 8:16], shared.numpy(), atol=1e-5)
    assert np.allclose(dense[:, :8, :8], tiles[0, 0][:, :8, :8].numpy(), atol=1e-5)


def test_float16_halves_the_file_and_rounds_like_float16(prithvi, s2_chip, tmp_path) -> None:
    task = prithvi_task()
    embed_dense(task.model, s2_chip, tmp_path / "f32.tif", HLS, crop=256)
    embed_dense(task.model, s2_chip, tmp_path / "f16.tif", HLS, crop=256, dtype="float16")
    with rasterio.open(tmp_path / "f32.tif") as a, rasterio.open(tmp_path / "f16.tif") as b:
        full, half = a.read(), b.read()
        assert b.tags(1, ns="IMAGE_STRUCTURE").get("NBITS") == "16"
    assert np.array_equal(half, full.astype(np.float16).astype(np.float32))
    size = (tmp_path / "f16.tif").stat().st_size / (tmp_path / "f32.tif").stat().st_size
    assert size < 0.7


def _stacked(s2_chip: Path, path: Path, times: int) -> Path:
    """The chip stacked ``times`` times vertically: a taller real raster."""
    with rasterio.open(s2_chip) as src:
        data, profile = src.read(), src.profile
    profile.update(height=data.shape[1] * times, tiled=True, blockxsize=256, blockysize=256)
    with rasterio.open(path, "w", **profile) as dst:
        for i in range(times):
            dst.write(data, window=Window(0, i * data.shape[1], data.shape[2], data.shape[1]))
    return path


def _peak(task, source: Path, output: Path) -> tuple[int, int]:
    tracemalloc.start()
    try:
        result = embed_dense(task.model, source, output, HLS, crop=128, batch_size=4)
        return tracemalloc.get_traced_memory()[1], result.tiles
    finally:
        tracemalloc.stop()


def test_memory_stays_flat_as_the_raster_grows(prithvi, s2_chip, tmp_path) -> None:
    task = prithvi_task()
    small = _stacked(s2_chip, tmp_path / "x1.tif", 1)
    tall = _stacked(s2_chip, tmp_path / "x4.tif", 4)
    small_peak, small_tiles = _peak(task, small, tmp_path / "d1.tif")
    tall_peak, tall_tiles = _peak(task, tall, tmp_path / "d4.tif")
    assert tall_tiles == 4 * small_tiles == 64
    # four times the rows, the same strip: far less than four times the memory
    assert tall_peak < 1.5 * small_peak, (small_peak, tall_peak)
    with rasterio.open(tmp_path / "d1.tif") as a, rasterio.open(tmp_path / "d4.tif") as b:
        assert b.shape == (128, 32)
        assert np.array_equal(b.read(window=Window(0, 96, 32, 32)), a.read())


def test_failures_leave_nothing_and_name_the_fix(prithvi, s2_chip, tmp_path) -> None:
    task = prithvi_task()
    with pytest.raises(ConfigurationError, match=r"--crop 100 is not a positive multiple of "
                       r"the backbone's patch of 16 pixels.*use 96 or 112"):
        embed_dense(task.model, s2_chip, tmp_path / "a.tif", HLS, crop=100)
    with pytest.raises(ConfigurationError, match=r"should end in \.tif"):
        embed_dense(task.model, s2_chip, tmp_path / "a.png", HLS)
    with pytest.raises(ConfigurationError, match="band index 13 is out of range"):
        embed_dense(task.model, s2_chip, tmp_path / "a.tif", Preprocessing(bands=[13]))
    calls = []

    def failing(tiles: torch.Tensor):
        calls.append(len(tiles))
        if len(calls) > 2:
            raise RuntimeError("out of memory")
        return task.model(tiles)

    with pytest.raises(RuntimeError, match="out of memory"):
        embed_dense(failing, s2_chip, tmp_path / "a.tif", HLS, crop=128, batch_size=2)
    assert calls == [1, 2, 2] and list(tmp_path.iterdir()) == []
    (tmp_path / "a.tif").write_bytes(b"keep")
    with pytest.raises(OutputExistsError):
        embed_dense(task.model, s2_chip, tmp_path / "a.tif", HLS, crop=128)
    assert (tmp_path / "a.tif").read_bytes() == b"keep"
    with rasterio.open(s2_chip) as src:
        profile = src.profile
    big = tmp_path / "big.tif"  # a sparse 8192 x 4096 scene: no block is written
    profile.update(height=4096, width=8192, tiled=True, blockxsize=256, blockysize=256,
                   SPARSE_OK=True)
    with rasterio.open(big, "w", **profile):
        pass
    with pytest.raises(ConfigurationError, match="a scene rather than a chip; pass --tile"):
        embed_chips(task.model, [big], HLS)


def test_cnn_dense_of_landsat_marks_empty_patches_nodata(landsat, tmp_path) -> None:
    from geofm_core.tasks import EmbeddingTask

    torch.manual_seed(0)
    # the stride-8 level: timm builds the network only up to it
    task = EmbeddingTask(backbone="timm:test_resnet", backbone_kwargs={"out_indices": [2]})
    result = embed_dense(task.model, landsat, tmp_path / "l.tif", Preprocessing(), crop=256)
    stride = task.model.backbone.reductions[-1]
    with rasterio.open(landsat) as src, rasterio.open(tmp_path / "l.tif") as dst:
        assert result.patch == stride and dst.crs == src.crs
        assert dst.shape == (src.height // stride, src.width // stride)
        assert dst.count == task.model.backbone.out_channels[-1]
        values = dst.read()
        empty = ~src.read_masks(1).astype(bool)  # the black border of the rotated scene
    h, w = dst.shape
    blocks = empty[: h * stride, : w * stride].reshape(h, stride, w, stride).all(axis=(1, 3))
    assert blocks.any() and (~blocks).any()
    assert np.isnan(values[:, blocks]).all()
    assert np.isfinite(values[:, ~blocks]).all()
