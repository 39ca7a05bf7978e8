"""A small CNN backbone following geofm's backbone contract."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from torch import nn


class TinyCNN(nn.Module):
    """A 4-stage CNN returning feature maps at strides 4, 8, 16 and 32.

    Args:
        in_chans: Number of input bands.
        widths: Channels of the four stages.
    """

    def __init__(self, in_chans: int = 6, widths: Sequence[int] = (16, 32, 64, 128)) -> None:
        super().__init__()
        if len(widths) != 4:
            raise ValueError(f"TinyCNN needs 4 stage widths, got {list(widths)}")
        stages: list[nn.Module] = []
        previous = in_chans
        for i, width in enumerate(widths):
            stride = 4 if i == 0 else 2
            stages.append(
                nn.Sequential(
                    nn.Conv2d(previous, width, 3, stride=stride, padding=1, bias=False),
                    nn.BatchNorm2d(width),
                    nn.ReLU(inplace=True),
                    nn.Conv2d(width, width, 3, padding=1, bias=False),
                    nn.BatchNorm2d(width),
                    nn.ReLU(inplace=True),
                )
            )
            previous = width
        self.stages = nn.ModuleList(stages)
        #: geofm contract: channels of each returned level.
        self.out_channels = list(widths)
        #: geofm contract: inputs are padded to a multiple of this.
        self.input_multiple = 32

    def forward(self, x: torch.Tensor, **metadata: Any) -> list[torch.Tensor]:
        """Return the four feature maps of ``x`` (B, C, H, W)."""
        features = []
        for stage in self.stages:
            x = stage(x)
            features.append(x)
        return features
