"""Chip datasets: folders of GeoTIFF chips read with rasterio.

Each item is a dict following the batch contract: ``"image"`` float (C, H, W), or
(C, T, H, W) with ``expand_temporal_dimension``; ``"mask"`` (segmentation: long (H, W);
regression: float (H, W), NaN = ignore); ``"label"`` (classification: long scalar;
multi-label: float (num_classes,)); ``"filename"``: the image path.

Images are read through :class:`~geofm_core.data.preprocessing.Preprocessing`: the
selected bands (only those), cast to float32, multiplied by ``constant_scale``; pixels
equal to the file's nodata value or NaN become ``no_data_replace`` (when set); then
``(x - mean) / std`` per band when means/stds are set.

The classes live by concern: :mod:`geofm_core.data.images` (images only),
:mod:`geofm_core.data.paired` (label rasters paired by name),
:mod:`geofm_core.data.labelled` (a label per chip); this module gathers them.
"""

from __future__ import annotations

from geofm_core.data.images import GeoTiffImageDataset, collate_samples
from geofm_core.data.labelled import GeoTiffClassificationDataset, GeoTiffMultiLabelDataset
from geofm_core.data.paired import GeoTiffRegressionDataset, GeoTiffSegmentationDataset

__all__ = [
    "GeoTiffClassificationDataset",
    "GeoTiffImageDataset",
    "GeoTiffMultiLabelDataset",
    "GeoTiffRegressionDataset",
    "GeoTiffSegmentationDataset",
    "collate_samples",
]
