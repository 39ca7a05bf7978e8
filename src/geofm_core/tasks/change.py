"""Change detection: two dates in, a per-pixel change map out.

``image`` is (B, 2, C, H, W) (before, after: TorchGeo's ``ChangeDetectionTask`` layout),
``mask`` (B, H, W) or (B, 1, H, W) change classes. The loss, the metrics and the
predictions are segmentation's; the model comes from ``geofm:change_detection`` (a
siamese encoder with shared weights) by default.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar

import torch

from geofm_core.models.contracts import ModelOutput
from geofm_core.tasks.segmentation import SemanticSegmentationTask

__all__ = ["BINARY_CHANGE_CLASSES", "ChangeDetectionTask"]

#: Class names of binary change detection, index order.
BINARY_CHANGE_CLASSES = ("no_change", "change")


def _squeeze_mask(batch: Any) -> Any:
    """A (B, 1, H, W) mask (TorchGeo's layout) as (B, H, W) long classes."""
    if not isinstance(batch, Mapping):
        return batch
    mask = batch.get("mask")
    if isinstance(mask, torch.Tensor) and mask.ndim == 4 and mask.shape[1] == 1:
        return {**batch, "mask": mask[:, 0].long()}
    return batch


class ChangeDetectionTask(SemanticSegmentationTask):
    """Change detection of ``image`` (B, 2, C, H, W) into ``mask`` (B, H, W) change classes.

    Binary by default (``num_classes: 2``, classes ``no_change`` and ``change``); more
    classes give multi-class change (e.g. kinds of change). ``ignore_index`` leaves
    pixels out of loss and metrics. Metrics are segmentation's (``mIoU``, ``IoU_<class>``,
    ``F1``, ``accuracy``, per-class precision / recall / F1); with the binary classes the
    best checkpoint is the one of the highest ``val/IoU_change``, else ``val/mIoU``.
    Predictions are the change map (B, H, W) and the per-class probabilities.

    Args:
        model_factory: Registry name of the model factory (default
            ``geofm:change_detection``: backbone shared by both dates, fusion, decoder).
        num_classes: Change classes (default 2).
        class_names: Names of the classes (default ``[no_change, change]`` for 2).
        **kwargs: The other arguments of :class:`~geofm_core.tasks.base.GeofmTask` (loss,
            ignore_index, freezing, optimizer, tiled_inference, ...).
    """

    task_name: ClassVar[str] = "change_detection"
    #: Dates the model takes per sample (``geofm infer`` reads that many rasters).
    input_dates: ClassVar[int] = 2

    def __init__(
        self,
        model_factory: str = "geofm:change_detection",
        num_classes: int | None = 2,
        class_names: list[str] | None = None,
        **kwargs: Any,
    ) -> None:
        model_args = kwargs.get("model_args") or {}
        if num_classes == 2 and "num_classes" in model_args and class_names is None:
            num_classes = int(model_args["num_classes"])  # given once, in model_args
        if class_names is None and num_classes == 2:
            class_names = list(BINARY_CHANGE_CLASSES)
        super().__init__(model_factory=model_factory, num_classes=num_classes,
                         class_names=class_names, **kwargs)
        if "change" in self.class_names:
            self.monitor = "val/IoU_change"

    def _shared_step(
        self, batch: Mapping[str, Any], stage: str
    ) -> tuple[ModelOutput, torch.Tensor]:
        return super()._shared_step(_squeeze_mask(batch), stage)

    def test_step(self, batch: Any, batch_idx: int) -> None:
        """Loss and metrics of a test batch (over tiles when ``tiled_inference`` is set)."""
        super().test_step(_squeeze_mask(batch), batch_idx)
