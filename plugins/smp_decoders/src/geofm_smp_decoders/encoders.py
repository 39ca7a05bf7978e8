"""segmentation_models_pytorch encoders as geofm backbones (``smp:<encoder>``).

A few useful encoders are registered up front (listed by ``geofm list``, tested by the
contract tests); any other smp encoder name (``smp:efficientnet-b3``,
``smp:tu-convnext_tiny`` for smp's timm-universal encoders, ...) is resolved when it is
first used. The input level smp returns first, and any 0-channel level (mit encoders
have no stride-2 level), are dropped: the backbone returns the real feature maps,
finest first (strides 2, 4, 8, 16, 32 for depth 5).
"""

from __future__ import annotations

import functools
from typing import Any

import segmentation_models_pytorch as smp
import torch
from torch import nn

__all__ = ["SmpEncoder", "encoder_factory"]


class SmpEncoder(nn.Module):
    """An smp encoder as a geofm backbone.

    Args:
        encoder_name: smp encoder name (``resnet34``, ``efficientnet-b0``, ``mit_b0``,
            ``tu-<timm model>``, ...).
        in_channels: Number of input bands; smp adapts the first convolution.
        depth: Number of stages (3 to 5); the output stride is ``2 ** depth``.
        weights: Pretrained weights smp knows for this encoder (e.g. ``imagenet``;
            downloaded by smp) or ``None`` for random initialisation.
        output_stride: 32, or 16/8 for a dilated encoder.
    """

    def __init__(
        self,
        encoder_name: str,
        in_channels: int = 3,
        depth: int = 5,
        weights: str | None = None,
        output_stride: int = 32,
    ) -> None:
        super().__init__()
        self.encoder: Any = smp.encoders.get_encoder(
            encoder_name, in_channels=in_channels, depth=depth, weights=weights,
            output_stride=output_stride,
        )
        channels = list(self.encoder.out_channels)
        #: Indices of smp's levels that are real features (not the input, not empty).
        self.keep = [i for i, c in enumerate(channels) if i > 0 and c > 0]
        #: geofm backbone contract: channels of each returned level.
        self.out_channels: list[int] = [int(channels[i]) for i in self.keep]
        #: geofm backbone contract: inputs are padded to a multiple of this.
        self.input_multiple: int = 2**depth
        self.in_chans = in_channels
        #: Bands of the loaded weights (smp's are RGB photographs), checked against the
        #: data's band names before training; ``None`` without weights or with more or
        #: fewer bands (smp then adapts the first convolution).
        self.pretrained_bands: tuple[str, ...] | None = (
            ("RED", "GREEN", "BLUE") if weights and in_channels == 3 else None
        )

    def forward(self, x: torch.Tensor, **metadata: Any) -> list[torch.Tensor]:
        """The feature maps of ``x`` (B, C, H, W), finest first; metadata is ignored."""
        features = self.encoder(x)
        return [features[i] for i in self.keep]


def encoder_factory(name: str) -> functools.partial[SmpEncoder] | None:
    """A backbone factory for the smp encoder ``name``, or ``None`` if smp has none."""
    if name.startswith("tu-"):
        import timm

        if not timm.is_model(name[3:]):
            return None
    elif name not in smp.encoders.encoders:
        return None
    return functools.partial(SmpEncoder, name)


def __getattr__(name: str) -> Any:
    # registered targets are "geofm_smp_decoders.encoders:<encoder name>"
    factory = encoder_factory(name)
    if factory is None:
        raise AttributeError(f"segmentation_models_pytorch has no encoder {name!r}")
    return factory
