"""timm models as geofm backbones (``timm:<model name>``)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import timm
import torch
from torch import nn

__all__ = ["TimmBackbone"]


class TimmBackbone(nn.Module):
    """A timm model built with ``features_only=True``: returns a list of feature maps.

    Args:
        model_name: Any timm model name (``geofm list backbone 'timm:PATTERN'``).
        pretrained: Load timm's pretrained weights (from its cache or hub).
        in_chans: Number of input bands; timm adapts the first convolution.
        out_indices: Which feature levels to return (default: all of them).
        checkpoint_path: Local weights file to load instead of the hub's.
        model_kwargs: Further keyword arguments for ``timm.create_model``.
    """

    def __init__(
        self,
        model_name: str,
        pretrained: bool = False,
        in_chans: int = 3,
        out_indices: Sequence[int] | None = None,
        checkpoint_path: str = "",
        model_kwargs: dict[str, Any] | None = None,
    ) -> None:
        super().__init__()
        kwargs: dict[str, Any] = {"features_only": True, "in_chans": in_chans}
        if out_indices is not None:
            kwargs["out_indices"] = tuple(out_indices)
        kwargs.update(model_kwargs or {})
        self.model = timm.create_model(
            model_name, pretrained=pretrained, checkpoint_path=checkpoint_path, **kwargs
        )
        info: Any = self.model.feature_info
        #: Channels of each returned feature level.
        self.out_channels: list[int] = list(info.channels())
        #: Stride of each returned level relative to the input.
        self.reductions: list[int] = list(info.reduction())
        #: Input sizes must be multiples of this (the model pads otherwise).
        self.input_multiple: int = max(self.reductions)
        cfg: Any = getattr(self.model, "pretrained_cfg", None) or {}
        rgb = tuple(cfg.get("input_size") or ())[:1] == (3,) and in_chans == 3
        #: Bands of the loaded weights (timm's are RGB images), checked against the data's
        #: band names before training; ``None`` without weights or with an adapted first
        #: layer (its channels then stand for no band).
        self.pretrained_bands: tuple[str, ...] | None = (
            ("RED", "GREEN", "BLUE") if rgb and (pretrained or checkpoint_path) else None
        )

    def forward(self, x: torch.Tensor, **metadata: Any) -> list[torch.Tensor]:
        """Return the feature maps of ``x`` (B, C, H, W); metadata is ignored."""
        return list(self.model(x))
