"""Masked-autoencoding (continued) pre-training: reconstruct hidden patches of unlabelled images.

The model comes from ``geofm:mae`` (:mod:`geofm_core.models.mae`) or any module with a
``forward_mae(x, **metadata)`` that returns a :class:`~geofm_core.models.mae.MAEOutput`.
Batches need only ``image`` (labels, when the data module has them, are ignored). The
encoder of a finished run is then fine-tuned by any task through
``model_args.backbone_weights: <run>.ckpt`` (see :mod:`geofm_core.io.weights`).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar

import torch
from torch import nn

from geofm_core.errors import ConfigurationError
from geofm_core.tasks import guards
from geofm_core.tasks.base import GeofmTask

__all__ = ["ReconstructionTask"]


class ReconstructionTask(GeofmTask):
    """Masked autoencoding of ``image`` (B, C, [T,] H, W): the loss is the model's MAE loss.

    Logs ``{train,val,test}/loss`` (the masked-patch MSE). ``predict`` returns the
    reconstruction (``prediction``, B, C, H, W; a time series as B, T*C, H, W, frame
    after frame like the input files; in per-patch normalised units when the model uses
    ``norm_pix_loss``) and the ``mask`` of hidden pixels (B, [T,] H, W; 1 = hidden).
    ``geofm predict`` writes the reconstructions as GeoTIFFs.

    Args:
        model_factory: Registry name of the model factory (default ``geofm:mae``).
        model_args: Arguments of ``build_model``: ``backbone``, ``backbone_kwargs``,
            ``decoder``, ``decoder_kwargs``, ``mask_ratio``, ``mask_mode``,
            ``norm_pix_loss``.
        model: A ready module with ``forward_mae``, instead of a factory.
        freeze_backbone: Train the decoder only.
        freeze_decoder: Train the encoder only.
        lr: Learning rate.
        optimizer: Name of a ``torch.optim`` optimizer class.
        optimizer_hparams: Extra keyword arguments of the optimizer.
        scheduler: Name of a ``torch.optim.lr_scheduler`` class, or None.
        scheduler_hparams: Extra keyword arguments of the scheduler.
        lr_overrides: Substring of a parameter name -> learning rate.
        weights_path: Weights loaded (strictly) into the built model.
    """

    task_name: ClassVar[str] = "reconstruction"
    needs_classes: ClassVar[bool] = False
    #: Predictions are images (``geofm predict`` writes them as GeoTIFFs).
    pixelwise: ClassVar[bool] = True
    target_key: ClassVar[str] = "image"

    def __init__(
        self,
        model_factory: str = "geofm:mae",
        model_args: dict[str, Any] | None = None,
        model: nn.Module | None = None,
        freeze_backbone: bool = False,
        freeze_decoder: bool = False,
        lr: float = 1.5e-4,
        optimizer: str = "AdamW",
        optimizer_hparams: dict[str, Any] | None = None,
        scheduler: str | None = None,
        scheduler_hparams: dict[str, Any] | None = None,
        lr_overrides: dict[str, float] | None = None,
        weights_path: str | None = None,
    ) -> None:
        super().__init__(
            model_factory=model_factory, model_args=model_args, model=model,
            freeze_backbone=freeze_backbone, freeze_decoder=freeze_decoder, lr=lr,
            optimizer=optimizer, optimizer_hparams=optimizer_hparams, scheduler=scheduler,
            scheduler_hparams=scheduler_hparams, lr_overrides=lr_overrides,
            weights_path=weights_path,
        )
        if not callable(getattr(self.model, "forward_mae", None)):
            raise ConfigurationError(
                f"ReconstructionTask needs a model with forward_mae(x) (geofm:mae builds "
                f"one); {type(self.model).__name__} has none"
            )

    def configure_losses(self) -> None:
        """No loss handler: the masked autoencoder scores itself (its ``forward_mae``)."""

    def _mae_step(self, batch: Mapping[str, Any], stage: str) -> torch.Tensor:
        if not isinstance(batch, Mapping) or "image" not in batch:
            raise ConfigurationError(
                "ReconstructionTask takes batches with an 'image' entry (any geofm data "
                "module; labels are not needed)"
            )
        image = batch["image"]
        forward_mae: Any = self.model.forward_mae
        loss: torch.Tensor = forward_mae(image, **self.metadata(batch)).loss
        self.log(f"{stage}/loss", loss, batch_size=image.shape[0],
                 on_step=stage == "train", on_epoch=True, prog_bar=True, sync_dist=True)
        return loss

    def training_step(self, batch: Any, batch_idx: int) -> torch.Tensor:
        """The masked-patch loss of a batch; a NaN / inf loss stops the run."""
        self._guard_batch = {"filename": batch.get("filename")} if isinstance(
            batch, Mapping) else None
        loss = self._mae_step(batch, "train")
        guards.check_finite_loss(loss, self.global_step, self.current_epoch, batch)
        return loss

    def validation_step(self, batch: Any, batch_idx: int) -> None:
        """Log the validation loss (a fresh random mask per batch)."""
        self._mae_step(batch, "val")

    def test_step(self, batch: Any, batch_idx: int) -> None:
        """Log the test loss."""
        self._mae_step(batch, "test")

    def predict_step(self, batch: Any, batch_idx: int, dataloader_idx: int = 0) -> dict[str, Any]:
        """``{"prediction": reconstruction, "mask": hidden pixels, "filename": ...}``."""
        output = self(batch["image"], **self.metadata(batch))
        image = output.output.float()
        if image.ndim == 5:  # (B, C, T, H, W) -> (B, T*C, H, W), frame after frame
            image = image.transpose(1, 2).flatten(1, 2)
        return {
            "prediction": image,
            "mask": output.auxiliary_heads.get("mask"),
            "filename": batch.get("filename"),
        }
