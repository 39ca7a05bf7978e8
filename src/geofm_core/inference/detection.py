"""Streaming tiled object detection over a GeoTIFF of any size, written as a vector file.

The raster is read once, in row strips one tile tall (as
:func:`~geofm_core.inference.raster.predict_raster` reads it), so memory is bounded by
one strip and never by the raster's height. Each tile's detections are moved to the
raster's pixel grid (the tile's offset) and merged across tile overlaps by class-wise
non-maximum suppression; a detection is written as soon as nothing a later tile row
finds can suppress it or be suppressed by it, so the detections held are those of
about one tile row.

Why NMS runs on the raster's pixel grid and not on map boxes: the map is an affine
image of that grid, and an affine map multiplies every area by the same factor, so
the IoU of two boxes is the IoU of their map polygons, exactly, for any transform
(rotated and sheared ones included), whereas axis-aligned boxes around rotated map
polygons would overstate overlaps. Geometries are the four corners of each box moved
to the map with the raster's transform (the tile's window transform composed with its
offset), or for instance masks the polygons of the mask (probability > 0.5) traced in
the tile's window transform.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import rasterio
import torch

from geofm_core.data.preprocessing import Preprocessing
from geofm_core.errors import ConfigurationError, GeofmError, OutputWriteError
from geofm_core.inference.raster import _missing, _prepare, _progress, _shift_up, read_rows
from geofm_core.inference.tiling import check_tiling, tile_starts
from geofm_core.io.atomic import atomic_output
from geofm_core.io.locations import input_location, unreadable_input
from geofm_core.io.vectors import VectorWriter, check_vector_crs, vector_format, verify_vector

__all__ = [
    "DetectionForward",
    "DetectionMerger",
    "DetectionPrediction",
    "Detections",
    "box_polygons",
    "class_name_of",
    "predict_detections",
    "tile_detections",
]

#: A box closer than this (pixels) to an edge of its tile touches it.
EDGE_MARGIN = 1.0
#: A box touching a tile edge is dropped when a box of its class not touching one covers
#: more than this fraction of its area: it is the cut-off part of an object the
#: neighbouring tile saw whole.
EDGE_COVER = 0.5

#: Maps tiles (N, C, crop, crop) to N dicts with ``boxes`` (M, 4) xyxy tile pixels,
#: ``labels`` (M,) in 1..K, ``scores`` (M,) and optionally ``masks`` (M, 1, crop, crop).
DetectionForward = Callable[[torch.Tensor], Sequence[Mapping[str, torch.Tensor]]]


@dataclass
class DetectionPrediction:
    """Where the detections were written and how the run went.

    Attributes:
        output: The vector file.
        detections: Features written (after NMS).
        tiles: Tiles of the raster.
        skipped_tiles: Tiles left out because every pixel was nodata.
        shape: (height, width) of the raster.
        extra: Further counts (``empty_masks``: mask detections without any pixel
            above the mask threshold, dropped).
    """

    output: Path
    detections: int
    tiles: int
    skipped_tiles: int
    shape: tuple[int, int]
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass
class Detections:
    """Detections on a raster's pixel grid.

    Attributes:
        boxes: (N, 4) float64 x_min, y_min, x_max, y_max in the raster's pixels.
        scores: (N,) float32.
        labels: (N,) int64 classes 1..K.
        geometries: Mask (multi)polygons in map coordinates, one per detection, or None
            for box detections (their polygons are made from ``boxes`` when written).
        edge: (N,) bool: the box touches an edge of its tile inside the raster (the
            object may go on in the neighbouring tile); None means none does.
    """

    boxes: torch.Tensor
    scores: torch.Tensor
    labels: torch.Tensor
    geometries: list[Any] | None = None
    edge: torch.Tensor | None = None

    def __post_init__(self) -> None:
        if self.edge is None:
            self.edge = torch.zeros(len(self.scores), dtype=torch.bool)

    @classmethod
    def empty(cls, masks: bool = False) -> Detections:
        """No detections."""
        return cls(torch.zeros(0, 4, dtype=torch.float64), torch.zeros(0),
                   torch.zeros(0, dtype=torch.int64), [] if masks else None)

    def __len__(self) -> int:
        return int(self.scores.shape[0])

    def select(self, index: torch.Tensor) -> Detections:
        """The detections at the integer positions ``index``, in that order."""
        geoms = None if self.geometries is None else [self.geometries[i] for i in
                                                      index.tolist()]
        assert self.edge is not None
        return Detections(self.boxes[index], self.scores[index], self.labels[index], geoms,
                          self.edge[index])

    @staticmethod
    def cat(parts: Sequence[Detections]) -> Detections:
        """All of ``parts`` in one (box and mask detections are not mixed)."""
        masks = any(p.geometries is not None for p in parts)
        parts = [p for p in parts if len(p)] or [Detections.empty(masks)]
        geoms = None
        if masks:
            geoms = [g for p in parts for g in (p.geometries or [])]
        return Detections(torch.cat([p.boxes for p in parts]),
                          torch.cat([p.scores for p in parts]),
                          torch.cat([p.labels for p in parts]), geoms,
                          torch.cat([p.edge for p in parts if p.edge is not None]))


def _valid_counts(valid: np.ndarray[Any, Any], bounds: np.ndarray[Any, Any]) -> Any:
    """Valid pixels inside each integer box ``bounds`` (N, 4), by a summed-area table."""
    table = np.zeros((valid.shape[0] + 1, valid.shape[1] + 1), dtype=np.int64)
    table[1:, 1:] = valid.cumsum(0).cumsum(1)
    x0, y0, x1, y1 = bounds.T
    return table[y1, x1] - table[y0, x1] - table[y1, x0] + table[y0, x0]


def tile_detections(
    output: Mapping[str, torch.Tensor], *, row: int, col: int, height: int, width: int,
    transform: Any, invalid: np.ndarray[Any, Any] | None = None,
    score_threshold: float = 0.5, mask_threshold: float = 0.5,
    counts: dict[str, int] | None = None, tile_size: tuple[int, int] | None = None,
) -> Detections:
    """One tile's (or chip's) model output on the raster's pixel grid.

    Scores below ``score_threshold`` are dropped; boxes are clipped to the raster
    (tiles at an edge are padded past it) and dropped when nothing is left, or when
    every pixel under the box is nodata (``invalid``). Masks become (multi)polygons of
    the pixels above ``mask_threshold`` inside the raster and not nodata.

    Args:
        output: The model's eval output for the tile (``boxes``, ``labels``, ``scores``,
            optional ``masks`` (M, 1, h, w) or (M, h, w)).
        row: Row offset of the tile in the raster.
        col: Column offset of the tile in the raster.
        height: Raster height (pixels).
        width: Raster width (pixels).
        transform: The raster's affine transform (for mask polygons).
        invalid: (h, w) nodata mask of the tile's pixels, or None.
        score_threshold: Lowest score kept.
        mask_threshold: Mask probability above which a pixel belongs to the object.
        counts: Increments ``empty_masks`` for masks with no pixel left (dropped).
        tile_size: (h, w) of the tile, to mark boxes touching its edges inside the
            raster (:attr:`Detections.edge`); None marks none.
    """
    for key in ("boxes", "labels", "scores"):
        if key not in output:
            raise ConfigurationError(
                f"the detection model returned a dict without {key!r} (keys "
                f"{sorted(output)}); detection inference needs torchvision's eval output: "
                "boxes (N, 4) xyxy, labels (N,), scores (N,) per tile"
            )
    boxes = output["boxes"].detach().cpu().to(torch.float64).reshape(-1, 4)
    scores = output["scores"].detach().cpu().float().reshape(-1)
    labels = output["labels"].detach().cpu().to(torch.int64).reshape(-1)
    masks = output.get("masks")
    keep = scores >= score_threshold
    limit = torch.tensor([width - col, height - row], dtype=torch.float64).repeat(2)
    boxes = torch.minimum(boxes.clamp_min(0.0), limit)
    keep &= (boxes[:, 2] > boxes[:, 0]) & (boxes[:, 3] > boxes[:, 1])
    index = keep.nonzero().flatten()
    bounds = np.stack([np.floor(boxes[index, :2].numpy()), np.ceil(boxes[index, 2:].numpy())],
                      axis=1).reshape(-1, 4).astype(np.int64)
    valid = None
    if invalid is not None and np.any(invalid):
        valid = ~np.asarray(invalid, dtype=bool)
        bounds = np.minimum(bounds, [valid.shape[1], valid.shape[0]] * 2)
        some = _valid_counts(valid, bounds) > 0
        index, bounds = index[torch.from_numpy(some)], bounds[some]
    geometries = None
    if masks is not None:
        probs = masks.detach().cpu().float()
        probs = probs[:, 0] if probs.ndim == 4 else probs
        from rasterio.transform import Affine

        tile_transform = transform @ Affine.translation(col, row)
        geometries, found = [], []
        h_lim, w_lim = min(height - row, probs.shape[-2]), min(width - col, probs.shape[-1])
        for i, (x0, y0, x1, y1) in zip(index.tolist(), bounds.tolist(), strict=True):
            # a pixel of margin: torchvision pastes masks slightly past the box
            x0, y0 = max(x0 - 1, 0), max(y0 - 1, 0)
            x1, y1 = min(x1 + 1, w_lim), min(y1 + 1, h_lim)
            inside = probs[i, y0:y1, x0:x1].numpy() > mask_threshold
            if valid is not None:
                inside &= valid[y0:y1, x0:x1]
            geometry = _mask_geometry(inside, tile_transform @ Affine.translation(x0, y0))
            found.append(geometry is not None)
            if geometry is not None:
                geometries.append(geometry)
        if counts is not None:
            counts["empty_masks"] = counts.get("empty_masks", 0) + found.count(False)
        index = index[torch.tensor(found, dtype=torch.bool)] if found else index
    offset = torch.tensor([col, row, col, row], dtype=torch.float64)
    edge = None
    if tile_size is not None:
        edge = _touches_inner_edge(boxes[index], row, col, tile_size, height, width)
    return Detections(boxes[index] + offset, scores[index], labels[index], geometries, edge)


def _touches_inner_edge(boxes: torch.Tensor, row: int, col: int, tile_size: tuple[int, int],
                        height: int, width: int) -> torch.Tensor:
    """Boxes (tile pixels) within a pixel of a tile edge that is not the raster's edge."""
    h, w = tile_size
    return (((boxes[:, 0] < EDGE_MARGIN) & (col > 0))
            | ((boxes[:, 1] < EDGE_MARGIN) & (row > 0))
            | ((boxes[:, 2] > w - EDGE_MARGIN) & (col + w < width))
            | ((boxes[:, 3] > h - EDGE_MARGIN) & (row + h < height)))


