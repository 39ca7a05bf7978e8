"""Streaming tiled inference over a GeoTIFF of any size, written window by window.

The raster is read once, in row strips as tall as one tile; finished output rows are
written as soon as no later tile touches them. Peak memory is bounded by one strip
(``crop`` rows of the raster's width) and never by the raster's height. The output
goes to a temporary file in the output folder and is renamed when complete, so an
interrupted run never leaves a file at the final path.
"""

from __future__ import annotations

import contextlib
import functools
import math
import os
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
import rasterio
import torch
from rasterio.windows import Window

from geofm_core.data.preprocessing import Preprocessing, nodata_mask
from geofm_core.errors import ConfigurationError, GeofmError, OutputExistsError, OutputWriteError
from geofm_core.inference.tiling import Blend, blend_weights, check_tiling, tile_starts
from geofm_core.io.atomic import atomic_outputs, temporary_path, verify_raster
from geofm_core.io.gis import OutputLabels, qgis_style
from geofm_core.io.locations import input_location, is_remote, unreadable_input

__all__ = [
    "OutputExistsError",
    "OutputWriteError",
    "Preprocessing",
    "RasterPrediction",
    "predict_raster",
]

Forward = Callable[[torch.Tensor], torch.Tensor]
Kind = Literal["segmentation", "regression"]
CLASS_NODATA = {np.dtype("uint8"): 255, np.dtype("uint16"): 65535}


@dataclass
class RasterPrediction:
    """Where a prediction was written and how it went."""

    output: Path
    probabilities: Path | None
    tiles: int
    shape: tuple[int, int]
    extra: dict[str, Any] = field(default_factory=dict)


def _output_dtype(kind: Kind, num_classes: int) -> np.dtype[Any]:
    if kind == "regression":
        return np.dtype("float32")
    return np.dtype("uint8") if num_classes < 255 else np.dtype("uint16")


def _progress(total: int, enabled: bool, label: str) -> Any:
    if not enabled:
        return contextlib.nullcontext(None)
    from tqdm.auto import tqdm

    return tqdm(total=total, desc=label, unit="tile", file=sys.stderr, leave=False)


def _to_cog(temp: Path, final: Path) -> None:
    """Rewrite the finished temporary ``temp`` of ``final`` as a Cloud-Optimized GeoTIFF."""
    from rasterio.shutil import copy as rio_copy

    cog = temporary_path(final, "cog")
    try:
        rio_copy(temp, cog, driver="COG", compress="DEFLATE", BIGTIFF="IF_SAFER")
        os.replace(cog, temp)
    finally:
        cog.unlink(missing_ok=True)


