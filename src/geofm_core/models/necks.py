"""Necks: reshape a backbone's feature list into what a decoder expects.

Every neck is built as ``neck(in_channels, **kwargs)``, maps a list of features to a list
of features in ``forward(features, *, image_size)`` and declares ``out_channels``. They
compose: ``reshape_tokens_to_image`` turns ViT token sequences into feature maps,
``select_indices`` keeps some levels, ``learned_interpolate_to_pyramidal`` builds a
4-level pyramid for UperNet-like decoders. The definitions of the TerraTorch necks of the
same names are kept (scales, channel rules), so configs carry over.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import ClassVar

import torch
import torch.nn.functional as F
from torch import nn

from geofm_core.errors import ComponentArgumentError

__all__ = [
    "AddBottleneckLayer",
    "AggregateTokens",
    "InterpolateToPyramidal",
    "LearnedInterpolateToPyramidal",
    "MaxpoolToPyramidal",
    "Neck",
    "PermuteDims",
    "ReshapeTokensToImage",
    "SelectIndices",
    "token_grid",
]


class Neck(nn.Module):
    """Base class of geofm's necks: stores ``in_channels`` and declares ``out_channels``.

    Args:
        in_channels: Channels of each incoming feature.
    """

    def __init__(self, in_channels: Sequence[int]) -> None:
        super().__init__()
        if isinstance(in_channels, int) or not len(in_channels):
            raise ComponentArgumentError(
                f"{type(self).__name__} needs a non-empty list of input channels, "
                f"got {in_channels!r}"
            )
        #: Channels of each incoming feature.
        self.in_channels: list[int] = [int(c) for c in in_channels]
        #: Channels of each outgoing feature (geofm neck contract).
        self.out_channels: list[int] = list(self.in_channels)

    def forward(
        self, features: list[torch.Tensor], *, image_size: tuple[int, int] | None = None
    ) -> list[torch.Tensor]:
        """Transform ``features``; ``image_size`` is the (padded) model input's H, W."""
        raise NotImplementedError


class SelectIndices(Neck):
    """Keep the features at ``indices`` (negative indices count from the end).

    Args:
        in_channels: Channels of each incoming feature.
        indices: Which features to keep, in order.
    """

    def __init__(self, in_channels: Sequence[int], indices: Sequence[int]) -> None:
        super().__init__(in_channels)
        n = len(self.in_channels)
        bad = [i for i in indices if not -n <= i < n]
        if bad or not len(indices):
            raise ComponentArgumentError(
                f"select_indices got indices {list(indices)} but its input has {n} features "
                f"(valid: {-n}..{n - 1}, at least one)"
            )
        self.indices = [int(i) for i in indices]
        self.out_channels = [self.in_channels[i] for i in self.indices]

    def forward(
        self, features: list[torch.Tensor], *, image_size: tuple[int, int] | None = None
    ) -> list[torch.Tensor]:
        """Return the selected features."""
        return [features[i] for i in self.indices]


def token_grid(num_tokens: int, image_size: tuple[int, int] | None) -> tuple[int, int]:
    """The (h, w) patch grid holding ``num_tokens`` tokens for an image of ``image_size``.

    The grid's aspect ratio follows the image's, so non-square inputs (e.g. 64 x 96 with
    16-pixel patches: 4 x 6 tokens) reshape correctly. Without ``image_size`` the grid
    must be square.

    Raises:
        ComponentArgumentError: No grid of that many tokens fits.
    """
    if image_size is not None:
        height, width = image_size
        patch = math.sqrt(height * width / num_tokens)
        # a patch embedding without padding floors the grid, one with padding ceils it
        for h in sorted({math.floor(height / patch), round(height / patch),
                         math.ceil(height / patch)}):
            for w in sorted({math.floor(width / patch), round(width / patch),
                             math.ceil(width / patch)}):
                if h * w == num_tokens:
                    return h, w
        raise ComponentArgumentError(
            f"cannot arrange {num_tokens} tokens in a grid for an image of "
            f"{height} x {width} pixels; is there a CLS or register token to remove, or "
            "several frames per sample (then set effective_time_dim of "
            "geofm:reshape_tokens_to_image to the number of frames)?"
        )
    side = math.isqrt(num_tokens)
    if side * side != num_tokens:
        raise ComponentArgumentError(
            f"cannot reshape {num_tokens} tokens into a square grid and no image size "
            "was given; pass image_size to the neck"
        )
    return side, side


