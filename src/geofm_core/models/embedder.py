"""``Embedder``: a backbone's features of one layer as pooled vectors and per-patch maps.

A backbone returns feature maps (B, C, h, w) or token sequences (B, [1 +] T*h*w, C)
(see :mod:`geofm_core.models.contracts`). The embedder picks one of them (``layer``,
default the last), turns tokens into a map on the patch grid (frames stacked along the
channels, as ``geofm:reshape_tokens_to_image`` does) and pools it: ``mean`` or ``max``
over the patches, or ``cls``, the backbone's CLS token. One pixel of the map is one
patch: its size in input pixels is :attr:`Embedder.patch` after a forward pass.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import torch
from torch import nn

from geofm_core.errors import ComponentArgumentError, ConfigurationError
from geofm_core.models.necks import token_grid
from geofm_core.models.pixelwise import input_multiple_of, pad_to_multiple

__all__ = ["POOLINGS", "Embedder", "Embeddings", "tokens_to_map"]

#: Poolings of the patch tokens of one layer.
POOLINGS = ("mean", "max", "cls")


class Embeddings(NamedTuple):
    """What :class:`Embedder` returns for a batch.

    Attributes:
        pooled: One vector per image, (B, D).
        dense: One vector per patch, (B, C, h, w) on the patch grid.
        patch: Input pixels per map pixel (the patch size, or a CNN level's stride).
    """

    pooled: torch.Tensor
    dense: torch.Tensor
    patch: int


def tokens_to_map(tokens: torch.Tensor, image_size: tuple[int, int], patch: int | None,
                  has_cls: bool | None = None) -> tuple[torch.Tensor, torch.Tensor | None]:
    """A token sequence (B, N, C) as a map (B, T*C, h, w) and its CLS token (B, C) or None.

    Args:
        tokens: The backbone's tokens: an optional CLS token first, then T*h*w patch
            tokens, frame after frame, row after row.
        image_size: The (padded) input's H, W.
        patch: The backbone's patch size, when it declares one; else the grid is found
            from the token count and the image's aspect ratio.
        has_cls: Whether the first token is a CLS token; None: guessed from the count.

    Raises:
        ConfigurationError: The tokens do not fit a patch grid of the image.
    """
    batch, count, dim = tokens.shape
    height, width = image_size
    if patch:
        cells = (height // patch) * (width // patch)
        if has_cls is None:
            has_cls = count % cells != 0 and (count - 1) % cells == 0
        spatial = count - int(has_cls)
        if cells == 0 or spatial % cells:
            raise ConfigurationError(
                f"the backbone returned {count} tokens, which do not fit a grid of "
                f"{height // patch} x {width // patch} patches of {patch} pixels (with or "
                "without a CLS token); choose another layer or a backbone that returns "
                "patch tokens"
            )
        frames = spatial // cells
        grid = (height // patch, width // patch)
    else:
        if has_cls is None:
            has_cls = False
            try:
                token_grid(count, image_size)
            except ComponentArgumentError:
                has_cls = True
        spatial = count - int(has_cls)
        frames = 1
        try:
            grid = token_grid(spatial, image_size)
        except ComponentArgumentError as exc:
            raise ConfigurationError(
                f"the backbone's {count} tokens do not fit a patch grid of a {height} x "
                f"{width} image ({exc}); give a backbone that declares patch_size"
            ) from None
    cls = tokens[:, 0] if has_cls else None
    patches = tokens[:, int(has_cls):]
    h, w = grid
    dense = patches.reshape(batch, frames, h, w, dim).permute(0, 1, 4, 2, 3)
    return dense.reshape(batch, frames * dim, h, w).contiguous(), cls


def _patch_size(backbone: nn.Module) -> int | None:
    size = getattr(backbone, "patch_size", None)
    if isinstance(size, int):
        return size
    if isinstance(size, tuple | list) and size:
        return int(size[-1])
    return None


class Embedder(nn.Module):
    """Pooled and per-patch embeddings of one layer of a backbone.

    Args:
        backbone: A geofm backbone (returns a list of feature maps or token sequences).
        layer: Which returned feature to use; negative counts from the end (default the
            last).
        pooling: ``mean`` or ``max`` over the patches, or ``cls`` (the CLS token of a
            token sequence).

    Raises:
        ConfigurationError: An unknown pooling.
    """

    def __init__(self, backbone: nn.Module, layer: int = -1, pooling: str = "mean") -> None:
        super().__init__()
        if pooling not in POOLINGS:
            raise ConfigurationError(
                f"pooling must be one of {', '.join(POOLINGS)}, got {pooling!r}"
            )
        self.backbone = backbone
        self.layer = int(layer)
        self.pooling = pooling
        self.input_multiple = input_multiple_of(backbone, None)
        #: Input pixels per patch, known after the first forward pass.
        self.patch: int | None = _patch_size(backbone)

    def features(self, x: torch.Tensor, **metadata: Any) -> torch.Tensor:
        """The backbone's feature ``layer`` of ``x`` (padded to the backbone's multiple)."""
        raw = self.backbone(x, **{k: v for k, v in metadata.items() if v is not None})
        features = [raw] if isinstance(raw, torch.Tensor) else list(raw)
        if not -len(features) <= self.layer < len(features):
            raise ConfigurationError(
                f"layer {self.layer} is out of range: the backbone "
                f"{type(self.backbone).__name__} returns {len(features)} features "
                f"(layers 0..{len(features) - 1}, or -1 for the last); choose one of them "
                "(backbone_kwargs out_indices sets which blocks it returns)"
            )
        return features[self.layer]

    def forward(self, x: torch.Tensor, **metadata: Any) -> Embeddings:
        """Pooled (B, D) and per-patch (B, C, h, w) embeddings of ``x`` (B, C, [T,] H, W)."""
        padded = pad_to_multiple(x, self.input_multiple)
        size = (int(padded.shape[-2]), int(padded.shape[-1]))
        feature = self.features(padded, **metadata)
        cls: torch.Tensor | None = None
        if feature.ndim == 3:
            dense, cls = tokens_to_map(feature, size, _patch_size(self.backbone),
                                       True if hasattr(self.backbone, "cls_token") else None)
        elif feature.ndim == 4:
            dense = feature
        else:
            raise ConfigurationError(
                f"layer {self.layer} of {type(self.backbone).__name__} has shape "
                f"{tuple(feature.shape)}; embeddings need a map (B, C, h, w) or tokens "
                "(B, N, C)"
            )
        patch = size[0] // dense.shape[-2]
        if patch * dense.shape[-2] != size[0] or size[1] // patch != dense.shape[-1]:
            raise ConfigurationError(
                f"layer {self.layer}'s grid {tuple(dense.shape[-2:])} does not divide the "
                f"input {size}; choose a layer whose features lie on a patch grid"
            )
        self.patch = patch
        # The padded patches beyond the image are not part of it.
        rows = -(-x.shape[-2] // patch)
        cols = -(-x.shape[-1] // patch)
        dense = dense[..., :rows, :cols]
        if self.pooling == "cls":
            if cls is None:
                raise ConfigurationError(
                    f"pooling 'cls' needs a CLS token, but layer {self.layer} of "
                    f"{type(self.backbone).__name__} has none; use pooling 'mean' or 'max'"
                )
            pooled = cls
        elif self.pooling == "max":
            pooled = dense.flatten(2).amax(dim=2)
        else:
            pooled = dense.flatten(2).mean(dim=2)
        return Embeddings(pooled, dense, patch)
