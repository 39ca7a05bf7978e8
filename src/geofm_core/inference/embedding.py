"""Embeddings of rasters: pooled vectors per chip or tile, and dense per-patch GeoTIFFs.

:func:`embed_chips` gives one :class:`~geofm_core.io.geoparquet.EmbeddingRow` per chip
(or per ``tile`` x ``tile`` window of a larger raster), with its footprint.
:func:`embed_dense` streams one raster of any size in strips of tiles, as
:func:`~geofm_core.inference.raster.predict_raster` does, and writes one pixel per
patch and one band per channel: the output's transform is the input's scaled by the
patch size, so it lies on the raster. Tiles are placed on the patch grid; patches that
several tiles cover get the mean of their embeddings. The last partial patch of a row or
column (fewer than ``patch`` pixels) is not embedded. Memory holds one strip of
``crop`` rows of the raster and its patch rows, never the whole raster.
"""

from __future__ import annotations

import contextlib
import math
import sys
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import rasterio
import torch
from affine import Affine
from rasterio.windows import Window

from geofm_core.data.preprocessing import Preprocessing, nodata_mask
from geofm_core.errors import ConfigurationError, GeofmError, OutputWriteError
from geofm_core.inference.tiling import tile_starts
from geofm_core.io.atomic import atomic_output, verify_raster
from geofm_core.io.geoparquet import EmbeddingRow
from geofm_core.io.locations import input_location, unreadable_input
from geofm_core.models.embedder import Embeddings

__all__ = [
    "DENSE_DTYPES",
    "DenseEmbedding",
    "embed_chips",
    "embed_dense",
    "raster_files",
    "reproject_points",
    "window_corners",
]

#: What embeds a batch of preprocessed tiles (N, C, [T,] h, w).
EmbedFn = Callable[[torch.Tensor], Embeddings]
#: Output types of dense embeddings.
DENSE_DTYPES = ("float16", "float32")
#: Chips larger than this (pixels) are refused without ``tile``: they are scenes.
MAX_CHIP_PIXELS = 4096 * 4096
RASTER_SUFFIXES = (".tif", ".tiff")


@dataclass
class DenseEmbedding:
    """Where dense embeddings were written and their grid."""

    output: Path
    tiles: int
    shape: tuple[int, int]
    channels: int
    patch: int


def raster_files(path: str | Path) -> list[Path]:
    """``path`` itself, or the GeoTIFFs under the folder ``path`` (recursively, sorted).

    Raises:
        ConfigurationError: ``path`` does not exist, or a folder holds no GeoTIFF.
    """
    path = Path(path)
    if path.is_file():
        return [path]
    if not path.is_dir():
        raise ConfigurationError(
            f"input {path} does not exist; give a GeoTIFF or a folder of GeoTIFF chips"
        )
    files = sorted(p for p in path.rglob("*") if p.suffix.lower() in RASTER_SUFFIXES
                   and p.is_file() and not p.name.startswith("."))
    if not files:
        raise ConfigurationError(
            f"input folder {path} holds no GeoTIFF (*.tif, *.tiff); give a folder of chips"
        )
    return files


def _open(path: str | Path) -> Any:
    try:
        return rasterio.open(input_location(path))
    except rasterio.errors.RasterioIOError as exc:
        raise unreadable_input(path, exc) from exc


def window_corners(transform: Any, window: tuple[int, int, int, int]) -> list[tuple[float, float]]:
    """The window ``(row, col, height, width)``'s corners through ``transform``, closed."""
    row, col, height, width = window
    pixels = [(col, row), (col + width, row), (col + width, row + height),
              (col, row + height), (col, row)]
    return [tuple(map(float, transform @ p)) for p in pixels]  # type: ignore[misc]


def reproject_points(corners: list[tuple[float, float]], src_crs: Any, dst_crs: Any
               ) -> list[tuple[float, float]]:
    """``corners`` (x, y) in ``src_crs`` transformed to ``dst_crs``."""
    from rasterio.warp import transform

    xs, ys = transform(src_crs, dst_crs, [c[0] for c in corners], [c[1] for c in corners])
    return list(zip(map(float, xs), map(float, ys), strict=True))


