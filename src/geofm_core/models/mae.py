"""Masked autoencoding (MAE): any backbone that encodes a subset of its tokens, plus a decoder.

The ``geofm:mae`` model factory builds the encoder by registry name and the decoder the
backbone's plugin offers for it: a component of kind ``mae_decoder``, named by the
backbone's ``mae_decoder`` attribute (or by ``decoder:`` in the config). The two meet
in :class:`MaskedAutoencoder`, which draws the mask (:mod:`geofm_core.models.masking`),
patchifies the target and computes the MAE loss: the mean squared error over the
masked patches only, with each target patch normalised by its own mean and variance
(``norm_pix_loss``, as in He et al. 2022 and Prithvi).

Contracts (duck-typed, checked when the model is built):

- encoder: ``patch_size`` (an int or ``(t, h, w)``) and
  ``forward_masked(x, keep, **metadata) -> (B, [1 +] n_keep, D)`` that embeds the
  ``(B, C, T, H, W)`` input, keeps the tokens ``keep`` (``(B, n_keep)`` indices into
  the ``t*h*w`` patch tokens) and encodes them.
- decoder: ``forward(latent, restore, grid, **metadata) -> (B, t*h*w, pt*ph*pw*C)``,
  the prediction of every patch in :meth:`MaskedAutoencoder.patchify` order.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

import torch
from torch import nn

from geofm_core.errors import ConfigurationError
from geofm_core.models.contracts import ModelOutput
from geofm_core.models.masking import Masking, check_masking, random_masking

__all__ = [
    "MAEFactory",
    "MAEOutput",
    "MaskedAutoencoder",
    "mae_loss",
    "normalise_patches",
    "patchify",
    "unpatchify",
]


@dataclass(frozen=True)
class MAEOutput:
    """What one masked-autoencoding pass gives.

    Attributes:
        loss: Scalar loss over the masked patches.
        pred: ``(B, L, patch_volume * C)`` prediction of every patch.
        target: ``(B, L, patch_volume * C)`` patchified input (normalised per patch
            with ``norm_pix_loss``).
        mask: ``(B, L)``, 1 for masked patches.
        grid: The ``(t, h, w)`` token grid.
    """

    loss: torch.Tensor
    pred: torch.Tensor
    target: torch.Tensor
    mask: torch.Tensor
    grid: tuple[int, int, int]


def mae_loss(pred: torch.Tensor, target: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Mean over masked patches of the per-patch mean squared error.

    Args:
        pred: ``(B, L, D)`` predictions.
        target: ``(B, L, D)`` targets.
        mask: ``(B, L)``, 1 where a patch was masked (only those count).
    """
    per_patch = ((pred - target) ** 2).mean(dim=-1)
    return (per_patch * mask).sum() / mask.sum().clamp_min(1)


def patchify(x: torch.Tensor, patch_size: tuple[int, int, int]) -> torch.Tensor:
    """``(B, C, T, H, W)`` to ``(B, t*h*w, pt*ph*pw*C)``.

    Tokens run over frames, rows, columns; each token's values over the patch's frames,
    rows, columns, then bands (the layout of Prithvi's and the MAE paper's ``patchify``).
    """
    b, c, frames, height, width = x.shape
    pt, ph, pw = patch_size
    t, h, w = frames // pt, height // ph, width // pw
    x = x.reshape(b, c, t, pt, h, ph, w, pw).permute(0, 2, 4, 6, 3, 5, 7, 1)
    return x.reshape(b, t * h * w, pt * ph * pw * c)


def unpatchify(patches: torch.Tensor, grid: tuple[int, int, int],
               patch_size: tuple[int, int, int]) -> torch.Tensor:
    """Inverse of :func:`patchify`: ``(B, t*h*w, pt*ph*pw*C)`` to ``(B, C, T, H, W)``."""
    b = patches.shape[0]
    t, h, w = grid
    pt, ph, pw = patch_size
    c = patches.shape[-1] // (pt * ph * pw)
    x = patches.reshape(b, t, h, w, pt, ph, pw, c).permute(0, 7, 1, 4, 2, 5, 3, 6)
    return x.reshape(b, c, t * pt, h * ph, w * pw)


def normalise_patches(patches: torch.Tensor, eps: float = 1.0e-6) -> torch.Tensor:
    """Each patch minus its mean, over the square root of its unbiased variance + ``eps``.

    The ``norm_pix_loss`` target of the MAE paper (its code uses ``var`` with Bessel's
    correction, as Prithvi does).
    """
    mean = patches.mean(dim=-1, keepdim=True)
    var = patches.var(dim=-1, keepdim=True)
    return (patches - mean) / (var + eps) ** 0.5


