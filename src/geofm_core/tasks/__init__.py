"""geofm's Lightning tasks: segmentation, change detection, regression, classification."""

from __future__ import annotations

from geofm_core.tasks.base import GeofmTask
from geofm_core.tasks.change import ChangeDetectionTask
from geofm_core.tasks.classification import ClassificationTask, MultiLabelClassificationTask
from geofm_core.tasks.loss_handler import LossHandler
from geofm_core.tasks.regression import PixelwiseRegressionTask
from geofm_core.tasks.segmentation import SemanticSegmentationTask

__all__ = [
    "ChangeDetectionTask",
    "ClassificationTask",
    "GeofmTask",
    "LossHandler",
    "MultiLabelClassificationTask",
    "PixelwiseRegressionTask",
    "SemanticSegmentationTask",
]
