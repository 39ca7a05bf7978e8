"""A model factory following geofm's ``ModelFactory`` contract."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, ClassVar

import torch
import torch.nn.functional as F
from torch import nn

from geofm_core import ModelOutput
from geofm_plugin_example.backbone import TinyCNN


class TinySegmenter(nn.Module):
    """TinyCNN features summed top-down (FPN-style) and a 1x1 classifier, at input size."""

    def __init__(self, in_chans: int, num_outputs: int, widths: Sequence[int]) -> None:
        super().__init__()
        self.backbone = TinyCNN(in_chans, widths)
        self.lateral = nn.ModuleList(nn.Conv2d(w, widths[0], 1) for w in widths)
        self.head = nn.Conv2d(widths[0], num_outputs, 1)

    def freeze_encoder(self) -> None:
        """Stop gradients to the backbone."""
        self.backbone.requires_grad_(False)

    def freeze_decoder(self) -> None:
        """Stop gradients to the lateral convolutions."""
        self.lateral.requires_grad_(False)

    def forward(self, x: torch.Tensor, **metadata: Any) -> ModelOutput:
        """Predict one value per class (or one regression value) per pixel."""
        size = x.shape[-2:]
        pad_h, pad_w = (-size[0]) % 32, (-size[1]) % 32
        padded = F.pad(x, (0, pad_w, 0, pad_h))
        features = self.backbone(padded)
        y = self.lateral[-1](features[-1])
        for lateral, feature in zip(self.lateral[-2::-1], features[-2::-1], strict=True):
            y = F.interpolate(y, size=feature.shape[-2:], mode="nearest") + lateral(feature)
        y = F.interpolate(self.head(y), size=padded.shape[-2:], mode="bilinear")
        out = y[..., : size[0], : size[1]]
        return ModelOutput(out.squeeze(1) if self.head.out_channels == 1 else out)


class TinySegmenterFactory:
    """Builds :class:`TinySegmenter` for segmentation (``num_classes``) or regression."""

    #: The tasks ``build_model`` accepts (geofm's contract tests build each).
    tasks: ClassVar[tuple[str, ...]] = ("segmentation", "regression")

    def build_model(
        self,
        task: str,
        num_classes: int | None = None,
        in_chans: int = 6,
        widths: Sequence[int] = (16, 32, 64, 128),
    ) -> TinySegmenter:
        """Build the model for ``task`` ("segmentation" or "regression")."""
        if task == "segmentation":
            if not num_classes:
                raise ValueError("example:tiny_segmenter needs num_classes for segmentation")
            return TinySegmenter(in_chans, num_classes, widths)
        if task == "regression":
            return TinySegmenter(in_chans, 1, widths)
        raise ValueError(
            f"example:tiny_segmenter builds {' or '.join(map(repr, self.tasks))} models, "
            f"not {task!r}"
        )