def _windows(height: int, width: int, tile: int | None) -> list[tuple[int, int, int, int]]:
    if tile is None:
        return [(0, 0, height, width)]
    return [(r, c, min(tile, height), min(tile, width))
            for r in tile_starts(height, tile, tile) for c in tile_starts(width, tile, tile)]


def embed_chips(
    embed: EmbedFn, files: Sequence[str | Path], prep: Preprocessing, *,
    tile: int | None = None, batch_size: int = 8, crs: Any = None, progress: bool = False,
) -> tuple[list[EmbeddingRow], Any]:
    """Pooled embeddings of each chip in ``files``, or of each ``tile`` window of them.

    Args:
        embed: Embeds a batch of preprocessed tiles.
        files: GeoTIFF chips (or scenes, with ``tile``).
        prep: Band selection and normalisation, as the model was trained with.
        tile: Embed windows of ``tile`` x ``tile`` pixels (the last ones in a row or
            column are moved back to end at the raster's edge) instead of whole files.
        batch_size: Chips or tiles per forward call (chips of one size share a batch).
        crs: The CRS of the footprints; default the rasters' own (they must share one).
        progress: Show a progress bar over files.

    Returns:
        The rows, in file then window order, and the CRS of their footprints.

    Raises:
        ConfigurationError: A file that cannot be read, has the wrong bands, is a whole
            scene without ``tile``, or files in different CRSs without ``crs``.
    """
    if tile is not None and tile <= 0:
        raise ConfigurationError(f"--tile must be a positive number of pixels, got {tile}")
    rows: list[EmbeddingRow] = []
    pending: list[tuple[torch.Tensor, EmbeddingRow]] = []
    out_crs, first = (rasterio.crs.CRS.from_user_input(crs) if crs is not None else None), None

    def flush() -> None:
        if not pending:
            return
        with torch.inference_mode():
            pooled = embed(torch.stack([t for t, _ in pending])).pooled
        for (_, row), vector in zip(pending, pooled.detach().float().cpu().numpy(),
                                    strict=True):
            row.vector = vector
            rows.append(row)
        pending.clear()

    with _progress(len(files), progress, "embedding", "file") as bar:
        for path in files:
            with _open(path) as src:
                if crs is None:
                    if first is None:
                        first, out_crs = path, src.crs
                    elif src.crs != out_crs:
                        raise ConfigurationError(
                            f"{path} is in {src.crs} but {first} in {out_crs}; one GeoParquet "
                            "file has one CRS: pass --crs (e.g. EPSG:4326) to write every "
                            "footprint in it, or embed each CRS separately"
                        )
                if tile is None and src.height * src.width > MAX_CHIP_PIXELS:
                    raise ConfigurationError(
                        f"{path} is {src.width} x {src.height} pixels, a scene rather than a "
                        "chip; pass --tile N to embed it in N x N windows (one row each)"
                    )
                plan = prep.plan(path, src.count, src.dtypes)
                for window in _windows(src.height, src.width, tile):
                    r, c, h, w = window
                    raw = src.read(plan.indexes, window=Window(c, r, w, h))
                    tensor = prep(raw, src.nodata)
                    corners = window_corners(src.transform, window)
                    if out_crs is not None and src.crs is not None and src.crs != out_crs:
                        corners = reproject_points(corners, src.crs, out_crs)
                    name = Path(path).stem if tile is None else f"{Path(path).stem}_r{r}_c{c}"
                    if pending and (pending[0][0].shape != tensor.shape
                                    or len(pending) >= batch_size):
                        flush()
                    pending.append((tensor, EmbeddingRow(name, str(path), window, corners,
                                                         np.zeros(0, np.float32))))
            if bar is not None:
                bar.update(1)
        flush()
    return rows, out_crs


def _progress(total: int, enabled: bool, label: str, unit: str) -> Any:
    if not enabled:
        return contextlib.nullcontext(None)
    from tqdm.auto import tqdm

    return tqdm(total=total, desc=label, unit=unit, file=sys.stderr, leave=False)