def predict_raster(
    forward: Forward,
    input_path: str | Path,
    output_path: str | Path,
    *,
    kind: Kind = "segmentation",
    num_classes: int | None = None,
    preprocessing: Preprocessing | None = None,
    crop: int = 224,
    stride: int = 192,
    batch_size: int = 8,
    blend: Blend = "ramp",
    probabilities: bool = False,
    cog: bool = False,
    overwrite: bool = False,
    progress: bool = True,
    allow_missing_crs: bool = False,
    gdal_cache_mb: int = 64,
    labels: OutputLabels | None = None,
    after_path: str | Path | None = None,
) -> RasterPrediction:
    """Predict a whole raster tile by tile and write a georeferenced GeoTIFF.

    Args:
        forward: Maps a batch of tiles (N, C, crop, crop) (or (N, C, T, crop, crop)) to
            class scores (N, K, crop, crop) or regression values (N, crop, crop).
            Called under ``torch.inference_mode``.
        input_path: The input GeoTIFF (any size, integer or float bands): a local path,
            or a URL GDAL reads (``https://``, ``s3://``, ``gs://``, ``/vsicurl/...``; see
            :mod:`geofm_core.io.locations`).
        output_path: The output GeoTIFF: a class map in the smallest fitting unsigned
            type (nodata 255 or 65535) or float32 values (nodata NaN). Pixels whose bands
            are all nodata, or any NaN / inf, are nodata there (and in the probabilities);
            they are filled before the model, so valid neighbours keep finite predictions.
        kind: ``"segmentation"`` or ``"regression"``.
        num_classes: Number of classes (segmentation).
        preprocessing: Band selection, scaling and normalisation (see :class:`Preprocessing`).
        crop: Tile size in pixels.
        stride: Step between tiles; overlaps are blended.
        batch_size: Tiles per forward call.
        blend: ``"ramp"`` or ``"average"`` weighting of overlaps.
        probabilities: Also write per-class probabilities (float32, one band per class)
            next to the output, as ``<name>_probabilities.tif``.
        cog: Write Cloud-Optimized GeoTIFFs.
        overwrite: Replace existing outputs instead of refusing.
        progress: Show a progress bar over tiles on stderr.
        allow_missing_crs: Accept an input without a CRS (the output has none either).
        gdal_cache_mb: GDAL's block cache during the run. GDAL keeps blocks it has read
            up to its cache size (5% of RAM by default), which would make memory grow
            with the raster although every block is read once.
        labels: Class names (a class map gets a colour table and class-name tags, and
            a QGIS style ``<name>.qml`` is written beside it; probability bands are named
            by class) or a regression band's description and units
            (:class:`~geofm_core.io.gis.OutputLabels`). Without it a class map still gets
            the colour table, classes named by their index, and no style file.
        after_path: Change detection: the raster of the second date, co-registered with
            ``input_path`` (the first date; same CRS, transform and size, else an error
            naming both). Both are tiled with the same windows and ``forward`` gets
            (N, 2, C, crop, crop) tiles; a pixel is nodata when it is in either date.

    Returns:
        A :class:`RasterPrediction` naming the written files.
    """
    check_tiling(crop, stride, batch_size)
    if kind == "segmentation" and not num_classes:
        raise ConfigurationError("segmentation inference needs num_classes")
    prep = preprocessing or Preprocessing()
    input_path, output_path = input_location(input_path), Path(output_path)
    inputs: list[str | Path] = [input_path]
    if after_path is not None:
        inputs.append(input_location(after_path))
    for path in inputs:
        if isinstance(path, Path) and not path.is_file():
            raise ConfigurationError(f"input raster {path} does not exist")
    finals = [output_path]
    if probabilities and kind == "segmentation":
        finals.append(output_path.with_name(f"{output_path.stem}_probabilities.tif"))
    # The QGIS style is a file of its own: written only when names are asked for.
    style = labels is not None and kind == "segmentation"
    if labels is None:
        labels = OutputLabels.for_classes(None, num_classes or 0)
    elif kind == "segmentation":
        labels = OutputLabels.for_classes(labels.class_names, num_classes or 0)
    with rasterio.Env(GDAL_CACHEMAX=gdal_cache_mb):
        return _predict_open(forward, inputs, finals, kind, num_classes, prep, crop,
                             stride, batch_size, blend, cog, overwrite, progress,
                             allow_missing_crs, labels, style)


def _verify_outputs(temp: Path, final: Path) -> None:
    if final.suffix.lower() in (".tif", ".tiff"):
        verify_raster(temp, final)


def _predict_open(
    forward: Forward, inputs: list[str | Path], finals: list[Path], kind: Kind,
    num_classes: int | None, prep: Preprocessing, crop: int, stride: int, batch_size: int,
    blend: Blend, cog: bool, overwrite: bool, progress: bool, allow_missing_crs: bool,
    labels: OutputLabels, style: bool,
) -> RasterPrediction:
    rasters = len(finals)
    if style:  # QGIS loads <name>.qml as the layer's style
        finals = [*finals, finals[0].with_suffix(".qml")]
    input_path = inputs[0]
    src: Any
    if len(inputs) > 1:
        from geofm_core.inference.pair import RasterPair

        src = RasterPair(inputs[0], inputs[1])
    else:
        try:
            src = rasterio.open(input_path)
        except rasterio.errors.RasterioIOError as exc:
            raise unreadable_input(input_path, exc) from exc
    outputs = atomic_outputs(finals, overwrite=overwrite, hint="overwrite=True (--overwrite)",
                             verify=_verify_outputs, inputs=inputs)
    with src, outputs as temps:
        if src.crs is None and not allow_missing_crs:
            raise ConfigurationError(
                f"{input_path} has no CRS, so the prediction could not be georeferenced; "
                "assign one (e.g. gdal_edit.py -a_srs EPSG:XXXX) or pass allow_missing_crs"
            )
        try:
            result = _stream(forward, src, temps[:rasters], finals[:rasters], kind,
                             num_classes or 1, prep, crop, stride, batch_size, blend, cog,
                             progress, labels)
            if len(finals) > rasters:
                nodata = CLASS_NODATA[_output_dtype(kind, num_classes or 1)]
                temps[rasters].write_text(qgis_style(labels.class_names, nodata))
                result.extra["style"] = finals[rasters]
        except (rasterio.errors.RasterioIOError, OSError) as exc:
            if isinstance(exc, GeofmError):
                raise
            raise OutputWriteError(
                f"writing {finals[0]} failed ({exc}); the disk may be full. Nothing was "
                "written at the output path: free space or choose another output folder"
            ) from exc
        return result


