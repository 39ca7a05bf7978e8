"""The core's heads: segmentation, regression and classification.

A head is built as ``head(in_channels, num_classes, **kwargs)``. Pixel-wise heads map
the decoder's map (B, C, h, w) to (B, num_classes, h, w); the classification head maps a
pooled vector (B, C) to logits (B, num_classes).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from geofm_core.errors import ComponentArgumentError
from geofm_core.models.decoders import make_activation

__all__ = ["ClassificationHead", "RegressionHead", "SegmentationHead"]


#: Layouts of the optional 3x3 blocks of the pixel-wise heads.
CONV_BLOCKS = ("conv_bn_relu", "conv_bias_relu")


def _conv_blocks(in_channels: int, channel_list: Sequence[int] | None,
                 layout: str = "conv_bn_relu") -> tuple[nn.Module, int]:
    """3x3 blocks through ``channel_list``; return them and the last width.

    ``conv_bn_relu``: conv without bias, batch norm, ReLU (flat, three layers per
    block). ``conv_bias_relu``: conv with bias and ReLU, each block its own
    ``Sequential`` (TerraTorch's head layout, so its weights keep their nesting).
    """
    if layout not in CONV_BLOCKS:
        raise ComponentArgumentError(
            f"conv_block must be one of {', '.join(CONV_BLOCKS)}, got {layout!r}"
        )
    layers: list[nn.Module] = []
    previous = in_channels
    for width in channel_list or ():
        if layout == "conv_bias_relu":
            layers.append(nn.Sequential(nn.Conv2d(previous, width, 3, padding=1), nn.ReLU()))
        else:
            layers += [
                nn.Conv2d(previous, width, 3, padding=1, bias=False),
                nn.BatchNorm2d(width),
                nn.ReLU(inplace=True),
            ]
        previous = width
    return nn.Sequential(*layers), previous


def _check_dropout(dropout: float, what: str) -> None:
    if not 0 <= dropout < 1:
        raise ComponentArgumentError(f"{what}: dropout must be in [0, 1), got {dropout}")


class SegmentationHead(nn.Module):
    """Optional 3x3 conv-BN-ReLU blocks, dropout, then a 1x1 conv to class logits.

    Args:
        in_channels: Channels of the decoder's output.
        num_classes: Number of classes.
        channel_list: Widths of conv blocks before the classifier (none by default).
        dropout: Dropout probability before the classifier.
        conv_block: Layout of the ``channel_list`` blocks: ``conv_bn_relu`` (default)
            or ``conv_bias_relu`` (conv with bias and ReLU, no norm: TerraTorch's).
        kernel_size: Kernel of the classifier conv (1; smp's segmentation head uses 3).
    """

    def __init__(
        self,
        in_channels: int,
        num_classes: int,
        channel_list: Sequence[int] | None = None,
        dropout: float = 0.0,
        conv_block: str = "conv_bn_relu",
        kernel_size: int = 1,
    ) -> None:
        super().__init__()
        if num_classes < 1 or kernel_size < 1 or kernel_size % 2 == 0:
            raise ComponentArgumentError(
                f"segmentation head: num_classes must be >= 1 and kernel_size odd, got "
                f"{num_classes} and {kernel_size}"
            )
        _check_dropout(dropout, "segmentation head")
        self.blocks, width = _conv_blocks(in_channels, channel_list, conv_block)
        self.dropout = nn.Dropout(dropout) if dropout else nn.Identity()
        self.classifier = nn.Conv2d(width, num_classes, kernel_size=kernel_size,
                                    padding=kernel_size // 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Class logits (B, num_classes, h, w)."""
        out: torch.Tensor = self.classifier(self.dropout(self.blocks(x)))
        return out


class _Upscale(nn.Sequential):
    """A 2x transposed convolution followed by a 3x3 conv-BN-ReLU."""

    def __init__(self, channels: int) -> None:
        super().__init__(
            nn.ConvTranspose2d(channels, channels, kernel_size=2, stride=2),
            nn.Conv2d(channels, channels, 3, padding=1, bias=False),
            nn.BatchNorm2d(channels),
            nn.ReLU(inplace=True),
        )


class RegressionHead(nn.Module):
    """Optional learned 2x upscaling and conv blocks, dropout, a 1x1 conv, a final activation.

    Args:
        in_channels: Channels of the decoder's output.
        num_classes: Number of regressed values per pixel (1 for pixel-wise regression).
        final_act: Activation applied to the output (e.g. ``relu`` for non-negative
            targets, ``sigmoid`` for fractions); none by default.
        learned_upscale_layers: Number of learned 2x upscaling layers before the output.
        channel_list: Widths of 3x3 conv blocks before the output (none by default).
        dropout: Dropout probability before the output.
        conv_block: Layout of the ``channel_list`` blocks (see ``SegmentationHead``).
    """

    def __init__(
        self,
        in_channels: int,
        num_classes: int = 1,
        final_act: str | None = None,
        learned_upscale_layers: int = 0,
        channel_list: Sequence[int] | None = None,
        dropout: float = 0.0,
        conv_block: str = "conv_bn_relu",
    ) -> None:
        super().__init__()
        if learned_upscale_layers < 0:
            raise ComponentArgumentError(
                f"regression head: learned_upscale_layers must be >= 0, "
                f"got {learned_upscale_layers}"
            )
        _check_dropout(dropout, "regression head")
        self.upscale = nn.Sequential(
            *[_Upscale(in_channels) for _ in range(learned_upscale_layers)]
        )
        self.blocks, width = _conv_blocks(in_channels, channel_list, conv_block)
        self.dropout = nn.Dropout(dropout) if dropout else nn.Identity()
        self.output = nn.Conv2d(width, num_classes, kernel_size=1)
        self.final_act = make_activation(final_act) if final_act else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Regressed values (B, num_classes, h', w')."""
        x = self.blocks(self.upscale(x))
        out: torch.Tensor = self.final_act(self.output(self.dropout(x)))
        return out


class ClassificationHead(nn.Module):
    """Optional hidden linear layers (with activation and dropout), then class logits.

    Args:
        in_channels: Length of the pooled feature vector.
        num_classes: Number of classes (or labels, for multi-label classification).
        dim_list: Widths of hidden layers (none by default).
        dropout: Dropout probability before each linear layer.
        activation: Activation after each hidden layer.
    """

    def __init__(
        self,
        in_channels: int,
        num_classes: int,
        dim_list: Sequence[int] | None = None,
        dropout: float = 0.0,
        activation: str = "relu",
    ) -> None:
        super().__init__()
        if num_classes < 1:
            raise ComponentArgumentError(
                f"classification head: num_classes must be >= 1, got {num_classes}"
            )
        _check_dropout(dropout, "classification head")
        layers: list[nn.Module] = []
        previous = in_channels
        for width in dim_list or ():
            layers += [nn.Dropout(dropout) if dropout else nn.Identity(),
                       nn.Linear(previous, width), make_activation(activation)]
            previous = width
        layers += [nn.Dropout(dropout) if dropout else nn.Identity(),
                   nn.Linear(previous, num_classes)]
        self.layers = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Logits (B, num_classes) of a pooled feature vector (B, C)."""
        out: torch.Tensor = self.layers(x)
        return out
