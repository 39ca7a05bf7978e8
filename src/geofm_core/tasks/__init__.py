"""geofm's Lightning tasks: segmentation, regression, classification, embeddings, MAE."""

from __future__ import annotations

from geofm_core.tasks.base import GeofmTask
from geofm_core.tasks.classification import ClassificationTask, MultiLabelClassificationTask
from geofm_core.tasks.embedding import EmbeddingTask
from geofm_core.tasks.loss_handler import LossHandler
from geofm_core.tasks.reconstruction import ReconstructionTask
from geofm_core.tasks.regression import PixelwiseRegressionTask
from geofm_core.tasks.segmentation import SemanticSegmentationTask

__all__ = [
    "ClassificationTask",
    "EmbeddingTask",
    "GeofmTask",
    "LossHandler",
    "MultiLabelClassificationTask",
    "PixelwiseRegressionTask",
    "ReconstructionTask",
    "SemanticSegmentationTask",
]
