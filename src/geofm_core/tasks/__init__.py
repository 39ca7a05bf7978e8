"""geofm's Lightning tasks.

Segmentation, change detection, pixelwise regression, classification, multi-label
classification, object detection, instance segmentation, embeddings and
masked-autoencoder reconstruction (continued pre-training).
"""

from __future__ import annotations

from geofm_core.tasks.base import GeofmTask
from geofm_core.tasks.change import ChangeDetectionTask
from geofm_core.tasks.classification import ClassificationTask, MultiLabelClassificationTask
from geofm_core.tasks.detection import InstanceSegmentationTask, ObjectDetectionTask
from geofm_core.tasks.embedding import EmbeddingTask
from geofm_core.tasks.loss_handler import LossHandler
from geofm_core.tasks.reconstruction import ReconstructionTask
from geofm_core.tasks.regression import PixelwiseRegressionTask
from geofm_core.tasks.segmentation import SemanticSegmentationTask

__all__ = [
    "ChangeDetectionTask",
    "ClassificationTask",
    "EmbeddingTask",
    "GeofmTask",
    "InstanceSegmentationTask",
    "LossHandler",
    "MultiLabelClassificationTask",
    "ObjectDetectionTask",
    "PixelwiseRegressionTask",
    "ReconstructionTask",
    "SemanticSegmentationTask",
]