def _stream(
    forward: Forward, src: Any, temps: list[Path], finals: list[Path], kind: Kind,
    num_classes: int, prep: Preprocessing, crop: int, stride: int, batch_size: int,
    blend: Blend, cog: bool, progress: bool, labels: OutputLabels,
) -> RasterPrediction:
    height, width = src.height, src.width
    indexes = prep.plan(src.name, src.count, src.dtypes).indexes
    # A RasterPair reads both dates' bands per window (change detection).
    nodatas: tuple[float | None, ...] = getattr(src, "nodatas", (src.nodata,))
    rows, cols = tile_starts(height, crop, stride), tile_starts(width, crop, stride)
    weights = blend_weights(crop, stride, blend)
    channels = num_classes if kind == "segmentation" else 1
    dtype = _output_dtype(kind, num_classes)
    out_nodata: float = CLASS_NODATA.get(dtype, math.nan)
    profile = {
        "driver": "GTiff", "width": width, "height": height, "count": 1, "dtype": dtype.name,
        "crs": src.crs, "transform": src.transform, "nodata": out_nodata, "tiled": True,
        "blockxsize": 256, "blockysize": 256, "compress": "deflate", "BIGTIFF": "IF_SAFER",
    }
    strip_h, strip_w = max(crop, 1), max(width, crop)
    # Rolling input strip (raw values) and accumulators for the rows of one tile row.
    raw = np.zeros((len(nodatas) * len(indexes), strip_h, strip_w),
                   dtype=src.dtypes[indexes[0] - 1])
    invalid = np.ones((strip_h, strip_w), dtype=bool)
    total = torch.zeros(channels, strip_h, strip_w)
    weight_sum = torch.zeros(strip_h, strip_w)
    loaded_until = 0  # raster rows [0, loaded_until) have been read
    strip_top = 0
    n_tiles = len(rows) * len(cols)

    dst_probs = None
    with contextlib.ExitStack() as stack:
        dst = stack.enter_context(rasterio.open(temps[0], "w", **profile))
        if len(temps) > 1:
            dst_probs = stack.enter_context(rasterio.open(
                temps[1], "w", **{**profile, "count": num_classes, "dtype": "float32",
                                  "nodata": math.nan}))
        bar = stack.enter_context(_progress(n_tiles, progress, Path(src.name).name))
        for i, row in enumerate(rows):
            # Shift the strip so it starts at this tile row, then read only new rows.
            shift = row - strip_top
            if shift:
                _shift_up(raw, shift, 0)
                _shift_up(invalid, shift, True)
                _shift_up(total, shift, 0.0)
                _shift_up(weight_sum, shift, 0.0)
                strip_top = row
            read_to = min(row + crop, height)
            if read_to > loaded_until:
                block = read_rows(src, indexes, loaded_until, read_to)
                r0 = loaded_until - strip_top
                raw[:, r0 : r0 + block.shape[1], :width] = block
                invalid[r0 : r0 + block.shape[1], :width] = functools.reduce(
                    np.logical_or, [_missing(date, nd) for date, nd in
                                    zip(np.split(block, len(nodatas)), nodatas, strict=True)])
                loaded_until = read_to
            _run_tile_row(forward, raw, nodatas, prep, total, weight_sum, weights, cols, crop,
                          batch_size, kind, bar)
            done_to = rows[i + 1] if i + 1 < len(rows) else height
            n = done_to - strip_top
            _write_rows(dst, dst_probs, total[:, :n, :width], weight_sum[:n, :width],
                        invalid[:n, :width], strip_top, kind, dtype, out_nodata)
    # Colours and names before the COG copy, which carries them over.
    if kind == "segmentation":
        labels.describe_class_map(temps[0])
        if len(temps) > 1:
            labels.describe_probabilities(temps[1])
    else:
        labels.describe_values(temps[0])
    if cog:
        for temp, final in zip(temps, finals, strict=True):
            _to_cog(temp, final)
    return RasterPrediction(finals[0], finals[1] if len(finals) > 1 else None, n_tiles,
                            (height, width))