def _mask_geometry(inside: np.ndarray[Any, Any], transform: Any) -> Any:
    """The MultiPolygon of the True pixels of ``inside`` in ``transform``; None if none."""
    if not inside.any():
        return None
    import shapely
    from rasterio.features import shapes

    polygons = [shapely.geometry.shape(geom) for geom, _ in
                shapes(inside.astype(np.uint8), mask=inside, transform=transform)]
    union = shapely.union_all(polygons)
    parts = [union] if isinstance(union, shapely.Polygon) else [
        g for g in getattr(union, "geoms", []) if isinstance(g, shapely.Polygon)]
    return shapely.MultiPolygon(parts) if parts else None


def box_polygons(boxes: torch.Tensor, transform: Any) -> list[Any]:
    """Polygons of the four corners of pixel boxes (N, 4) moved to the map by ``transform``.

    Exact for any affine transform (a box on a rotated grid is a rotated rectangle).
    Rings are counter-clockwise (RFC 7946's orientation) whatever the transform's sign.
    """
    import shapely

    b = boxes.to(torch.float64).numpy()
    xs = b[:, [0, 2, 2, 0, 0]]
    ys = b[:, [1, 1, 3, 3, 1]]
    mx = transform.a * xs + transform.b * ys + transform.c
    my = transform.d * xs + transform.e * ys + transform.f
    if transform.a * transform.e - transform.b * transform.d < 0:  # the usual north-up grid
        mx, my = mx[:, ::-1], my[:, ::-1]
    return list(shapely.polygons(np.stack([mx, my], axis=-1))) if len(b) else []


