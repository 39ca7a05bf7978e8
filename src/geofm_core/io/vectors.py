"""Vector files of detections: GeoPackage or GeoJSON, written feature batch by batch.

One layer (``detections``) with the columns ``class_id`` (int64, 1..K), ``class_name``,
``score`` (float32) and the geometry (box polygons, or multipolygons of instance
masks) in the raster's CRS. Batches are appended as they are final, so memory does not
grow with the number of detections.

* ``.gpkg``: written by pyogrio (GDAL's GPKG driver), each batch appended to the layer;
  an empty result is a valid layer with the columns and the CRS.
* ``.geojson``: written as text, one feature per line, because GDAL's GeoJSON driver
  holds the whole file in memory to append. The coordinates stay in the raster's CRS,
  named by a ``crs`` member (``urn:ogc:def:crs:EPSG::<code>``; ``OGC:CRS84`` for
  EPSG:4326, whose coordinates are written longitude first): the 2008 GeoJSON
  convention that GDAL, QGIS and geopandas read. RFC 7946 only allows WGS84; reproject
  with ``ogr2ogr -t_srs EPSG:4326`` where a reader insists. A CRS without an EPSG code
  cannot be named in GeoJSON: use ``.gpkg`` then.

Both are written to a temporary name and renamed when complete and read back
(:mod:`geofm_core.io.atomic`). Needs the ``vector`` extra (pyogrio, shapely).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import IO, Any, Literal

import numpy as np

from geofm_core.errors import ConfigurationError, OutputWriteError

__all__ = [
    "LAYER",
    "VECTOR_FORMATS",
    "VectorWriter",
    "check_vector_crs",
    "vector_format",
    "verify_vector",
]

#: Output extension -> GDAL driver.
VECTOR_FORMATS = {".gpkg": "GPKG", ".geojson": "GeoJSON"}
#: Name of the layer written.
LAYER = "detections"
GeometryType = Literal["Polygon", "MultiPolygon"]
_FIELDS = ["class_id", "class_name", "score"]


def vector_format(path: str | Path) -> str:
    """The GDAL driver of an output ``path`` by its extension.

    Raises:
        ConfigurationError: An extension other than ``.gpkg`` / ``.geojson``, or the
            ``vector`` extra (pyogrio, shapely) is not installed.
    """
    suffix = Path(path).suffix.lower()
    if suffix not in VECTOR_FORMATS:
        raise ConfigurationError(
            f"detections are written as GeoPackage (.gpkg) or GeoJSON (.geojson); the "
            f"output {path} has the extension {suffix or '(none)'!r}: name it e.g. "
            f"{Path(path).with_suffix('.gpkg')}"
        )
    try:  # before any work: the writer needs them at the end
        import pyogrio  # noqa: F401
        import shapely  # noqa: F401
    except ImportError as exc:
        raise ConfigurationError(
            f"writing {path} needs pyogrio and shapely ({exc.name} is missing); install "
            "them with `pip install geofm-core[vector]`"
        ) from exc
    return VECTOR_FORMATS[suffix]


def _geojson_crs(crs: Any) -> str | None:
    """The name of ``crs`` in a GeoJSON ``crs`` member; None for no CRS."""
    if crs is None:
        return None
    code = crs.to_epsg()
    if code is None:
        return None
    return "urn:ogc:def:crs:OGC:1.3:CRS84" if code == 4326 else f"urn:ogc:def:crs:EPSG::{code}"


def check_vector_crs(path: str | Path, crs: Any, source: str) -> None:
    """Refuse a GeoJSON output for a CRS it cannot name, before any work is done.

    Raises:
        ConfigurationError: ``path`` is ``.geojson`` and ``crs`` has no EPSG code.
    """
    if vector_format(path) == "GeoJSON" and crs is not None and _geojson_crs(crs) is None:
        raise ConfigurationError(
            f"{source} has a CRS without an EPSG code, which a GeoJSON file cannot name; "
            f"write a GeoPackage instead ({Path(path).with_suffix('.gpkg')}), which keeps "
            "any CRS"
        )


class VectorWriter:
    """Appends batches of detections to one vector file (a temporary of the output).

    Args:
        path: The file to write (normally the temporary of :func:`atomic_output`).
        driver: ``"GPKG"`` or ``"GeoJSON"`` (see :func:`vector_format`).
        crs: The CRS of the geometries (a rasterio CRS; None writes none).
        geometry_type: ``"Polygon"`` (boxes) or ``"MultiPolygon"`` (instance masks).

    Attributes:
        count: Features written so far.
    """

    def __init__(self, path: str | Path, driver: str, crs: Any,
                 geometry_type: GeometryType = "Polygon") -> None:
        self.path = Path(path)
        self.driver = driver
        self.crs = crs
        self.geometry_type = geometry_type
        self.count = 0
        self._text: IO[str] | None = None
        if driver == "GeoJSON":
            self._text = open(self.path, "w", encoding="utf-8")  # closed in close()
            header: dict[str, Any] = {"type": "FeatureCollection", "name": LAYER}
            name = _geojson_crs(crs)
            if name is not None:
                header["crs"] = {"type": "name", "properties": {"name": name}}
            self._text.write(json.dumps(header)[:-1] + ', "features": [\n')
        else:
            self._write_gpkg([], [], [], [], append=False)  # the layer exists, even empty

    def write(self, class_ids: Sequence[int], class_names: Sequence[str],
              scores: Sequence[float], geometries: Sequence[Any]) -> None:
        """Append one batch (equal lengths; shapely geometries)."""
        if not len(class_ids):
            return
        if self._text is not None:
            import shapely

            for cid, name, score, geom in zip(class_ids, class_names, scores, geometries,
                                              strict=True):
                feature = ('{"type": "Feature", "properties": '
                           + json.dumps({"class_id": int(cid), "class_name": str(name),
                                         "score": round(float(score), 6)})
                           + ', "geometry": ' + shapely.to_geojson(geom) + "}")
                self._text.write(("" if self.count == 0 else ",\n") + feature)
                self.count += 1
            return
        self._write_gpkg(class_ids, class_names, scores, geometries, append=True)
        self.count += len(class_ids)

    def _write_gpkg(self, class_ids: Sequence[int], class_names: Sequence[str],
                    scores: Sequence[float], geometries: Sequence[Any], *,
                    append: bool) -> None:
        import pyogrio.raw
        import shapely

        wkb = np.empty(len(geometries), dtype=object)
        wkb[:] = list(shapely.to_wkb(list(geometries))) if len(geometries) else []
        pyogrio.raw.write(
            self.path, geometry=wkb,
            field_data=[np.asarray(class_ids, dtype=np.int64),
                        np.asarray(list(class_names), dtype=object),
                        np.asarray(scores, dtype=np.float32)],
            fields=_FIELDS, layer=LAYER, driver="GPKG", geometry_type=self.geometry_type,
            crs=self.crs.to_wkt() if self.crs is not None else None, encoding="UTF-8",
            append=append,
        )

    def close(self) -> None:
        """Finish the file (GeoJSON: close the feature list)."""
        if self._text is not None:
            self._text.write("\n]}\n")
            self._text.close()
            self._text = None

    def __enter__(self) -> VectorWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def verify_vector(temp: Path, final: Path) -> None:
    """Open a finished vector file with GDAL before it is renamed into place.

    Raises:
        OutputWriteError: GDAL cannot read it (truncated by a full disk, say).
    """
    import pyogrio

    try:
        pyogrio.read_info(temp, layer=LAYER)
    except Exception as exc:  # pyogrio raises its own error types for a broken file
        raise OutputWriteError(
            f"writing {final} failed ({exc}); the disk may be full. Nothing was written at "
            "the output path: free space or choose another output folder"
        ) from exc