def read_rows(src: Any, indexes: list[int], top: int, bottom: int) -> np.ndarray[Any, Any]:
    """Bands ``indexes`` of raster rows ``[top, bottom)`` (full width) of the open ``src``.

    Raises:
        ConfigurationError: The read failed (a truncated file, a dropped connection).
    """
    try:
        block: np.ndarray[Any, Any] = src.read(indexes,
                                               window=Window(0, top, src.width, bottom - top))
        return block
    except rasterio.errors.RasterioIOError as exc:
        cause = ("the connection failed or the file is truncated: run again or copy it "
                 "here" if is_remote(src.name) else
                 "the file is truncated or corrupted: replace it")
        raise ConfigurationError(
            f"{src.name}: reading rows {top}-{bottom} failed ({exc}); {cause}"
        ) from exc


def _missing(block: np.ndarray[Any, Any], nodata: float | None) -> Any:
    """Pixels written as nodata: no band holds data, or a band holds NaN / inf.

    The nodata value must fill every band (as the scene data module ignores it): a 0 in
    one band may be a real measurement. A NaN or inf is never one; the model saw such
    pixels filled (:class:`Preprocessing`), so their prediction means nothing.
    """
    bad = nodata_mask(block, nodata)
    if bad is None:
        return False
    missing = bad.all(axis=0)
    if block.dtype.kind == "f":
        missing |= ~np.isfinite(block).all(axis=0)
    return missing


def _shift_up(buf: Any, shift: int, fill: float) -> None:
    """Move the rows (second to last axis) of ``buf`` up by ``shift`` and fill the gap."""
    kept = buf[..., shift:, :]
    buf[..., : buf.shape[-2] - shift, :] = kept.clone() if torch.is_tensor(kept) else kept.copy()
    buf[..., buf.shape[-2] - shift :, :] = fill


def _prepare(prep: Preprocessing, raw: np.ndarray[Any, Any],
             nodatas: tuple[float | None, ...]) -> torch.Tensor:
    """One tile as the model's input: (C, h, w), or (dates, C, h, w) for several dates."""
    if len(nodatas) == 1:
        return prep(raw, nodatas[0])
    return torch.stack([prep(date, nd) for date, nd in
                        zip(np.split(raw, len(nodatas)), nodatas, strict=True)])


def _run_tile_row(
    forward: Forward, raw: np.ndarray[Any, Any], nodatas: tuple[float | None, ...],
    prep: Preprocessing,
    total: torch.Tensor, weight_sum: torch.Tensor, weights: torch.Tensor, cols: list[int],
    crop: int, batch_size: int, kind: Kind, bar: Any,
) -> None:
    for start in range(0, len(cols), batch_size):
        chunk = cols[start : start + batch_size]
        tiles = torch.stack([
            _prepare(prep, raw[:, :crop, c : c + crop], nodatas) for c in chunk
        ])
        with torch.inference_mode():
            scores = forward(tiles)
        scores = scores.detach().float().cpu()
        if kind == "segmentation":
            scores = torch.softmax(scores, dim=1)
        elif scores.ndim == 3:
            scores = scores.unsqueeze(1)
        for c, score in zip(chunk, scores, strict=True):
            total[:, :crop, c : c + crop] += score * weights
            weight_sum[:crop, c : c + crop] += weights
        if bar is not None:
            bar.update(len(chunk))


def _write_rows(
    dst: Any, dst_probs: Any, total: torch.Tensor, weight_sum: torch.Tensor,
    invalid: np.ndarray[Any, Any], top: int, kind: Kind, dtype: np.dtype[Any],
    out_nodata: float,
) -> None:
    height, width = weight_sum.shape
    if height <= 0:
        return
    window = Window(0, top, width, height)
    mean = total / weight_sum.clamp_min(1e-12)
    if kind == "segmentation":
        classes = mean.argmax(dim=0).numpy().astype(dtype)
        classes[invalid] = out_nodata
        dst.write(classes, 1, window=window)
        if dst_probs is not None:
            probs = mean.numpy().astype(np.float32)
            probs[:, invalid] = np.nan
            dst_probs.write(probs, window=window)
    else:
        values = mean[0].numpy().astype(np.float32)
        values[invalid] = np.nan
        dst.write(values, 1, window=window)
