"""Semantic segmentation: per-pixel classes, mIoU (macro and micro), per-class IoU, accuracy, F1."""

from __future__ import annotations

from typing import Any, ClassVar

import torch
from torchmetrics import ClasswiseWrapper, MetricCollection
from torchmetrics.classification import (
    MulticlassAccuracy,
    MulticlassConfusionMatrix,
    MulticlassF1Score,
    MulticlassJaccardIndex,
)

from geofm_core.tasks.base import GeofmTask
from geofm_core.tasks.class_metrics import per_class_metrics

__all__ = ["SemanticSegmentationTask"]


class SemanticSegmentationTask(GeofmTask):
    """Semantic segmentation of ``image`` (B, C, [T,] H, W) into ``mask`` (B, H, W) classes.

    The model's output is (B, num_classes, H, W) logits. Metrics: ``mIoU`` (macro),
    ``mIoU_micro``, ``IoU_<class>``, ``accuracy`` (pixel accuracy), ``F1`` (macro),
    ``precision_<class>``, ``recall_<class>``, ``F1_<class>``, logged as ``train/…``,
    ``val/…`` and ``test/…``, and a confusion matrix per validation/test epoch. The best
    checkpoint is the one of the highest ``val/mIoU``. Predictions are the class map
    and the per-class probabilities. Arguments: see :class:`GeofmTask`.
    """

    monitor = "val/mIoU"
    mode = "max"
    task_name: ClassVar[str] = "segmentation"
    default_loss: ClassVar[str] = "ce"
    target_key: ClassVar[str] = "mask"

    def configure_metrics(self) -> None:
        """Create the segmentation metrics for train, val and test."""
        assert self.num_classes is not None
        kwargs: dict[str, Any] = {
            "num_classes": self.num_classes, "ignore_index": self.hparams["ignore_index"],
        }
        metrics = MetricCollection({
            "mIoU": MulticlassJaccardIndex(average="macro", **kwargs),
            "mIoU_micro": MulticlassJaccardIndex(average="micro", **kwargs),
            "IoU": ClasswiseWrapper(
                MulticlassJaccardIndex(average="none", **kwargs),
                labels=self.class_names, prefix="IoU_",
            ),
            "accuracy": MulticlassAccuracy(average="micro", **kwargs),
            "F1": MulticlassF1Score(average="macro", **kwargs),
            **per_class_metrics(self.class_names, **kwargs),
        # Compute groups would share states between the per-class wrappers and their
        # macro twins, and torchmetrics then warns that the wrappers were never updated.
        }, compute_groups=False)
        self.set_stage_metrics(metrics, MulticlassConfusionMatrix(**kwargs))

    def update_metrics(self, stage: str, output: torch.Tensor, target: torch.Tensor) -> None:
        """Update the stage's metrics with the predicted class map."""
        predicted = output.argmax(1)
        self._metrics(stage).update(predicted, target)
        self.update_confusion(stage, predicted, target)

    def prediction_outputs(self, output: torch.Tensor) -> dict[str, Any]:
        """Class map (B, H, W) and probabilities (B, num_classes, H, W)."""
        probabilities = output.softmax(1)
        return {"prediction": probabilities.argmax(1), "probabilities": probabilities}
