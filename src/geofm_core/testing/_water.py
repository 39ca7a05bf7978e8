"""Real detection test data: the water bodies of the Sen1Floods11 chip as vector labels.

:func:`water_bodies` writes the real Sentinel-2 chip (some of its bands, optionally a
corner of it) as a GeoTIFF and its hand-labelled water as polygons: each connected
region of ``LabelHand == 1`` (4-connected, via ``rasterio.features.shapes``) is one
feature with ``class = "water"``. The polygons follow the pixel edges, so boxes and
masks derived from them can be checked against the label raster exactly.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from geofm_core.data.bands import SENTINEL2_L1C_BANDS

__all__ = ["WaterBodies", "water_bodies"]

#: Vector formats :func:`water_bodies` writes: file ending and GDAL driver.
_FORMATS = {"gpkg": ("gpkg", "GPKG"), "geojson": ("geojson", "GeoJSON"),
            "shp": ("shp", "ESRI Shapefile")}
#: Prithvi's six HLS bands in the 13-band L1C chip.
_DEFAULT_BANDS = ("BLUE", "GREEN", "RED", "NIR_NARROW", "SWIR_1", "SWIR_2")


@dataclass
class WaterBodies:
    """Where :func:`water_bodies` wrote the files, and what they hold.

    Attributes:
        directory: the folder given.
        images: the folder of the image (``directory/images``).
        image: the Sentinel-2 GeoTIFF (``<chip>_S2Hand.tif``, the chip's CRS EPSG:4326).
        labels: the vector file of water polygons (``directory/labels/<chip>_water.<fmt>``;
            pairs with the image under ``label_pattern="*_water.<fmt>"`` and
            ``img_pattern="*_S2Hand.tif"``).
        label_raster: the LabelHand raster on the image's grid (-1 nodata, 0 land, 1
            water), outside ``images`` (``directory/rasters``), to check derived targets.
        crs: the CRS of ``labels`` (as given, or the image's).
        count: the number of polygons.
        band_names: the bands of ``image``, in order (its ``dataset_bands``).
        class_attribute: the column holding the class (``"class"``).
        classes: the object classes (``["water"]``).
    """

    directory: Path
    images: Path
    image: Path
    labels: Path
    label_raster: Path
    crs: str
    count: int
    band_names: list[str]
    class_attribute: str = "class"
    classes: list[str] = field(default_factory=lambda: ["water"])


def water_bodies(
    directory: str | Path,
    crs: str | None = None,
    fmt: str = "gpkg",
    *,
    bands: Sequence[str] | None = _DEFAULT_BANDS,
    size: int | None = None,
) -> WaterBodies:
    """Write the Sen1Floods11 S2 chip and its water polygons; the test is skipped without data.

    Args:
        directory: where ``images/``, ``labels/`` and ``rasters/`` are made.
        crs: write the polygons in this CRS (e.g. ``"EPSG:3857"``) so that reading them
            reprojects; default the image's (EPSG:4326).
        fmt: ``"gpkg"``, ``"geojson"`` or ``"shp"``.
        bands: which of the 13 L1C bands the image keeps, by name (default Prithvi's six:
            BLUE, GREEN, RED, NIR_NARROW, SWIR_1, SWIR_2); None keeps all.
        size: keep only the top-left ``size`` x ``size`` pixels (the chip is 512 x 512).

    Returns:
        The paths and facts of the files written (:class:`WaterBodies`).
    """
    import geopandas as gpd
    import rasterio
    import shapely
    from rasterio.features import shapes
    from rasterio.windows import Window

    from geofm_core.testing._real_data import SEN1FLOODS11_CHIP, shared_data

    if fmt not in _FORMATS:
        raise ValueError(f"fmt must be one of {sorted(_FORMATS)}, got {fmt!r}")
    data = shared_data("sen1floods11")
    root = Path(directory)
    names = list(SENTINEL2_L1C_BANDS if bands is None else bands)
    indexes = [SENTINEL2_L1C_BANDS.index(n) + 1 for n in names]
    paths = {sub: root / sub for sub in ("images", "labels", "rasters")}
    for folder in paths.values():
        folder.mkdir(parents=True, exist_ok=True)
    image = paths["images"] / f"{SEN1FLOODS11_CHIP}_S2Hand.tif"
    label_raster = paths["rasters"] / f"{SEN1FLOODS11_CHIP}_LabelHand.tif"
    with rasterio.open(data / f"{SEN1FLOODS11_CHIP}_S2Hand.tif") as src:
        window = Window(0, 0, size or src.width, size or src.height)
        profile = _profile(src, window, len(indexes))
        with rasterio.open(image, "w", **profile) as dst:
            dst.write(src.read(indexes, window=window))
    with rasterio.open(data / f"{SEN1FLOODS11_CHIP}_LabelHand.tif") as src:
        label = src.read(1, window=window)
        transform = src.window_transform(window)
        image_crs = src.crs
        profile = _profile(src, window, 1)
        with rasterio.open(label_raster, "w", **profile) as dst:
            dst.write(label[None])
    water = (label == 1).astype(np.uint8)
    polygons = [shapely.geometry.shape(geometry) for geometry, _ in
                shapes(water, mask=water.astype(bool), transform=transform)]
    frame = gpd.GeoDataFrame({"class": ["water"] * len(polygons)}, geometry=polygons,
                             crs=image_crs.to_wkt())
    if crs is not None:
        frame = frame.to_crs(crs)
    suffix, driver = _FORMATS[fmt]
    labels = paths["labels"] / f"{SEN1FLOODS11_CHIP}_water.{suffix}"
    frame.to_file(labels, driver=driver, engine="pyogrio")
    return WaterBodies(directory=root, images=paths["images"], image=image, labels=labels,
                       label_raster=label_raster, crs=crs or image_crs.to_string(),
                       count=len(polygons), band_names=names)


def _profile(src: Any, window: Any, count: int) -> dict[str, Any]:
    profile = dict(src.profile)
    profile.update(driver="GTiff", count=count, height=int(window.height),
                   width=int(window.width), transform=src.window_transform(window))
    for key in ("blockxsize", "blockysize", "tiled", "interleave"):
        profile.pop(key, None)
    return profile
