"""``EmbeddingTask``: a registry backbone's embeddings of chips, for ``geofm predict``.

Nothing is trained: the backbone is built by name (``timm:resnet18``, a
plugin's foundation model with its pretrained weights, ...) or given ready, and
``predict_step`` returns one pooled vector per chip (and, with ``dense``, its per-patch
map). ``geofm predict`` writes them with
:class:`~geofm_core.inference.embedding_writer.EmbeddingWriter`: a GeoParquet file of
the vectors and chip footprints, and per-chip GeoTIFFs of the dense embeddings.
"""

from __future__ import annotations

import inspect
from collections.abc import Sequence
from typing import Any, ClassVar

import torch
from torch import nn

from geofm_core.errors import ConfigurationError, GeofmError
from geofm_core.io.weights import load_weights
from geofm_core.models.embedder import Embedder
from geofm_core.registry import get_registry
from geofm_core.tasks.base import GeofmTask

__all__ = ["EmbeddingTask"]

_NO_TRAINING = (
    "EmbeddingTask embeds with a fixed backbone and trains nothing; run `geofm predict` "
    "with it (or `geofm embed`), or fine-tune with a task that has a loss "
    "(SemanticSegmentationTask, ClassificationTask, ...) and embed with its checkpoint"
)


class EmbeddingTask(GeofmTask):
    """Embeddings of ``image`` (B, C, [T,] H, W) by a backbone built by registry name.

    Args:
        backbone: Registry name of the backbone (kind ``backbone``), e.g. ``timm:resnet18``.
        backbone_kwargs: Its keyword arguments (``pretrained``, ``in_chans``, ``bands``...).
        layer: Which of the backbone's returned features to embed; negative counts from
            the end (default: the last).
        pooling: ``mean`` or ``max`` over the patches of that layer, or ``cls`` (its CLS
            token).
        dense: Also return the per-patch embeddings (B, C, h, w) of each chip.
        model: A ready backbone module used instead of ``backbone``.
        weights_path: Weights loaded (strictly) into the backbone (a ``.safetensors``
            file or a state dict).

    Raises:
        ConfigurationError: Neither ``backbone`` nor ``model`` given, an unknown pooling,
            or (at ``fit``/``validate``/``test``) any attempt to train or evaluate.
    """

    task_name: ClassVar[str] = "embedding"
    needs_classes: ClassVar[bool] = False
    pixelwise: ClassVar[bool] = False
    monitor = "embedding"

    model: Embedder
    _embedding_args: tuple[str | None, dict[str, Any], int, str]

    def __init__(
        self,
        backbone: str | None = None,
        backbone_kwargs: dict[str, Any] | None = None,
        layer: int = -1,
        pooling: str = "mean",
        dense: bool = False,
        model: nn.Module | None = None,
        weights_path: str | None = None,
    ) -> None:
        if backbone is None and model is None:
            raise ConfigurationError(
                "EmbeddingTask needs a backbone: set backbone (a registry name, e.g. "
                "timm:resnet18; `geofm list backbone` shows them) or give a ready model"
            )
        object.__setattr__(self, "_embedding_args",
                           (backbone, dict(backbone_kwargs or {}), layer, pooling))
        super().__init__(model=model, scheduler=None)
        # The base saved its own arguments too; a checkpoint rebuilds this task from its
        # own (geofm infer/embed call ``EmbeddingTask(**hparams)``).
        own = set(inspect.signature(EmbeddingTask.__init__).parameters)
        for key in [k for k in self.hparams if k not in own and not k.startswith("_")]:
            del self.hparams[key]
        if weights_path is not None:
            load_weights(self.model.backbone, weights_path)
        self.eval()  # nothing trains: batch norm and dropout behave as at inference

    def configure_models(self) -> None:
        """Build the backbone by name (or take the ready one) and wrap it in an Embedder."""
        name, kwargs, layer, pooling = self._embedding_args
        backbone = self._ready_model
        if backbone is None:
            assert name is not None
            spec = get_registry().get("backbone", name)
            try:
                backbone = get_registry().build("backbone", spec.qualified_name, **kwargs)
            except GeofmError:
                raise
            except (TypeError, ValueError, RuntimeError) as exc:
                raise ConfigurationError(
                    f"backbone {spec.qualified_name!r} could not be built from "
                    f"backbone_kwargs {kwargs}: {exc}"
                ) from exc
        assert backbone is not None
        self.model = Embedder(backbone, layer=layer, pooling=pooling)

    def configure_losses(self) -> None:
        """Nothing to train: no loss."""

    def _apply_freezing(self) -> None:
        """Nothing is trained, so nothing is frozen (the CLI saves only this task's hparams)."""
        self._frozen = []

    def setup(self, stage: str) -> None:
        """Refuse training and evaluation, which have nothing to optimise or measure."""
        if stage in ("fit", "validate", "test"):
            raise ConfigurationError(f"`geofm {stage}`: {_NO_TRAINING}")
        super().setup(stage)

    def training_step(self, batch: Any, batch_idx: int) -> torch.Tensor:
        """Refused: an embedding task trains nothing."""
        raise ConfigurationError(_NO_TRAINING)

    def validation_step(self, batch: Any, batch_idx: int) -> None:
        """Refused: an embedding task has no metric."""
        raise ConfigurationError(_NO_TRAINING)

    def test_step(self, batch: Any, batch_idx: int) -> None:
        """Refused: an embedding task has no metric."""
        raise ConfigurationError(_NO_TRAINING)

    def embed(self, image: torch.Tensor, **metadata: Any) -> tuple[torch.Tensor, torch.Tensor]:
        """Pooled (B, D) and per-patch (B, C, h, w) embeddings of ``image``, in fp32."""
        out = self.model(image, **metadata)
        return out.pooled.float(), out.dense.float()

    def predict_step(self, batch: Any, batch_idx: int, dataloader_idx: int = 0) -> dict[str, Any]:
        """``{"embedding": (B, D), "filename": [...]}``, and ``"dense"`` (B, C, h, w) if asked."""
        pooled, dense = self.embed(batch["image"], **self.metadata(batch))
        out: dict[str, Any] = {"embedding": pooled, "prediction": pooled,
                               "filename": batch.get("filename"), "patch": self.model.patch}
        if self.hparams["dense"]:
            out["dense"] = dense
        return out

    def default_prediction_writer(self, output_dir: str, overwrite: bool = False) -> Any:
        """The writer ``geofm predict`` uses when the config names none: GeoParquet."""
        from geofm_core.inference.embedding_writer import EmbeddingWriter

        return EmbeddingWriter(output_dir=output_dir, overwrite=overwrite)

    @property
    def embedding_dim(self) -> int | None:
        """Length of the pooled vectors: the chosen layer's channels, when declared."""
        channels: Sequence[int] | None = getattr(self.model.backbone, "out_channels", None)
        if not channels:
            return None
        try:
            return int(channels[self.model.layer])
        except IndexError:
            return None