class ReshapeTokensToImage(Neck):
    """Reshape token sequences (B, [1 +] T*h*w, C) into feature maps (B, C*T, h, w).

    Args:
        in_channels: Channels of each feature once reshaped (embed_dim * T, as the
            backbone declares them).
        remove_cls_token: Drop the first token (a CLS token) before reshaping.
        effective_time_dim: Number of time steps T the tokens hold (frames divided by the
            tubelet size); their embeddings are stacked along the channels.
        patch_size: The backbone's patch size, if known: the grid is then simply the
            image size divided by it (which also keeps ONNX exports dynamic in size);
            otherwise it is inferred from the token count and the image's aspect ratio.
    """

    def __init__(
        self,
        in_channels: Sequence[int],
        remove_cls_token: bool = True,
        effective_time_dim: int = 1,
        patch_size: int | None = None,
    ) -> None:
        super().__init__(in_channels)
        if effective_time_dim < 1:
            raise ComponentArgumentError(
                f"reshape_tokens_to_image: effective_time_dim must be >= 1, got "
                f"{effective_time_dim}"
            )
        if patch_size is not None and patch_size < 1:
            raise ComponentArgumentError(
                f"reshape_tokens_to_image: patch_size must be >= 1, got {patch_size}"
            )
        self.remove_cls_token = remove_cls_token
        self.effective_time_dim = effective_time_dim
        self.patch_size = patch_size

    def forward(
        self, features: list[torch.Tensor], *, image_size: tuple[int, int] | None = None
    ) -> list[torch.Tensor]:
        """Reshape each token sequence; feature maps (4-D) pass through unchanged."""
        out = []
        for x in features:
            if x.ndim == 4:
                out.append(x)
                continue
            if x.ndim != 3:
                raise ValueError(
                    f"reshape_tokens_to_image expects token sequences (B, N, C), got a "
                    f"tensor of shape {tuple(x.shape)}"
                )
            tokens = x[:, 1:] if self.remove_cls_token else x
            batch, count, dim = tokens.shape
            t = self.effective_time_dim
            if count % t:
                raise ValueError(
                    f"reshape_tokens_to_image: {count} tokens do not split into "
                    f"effective_time_dim={t} time steps"
                )
            if self.patch_size is not None and image_size is not None:
                h, w = image_size[0] // self.patch_size, image_size[1] // self.patch_size
            else:
                h, w = token_grid(count // t, image_size)
            grid = tokens.reshape(batch, t, h, w, dim).permute(0, 1, 4, 2, 3)
            out.append(grid.reshape(batch, t * dim, h, w).contiguous())
        return out


class InterpolateToPyramidal(Neck):
    """Upsample same-resolution features into a pyramid (TerraTorch's definition).

    Feature ``i`` of ``n`` is scaled by ``scale_factor ** (n - i)``: with 4 features at
    stride 16 the output strides are 1, 2, 4 and 8.

    Args:
        in_channels: Channels of each incoming feature.
        scale_factor: Scale between consecutive levels.
        mode: Interpolation mode of ``torch.nn.functional.interpolate``.
    """

    def __init__(
        self, in_channels: Sequence[int], scale_factor: int = 2, mode: str = "nearest"
    ) -> None:
        super().__init__(in_channels)
        self.scale_factor = scale_factor
        self.mode = mode

    def forward(
        self, features: list[torch.Tensor], *, image_size: tuple[int, int] | None = None
    ) -> list[torch.Tensor]:
        """Return the upsampled features."""
        n = len(features)
        return [
            F.interpolate(x, scale_factor=float(self.scale_factor ** (n - i)), mode=self.mode)
            for i, x in enumerate(features)
        ]


class LearnedInterpolateToPyramidal(Neck):
    """Turn 4 same-resolution features into a pyramid with learned layers (TerraTorch's).

    Level 0 is upsampled 4x by two transposed convolutions (channels C/2 then C/4,
    batch norm and GELU between), level 1 upsampled 2x (channels C/2), level 2 kept and
    level 3 max-pooled 2x: from ViT features at stride 16, strides 4, 8, 16 and 32.

    Args:
        in_channels: Channels of the 4 incoming features.
    """

    #: The factory checks this at build time and names the component before it.
    required_levels: ClassVar[int] = 4

    def __init__(self, in_channels: Sequence[int]) -> None:
        super().__init__(in_channels)
        c = self.in_channels
        if len(c) != 4:
            raise ComponentArgumentError(
                f"learned_interpolate_to_pyramidal needs exactly 4 input features, got "
                f"{len(c)} (channels {c}); put select_indices with 4 indices before it"
            )
        self.fpn1 = nn.Sequential(
            nn.ConvTranspose2d(c[0], c[0] // 2, 2, 2),
            nn.BatchNorm2d(c[0] // 2),
            nn.GELU(),
            nn.ConvTranspose2d(c[0] // 2, c[0] // 4, 2, 2),
        )
        self.fpn2 = nn.ConvTranspose2d(c[1], c[1] // 2, 2, 2)
        self.fpn3 = nn.Identity()
        self.fpn4 = nn.MaxPool2d(kernel_size=2, stride=2)
        self.out_channels = [c[0] // 4, c[1] // 2, c[2], c[3]]

    def forward(
        self, features: list[torch.Tensor], *, image_size: tuple[int, int] | None = None
    ) -> list[torch.Tensor]:
        """Return the 4 pyramid levels."""
        return [
            self.fpn1(features[0]),
            self.fpn2(features[1]),
            self.fpn3(features[2]),
            self.fpn4(features[3]),
        ]


class MaxpoolToPyramidal(Neck):
    """Downsample same-resolution features into a pyramid: feature ``i`` pooled by k**i.

    Args:
        in_channels: Channels of each incoming feature.
        kernel_size: Base kernel size of the max pooling.
    """

    def __init__(self, in_channels: Sequence[int], kernel_size: int = 2) -> None:
        super().__init__(in_channels)
        self.kernel_size = kernel_size

    def forward(
        self, features: list[torch.Tensor], *, image_size: tuple[int, int] | None = None
    ) -> list[torch.Tensor]:
        """Return the pooled features (the first one unchanged)."""
        return [
            x if i == 0 else F.max_pool2d(x, kernel_size=self.kernel_size**i)
            for i, x in enumerate(features)
        ]


_POOLINGS = ("mean", "max", "sum", "concat")


class AggregateTokens(Neck):
    """Merge several features of one shape (e.g. the outputs of several layers) into one.

    Args:
        in_channels: Channels of each incoming feature.
        pooling: ``mean``, ``max`` or ``sum`` (same channels needed), or ``concat``
            (along the channels: tokens' last dim, maps' dim 1).
        indices: Which features to merge (default: all).
    """

    def __init__(
        self,
        in_channels: Sequence[int],
        pooling: str = "mean",
        indices: Sequence[int] | None = None,
    ) -> None:
        super().__init__(in_channels)
        if pooling not in _POOLINGS:
            raise ComponentArgumentError(
                f"aggregate_tokens: pooling must be one of {', '.join(_POOLINGS)}, "
                f"got {pooling!r}"
            )
        self.pooling = pooling
        n = len(self.in_channels)
        self.indices = list(range(n)) if indices is None else [int(i) for i in indices]
        if not self.indices or any(not -n <= i < n for i in self.indices):
            raise ComponentArgumentError(
                f"aggregate_tokens got indices {indices} for {n} input features"
            )
        chosen = [self.in_channels[i] for i in self.indices]
        if pooling == "concat":
            self.out_channels = [sum(chosen)]
        else:
            if len(set(chosen)) != 1:
                raise ComponentArgumentError(
                    f"aggregate_tokens with pooling={pooling!r} needs equal channels, got "
                    f"{chosen}; use pooling='concat'"
                )
            self.out_channels = [chosen[0]]

    def forward(
        self, features: list[torch.Tensor], *, image_size: tuple[int, int] | None = None
    ) -> list[torch.Tensor]:
        """Return a one-item list with the merged feature."""
        chosen = [features[i] for i in self.indices]
        if self.pooling == "concat":
            dim = -1 if chosen[0].ndim == 3 else 1
            return [torch.cat(chosen, dim=dim)]
        stacked = torch.stack(chosen, dim=0)
        if self.pooling == "mean":
            return [stacked.mean(dim=0)]
        if self.pooling == "max":
            return [stacked.amax(dim=0)]
        return [stacked.sum(dim=0)]


class PermuteDims(Neck):
    """Permute the dimensions of every feature (``tensor.permute(*new_order)``).

    Channels are declared unchanged: use it for layout fixes that keep the channel
    dimension's meaning (e.g. a channels-last backbone: ``[0, 3, 1, 2]``).

    Args:
        in_channels: Channels of each incoming feature.
        new_order: The permutation, batch dimension included.
    """

    def __init__(self, in_channels: Sequence[int], new_order: Sequence[int]) -> None:
        super().__init__(in_channels)
        if sorted(new_order) != list(range(len(new_order))):
            raise ComponentArgumentError(
                f"permute_dims: new_order {list(new_order)} is not a permutation of "
                f"0..{len(new_order) - 1}"
            )
        self.new_order = [int(i) for i in new_order]

    def forward(
        self, features: list[torch.Tensor], *, image_size: tuple[int, int] | None = None
    ) -> list[torch.Tensor]:
        """Return the permuted features."""
        return [x.permute(*self.new_order).contiguous() for x in features]


class AddBottleneckLayer(Neck):
    """Append a feature: the last one with its channels halved by a 1x1 convolution.

    Gives decoders that expect one more level than the backbone has (several smp
    decoders) the level they miss.

    Args:
        in_channels: Channels of each incoming feature.
    """

    def __init__(self, in_channels: Sequence[int]) -> None:
        super().__init__(in_channels)
        last = self.in_channels[-1]
        if last < 2:
            raise ComponentArgumentError(
                f"add_bottleneck_layer needs a last feature of at least 2 channels, got {last}"
            )
        self.bottleneck = nn.Conv2d(last, last // 2, kernel_size=1)
        self.out_channels = [*self.in_channels, last // 2]

    def forward(
        self, features: list[torch.Tensor], *, image_size: tuple[int, int] | None = None
    ) -> list[torch.Tensor]:
        """Return the features with the bottleneck feature appended."""
        return [*features, self.bottleneck(features[-1])]