def embed_dense(
    embed: EmbedFn, input_path: str | Path, output_path: str | Path, prep: Preprocessing, *,
    crop: int | None = None, stride: int | None = None, batch_size: int = 8,
    dtype: str = "float32", overwrite: bool = False, progress: bool = False,
    gdal_cache_mb: int = 64, tags: dict[str, str] | None = None,
) -> DenseEmbedding:
    """Write the per-patch embeddings of a whole raster as a multi-band GeoTIFF, streamed.

    Args:
        embed: Embeds a batch of preprocessed tiles.
        input_path: The raster (any size): a path or a URL GDAL reads.
        output_path: The GeoTIFF: one band per channel, one pixel per patch, nodata NaN
            (patches whose pixels are all nodata).
        prep: Band selection and normalisation.
        crop: Tile size in pixels, a multiple of the patch size (default: 224 rounded
            down to one).
        stride: Step between tiles, a multiple of the patch size (default ``crop``: no
            overlap; a smaller one averages the patches tiles share).
        batch_size: Tiles per forward call.
        dtype: ``float32`` or ``float16``.
        overwrite: Replace an existing output instead of refusing.
        progress: Show a progress bar over tiles.
        gdal_cache_mb: GDAL's block cache (kept small so memory stays flat).
        tags: Extra GeoTIFF tags (backbone, layer...).

    Raises:
        ConfigurationError: Bad tiling or dtype, a raster smaller than one patch, wrong
            bands, an unreadable input.
        OutputExistsError: The output exists and ``overwrite`` is False.
    """
    if dtype not in DENSE_DTYPES:
        raise ConfigurationError(f"--dtype must be one of {', '.join(DENSE_DTYPES)}, got {dtype!r}")
    if batch_size <= 0:
        raise ConfigurationError(f"--batch-size must be positive, got {batch_size}")
    output_path = Path(output_path)
    if output_path.suffix.lower() not in RASTER_SUFFIXES:
        raise ConfigurationError(
            f"dense embeddings are written as a GeoTIFF: {output_path} should end in .tif"
        )
    with rasterio.Env(GDAL_CACHEMAX=gdal_cache_mb), _open(input_path) as src:
        plan = prep.plan(input_path, src.count, src.dtypes)
        # The first tile tells the patch size and the channels before the output opens.
        side = crop or 224
        first = src.read(plan.indexes, window=Window(0, 0, min(side, src.width),
                                                     min(side, src.height)))
        with torch.inference_mode():
            probed = embed(prep(first, src.nodata)[None])
        patch, channels = probed.patch, int(probed.dense.shape[1])
        crop_px, stride_px = _grid_tiling(crop, stride, patch)
        grid = (src.height // patch, src.width // patch)
        if 0 in grid:
            raise ConfigurationError(
                f"{input_path} is {src.width} x {src.height} pixels, smaller than one patch "
                f"of {patch} pixels; embed a larger raster"
            )
        with atomic_output(output_path, overwrite=overwrite, verify=verify_raster,
                           inputs=[input_path]) as partial:
            try:
                tiles = _stream(embed, src, plan.indexes, prep, partial, grid, patch,
                                channels, crop_px // patch, stride_px // patch, batch_size,
                                dtype, progress, tags or {})
            except (rasterio.errors.RasterioIOError, OSError) as exc:
                if isinstance(exc, GeofmError):
                    raise
                raise OutputWriteError(
                    f"writing {output_path} failed ({exc}); the disk may be full. Nothing "
                    "was written at the output path: free space or choose another folder"
                ) from exc
    return DenseEmbedding(output_path, tiles, grid, channels, patch)


def _grid_tiling(crop: int | None, stride: int | None, patch: int) -> tuple[int, int]:
    """Crop and stride in pixels, both multiples of ``patch``."""
    if crop is None:
        crop = max(patch, 224 // patch * patch)
    stride = crop if stride is None else stride
    for name, value in (("--crop", crop), ("--stride", stride)):
        if value <= 0 or value % patch:
            lower = max(patch, value // patch * patch)
            raise ConfigurationError(
                f"{name} {value} is not a positive multiple of the backbone's patch of "
                f"{patch} pixels: tiles must lie on the patch grid; use {lower} or "
                f"{lower + patch}"
            )
    if stride > crop:
        raise ConfigurationError(
            f"--stride {stride} is larger than --crop {crop}: patches between tiles would "
            "never be embedded; use stride <= crop"
        )
    return crop, stride


def _profile(src: Any, grid: tuple[int, int], channels: int, patch: int, dtype: str
             ) -> dict[str, Any]:
    height, width = grid
    profile: dict[str, Any] = {
        "driver": "GTiff", "width": width, "height": height, "count": channels,
        # GeoTIFF's half floats: a Float32 band stored in 16 bits (rasterio has no float16)
        "dtype": "float32", **({"NBITS": 16} if dtype == "float16" else {}), "crs": src.crs,
        "transform": src.transform @ Affine.scale(patch), "nodata": math.nan,
        "compress": "deflate", "BIGTIFF": "IF_SAFER", "interleave": "pixel",
    }
    if height >= 256 and width >= 256:
        profile.update(tiled=True, blockxsize=256, blockysize=256)
    return profile


def _tile_rows(rows: list[int]) -> Iterator[tuple[int, int]]:
    """Each tile row's top and the patch row up to which output is final after it."""
    for i, row in enumerate(rows):
        yield row, rows[i + 1] if i + 1 < len(rows) else -1


def _stream(
    embed: EmbedFn, src: Any, indexes: list[int], prep: Preprocessing, temp: Path,
    grid: tuple[int, int], patch: int, channels: int, crop: int, stride: int,
    batch_size: int, dtype: str, progress: bool, tags: dict[str, str],
) -> int:
    """Embed ``src`` strip by strip (all sizes in patches) into ``temp``; the tile count."""
    height, width = grid
    tile_h, tile_w = min(crop, height), min(crop, width)
    rows = tile_starts(height, tile_h, min(stride, tile_h))
    cols = tile_starts(width, tile_w, min(stride, tile_w))
    total = np.zeros((channels, tile_h, width), np.float32)
    count = np.zeros((tile_h, width), np.float32)
    top = 0  # patch row of total[:, 0]
    with rasterio.open(temp, "w", **_profile(src, grid, channels, patch, dtype)) as dst, \
            _progress(len(rows) * len(cols), progress, Path(src.name).name, "tile") as bar:
        for row, done_to in _tile_rows(rows):
            shift = row - top
            if shift:  # the rows above this tile row were written: move the rest up
                total[:, : tile_h - shift] = total[:, shift:].copy()
                total[:, tile_h - shift :] = 0
                count[: tile_h - shift] = count[shift:].copy()
                count[tile_h - shift :] = 0
                top = row
            window = Window(0, row * patch, width * patch, tile_h * patch)
            raw = src.read(indexes, window=window)
            for start in range(0, len(cols), batch_size):
                chunk = cols[start : start + batch_size]
                tiles = torch.stack([prep(raw[:, :, c * patch : (c + tile_w) * patch],
                                          src.nodata) for c in chunk])
                with torch.inference_mode():
                    dense = embed(tiles).dense.detach().float().cpu().numpy()
                if dense.shape[1:] != (channels, tile_h, tile_w):
                    raise ConfigurationError(
                        f"the backbone gave embeddings of shape {dense.shape[1:]} for a tile, "
                        f"expected {(channels, tile_h, tile_w)}; it does not keep one "
                        "feature per patch"
                    )
                for c, values in zip(chunk, dense, strict=True):
                    total[:, :, c : c + tile_w] += values
                    count[:, c : c + tile_w] += 1
                if bar is not None:
                    bar.update(len(chunk))
            end = height if done_to < 0 else done_to
            n = end - row
            out = total[:, :n] / np.maximum(count[:n], 1)
            out[:, _empty_patches(raw[:, : n * patch], src.nodata, patch)] = np.nan
            if dtype == "float16":  # rounded as stored, so the file holds these values
                out = out.astype(np.float16).astype(np.float32)
            dst.write(out, window=Window(0, row, width, n))
        dst.update_tags(patch_size=str(patch), **tags)
        dst.descriptions = tuple(f"emb_{i}" for i in range(channels))
    return len(rows) * len(cols)


def _empty_patches(raw: np.ndarray[Any, Any], nodata: float | None, patch: int) -> Any:
    """(h, w) patches whose pixels hold no data in any band (nodata, NaN or inf)."""
    bad = nodata_mask(raw, nodata)
    h, w = raw.shape[-2] // patch, raw.shape[-1] // patch
    if bad is None:
        return np.zeros((h, w), bool)
    missing = bad.reshape(-1, *raw.shape[-2:]).all(axis=0)
    return missing.reshape(h, patch, w, patch).all(axis=(1, 3))
