"""Tile planning and overlap blending, shared by in-memory and streaming inference."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Literal

import torch
import torch.nn.functional as F

from geofm_core.errors import ConfigurationError

__all__ = ["blend_weights", "check_tiling", "tile_starts", "tile_windows", "tiled_forward"]

Blend = Literal["ramp", "average"]


def check_tiling(crop: int, stride: int, batch_size: int = 1) -> None:
    """Raise :class:`ConfigurationError` unless ``0 < stride <= crop`` and ``batch_size > 0``."""
    if crop <= 0 or stride <= 0 or batch_size <= 0:
        raise ConfigurationError(
            f"tiled inference needs positive crop, stride and batch_size; got crop={crop}, "
            f"stride={stride}, batch_size={batch_size}"
        )
    if stride > crop:
        raise ConfigurationError(
            f"tiled inference stride ({stride}) is larger than crop ({crop}): pixels between "
            "tiles would never be predicted; use stride <= crop"
        )


def tile_starts(size: int, crop: int, stride: int) -> list[int]:
    """Start offsets of tiles of length ``crop`` every ``stride`` covering ``[0, size)``.

    The last tile is moved back to end exactly at ``size`` so edges that are not a
    multiple of the stride are covered without padding; a ``size`` below ``crop``
    gives one tile at 0 (the caller pads).
    """
    if size <= crop:
        return [0]
    starts = list(range(0, size - crop + 1, stride))
    if starts[-1] + crop < size:
        starts.append(size - crop)
    return starts


def tile_windows(height: int, width: int, crop: int, stride: int) -> Iterator[tuple[int, int]]:
    """Yield the (row, col) offsets of every tile, row by row."""
    for row in tile_starts(height, crop, stride):
        for col in tile_starts(width, crop, stride):
            yield row, col


def blend_weights(crop: int, stride: int, blend: Blend = "ramp") -> torch.Tensor:
    """Per-pixel weights (crop, crop) of one tile, positive everywhere.

    ``"ramp"`` rises linearly over the overlap (``crop - stride``) from each edge so
    that tile seams fade out; ``"average"`` weighs every pixel equally.
    """
    if blend == "average" or stride >= crop:
        return torch.ones(crop, crop)
    if blend != "ramp":
        raise ConfigurationError(f"unknown blend {blend!r}; use 'ramp' or 'average'")
    overlap = crop - stride
    position = torch.arange(crop, dtype=torch.float32)
    distance = torch.minimum(position + 1, crop - position)  # 1 at the edges
    ramp = torch.clamp(distance / (overlap + 1), max=1.0)
    return ramp[:, None] * ramp[None, :]


def tiled_forward(
    forward: Callable[[torch.Tensor], torch.Tensor],
    image: torch.Tensor,
    crop: int = 224,
    stride: int = 192,
    batch_size: int = 8,
    blend: Blend = "ramp",
) -> torch.Tensor:
    """Run ``forward`` over overlapping tiles of ``image`` and blend the results.

    Args:
        forward: Maps a batch of tiles (N, C, crop, crop) (or (N, C, T, crop, crop))
            to (N, K, crop, crop) scores, or (N, crop, crop) for regression.
        image: One batch (B, C, H, W) or (B, C, T, H, W) of any size.
        crop: Tile size.
        stride: Step between tiles (``stride == crop`` means no overlap).
        batch_size: Tiles per forward call.
        blend: ``"ramp"`` or ``"average"`` weighting of overlaps.

    Returns:
        The blended output, (B, K, H, W) or (B, H, W).
    """
    check_tiling(crop, stride, batch_size)
    height, width = image.shape[-2:]
    pad_h, pad_w = max(crop - height, 0), max(crop - width, 0)
    if pad_h or pad_w:
        flat = image.flatten(1, -3) if image.ndim == 5 else image
        flat = F.pad(flat, (0, pad_w, 0, pad_h), mode="constant", value=0.0)
        image = flat.view(*image.shape[:-2], *flat.shape[-2:]) if image.ndim == 5 else flat
    full_h, full_w = image.shape[-2:]
    weights = blend_weights(crop, stride, blend).to(image.device)
    windows = list(tile_windows(full_h, full_w, crop, stride))
    total: torch.Tensor | None = None
    weight_sum = torch.zeros(full_h, full_w, device=image.device)
    for row, col in windows:
        weight_sum[row : row + crop, col : col + crop] += weights
    jobs = [(b, r, c) for b in range(image.shape[0]) for r, c in windows]
    squeeze = False
    for start in range(0, len(jobs), batch_size):
        chunk = jobs[start : start + batch_size]
        tiles = torch.stack([image[b, ..., r : r + crop, c : c + crop] for b, r, c in chunk])
        scores = forward(tiles)
        if scores.ndim == 3:
            squeeze, scores = True, scores.unsqueeze(1)
        if total is None:
            total = scores.new_zeros(image.shape[0], scores.shape[1], full_h, full_w)
        for (b, r, c), score in zip(chunk, scores, strict=True):
            total[b, :, r : r + crop, c : c + crop] += score * weights
    assert total is not None
    out = (total / weight_sum)[..., :height, :width]
    return out.squeeze(1) if squeeze else out