def _patch3(patch: Any, what: str) -> tuple[int, int, int]:
    if isinstance(patch, int):
        return 1, patch, patch
    if isinstance(patch, (tuple, list)) and len(patch) in (2, 3):
        values = tuple(int(p) for p in patch)
        return (1, *values) if len(values) == 2 else (values[0], values[1], values[2])
    raise ConfigurationError(
        f"{what}: the encoder's patch_size {patch!r} is neither an int nor (t, h, w)"
    )


class MaskedAutoencoder(nn.Module):
    """An encoder that sees a random subset of patches and a decoder that predicts them all.

    Args:
        encoder: A backbone with ``forward_masked`` (see the module docstring).
        decoder: Its MAE decoder.
        mask_ratio: Fraction of patches hidden from the encoder.
        mask_mode: ``random`` over all (frame, patch) tokens, the same fraction in each
            ``frame``, or the same patches in every frame (``tube``).
        norm_pix_loss: Normalise each target patch by its mean and (unbiased) variance.
    """

    def __init__(
        self, encoder: nn.Module, decoder: nn.Module, *, mask_ratio: float = 0.75,
        mask_mode: str = "random", norm_pix_loss: bool = True,
    ) -> None:
        super().__init__()
        what = "geofm:mae"
        if not callable(getattr(encoder, "forward_masked", None)):
            raise ConfigurationError(
                f"{what}: the backbone {type(encoder).__name__} has no forward_masked(x, keep) "
                "method, so it cannot be pre-trained by masked autoencoding; use a backbone "
                "whose plugin offers an mae_decoder (`geofm list mae_decoder`)"
            )
        check_masking(mask_ratio, mask_mode)
        self.encoder = encoder
        self.decoder = decoder
        self.mask_ratio = float(mask_ratio)
        self.mask_mode = mask_mode
        self.norm_pix_loss = norm_pix_loss
        self.patch_size = _patch3(getattr(encoder, "patch_size", None), what)

    def freeze_encoder(self) -> None:
        """Stop training the encoder."""
        self.encoder.requires_grad_(False)

    def freeze_decoder(self) -> None:
        """Stop training the decoder."""
        self.decoder.requires_grad_(False)

    # -- patches ---------------------------------------------------------------

    def _to_5d(self, x: torch.Tensor) -> torch.Tensor:
        x = x.unsqueeze(2) if x.ndim == 4 else x
        if x.ndim != 5:
            raise ConfigurationError(
                f"masked autoencoding takes (B, C, H, W) or (B, C, T, H, W) images, got shape "
                f"{tuple(x.shape)}"
            )
        pt, ph, pw = self.patch_size
        _, _, t, h, w = x.shape
        if t % pt or h % ph or w % pw:
            raise ConfigurationError(
                f"masked autoencoding needs frames, height and width that are multiples of the "
                f"patch size {self.patch_size}, got {t} x {h} x {w}; crop the chips (e.g. "
                f"train_augmentations: [{{random_crop: {ph * max(1, h // ph)}}}])"
            )
        return x

    def grid(self, x: torch.Tensor) -> tuple[int, int, int]:
        """The ``(t, h, w)`` token grid of a 5-D input."""
        pt, ph, pw = self.patch_size
        return x.shape[2] // pt, x.shape[3] // ph, x.shape[4] // pw

    def patchify(self, x: torch.Tensor) -> torch.Tensor:
        """``(B, C, T, H, W)`` to ``(B, t*h*w, pt*ph*pw*C)`` (see :func:`patchify`)."""
        return patchify(x, self.patch_size)

    def unpatchify(self, patches: torch.Tensor, grid: tuple[int, int, int]) -> torch.Tensor:
        """Inverse of :meth:`patchify` (see :func:`unpatchify`)."""
        return unpatchify(patches, grid, self.patch_size)

    def target(self, x: torch.Tensor) -> torch.Tensor:
        """The patchified target, normalised per patch with ``norm_pix_loss``."""
        target = self.patchify(x)
        return normalise_patches(target) if self.norm_pix_loss else target

    # -- passes ----------------------------------------------------------------

    def forward_mae(
        self, x: torch.Tensor, *, noise: torch.Tensor | None = None,
        mask_ratio: float | None = None, **metadata: Any,
    ) -> MAEOutput:
        """Mask, encode, decode, and score one batch.

        Args:
            x: ``(B, C, H, W)`` or ``(B, C, T, H, W)`` images.
            noise: Optional mask noise (see :func:`~geofm_core.models.masking.random_masking`).
            mask_ratio: Overrides the model's ratio for this pass.
            **metadata: Passed to the encoder and decoder (``temporal_coords``, ...).
        """
        x = self._to_5d(x)
        grid = self.grid(x)
        masking: Masking = random_masking(
            x.shape[0], grid, self.mask_ratio if mask_ratio is None else mask_ratio,
            mode=self.mask_mode, noise=noise, device=x.device,
        )
        encode: Any = self.encoder.forward_masked
        latent = encode(x, masking.keep, **metadata)
        pred = self.decoder(latent, masking.restore, grid, **metadata)
        target = self.target(x)
        if pred.shape != target.shape:
            raise ConfigurationError(
                f"geofm:mae: the decoder {type(self.decoder).__name__} predicts patches of "
                f"shape {tuple(pred.shape)}, the patchified input is {tuple(target.shape)}; "
                "build the decoder for this encoder's bands and patch size"
            )
        mask = masking.mask.to(pred.dtype)
        return MAEOutput(mae_loss(pred, target, mask), pred, target, mask, grid)

    def forward(self, x: torch.Tensor, **metadata: Any) -> ModelOutput:
        """The reconstruction ``(B, C, [T,] H, W)`` of a masked pass; the mask as ``mask``.

        With ``norm_pix_loss`` the reconstruction is in per-patch normalised units.
        """
        squeeze = x.ndim == 4
        out = self.forward_mae(x, **metadata)
        image = self.unpatchify(out.pred, out.grid)
        mask = self.unpatchify(out.mask[..., None].expand_as(out.pred), out.grid)[:, 0]
        if squeeze:
            image, mask = image.squeeze(2), mask.squeeze(1)
        return ModelOutput(image, {"mask": mask})


