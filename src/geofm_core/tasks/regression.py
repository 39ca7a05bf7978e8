"""Pixel-wise regression: one value per pixel, RMSE, MAE and R2 over the valid pixels."""

from __future__ import annotations

from typing import Any, ClassVar

import torch
from torchmetrics import MeanAbsoluteError, MeanSquaredError, MetricCollection, R2Score

from geofm_core.tasks.base import GeofmTask

__all__ = ["PixelwiseRegressionTask"]


class PixelwiseRegressionTask(GeofmTask):
    """Pixel-wise regression of ``image`` (B, C, [T,] H, W) to ``mask`` (B, H, W) floats.

    The model's output is (B, H, W) (a (B, 1, H, W) output is squeezed). NaN targets
    and targets equal to ``ignore_index`` take no part in the loss and metrics
    (``RMSE``, ``MAE``, ``R2``). Predictions are the values. Arguments: see
    :class:`GeofmTask`; ``num_classes``, ``class_names`` and ``class_weights`` do not
    apply.
    """

    task_name: ClassVar[str] = "regression"
    default_loss: ClassVar[str] = "mse"
    target_key: ClassVar[str] = "mask"
    needs_classes: ClassVar[bool] = False

    def configure_metrics(self) -> None:
        """Create the regression metrics for train, val and test."""
        metrics = MetricCollection({
            "RMSE": MeanSquaredError(squared=False),
            "MAE": MeanAbsoluteError(),
            "R2": R2Score(),
        })
        self.set_stage_metrics(metrics)

    def adapt_output(self, output: torch.Tensor) -> torch.Tensor:
        """Squeeze a (B, 1, H, W) output to (B, H, W)."""
        return output.squeeze(1) if output.ndim == 4 and output.shape[1] == 1 else output

    def update_metrics(self, stage: str, output: torch.Tensor, target: torch.Tensor) -> None:
        """Update the stage's metrics with the valid pixels only."""
        target = target.to(output.dtype)
        valid = torch.isfinite(target)
        if self.hparams["ignore_index"] is not None:
            valid &= target != self.hparams["ignore_index"]
        self._metrics(stage).update(output[valid], target[valid])

    def prediction_outputs(self, output: torch.Tensor) -> dict[str, Any]:
        """The predicted values (B, H, W)."""
        return {"prediction": output}
