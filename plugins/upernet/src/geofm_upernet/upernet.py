"""UperNet decoder following MMSeg's ``UPerHead``: a pyramid pooling module and an FPN.

On 4 pyramid levels (strides 4, 8, 16, 32 for a CNN; a ViT gets there through necks
such as ``geofm:learned_interpolate_to_pyramidal``): the pyramid pooling module (PPM)
pools the last level at ``pool_scales`` (1, 2, 3, 6), each pooled map goes through a
1x1 conv-BN-ReLU and is upsampled back; they are concatenated with the level and fused
by a 3x3 conv-BN-ReLU (the PPM bottleneck). The other levels get 1x1 lateral
conv-BN-ReLUs; a top-down pass adds each upsampled coarser lateral to the finer one;
3x3 conv-BN-ReLUs smooth every level but the last; all are upsampled to the finest
level, concatenated and fused by a 3x3 conv-BN-ReLU into ``channels`` channels at
stride 4. Classification (dropout, 1x1 conv) is left to the geofm head.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import ClassVar

import torch
import torch.nn.functional as F
from torch import nn

from geofm_core import ComponentArgumentError

__all__ = ["ConvBNReLU", "PyramidPoolingModule", "UperNetDecoder"]


class ConvBNReLU(nn.Sequential):
    """Convolution (no bias), batch norm, ReLU: MMSeg's ``ConvModule`` defaults."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int) -> None:
        super().__init__(
            nn.Conv2d(in_channels, out_channels, kernel_size, padding=kernel_size // 2,
                      bias=False),
            nn.BatchNorm2d(out_channels),
            nn.ReLU(inplace=True),
        )


class PyramidPoolingModule(nn.ModuleList):
    """Average-pool a map at several scales; 1x1 conv-BN-ReLU each; upsample back.

    Args:
        pool_scales: Output sizes of the adaptive average pooling.
        in_channels: Channels of the pooled map.
        channels: Channels of each pooled branch.
        align_corners: ``align_corners`` of the bilinear upsampling.
    """

    def __init__(
        self, pool_scales: Sequence[int], in_channels: int, channels: int, align_corners: bool
    ) -> None:
        super().__init__(
            nn.Sequential(nn.AdaptiveAvgPool2d(scale), ConvBNReLU(in_channels, channels, 1))
            for scale in pool_scales
        )
        self.align_corners = align_corners

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        """The upsampled branch outputs, one per pool scale."""
        return [
            F.interpolate(branch(x), size=x.shape[2:], mode="bilinear",
                          align_corners=self.align_corners)
            for branch in self
        ]


class UperNetDecoder(nn.Module):
    """UperNet (MMSeg ``UPerHead``) on exactly 4 pyramid levels, finest first.

    Args:
        in_channels: Channels of the 4 levels (finest first).
        channels: Channels of the laterals, the FPN and the output.
        pool_scales: Pool scales of the pyramid pooling module on the last level.
        align_corners: ``align_corners`` of every bilinear resize.
    """

    #: geofm factories check this at build time and name the component before it.
    required_levels: ClassVar[int] = 4

    def __init__(
        self,
        in_channels: Sequence[int],
        channels: int = 256,
        pool_scales: Sequence[int] = (1, 2, 3, 6),
        align_corners: bool = False,
    ) -> None:
        super().__init__()
        levels = [int(c) for c in in_channels]
        if len(levels) != self.required_levels:
            raise ComponentArgumentError(
                f"upernet:upernet needs exactly {self.required_levels} feature levels, got "
                f"{len(levels)} (channels {levels}); select 4 with geofm:select_indices or "
                "build a pyramid with geofm:learned_interpolate_to_pyramidal"
            )
        if channels < 1 or not pool_scales or any(s < 1 for s in pool_scales):
            raise ComponentArgumentError(
                f"upernet:upernet needs channels >= 1 and positive pool_scales, got "
                f"channels={channels}, pool_scales={list(pool_scales)}"
            )
        self.align_corners = align_corners
        self.psp_modules = PyramidPoolingModule(pool_scales, levels[-1], channels, align_corners)
        self.bottleneck = ConvBNReLU(levels[-1] + len(pool_scales) * channels, channels, 3)
        self.lateral_convs = nn.ModuleList(ConvBNReLU(c, channels, 1) for c in levels[:-1])
        self.fpn_convs = nn.ModuleList(ConvBNReLU(channels, channels, 3) for _ in levels[:-1])
        self.fpn_bottleneck = ConvBNReLU(len(levels) * channels, channels, 3)
        #: geofm decoder contract: channels of the output map.
        self.out_channels = channels

    def _resize(self, x: torch.Tensor, size: torch.Size) -> torch.Tensor:
        return F.interpolate(x, size=size, mode="bilinear", align_corners=self.align_corners)

    def psp_forward(self, x: torch.Tensor) -> torch.Tensor:
        """The pyramid pooling module with its bottleneck, on the last level."""
        bottleneck: torch.Tensor = self.bottleneck(torch.cat([x, *self.psp_modules(x)], dim=1))
        return bottleneck

    def forward(self, features: list[torch.Tensor]) -> torch.Tensor:
        """Fuse the 4 levels into one map at the finest level's resolution."""
        if self.training and features[-1].shape[0] == 1:
            # Otherwise torch's cryptic "Expected more than 1 value per channel".
            raise ComponentArgumentError(
                "upernet:upernet cannot train on a batch of one image: its pooling branch "
                "of scale 1 batch-normalises a 1x1 map (as in MMSeg). Use batch_size >= 2, "
                "and drop_last: true so that no epoch ends with a single image"
            )
        laterals = [conv(features[i]) for i, conv in enumerate(self.lateral_convs)]
        laterals.append(self.psp_forward(features[-1]))
        for i in range(len(laterals) - 1, 0, -1):
            laterals[i - 1] = laterals[i - 1] + self._resize(laterals[i], laterals[i - 1].shape[2:])
        outs = [conv(laterals[i]) for i, conv in enumerate(self.fpn_convs)]
        outs.append(laterals[-1])
        size = outs[0].shape[2:]
        outs = [outs[0], *(self._resize(o, size) for o in outs[1:])]
        fused: torch.Tensor = self.fpn_bottleneck(torch.cat(outs, dim=1))
        return fused