class MAEFactory:
    """``geofm:mae``: an encoder by registry name and the MAE decoder its plugin offers."""

    #: The one task it builds models for.
    tasks: ClassVar[tuple[str, ...]] = ("reconstruction",)

    def build_model(
        self,
        task: str,
        backbone: str,
        backbone_kwargs: dict[str, Any] | None = None,
        decoder: str | None = None,
        decoder_kwargs: dict[str, Any] | None = None,
        mask_ratio: float = 0.75,
        mask_mode: str = "random",
        norm_pix_loss: bool = True,
    ) -> MaskedAutoencoder:
        """Build a :class:`MaskedAutoencoder` for the ``reconstruction`` task.

        Args:
            task: Must be ``reconstruction``.
            backbone: Registry name of the encoder (e.g. ``prithvi:prithvi_eo_v2_300``).
            backbone_kwargs: Its keyword arguments (``pretrained``, ``bands``,
                ``num_frames``, ...).
            decoder: Registry name of the ``mae_decoder`` (default: the one the backbone
                names in its ``mae_decoder`` attribute).
            decoder_kwargs: Keyword arguments of the decoder, after ``encoder``.
            mask_ratio: Fraction of patches hidden from the encoder.
            mask_mode: ``random``, ``frame`` or ``tube`` (see ``geofm_core.models.masking``).
            norm_pix_loss: Per-patch normalised targets, as in the MAE paper.

        Raises:
            ConfigurationError: Another task, a backbone without ``forward_masked`` or
                without a decoder to offer, or a bad ratio or mode.
        """
        from geofm_core.registry import get_registry

        if task != "reconstruction":
            raise ConfigurationError(
                f"geofm:mae builds reconstruction models, not {task!r}; use it with "
                "geofm_core.tasks.ReconstructionTask"
            )
        check_masking(mask_ratio, mask_mode)  # before the (possibly large) backbone
        registry = get_registry()
        encoder = registry.build("backbone", backbone, **(backbone_kwargs or {}))
        name = decoder or getattr(encoder, "mae_decoder", None)
        if not name:
            raise ConfigurationError(
                f"geofm:mae: backbone {backbone!r} names no mae_decoder and none was given; "
                "set model_args.decoder to one of `geofm list mae_decoder`, or use a "
                "backbone whose plugin offers one"
            )
        built = registry.build("mae_decoder", str(name), encoder=encoder, **(decoder_kwargs or {}))
        return MaskedAutoencoder(encoder, built, mask_ratio=mask_ratio, mask_mode=mask_mode,
                                 norm_pix_loss=norm_pix_loss)
