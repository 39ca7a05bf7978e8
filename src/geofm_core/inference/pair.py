"""Two co-registered rasters read window by window in lockstep, as one source for streaming.

:func:`~geofm_core.inference.raster.predict_raster` streams any object with a rasterio
dataset's ``name``, size, ``count``, ``dtypes``, ``nodata``, ``crs``, ``transform`` and
``read(indexes, window=...)``. A :class:`RasterPair` is one: ``read`` returns the bands
of the before raster followed by the same bands of the after raster, for one window, so
both dates are tiled with the same windows; ``dates`` and ``nodatas`` tell the streamer
how to split them back.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import rasterio

from geofm_core.data.change import check_same_grid
from geofm_core.io.locations import unreadable_input

__all__ = ["RasterPair"]


class RasterPair:
    """The before and after rasters of one place, opened and checked to share one grid.

    Args:
        before: The raster of the first date (its georeferencing is the output's).
        after: The raster of the second date.

    Raises:
        ConfigurationError: the two do not share size, band count, CRS and transform
            (naming both files and the difference).
    """

    #: Dates read per window.
    dates = 2

    def __init__(self, before: str | Path, after: str | Path) -> None:
        self._sources = []
        for path in (before, after):
            try:
                self._sources.append(rasterio.open(path))
            except rasterio.errors.RasterioIOError as exc:
                self.close()
                raise unreadable_input(path, exc) from exc
        try:
            check_same_grid(*self._sources)
        except Exception:
            self.close()
            raise
        first, second = self._sources
        self.name: str = first.name
        self.names = (first.name, second.name)
        self.height: int = first.height
        self.width: int = first.width
        self.count: int = first.count
        self.crs = first.crs
        self.transform = first.transform
        self.nodata = first.nodata
        self.nodatas = (first.nodata, second.nodata)
        # One dtype holding both dates' values per band.
        self.dtypes = tuple(np.promote_types(a, b).name
                            for a, b in zip(first.dtypes, second.dtypes, strict=True))

    def read(self, indexes: list[int], window: Any = None) -> np.ndarray:
        """Bands ``indexes`` of the before raster, then of the after raster, in ``window``."""
        dtype = self.dtypes[indexes[0] - 1]
        return np.concatenate([src.read(indexes, window=window).astype(dtype, copy=False)
                               for src in self._sources])

    def close(self) -> None:
        """Close both rasters."""
        for src in self._sources:
            src.close()

    def __enter__(self) -> RasterPair:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