class DetectionMerger:
    """Class-wise NMS over detections that arrive tile row by tile row.

    Args:
        iou_threshold: Detections of one class overlapping a higher-scored one by IoU
            above this are dropped (torchvision's ``batched_nms``).

    Before NMS, a box touching an inner tile edge (:attr:`Detections.edge`) is dropped
    when a box of its class that touches none covers more than :data:`EDGE_COVER` of it:
    an object cut by one tile and whole in the overlapping one is one detection even
    where the cut part's IoU with the whole is below ``iou_threshold``. A cut box with
    no whole counterpart (an object larger than the overlap) is kept.

    A detection is final once no detection still to come can reach it: later tile rows
    start at or below ``below`` (see :meth:`flush`), so a box ending above it overlaps
    none of theirs. Both rules decide along chains of overlaps, so the whole chain of a
    box that can still be reached stays pending; everything else is decided and
    returned.
    """

    def __init__(self, iou_threshold: float = 0.5) -> None:
        self.iou_threshold = iou_threshold
        self.pending: Detections | None = None

    def add(self, detections: Detections) -> None:
        """Hold ``detections`` (raster pixel boxes) until they are final."""
        self.pending = detections if self.pending is None else Detections.cat(
            [self.pending, detections])

    def flush(self, below: float | None = None) -> Detections:
        """The detections that are final, after NMS, highest score first.

        Args:
            below: Row where the next tile row starts; None when no tile follows (all
                pending detections are final).
        """
        from torchvision.ops import batched_nms

        pending = self.pending
        if pending is None or not len(pending):
            return Detections.empty() if pending is None else pending
        reachable = (torch.zeros(len(pending), dtype=torch.bool) if below is None else
                     pending.boxes[:, 3] > below)
        if reachable.any():
            reachable = self._chains(pending, reachable)
        final = (~reachable).nonzero().flatten()
        self.pending = pending.select(reachable.nonzero().flatten())
        done = pending.select(final)
        done = done.select((~_cut_off(done)).nonzero().flatten())
        keep = batched_nms(done.boxes.float(), done.scores, done.labels, self.iou_threshold)
        return done.select(keep)

    def _chains(self, pending: Detections, reachable: torch.Tensor) -> torch.Tensor:
        """``reachable`` grown by every detection linked to one by an overlap that counts.

        Linked: same class and intersection over the smaller area above the lower of the
        two thresholds, which holds whenever IoU (NMS) or the cover (edge rule) does.
        """
        boxes = pending.boxes
        limit = min(self.iou_threshold, EDGE_COVER)
        while True:
            inside, outside = reachable.nonzero().flatten(), (~reachable).nonzero().flatten()
            if not len(outside):
                return reachable
            linked = torch.zeros(len(outside), dtype=torch.bool)
            for part in torch.split(inside, 1024):  # bounded memory for wide rasters
                inter, area_a, area_b = _intersections(boxes[part], boxes[outside])
                smaller = torch.minimum(area_a[:, None], area_b[None, :]).clamp_min(1e-12)
                same = pending.labels[part][:, None] == pending.labels[outside][None, :]
                linked |= ((inter / smaller > limit) & same).any(0)
            if not linked.any():
                return reachable
            reachable[outside[linked]] = True


