"""Image classification: one class per image, or several labels per image (multi-label)."""

from __future__ import annotations

from typing import Any, ClassVar

import torch
from torchmetrics import ClasswiseWrapper, MetricCollection
from torchmetrics.classification import (
    MulticlassAccuracy,
    MulticlassConfusionMatrix,
    MulticlassF1Score,
    MultilabelAccuracy,
    MultilabelAveragePrecision,
    MultilabelF1Score,
)

from geofm_core.tasks.base import GeofmTask
from geofm_core.tasks.class_metrics import per_class_metrics

__all__ = ["ClassificationTask", "MultiLabelClassificationTask"]


class ClassificationTask(GeofmTask):
    """Classification of ``image`` (B, C, [T,] H, W) into one ``label`` (B,) per image.

    The model's output is (B, num_classes) logits. Metrics: ``accuracy`` (micro),
    ``accuracy_macro``, ``F1`` (macro), ``accuracy_<class>``, ``precision_<class>``,
    ``recall_<class>``, ``F1_<class>``, and a confusion matrix per validation/test epoch.
    Predictions are the class and the probabilities. Arguments: see :class:`GeofmTask`.
    """

    task_name: ClassVar[str] = "classification"
    default_loss: ClassVar[str] = "ce"
    target_key: ClassVar[str] = "label"
    pixelwise: ClassVar[bool] = False

    def configure_metrics(self) -> None:
        """Create the classification metrics for train, val and test."""
        assert self.num_classes is not None
        kwargs: dict[str, Any] = {
            "num_classes": self.num_classes, "ignore_index": self.hparams["ignore_index"],
        }
        metrics = MetricCollection({
            "accuracy": MulticlassAccuracy(average="micro", **kwargs),
            "accuracy_macro": MulticlassAccuracy(average="macro", **kwargs),
            "F1": MulticlassF1Score(average="macro", **kwargs),
            "per_class": ClasswiseWrapper(
                MulticlassAccuracy(average="none", **kwargs),
                labels=self.class_names, prefix="accuracy_",
            ),
            **per_class_metrics(self.class_names, **kwargs),
        # Compute groups would share states between the per-class wrappers and their
        # macro twins, and torchmetrics then warns that the wrappers were never updated.
        }, compute_groups=False)
        self.set_stage_metrics(metrics, MulticlassConfusionMatrix(**kwargs))

    def update_metrics(self, stage: str, output: torch.Tensor, target: torch.Tensor) -> None:
        """Update the stage's metrics with the predicted classes."""
        predicted = output.argmax(1)
        self._metrics(stage).update(predicted, target)
        self.update_confusion(stage, predicted, target)

    def prediction_outputs(self, output: torch.Tensor) -> dict[str, Any]:
        """Class (B,) and probabilities (B, num_classes)."""
        probabilities = output.softmax(1)
        return {"prediction": probabilities.argmax(1), "probabilities": probabilities}


class MultiLabelClassificationTask(GeofmTask):
    """Multi-label classification of ``image`` into ``label`` (B, num_classes) of 0/1.

    The model's output is (B, num_classes) logits. Metrics: ``mAP`` (macro average
    precision), ``F1`` (macro), ``accuracy`` and ``AP_<class>``. Predictions are the
    labels (probability above 0.5) and the probabilities. Arguments: see
    :class:`GeofmTask`.
    """

    task_name: ClassVar[str] = "multilabel"
    default_loss: ClassVar[str] = "bce"
    target_key: ClassVar[str] = "label"
    pixelwise: ClassVar[bool] = False

    def configure_metrics(self) -> None:
        """Create the multi-label metrics for train, val and test."""
        assert self.num_classes is not None
        kwargs: dict[str, Any] = {
            "num_labels": self.num_classes, "ignore_index": self.hparams["ignore_index"],
        }
        metrics = MetricCollection({
            "mAP": MultilabelAveragePrecision(average="macro", **kwargs),
            "F1": MultilabelF1Score(average="macro", **kwargs),
            "accuracy": MultilabelAccuracy(average="macro", **kwargs),
            "per_class": ClasswiseWrapper(
                MultilabelAveragePrecision(average="none", **kwargs),
                labels=self.class_names, prefix="AP_",
            ),
        })
        self.set_stage_metrics(metrics)

    def update_metrics(self, stage: str, output: torch.Tensor, target: torch.Tensor) -> None:
        """Update the stage's metrics with the probabilities."""
        self._metrics(stage).update(output.sigmoid(), target.long())

    def prediction_outputs(self, output: torch.Tensor) -> dict[str, Any]:
        """Labels (B, num_classes) of 0/1 and probabilities (B, num_classes)."""
        probabilities = output.sigmoid()
        return {"prediction": (probabilities > 0.5).long(), "probabilities": probabilities}
