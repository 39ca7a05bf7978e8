"""GeoTIFF datasets and datamodules defined at run time.

Importing this package is cheap; the classes (which need torch, rasterio and lightning)
load on first access: ``from geofm_core.data import GeoTiffSegmentationDataModule``.
"""

from __future__ import annotations

from geofm_core._lazy import lazy_exports

__all__ = [
    "GeoTiffChangeDetectionDataModule",
    "GeoTiffChangeDetectionDataset",
    "GeoTiffChangePairDataset",
    "GeoTiffChipDataModule",
    "GeoTiffClassificationDataModule",
    "GeoTiffClassificationDataset",
    "GeoTiffDetectionDataset",
    "GeoTiffImageDataModule",
    "GeoTiffImageDataset",
    "GeoTiffInstanceSegmentationDataModule",
    "GeoTiffMultiLabelDataModule",
    "GeoTiffMultiLabelDataset",
    "GeoTiffObjectDetectionDataModule",
    "GeoTiffRegressionDataModule",
    "GeoTiffRegressionDataset",
    "GeoTiffSceneDataModule",
    "GeoTiffSegmentationDataModule",
    "GeoTiffSegmentationDataset",
    "HLSBands",
    "Preprocessing",
    "build_augmentation",
    "resolve_bands",
]

_LAZY = {
    "GeoTiffChangeDetectionDataModule": "geofm_core.data.change",
    "GeoTiffChangeDetectionDataset": "geofm_core.data.change",
    "GeoTiffChangePairDataset": "geofm_core.data.change",
    "GeoTiffChipDataModule": "geofm_core.data.datamodules",
    "GeoTiffClassificationDataModule": "geofm_core.data.datamodules",
    "GeoTiffMultiLabelDataModule": "geofm_core.data.datamodules",
    "GeoTiffRegressionDataModule": "geofm_core.data.datamodules",
    "GeoTiffSegmentationDataModule": "geofm_core.data.datamodules",
    "GeoTiffClassificationDataset": "geofm_core.data.datasets",
    "GeoTiffImageDataModule": "geofm_core.data.unlabelled",
    "GeoTiffImageDataset": "geofm_core.data.datasets",
    "GeoTiffMultiLabelDataset": "geofm_core.data.datasets",
    "GeoTiffRegressionDataset": "geofm_core.data.datasets",
    "GeoTiffSegmentationDataset": "geofm_core.data.datasets",
    "GeoTiffSceneDataModule": "geofm_core.data.scene",
    "GeoTiffDetectionDataset": "geofm_core.data.detection_chips",
    "GeoTiffObjectDetectionDataModule": "geofm_core.data.detection",
    "GeoTiffInstanceSegmentationDataModule": "geofm_core.data.detection",
    "HLSBands": "geofm_core.data.bands",
    "Preprocessing": "geofm_core.data.preprocessing",
    "resolve_bands": "geofm_core.data.bands",
    "build_augmentation": "geofm_core.data.augment",
}


__getattr__, __dir__ = lazy_exports(__name__, _LAZY)
