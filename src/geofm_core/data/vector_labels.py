"""Vector labels for detection: read, check, reproject and cut polygons into chip targets.

A label file (GeoPackage, GeoJSON, Shapefile or anything else GDAL/OGR reads) holds one
feature per object. :func:`read_vector_labels` reads it with pyogrio (the ``vector``
extra), maps the ``class_attribute`` column to class ids 1..K and cleans the
geometries; :meth:`VectorLabels.in_pixels` reprojects them to a raster's CRS and then to
its pixel grid (x = column, y = row, continuous: pixel ``(r, c)`` covers
``[c, c + 1] x [r, r + 1]``); :func:`chip_targets` clips them to a chip window and derives
boxes (the clipped geometry's bounds) and, on request, masks (each clipped geometry
rasterised, pixels whose centre lies inside).

What happens to awkward input (each case is counted per file in :class:`LabelCounts`
and reported in one warning per file):

* invalid geometries (self-intersections, ...): ``invalid_geometries="fix"`` repairs them
  with ``shapely.make_valid`` and keeps the polygonal part; ``"skip"`` drops them;
  ``"error"`` stops with the file, the feature and the reason;
* a file of several layers (a GeoPackage can hold many): an error listing them;
* null or empty geometries: skipped;
* points and lines: an error, since a box or mask needs an area (buffer them into
  polygons first, e.g. ``gdf.buffer(5)`` in the CRS's units);
* labels entirely outside their image (or, for one file shared by a split, outside every
  image): skipped;
* boxes narrower or lower than ``min_box_size`` pixels after clipping to a chip: dropped
  (counted, not warned: clipping makes such slivers at every chip edge).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np

from geofm_core.errors import ConfigurationError

__all__ = [
    "VECTOR_SUFFIXES",
    "ChipTargets",
    "LabelCounts",
    "LabelWarning",
    "VectorLabels",
    "chip_targets",
    "empty_targets",
    "import_vector_readers",
    "read_vector_labels",
]

#: File name endings read as one vector file (a label root ending otherwise is a folder).
VECTOR_SUFFIXES = (".gpkg", ".geojson", ".json", ".shp", ".fgb", ".gml", ".kml", ".sqlite")

InvalidPolicy = Literal["fix", "skip", "error"]
Array = np.ndarray[Any, Any]
# shapely type ids of polygonal geometries (Polygon, MultiPolygon)
_POLYGONAL = (3, 6)
_COLLECTION = 7
#: Pixel coordinates are snapped to this grid (pixels).
_GRID = 1e-6


class LabelWarning(UserWarning):
    """Label features were skipped or repaired (the message counts them and names the file)."""


def import_vector_readers() -> tuple[Any, Any]:
    """``(pyogrio, shapely)``, or one error naming the ``vector`` extra."""
    try:
        import geopandas  # noqa: F401  (pyogrio.read_dataframe needs it)
        import pyogrio
        import shapely
    except ImportError as exc:
        raise ConfigurationError(
            f"vector labels (GeoPackage, GeoJSON, Shapefile) are read with pyogrio, geopandas "
            f"and shapely ({exc.name} is missing); install them with "
            "`pip install geofm-core[vector]`"
        ) from exc
    return pyogrio, shapely


@dataclass
class LabelCounts:
    """What was repaired or left out of one label file (reported in one warning)."""

    fixed: int = 0
    invalid_skipped: int = 0
    empty_skipped: int = 0
    outside: int = 0
    small_boxes: int = 0

    def message(self, path: Path, shared_by: int | None = None) -> str | None:
        """The warning text for ``path``, or None when nothing was left out or repaired.

        Args:
            path: the label file.
            shared_by: the number of images a file shared by a stage was read for (None
                for a per-image file).
        """
        parts = []
        if self.fixed:
            parts.append(f"{self.fixed} invalid geometries repaired with make_valid")
        if self.invalid_skipped:
            parts.append(f"{self.invalid_skipped} invalid geometries skipped "
                         "(invalid_geometries='skip')")
        if self.empty_skipped:
            parts.append(f"{self.empty_skipped} null or empty geometries skipped")
        if self.outside:
            where = "their image" if shared_by is None else (
                f"every image of the stage ({shared_by}; fine when the file covers other "
                "stages too)")
            parts.append(f"{self.outside} labels entirely outside {where} skipped")
        if not parts:
            return None
        return f"{path}: {'; '.join(parts)}"


@dataclass
class VectorLabels:
    """The cleaned polygons of one label file and their class ids.

    Attributes:
        path: the file.
        geometries: shapely (Multi)Polygons, in the file's CRS.
        classes: class id (1..K) of each geometry, int64.
        crs: the file's CRS (a ``pyproj.CRS``), None when it has none.
        counts: what was repaired or skipped.
    """

    path: Path
    geometries: Array
    classes: Array
    crs: Any
    counts: LabelCounts = field(default_factory=LabelCounts)
    _cache: dict[str, Array] = field(default_factory=dict, repr=False)
    _trees: dict[str, Any] = field(default_factory=dict, repr=False)

    def in_crs(self, raster_crs: Any, image: Path) -> Array:
        """The geometries in ``raster_crs`` (a rasterio CRS or None), reprojected once per CRS.

        Raises:
            ConfigurationError: the file has no CRS but the raster has one, or the other
                way round (naming both files).
        """
        if self.crs is None and raster_crs is None:
            return self.geometries  # both in the same unnamed coordinates
        if self.crs is None:
            raise ConfigurationError(
                f"{self.path}: the label file has no CRS, so its geometries cannot be placed "
                f"on {image.name} ({raster_crs}); set the CRS of the file (e.g. "
                "`ogr2ogr -a_srs EPSG:4326 out.gpkg in.geojson`, or GeoDataFrame.set_crs)"
            )
        if raster_crs is None:
            raise ConfigurationError(
                f"{image}: the image has no CRS but its labels {self.path.name} are in "
                f"{self.crs.to_string()}; give the image its CRS (gdal_edit.py -a_srs ...)"
            )
        from pyproj import CRS, Transformer

        target = CRS.from_user_input(raster_crs.to_wkt())
        key = target.to_wkt()
        if key not in self._cache:
            if target == self.crs:
                self._cache[key] = self.geometries
            else:
                _, shapely = import_vector_readers()
                move = Transformer.from_crs(self.crs, target, always_xy=True)

                def project(xy: Array) -> Array:
                    x, y = move.transform(xy[:, 0], xy[:, 1])
                    return np.column_stack([x, y])

                self._cache[key] = shapely.transform(self.geometries, project)
        return self._cache[key]

    def in_pixels(self, raster_crs: Any, transform: Any, height: int, width: int,
                  image: Path) -> tuple[Array, Array]:
        """The geometries that meet a raster, on its pixel grid (x = column, y = row).

        Returns:
            ``(indices, pixels)``: which geometries intersect the raster's footprint
            (found with a spatial index, so a large file shared by many images is not
            transformed whole for each), and those geometries in the raster's pixels.
        """
        _, shapely = import_vector_readers()
        geometries = self.in_crs(raster_crs, image)
        key = "" if raster_crs is None else raster_crs.to_wkt()
        if key not in self._trees:
            self._trees[key] = shapely.STRtree(geometries)
        corners = [transform * (x, y) for x, y in ((0, 0), (width, 0), (width, height),
                                                   (0, height))]
        indices = np.sort(self._trees[key].query(shapely.Polygon(corners),
                                                 predicate="intersects"))
        inverse = ~transform
        matrix = np.array([[inverse.a, inverse.b], [inverse.d, inverse.e]])
        offset = np.array([inverse.c, inverse.f])

        def to_pixels(xy: Array) -> Array:
            return np.asarray(xy @ matrix.T + offset)

        pixels = shapely.transform(geometries[indices], to_pixels)
        # Snapped to a millionth of a pixel: the round trip through map coordinates leaves
        # vertices such as 63.99999999999818, whose hair-thin slivers past a chip edge
        # would stretch a clipped box by a pixel.
        return indices, shapely.set_precision(pixels, _GRID)


def _polygonal(shapely: Any, geometries: Array) -> Array:
    """The polygonal part of each geometry (collections reduced to their polygons)."""
    out = geometries.copy()
    types = shapely.get_type_id(out)
    for i in np.flatnonzero(types == _COLLECTION):
        parts = shapely.get_parts(out[i])
        polygons = parts[np.isin(shapely.get_type_id(parts), _POLYGONAL)]
        out[i] = shapely.union_all(polygons) if len(polygons) else shapely.Polygon()
    return out


def _class_ids(frame: Any, path: Path, class_attribute: str | None,
               classes: Sequence[str]) -> Array:
    if class_attribute is None:
        return np.ones(len(frame), dtype=np.int64)
    if class_attribute not in frame.columns:
        present = [str(c) for c in frame.columns if c != "geometry"]
        raise ConfigurationError(
            f"{path}: has no column {class_attribute!r} (class_attribute); its columns are "
            f"{present}. Set class_attribute to the column holding the class, or null for "
            "one class"
        )
    lookup = {name: i + 1 for i, name in enumerate(classes)}
    ids = np.empty(len(frame), dtype=np.int64)
    for row, value in enumerate(frame[class_attribute].tolist()):
        text = None if value is None or (isinstance(value, float) and np.isnan(value)) else (
            str(int(value)) if isinstance(value, float) and value.is_integer() else str(value))
        if text not in lookup:
            raise ConfigurationError(
                f"{path}: feature {row} has {class_attribute} = {value!r}, which is not one of "
                f"classes {list(classes)}; add it to classes (in label order), or fix or "
                "remove the feature"
            )
        ids[row] = lookup[text]
    return ids


def read_vector_labels(
    path: str | Path,
    *,
    class_attribute: str | None,
    classes: Sequence[str],
    invalid_geometries: InvalidPolicy = "fix",
) -> VectorLabels:
    """Read and clean one label file.

    Args:
        path: the vector file.
        class_attribute: the column holding each feature's class (its values, as text,
            must be among ``classes``); None: every feature is class 1.
        classes: the object classes in label order (class id = position + 1).
        invalid_geometries: ``"fix"``, ``"skip"`` or ``"error"`` (see the module docstring).

    Raises:
        ConfigurationError: the file cannot be read, lacks the column, holds an unknown
            class, a point or line, or (with ``"error"``) an invalid geometry.
    """
    pyogrio, shapely = import_vector_readers()
    path = Path(path)
    if invalid_geometries not in ("fix", "skip", "error"):
        raise ConfigurationError(
            f"invalid_geometries must be 'fix', 'skip' or 'error', got {invalid_geometries!r}"
        )
    try:
        layers = [str(name) for name, _ in pyogrio.list_layers(path)]
        frame = None if len(layers) > 1 else pyogrio.read_dataframe(path)
    except Exception as exc:  # pyogrio raises DataSourceError, DataLayerError, OSError...
        raise ConfigurationError(
            f"cannot read the label file {str(path)!r} ({exc}); give a GeoPackage, GeoJSON "
            "or Shapefile (checked with `ogrinfo`)"
        ) from exc
    if frame is None:
        raise ConfigurationError(
            f"{path}: holds {len(layers)} layers ({', '.join(layers[:10])}); a label file "
            "holds one, so that no layer is picked silently: write the label layer to its "
            f"own file (`ogr2ogr labels.gpkg {path.name} LAYER`)"
        )
    ids = _class_ids(frame, path, class_attribute, classes)
    geometries = np.asarray(frame.geometry.values, dtype=object)
    counts = LabelCounts()
    empty = shapely.is_missing(geometries) | shapely.is_empty(geometries)
    counts.empty_skipped = int(empty.sum())
    keep = ~empty
    geometries, ids = geometries[keep], ids[keep]
    rows = np.flatnonzero(keep)
    types = shapely.get_type_id(geometries)
    linear = ~np.isin(types, (*_POLYGONAL, _COLLECTION))
    if linear.any():
        names = sorted({g.geom_type for g in geometries[linear]})
        raise ConfigurationError(
            f"{path}: {int(linear.sum())} features are {'/'.join(names)} (e.g. feature "
            f"{int(rows[linear][0])}); object detection needs polygons, since a box or mask "
            "needs an area: buffer points and lines into polygons first (e.g. "
            "GeoDataFrame.buffer(radius) in the CRS's units) or remove them"
        )
    valid = shapely.is_valid(geometries)
    if not valid.all():
        bad = np.flatnonzero(~valid)
        if invalid_geometries == "error":
            first = bad[0]
            raise ConfigurationError(
                f"{path}: feature {int(rows[first])} has an invalid geometry "
                f"({shapely.is_valid_reason(geometries[first])}; {len(bad)} invalid in all); "
                "repair the file (e.g. `ogr2ogr -makevalid`), or set invalid_geometries: fix "
                "(shapely make_valid) or skip"
            )
        if invalid_geometries == "skip":
            counts.invalid_skipped = len(bad)
            geometries, ids = geometries[valid], ids[valid]
        else:
            geometries = geometries.copy()
            geometries[bad] = shapely.make_valid(geometries[bad])
            counts.fixed = len(bad)
    geometries = _polygonal(shapely, geometries)
    # a collection without polygons (e.g. a repaired zero-area ring) has nothing to box
    area = shapely.area(geometries) > 0
    counts.empty_skipped += int((~area).sum())
    return VectorLabels(path=path, geometries=geometries[area], classes=ids[area],
                        crs=frame.crs, counts=counts)


@dataclass
class ChipTargets:
    """The objects of one chip, in the chip's pixels.

    Attributes:
        boxes: float32 (N, 4) x_min, y_min, x_max, y_max.
        labels: int64 (N,) class ids 1..K.
        geometries: the clipped (Multi)Polygons (for masks), shapely objects (N,).
    """

    boxes: Array
    labels: Array
    geometries: Array

    def __len__(self) -> int:
        return len(self.labels)

    def masks(self, height: int, width: int) -> Array:
        """uint8 (N, height, width): each geometry rasterised (pixel centres inside)."""
        from rasterio.features import rasterize

        out = np.zeros((len(self), height, width), dtype=np.uint8)
        for i, geometry in enumerate(self.geometries):
            rasterize([(geometry, 1)], out_shape=(height, width), out=out[i])
        return out


def empty_targets() -> ChipTargets:
    """A chip without objects."""
    return ChipTargets(np.zeros((0, 4), np.float32), np.zeros(0, np.int64),
                       np.zeros(0, dtype=object))


def chip_targets(
    pixels: Array,
    classes: Array,
    window: tuple[int, int, int, int],
    *,
    min_box_size: float,
    tree: Any = None,
    counts: LabelCounts | None = None,
) -> ChipTargets:
    """Clip geometries on an image's pixel grid to a chip and derive the boxes.

    Args:
        pixels: the image's geometries in its pixels (:meth:`VectorLabels.in_pixels`).
        classes: their class ids.
        window: ``(row_off, col_off, height, width)`` of the chip.
        min_box_size: boxes narrower or lower than this (pixels) are dropped.
        tree: a ``shapely.STRtree`` of ``pixels`` (built when not given).
        counts: where dropped small boxes are counted.
    """
    _, shapely = import_vector_readers()
    row, col, height, width = window
    frame = shapely.box(col, row, col + width, row + height)
    tree = tree if tree is not None else shapely.STRtree(pixels)
    hits = np.sort(tree.query(frame, predicate="intersects"))
    if not len(hits):
        return empty_targets()
    clipped = _polygonal(shapely, shapely.intersection(pixels[hits], frame))
    area = shapely.area(clipped) > 0  # touching the chip along an edge only
    clipped, labels = clipped[area], classes[hits][area]
    clipped = shapely.transform(clipped, lambda xy: xy - np.array([col, row], float))
    boxes = shapely.bounds(clipped).astype(np.float32).reshape(-1, 4)
    large = ((boxes[:, 2] - boxes[:, 0]) >= min_box_size) & (
        (boxes[:, 3] - boxes[:, 1]) >= min_box_size)
    if counts is not None:
        counts.small_boxes += int((~large).sum())
    return ChipTargets(boxes[large], labels[large].astype(np.int64), clipped[large])
