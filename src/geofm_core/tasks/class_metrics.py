"""Per-class precision, recall and F1, shared by the segmentation and classification tasks."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from torchmetrics import ClasswiseWrapper, Metric
from torchmetrics.classification import MulticlassF1Score, MulticlassPrecision, MulticlassRecall

__all__ = ["per_class_metrics"]


def per_class_metrics(class_names: Sequence[str] | None, **kwargs: Any) -> dict[str, Metric]:
    """``precision_<class>``, ``recall_<class>`` and ``F1_<class>`` metrics.

    Args:
        class_names: One label per class (the task's ``class_names``).
        **kwargs: ``num_classes`` and ``ignore_index`` of the torchmetrics classes.
    """
    labels = list(class_names) if class_names else None
    return {
        f"{name}_per_class": ClasswiseWrapper(cls(average="none", **kwargs), labels=labels,
                                              prefix=f"{name}_")
        for name, cls in (("precision", MulticlassPrecision), ("recall", MulticlassRecall),
                          ("F1", MulticlassF1Score))
    }
