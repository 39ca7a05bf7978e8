"""Random patch masking for masked autoencoding, over one frame or a time series of frames.

Tokens are ordered frame after frame (``t``, then ``h``, then ``w``), as the encoders
that offer :meth:`forward_masked` produce them. Three modes:

- ``random``: every ``(t, patch)`` token is kept or masked on its own; exactly
  ``int(L * (1 - ratio))`` of the ``L`` tokens are kept (the MAE paper, Prithvi).
- ``frame``: each frame keeps the same number of patches, at its own positions.
- ``tube``: one spatial mask, the same in every frame (a patch is masked through time).

A mask is drawn by sorting noise (small is kept), so a given ``noise`` reproduces a
mask exactly: :func:`random_masking` with the noise a reference implementation used
keeps the same tokens in the same order.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from geofm_core.errors import ConfigurationError

__all__ = ["MASKING_MODES", "Masking", "check_masking", "random_masking"]

#: Modes of :func:`random_masking`.
MASKING_MODES = ("random", "frame", "tube")


@dataclass(frozen=True)
class Masking:
    """Which tokens an encoder sees.

    Attributes:
        keep: ``(B, n_keep)`` indices of the kept tokens (into the ``L`` patch tokens).
        mask: ``(B, L)`` float, 1 where a token is masked, 0 where kept.
        restore: ``(B, L)`` indices that put ``[kept..., masked...]`` back in token order.
    """

    keep: torch.Tensor
    mask: torch.Tensor
    restore: torch.Tensor


def check_masking(ratio: float, mode: str) -> None:
    """Raise :class:`ConfigurationError` for a ratio outside [0, 1) or an unknown mode."""
    if not 0.0 <= ratio < 1.0:
        raise ConfigurationError(
            f"mask_ratio must be in [0, 1) (the fraction of patches hidden), got {ratio}"
        )
    if mode not in MASKING_MODES:
        raise ConfigurationError(
            f"mask_mode must be one of {', '.join(MASKING_MODES)}, got {mode!r}"
        )


def _check(ratio: float, mode: str, grid: tuple[int, int, int]) -> None:
    check_masking(ratio, mode)
    if min(grid) < 1:
        raise ConfigurationError(f"the token grid {grid} is empty; the input is too small")


def random_masking(
    batch: int,
    grid: tuple[int, int, int],
    ratio: float,
    *,
    mode: str = "random",
    noise: torch.Tensor | None = None,
    device: torch.device | str | None = None,
    generator: torch.Generator | None = None,
) -> Masking:
    """Draw a mask over ``batch`` samples of a ``(t, h, w)`` token grid.

    Args:
        batch: Number of samples.
        grid: Tokens per axis: frames, rows, columns.
        ratio: Fraction of tokens masked, in [0, 1).
        mode: ``random``, ``frame`` or ``tube`` (see the module docstring).
        noise: Optional ``(B, t*h*w)`` noise (``(B, h*w)`` for ``tube``); small values are
            kept. Given, the mask is reproducible (parity tests use it).
        device: Device of the drawn noise (when ``noise`` is None).
        generator: Random generator of the drawn noise.

    Returns:
        The :class:`Masking`: kept indices, binary mask and restore indices.

    Raises:
        ConfigurationError: A ratio outside [0, 1), an unknown mode, or noise of the
            wrong shape.
    """
    _check(ratio, mode, grid)
    t, h, w = grid
    spatial = h * w
    total = t * spatial
    shape = (batch, spatial) if mode == "tube" else (batch, total)
    if noise is None:
        noise = torch.rand(shape, device=device, generator=generator)
    elif tuple(noise.shape) != shape:
        raise ConfigurationError(
            f"mask noise for mode {mode!r} must have shape {shape} (batch, tokens), got "
            f"{tuple(noise.shape)}"
        )
    if mode == "random":
        keep_count = int(total * (1 - ratio))
        shuffle = torch.argsort(noise, dim=1)
    else:
        per_frame = int(spatial * (1 - ratio))
        keep_count = per_frame * t
        frames = noise.reshape(batch, -1, spatial).expand(batch, t, spatial)
        order = torch.argsort(frames, dim=2)  # per frame: kept positions first
        offsets = (torch.arange(t, device=noise.device) * spatial).view(1, t, 1)
        ordered = order + offsets
        shuffle = torch.cat([ordered[:, :, :per_frame].reshape(batch, -1),
                             ordered[:, :, per_frame:].reshape(batch, -1)], dim=1)
    if keep_count < 1:
        raise ConfigurationError(
            f"mask_ratio {ratio} keeps no token of the {grid} grid (mode {mode!r}); lower it"
        )
    restore = torch.argsort(shuffle, dim=1)
    mask = torch.ones(batch, total, device=noise.device)
    mask[:, :keep_count] = 0
    mask = torch.gather(mask, 1, restore)
    return Masking(keep=shuffle[:, :keep_count], mask=mask, restore=restore)
