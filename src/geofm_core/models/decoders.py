"""The core's simple decoders: fcn (MMSeg's FCN head), upscale_fcn, identity, linear and mlp.

A decoder is built as ``decoder(in_channels, **kwargs)``, maps a feature list to one
feature map (B, C, h, w) and declares ``out_channels``. A decoder that needs an exact
number of levels declares it as the class attribute ``required_levels`` so the factory
can say so at build time.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from geofm_core.errors import ComponentArgumentError

__all__ = [
    "ConvNormAct",
    "FCNDecoder",
    "IdentityDecoder",
    "LinearDecoder",
    "MLPDecoder",
    "UpscaleFCNDecoder",
    "make_activation",
    "pick_level",
]

_ACTIVATIONS: dict[str, type[nn.Module]] = {
    "relu": nn.ReLU,
    "gelu": nn.GELU,
    "silu": nn.SiLU,
    "leaky_relu": nn.LeakyReLU,
    "tanh": nn.Tanh,
    "sigmoid": nn.Sigmoid,
    "identity": nn.Identity,
}


def make_activation(name: str) -> nn.Module:
    """An activation module by (case-insensitive) name: relu, gelu, silu, ..."""
    key = name.lower()
    if key not in _ACTIVATIONS:
        raise ComponentArgumentError(
            f"unknown activation {name!r}; choose one of {', '.join(_ACTIVATIONS)}"
        )
    return _ACTIVATIONS[key]()


class ConvNormAct(nn.Sequential):
    """Convolution, batch norm and ReLU (MMSeg's ``ConvModule`` with its defaults)."""

    def __init__(
        self, in_channels: int, out_channels: int, kernel_size: int, dilation: int = 1
    ) -> None:
        super().__init__(
            nn.Conv2d(in_channels, out_channels, kernel_size,
                      padding=(kernel_size // 2) * dilation, dilation=dilation, bias=False),
            nn.BatchNorm2d(out_channels),
            nn.ReLU(inplace=True),
        )


def pick_level(in_channels: Sequence[int], index: int, what: str) -> int:
    """Check that ``index`` selects one of ``in_channels``; return that level's channels."""
    n = len(in_channels)
    if isinstance(in_channels, int) or not n:
        raise ComponentArgumentError(f"{what} needs a non-empty channel list, got {in_channels!r}")
    if not -n <= index < n:
        raise ComponentArgumentError(
            f"{what}: in_index {index} is out of range for {n} input features"
        )
    return int(in_channels[index])


class FCNDecoder(nn.Module):
    """MMSeg's FCN head on one level: ``num_convs`` conv-BN-ReLU, optionally concat input.

    Args:
        in_channels: Channels of each incoming feature.
        channels: Channels of the convolutions (and of the output).
        num_convs: Number of conv-BN-ReLU blocks (0 needs ``channels`` == the input's).
        kernel_size: Kernel size of the convolutions.
        concat_input: Concatenate the input with the conv output and fuse them with one
            more conv-BN-ReLU.
        dilation: Dilation of the convolutions.
        in_index: Which feature to decode.
    """

    def __init__(
        self,
        in_channels: Sequence[int],
        channels: int = 256,
        num_convs: int = 2,
        kernel_size: int = 3,
        concat_input: bool = True,
        dilation: int = 1,
        in_index: int = -1,
    ) -> None:
        super().__init__()
        c_in = pick_level(in_channels, in_index, "fcn decoder")
        if num_convs < 0:
            raise ComponentArgumentError(f"fcn decoder: num_convs must be >= 0, got {num_convs}")
        if num_convs == 0 and c_in != channels:
            raise ComponentArgumentError(
                f"fcn decoder: num_convs=0 needs channels == input channels ({c_in}), "
                f"got {channels}"
            )
        self.in_index = in_index
        layers: list[nn.Module] = [
            ConvNormAct(c_in if i == 0 else channels, channels, kernel_size, dilation)
            for i in range(num_convs)
        ]
        self.convs = nn.Sequential(*layers) if layers else nn.Identity()
        self.conv_cat = (
            ConvNormAct(c_in + channels, channels, kernel_size) if concat_input else None
        )
        #: Channels of the output map (geofm decoder contract).
        self.out_channels = channels

    def forward(self, features: list[torch.Tensor]) -> torch.Tensor:
        """Decode the selected feature map."""
        x = features[self.in_index]
        out: torch.Tensor = self.convs(x)
        if self.conv_cat is not None:
            out = self.conv_cat(torch.cat([x, out], dim=1))
        return out


class _ChannelNorm(nn.Module):
    """LayerNorm over the channels of a (B, C, H, W) map (the LayerNorm is ``ln``)."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.ln = nn.LayerNorm(channels, eps=1e-6)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Normalise each pixel's channel vector."""
        out: torch.Tensor = self.ln(x.permute(0, 2, 3, 1)).permute(0, 3, 1, 2)
        return out.contiguous()


class UpscaleFCNDecoder(nn.Module):
    """Upsampling FCN on one level: ``num_convs`` x (2x transposed conv, 3x3 conv, LayerNorm, GELU).

    The output is ``2 ** num_convs`` times the level's resolution (a ViT's 16-pixel grid
    back to pixels with the default 4 blocks): the layout of TerraTorch's
    ``FCNDecoder``, whose weights it takes under the same names.

    Args:
        in_channels: Channels of each incoming feature.
        channels: Channels of every block (and of the output).
        num_convs: Number of upsampling blocks (at least one).
        in_index: Which feature to decode.
    """

    def __init__(self, in_channels: Sequence[int], channels: int = 256, num_convs: int = 4,
                 in_index: int = -1) -> None:
        super().__init__()
        c_in = pick_level(in_channels, in_index, "upscale_fcn decoder")
        if num_convs < 1 or channels < 1:
            raise ComponentArgumentError(
                f"upscale_fcn decoder: num_convs and channels must be >= 1, got {num_convs} "
                f"and {channels}"
            )
        self.in_index = in_index
        self.convs = nn.Sequential(*(
            nn.Sequential(
                nn.ConvTranspose2d(c_in if i == 0 else channels, channels, 2, stride=2),
                nn.Conv2d(channels, channels, 3, padding=1),
                _ChannelNorm(channels),
                nn.GELU(),
            ) for i in range(num_convs)
        ))
        #: Channels of the output map (geofm decoder contract).
        self.out_channels = channels

    def forward(self, features: list[torch.Tensor]) -> torch.Tensor:
        """Upsample the selected feature map."""
        out: torch.Tensor = self.convs(features[self.in_index])
        return out


class IdentityDecoder(nn.Module):
    """Return one feature unchanged (e.g. for classification, or a head-only model).

    Args:
        in_channels: Channels of each incoming feature.
        out_index: Which feature to return.
    """

    def __init__(self, in_channels: Sequence[int], out_index: int = -1) -> None:
        super().__init__()
        self.out_channels = pick_level(in_channels, out_index, "identity decoder")
        self.out_index = out_index

    def forward(self, features: list[torch.Tensor]) -> torch.Tensor:
        """Return the selected feature."""
        return features[self.out_index]


class LinearDecoder(nn.Module):
    """A per-pixel linear map (1x1 conv) of one level, optionally upsampled by pixel shuffle.

    Args:
        in_channels: Channels of each incoming feature.
        channels: Output channels (default: the selected level's).
        upsampling: Pixel-shuffle factor (1: none); the conv then emits
            ``channels * upsampling**2`` channels.
        in_index: Which feature to decode.
    """

    def __init__(
        self,
        in_channels: Sequence[int],
        channels: int | None = None,
        upsampling: int = 1,
        in_index: int = -1,
    ) -> None:
        super().__init__()
        c_in = pick_level(in_channels, in_index, "linear decoder")
        if upsampling < 1:
            raise ComponentArgumentError(
                f"linear decoder: upsampling must be >= 1, got {upsampling}"
            )
        out = channels or c_in
        self.in_index = in_index
        self.proj = nn.Conv2d(c_in, out * upsampling**2, kernel_size=1)
        self.shuffle = nn.PixelShuffle(upsampling) if upsampling > 1 else nn.Identity()
        self.out_channels = out

    def forward(self, features: list[torch.Tensor]) -> torch.Tensor:
        """Project (and upsample) the selected feature map."""
        out: torch.Tensor = self.shuffle(self.proj(features[self.in_index]))
        return out


class MLPDecoder(nn.Module):
    """A per-pixel MLP (1x1 convs with activations) on one level.

    Args:
        in_channels: Channels of each incoming feature.
        channels: Width of every layer (and of the output).
        num_layers: Number of layers.
        activation: Activation after each layer (relu, gelu, silu, ...).
        in_index: Which feature to decode.
    """

    def __init__(
        self,
        in_channels: Sequence[int],
        channels: int = 256,
        num_layers: int = 2,
        activation: str = "relu",
        in_index: int = -1,
    ) -> None:
        super().__init__()
        c_in = pick_level(in_channels, in_index, "mlp decoder")
        if num_layers < 1:
            raise ComponentArgumentError(f"mlp decoder: num_layers must be >= 1, got {num_layers}")
        layers: list[nn.Module] = []
        for i in range(num_layers):
            layers += [nn.Conv2d(c_in if i == 0 else channels, channels, 1),
                       make_activation(activation)]
        self.in_index = in_index
        self.mlp = nn.Sequential(*layers)
        self.out_channels = channels

    def forward(self, features: list[torch.Tensor]) -> torch.Tensor:
        """Apply the MLP to every pixel of the selected feature map."""
        out: torch.Tensor = self.mlp(features[self.in_index])
        return out
