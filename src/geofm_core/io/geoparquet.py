"""GeoParquet files of embeddings: one row per chip or tile, its vector and its footprint.

The table holds ``id``, ``file``, the pixel window (``row_off``, ``col_off``,
``height``, ``width``), ``embedding`` (a fixed-size list of float32) and ``geometry``
(the footprint polygon as WKB) with GeoParquet 1.1 ``geo`` metadata naming the CRS
(PROJJSON) and the bounding box, so geopandas, GDAL/OGR, QGIS and DuckDB read it as a
layer. The file is written to a temporary name and renamed when complete
(:mod:`geofm_core.io.atomic`). Needs the ``vector`` extra (pyarrow, shapely, pyproj).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from geofm_core.errors import ConfigurationError
from geofm_core.io.atomic import atomic_output

__all__ = ["EmbeddingRow", "GEOPARQUET_VERSION", "import_vector", "write_embeddings"]

#: The GeoParquet specification version written.
GEOPARQUET_VERSION = "1.1.0"


@dataclass
class EmbeddingRow:
    """One chip or tile: where it is and its pooled vector.

    Attributes:
        id: A unique name (the file's stem, with ``_r<row>_c<col>`` for a tile).
        file: The raster it comes from.
        window: ``(row_off, col_off, height, width)`` in that raster's pixels.
        footprint: The window's corners in the output CRS, as ``[(x, y), ...]``.
        vector: The pooled embedding (D,).
    """

    id: str
    file: str
    window: tuple[int, int, int, int]
    footprint: list[tuple[float, float]]
    vector: np.ndarray[Any, Any]


def import_vector() -> tuple[Any, Any, Any]:
    """``(pyarrow, pyarrow.parquet, shapely)``, or one error naming the ``vector`` extra."""
    try:
        import pyarrow as pa
        import pyarrow.parquet as pq
        import shapely
    except ImportError as exc:
        raise ConfigurationError(
            f"writing GeoParquet needs pyarrow and shapely ({exc.name} is missing); "
            "install them with `pip install geofm-core[vector]`"
        ) from exc
    return pa, pq, shapely


def _projjson(crs: Any) -> Any:
    """PROJJSON of a rasterio/pyproj CRS or a string; None stays None (unknown CRS)."""
    if crs is None:
        return None
    from pyproj import CRS

    text = crs.to_wkt() if hasattr(crs, "to_wkt") else str(crs)
    return CRS.from_user_input(text).to_json_dict()


def write_embeddings(path: str | Path, rows: Sequence[EmbeddingRow], crs: Any, *,
                     overwrite: bool = False, inputs: Sequence[str | Path] = (),
                     metadata: dict[str, str] | None = None) -> Path:
    """Write ``rows`` as a GeoParquet file with footprints in ``crs``.

    Args:
        path: The ``.parquet`` file.
        rows: The chips or tiles, all with vectors of one length.
        crs: The CRS of every footprint (rasterio or pyproj CRS, or a string such as
            ``EPSG:4326``); None writes no CRS (readers then assume OGC:CRS84).
        overwrite: Replace an existing file instead of refusing.
        inputs: The rasters embedded (never overwritten).
        metadata: Extra key/values stored in the file's metadata (backbone, pooling...).

    Raises:
        ConfigurationError: No rows, or vectors of different lengths.
        OutputExistsError: ``path`` exists and ``overwrite`` is False.
    """
    pa, pq, shapely = import_vector()
    path = Path(path)
    if not rows:
        raise ConfigurationError(f"{path}: there is nothing to write (no chips embedded)")
    dims = {int(r.vector.shape[-1]) for r in rows}
    if len(dims) != 1:
        raise ConfigurationError(
            f"{path}: the embeddings have different lengths {sorted(dims)}; embed the "
            "rasters with one backbone and layer per file"
        )
    dim = dims.pop()
    polygons = [shapely.Polygon(r.footprint) for r in rows]
    bounds = np.asarray([p.bounds for p in polygons], dtype=np.float64)
    vectors = np.stack([np.asarray(r.vector, dtype=np.float32).reshape(dim) for r in rows])
    values = pa.array(vectors.reshape(-1), type=pa.float32())
    columns = {
        "id": pa.array([r.id for r in rows], pa.string()),
        "file": pa.array([r.file for r in rows], pa.string()),
        "row_off": pa.array([r.window[0] for r in rows], pa.int64()),
        "col_off": pa.array([r.window[1] for r in rows], pa.int64()),
        "height": pa.array([r.window[2] for r in rows], pa.int64()),
        "width": pa.array([r.window[3] for r in rows], pa.int64()),
        "embedding": pa.FixedSizeListArray.from_arrays(values, dim),
        "geometry": pa.array(shapely.to_wkb(polygons), pa.binary()),
    }
    geo = {
        "version": GEOPARQUET_VERSION,
        "primary_column": "geometry",
        "columns": {"geometry": {
            "encoding": "WKB",
            "geometry_types": ["Polygon"],
            "crs": _projjson(crs),
            "bbox": [float(bounds[:, 0].min()), float(bounds[:, 1].min()),
                     float(bounds[:, 2].max()), float(bounds[:, 3].max())],
        }},
    }
    table = pa.table(columns).replace_schema_metadata({
        b"geo": json.dumps(geo).encode(),
        **{f"geofm:{k}".encode(): str(v).encode() for k, v in (metadata or {}).items()},
    })
    with atomic_output(path, overwrite=overwrite, verify=_verify_parquet,
                       inputs=list(inputs)) as partial:
        pq.write_table(table, partial, compression="zstd")
    return path


def _verify_parquet(temp: Path, final: Path) -> None:
    """Read the finished file's footer back (a truncated write has none)."""
    import pyarrow.parquet as pq

    from geofm_core.errors import OutputWriteError

    try:
        pq.read_metadata(temp)
    except Exception as exc:  # pyarrow raises several types for a broken footer
        raise OutputWriteError(
            f"writing {final} failed ({exc}); the disk may be full. Nothing was written at "
            "the output path: free space or choose another output folder"
        ) from exc
