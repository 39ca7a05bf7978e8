"""Where an input raster may live: a local file, or anything GDAL reads by URL.

``https://host/scene.tif`` (a Cloud-Optimized GeoTIFF is read by HTTP range requests,
only the blocks needed), ``s3://bucket/key.tif``, ``gs://``, ``az://``, ``oss://`` and
GDAL's own ``/vsicurl/``, ``/vsis3/``, ``/vsigs/``... paths are passed to rasterio as
they are; credentials come from GDAL's usual environment (``AWS_*``,
``GOOGLE_APPLICATION_CREDENTIALS``, ...). Outputs are always local files, written
atomically (:mod:`geofm_core.io.atomic`).
"""

from __future__ import annotations

import re
from pathlib import Path

from geofm_core.errors import ConfigurationError

__all__ = ["input_location", "is_remote", "unreadable_input"]

_URL = re.compile(r"^(?:[a-z0-9]+\+)*(?:https?|ftp|s3|gs|az|oss)://", re.IGNORECASE)


def is_remote(location: str | Path) -> bool:
    """Whether ``location`` is a URL or a GDAL virtual path, not a local file path.

    A ``pathlib.Path`` is always local (it would have collapsed ``//`` in a URL).
    """
    if isinstance(location, Path):
        return False
    return bool(_URL.match(location)) or location.startswith("/vsi")


def input_location(location: str | Path) -> str | Path:
    """The input as rasterio should open it: the string of a URL, else a ``Path``."""
    return str(location) if is_remote(location) else Path(location)


def unreadable_input(location: str | Path, exc: Exception) -> ConfigurationError:
    """One error for an input that rasterio/GDAL could not open, naming it and the fix."""
    if is_remote(location):
        return ConfigurationError(
            f"cannot read the raster at {location} ({exc}). Check that the URL is right "
            "and reachable from this machine and that it serves a GeoTIFF (HTTP servers "
            "must answer range requests); for s3://, gs:// and az:// give GDAL the "
            "credentials (e.g. AWS_ACCESS_KEY_ID or AWS_NO_SIGN_REQUEST=YES)"
        )
    return ConfigurationError(f"{location} is not a readable raster ({exc}); give a GeoTIFF")