def _intersections(a: torch.Tensor, b: torch.Tensor
                   ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Intersection areas (len(a), len(b)) of xyxy boxes, and the areas of each."""
    top_left = torch.maximum(a[:, None, :2], b[None, :, :2])
    bottom_right = torch.minimum(a[:, None, 2:], b[None, :, 2:])
    inter = (bottom_right - top_left).clamp_min(0).prod(-1)
    area_a = (a[:, 2:] - a[:, :2]).prod(-1)
    area_b = (b[:, 2:] - b[:, :2]).prod(-1)
    return inter, area_a, area_b


def _cut_off(detections: Detections) -> torch.Tensor:
    """Edge boxes mostly covered by a same-class box touching no edge (the edge rule)."""
    edge = detections.edge
    assert edge is not None
    cut = torch.zeros(len(detections), dtype=torch.bool)
    at_edge, whole = edge.nonzero().flatten(), (~edge).nonzero().flatten()
    if not len(at_edge) or not len(whole):
        return cut
    for part in torch.split(at_edge, 1024):
        inter, area, _ = _intersections(detections.boxes[part], detections.boxes[whole])
        same = detections.labels[part][:, None] == detections.labels[whole][None, :]
        cover = inter / area.clamp_min(1e-12)[:, None]
        cut[part] = ((cover > EDGE_COVER) & same).any(1)
    return cut


def class_name_of(class_id: int, class_names: Sequence[str] | None) -> str:
    """The name of object class ``class_id`` (1..K; ``class_names`` lists the K objects)."""
    names = list(class_names or [])
    return names[class_id - 1] if 1 <= class_id <= len(names) else str(class_id)


def write_detections(writer: VectorWriter, detections: Detections, transform: Any,
                     class_names: Sequence[str] | None) -> None:
    """Append ``detections`` to ``writer``: boxes as map polygons, or the mask polygons."""
    if not len(detections):
        return
    geometries = (detections.geometries if detections.geometries is not None else
                  box_polygons(detections.boxes, transform))
    ids = detections.labels.tolist()
    writer.write(ids, [class_name_of(i, class_names) for i in ids],
                 detections.scores.tolist(), geometries)


def _check_thresholds(score_threshold: float, iou_threshold: float,
                      mask_threshold: float) -> None:
    for name, value in (("score_threshold", score_threshold),
                        ("iou_threshold", iou_threshold), ("mask_threshold", mask_threshold)):
        if not 0.0 <= value <= 1.0:
            raise ConfigurationError(f"{name} must lie in [0, 1]; got {value}")


def predict_detections(
    forward: DetectionForward,
    input_path: str | Path,
    output_path: str | Path,
    *,
    preprocessing: Preprocessing | None = None,
    crop: int = 512,
    stride: int = 448,
    batch_size: int = 4,
    class_names: Sequence[str] | None = None,
    score_threshold: float = 0.5,
    iou_threshold: float = 0.5,
    mask_threshold: float = 0.5,
    overwrite: bool = False,
    progress: bool = True,
    allow_missing_crs: bool = False,
    gdal_cache_mb: int = 64,
) -> DetectionPrediction:
    """Detect objects in a whole raster tile by tile and write them as a vector file.

    Args:
        forward: Maps tiles (N, C, crop, crop) to N dicts, torchvision's eval output:
            ``boxes`` (M, 4) xyxy in tile pixels, ``labels`` (M,) in 1..K, ``scores``
            (M,), and for instance segmentation ``masks`` (M, 1, crop, crop)
            probabilities. Called under ``torch.inference_mode``.
        input_path: The GeoTIFF (any size): a local path or a URL GDAL reads.
        output_path: ``.gpkg`` or ``.geojson`` (see :mod:`geofm_core.io.vectors`), one
            layer ``detections`` with ``class_id``, ``class_name``, ``score`` and the
            geometry in the raster's CRS. Any other extension is refused before the
            raster is opened.
        preprocessing: Band selection, scaling and normalisation (as training).
        crop: Tile size in pixels (the model's input size).
        stride: Step between tiles; objects cut by one tile are whole in the next when
            the overlap (``crop - stride``) exceeds their size.
        batch_size: Tiles per forward call.
        class_names: The K object class names (``class_name`` of class i is the i-th).
        score_threshold: Lowest score written.
        iou_threshold: Class-wise NMS across tile overlaps: a detection overlapping a
            higher-scored one of its class by IoU above this is dropped.
        mask_threshold: Mask probability above which a pixel is part of the object.
        overwrite: Replace an existing output instead of refusing.
        progress: Show a progress bar over tiles on stderr.
        allow_missing_crs: Accept an input without a CRS (the output has none either).
        gdal_cache_mb: GDAL's block cache during the run (see ``predict_raster``).

    Returns:
        A :class:`DetectionPrediction`. Tiles whose pixels are all nodata are not run;
        detections whose box covers only nodata are dropped.
    """
    check_tiling(crop, stride, batch_size)
    _check_thresholds(score_threshold, iou_threshold, mask_threshold)
    output_path = Path(output_path)
    driver = vector_format(output_path)  # before any work
    input_path = input_location(input_path)
    if isinstance(input_path, Path) and not input_path.is_file():
        raise ConfigurationError(f"input raster {input_path} does not exist")
    prep = preprocessing or Preprocessing()
    with rasterio.Env(GDAL_CACHEMAX=gdal_cache_mb):
        try:
            src = rasterio.open(input_path)
        except rasterio.errors.RasterioIOError as exc:
            raise unreadable_input(input_path, exc) from exc
        with src:
            if src.crs is None and not allow_missing_crs:
                raise ConfigurationError(
                    f"{input_path} has no CRS, so the detections could not be "
                    "georeferenced; assign one (e.g. gdal_edit.py -a_srs EPSG:XXXX) or pass "
                    "allow_missing_crs"
                )
            check_vector_crs(output_path, src.crs, str(input_path))
            with atomic_output(output_path, overwrite=overwrite,
                               hint="overwrite=True (--overwrite)", verify=verify_vector,
                               inputs=[input_path]) as temp:
                try:
                    return _stream(forward, src, temp, output_path, driver, prep, crop,
                                   stride, batch_size, class_names, score_threshold,
                                   iou_threshold, mask_threshold, progress)
                except OSError as exc:
                    if isinstance(exc, GeofmError):
                        raise
                    raise OutputWriteError(
                        f"writing {output_path} failed ({exc}); the disk may be full. "
                        "Nothing was written at the output path: free space or choose "
                        "another output folder"
                    ) from exc


def _stream(
    forward: DetectionForward, src: Any, temp: Path, final: Path, driver: str,
    prep: Preprocessing, crop: int, stride: int, batch_size: int,
    class_names: Sequence[str] | None, score_threshold: float, iou_threshold: float,
    mask_threshold: float, progress: bool,
) -> DetectionPrediction:
    height, width = src.height, src.width
    indexes = prep.plan(src.name, src.count, src.dtypes).indexes
    rows, cols = tile_starts(height, crop, stride), tile_starts(width, crop, stride)
    strip_w = max(width, crop)
    # Rolling strip of one tile row (raw values); padding past the raster is nodata.
    raw = np.zeros((len(indexes), crop, strip_w), dtype=src.dtypes[indexes[0] - 1])
    invalid = np.ones((crop, strip_w), dtype=bool)
    loaded_until, strip_top = 0, 0
    merger = DetectionMerger(iou_threshold)
    counts: dict[str, int] = {"empty_masks": 0}
    skipped = 0
    writer: VectorWriter | None = None
    with contextlib.ExitStack() as stack:
        bar = stack.enter_context(_progress(len(rows) * len(cols), progress,
                                            Path(src.name).name))
        for i, row in enumerate(rows):
            if row - strip_top:
                _shift_up(raw, row - strip_top, 0)
                _shift_up(invalid, row - strip_top, True)
                strip_top = row
            read_to = min(row + crop, height)
            if read_to > loaded_until:
                block = read_rows(src, indexes, loaded_until, read_to)
                r0 = loaded_until - strip_top
                raw[:, r0 : r0 + block.shape[1], :width] = block
                invalid[r0 : r0 + block.shape[1], :width] = _missing(block, src.nodata)
                loaded_until = read_to
            # Tiles of nodata only are not run: nothing can be found there.
            todo = [c for c in cols if not invalid[:, c : c + crop].all()]
            skipped += len(cols) - len(todo)
            if bar is not None:
                bar.update(len(cols) - len(todo))
            for start in range(0, len(todo), batch_size):
                chunk = todo[start : start + batch_size]
                tiles = torch.stack([_prepare(prep, raw[:, :, c : c + crop], (src.nodata,))
                                     for c in chunk])
                with torch.inference_mode():
                    outputs = list(forward(tiles))
                if len(outputs) != len(chunk):
                    raise ConfigurationError(
                        f"the detection model returned {len(outputs)} results for "
                        f"{len(chunk)} tiles; it must return one dict per tile"
                    )
                for c, out in zip(chunk, outputs, strict=True):
                    merger.add(tile_detections(
                        out, row=row, col=c, height=height, width=width,
                        transform=src.transform, invalid=invalid[:, c : c + crop],
                        score_threshold=score_threshold, mask_threshold=mask_threshold,
                        counts=counts, tile_size=(crop, crop)))
                if bar is not None:
                    bar.update(len(chunk))
            done = merger.flush(rows[i + 1] if i + 1 < len(rows) else None)
            if writer is None and (len(done) or i + 1 == len(rows)):
                # The geometry type is known from the first results (boxes or masks).
                writer = stack.enter_context(VectorWriter(
                    temp, driver, src.crs,
                    "MultiPolygon" if done.geometries is not None else "Polygon"))
            if writer is not None:
                write_detections(writer, done, src.transform, class_names)
        written = writer.count if writer is not None else 0
    return DetectionPrediction(final, written, len(rows) * len(cols), skipped,
                               (height, width), {"empty_masks": counts["empty_masks"]})
