"""Prithvi's masked-autoencoding decoder (``mae_decoder`` ``prithvi:prithvi_vit_mae``).

Module and parameter names follow the official ``MAEDecoder`` of ``prithvi_mae.py``
(``decoder_embed``, ``mask_token``, ``decoder_blocks.N.*``, ``decoder_norm``,
``decoder_pred``, ``temporal_embed_dec`` / ``location_embed_dec``), so the ``decoder.*``
part of Prithvi-EO-2.0 files (and the flat ``decoder_*`` keys of Prithvi-EO-1.0) loads
key by key; the fixed ``decoder_pos_embed`` is recomputed, as the encoder's is. With
:class:`~geofm_core.models.mae.MaskedAutoencoder` (``geofm:mae``) it continues the
pre-training of any Prithvi ViT.
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Mapping
from typing import Any

import torch
from torch import nn

from geofm_core.errors import ConfigurationError, ConfigurationWarning
from geofm_prithvi.vit import (
    Block,
    LocationEncoder,
    PrithviViT,
    TemporalEncoder,
    grid_position_embedding,
    init_linears_and_norms,
)
from geofm_prithvi.weights import read_state_dict

__all__ = ["PrithviMAEDecoder", "build_mae_decoder", "map_decoder_keys"]

_WRAPPERS = ("_timm_module.", "model.")


class PrithviMAEDecoder(nn.Module):
    """Transformer decoder of Prithvi's MAE: latent + mask tokens to every patch's pixels.

    Args:
        encoder_embed_dim: Width of the encoder's tokens.
        in_chans: Bands predicted per pixel.
        patch_size: ``(t, h, w)`` patch of the encoder.
        img_size: The encoder's nominal ``(H, W)`` (the ``interpolate`` position grid).
        decoder_embed_dim: Width of the decoder's tokens.
        depth: Decoder blocks.
        num_heads: Attention heads per block.
        mlp_ratio: MLP hidden width over ``decoder_embed_dim``.
        coords_encoding: Add time/location encodings (the ``_tl`` models).
        coords_scale_learn: Learn their scales.
        position_grid: ``recompute`` or ``interpolate``, as the encoder.
        coords_dtype: Precision of the time/location sin-cos.
        norm_eps: LayerNorm epsilon.
    """

    def __init__(
        self, encoder_embed_dim: int, in_chans: int, patch_size: tuple[int, int, int],
        img_size: tuple[int, int] = (224, 224), decoder_embed_dim: int = 512, depth: int = 8,
        num_heads: int = 16, mlp_ratio: float = 4.0, coords_encoding: bool = False,
        coords_scale_learn: bool = True, position_grid: str = "recompute",
        coords_dtype: str = "float64", norm_eps: float = 1e-5,
    ) -> None:
        super().__init__()
        if decoder_embed_dim % 16:
            raise ConfigurationError(
                f"mae_decoder 'prithvi:prithvi_vit_mae': decoder_embed_dim must be divisible "
                f"by 16 for the 3-D position embedding, got {decoder_embed_dim}"
            )
        self.patch_size = patch_size
        self.img_size = img_size
        self.decoder_embed_dim = decoder_embed_dim
        self.position_grid = position_grid
        self.coords_encoding = coords_encoding
        self.decoder_embed = nn.Linear(encoder_embed_dim, decoder_embed_dim)
        if coords_encoding:
            self.temporal_embed_dec = TemporalEncoder(decoder_embed_dim, coords_scale_learn,
                                                      coords_dtype)
            self.location_embed_dec = LocationEncoder(decoder_embed_dim, coords_scale_learn,
                                                      coords_dtype)
        self.mask_token = nn.Parameter(torch.zeros(1, 1, decoder_embed_dim))
        self.decoder_blocks = nn.ModuleList(
            Block(decoder_embed_dim, num_heads, mlp_ratio, qkv_bias=True, norm_eps=norm_eps)
            for _ in range(depth)
        )
        self.decoder_norm = nn.LayerNorm(decoder_embed_dim, eps=norm_eps)
        pt, ph, pw = patch_size
        self.decoder_pred = nn.Linear(decoder_embed_dim, pt * ph * pw * in_chans)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """Initialise like the official decoder: xavier linears, mask token N(0, 0.02)."""
        init_linears_and_norms(self)
        nn.init.normal_(self.mask_token, std=0.02)

    def forward(
        self, latent: torch.Tensor, restore: torch.Tensor, grid: tuple[int, int, int],
        temporal_coords: torch.Tensor | None = None,
        location_coords: torch.Tensor | None = None, **metadata: Any,
    ) -> torch.Tensor:
        """Predict every patch: ``(B, 1 + n_keep, D_enc)`` to ``(B, t*h*w, pt*ph*pw*C)``.

        Args:
            latent: The encoder's CLS + kept tokens.
            restore: ``(B, t*h*w)`` indices putting ``[kept..., masked...]`` in order.
            grid: The ``(t, h, w)`` token grid.
            temporal_coords: ``(B, T, 2)`` (year, day of year) for ``_tl`` models.
            location_coords: ``(B, 2)`` (lat, lon) for ``_tl`` models.
            **metadata: Other batch metadata, ignored.
        """
        x = self.decoder_embed(latent)
        cls = x[:, :1]
        b, total = restore.shape
        masked = self.mask_token.expand(b, total + 1 - x.shape[1], -1)
        x = torch.cat([x[:, 1:], masked.to(x.dtype)], dim=1)
        x = torch.gather(x, 1, restore.unsqueeze(-1).expand(-1, -1, x.shape[-1]))
        base = (self.img_size[0] // self.patch_size[1], self.img_size[1] // self.patch_size[2])
        pos = grid_position_embedding(self.decoder_embed_dim, grid, base, self.position_grid,
                                      x.device).to(x.dtype)
        cls = cls + pos[:, :1]
        x = x + pos[:, 1:]
        if self.coords_encoding:
            if temporal_coords is not None:
                tokens_per_frame = grid[1] * grid[2]
                x = x + self.temporal_embed_dec(temporal_coords, tokens_per_frame).to(x.dtype)
            if location_coords is not None:
                x = x + self.location_embed_dec(location_coords).to(x.dtype)
        x = torch.cat([cls, x], dim=1)
        for block in self.decoder_blocks:
            x = block(x)
        pred: torch.Tensor = self.decoder_pred(self.decoder_norm(x))
        return pred[:, 1:]


def map_decoder_keys(
    state_dict: Mapping[str, torch.Tensor], *, time_location: bool
) -> dict[str, torch.Tensor]:
    """The MAE decoder's tensors of an official (v1 flat, v2 ``decoder.``) or geofm file.

    Keeps ``decoder.*`` (v2, and a ``ReconstructionTask`` checkpoint's ``model.decoder.*``)
    or the flat ``decoder_*`` / ``mask_token`` keys (v1) under :class:`PrithviMAEDecoder`
    names; drops the fixed ``decoder_pos_embed`` and, without ``time_location``, the
    time/location scales.
    """
    mapped: dict[str, torch.Tensor] = {}
    for original, value in state_dict.items():
        key = original
        for wrapper in _WRAPPERS:
            key = key.removeprefix(wrapper)
        if key.startswith("decoder."):
            key = key[len("decoder."):]
        elif not (key.startswith("decoder_") or key == "mask_token"):
            continue
        if key == "decoder_pos_embed":
            continue
        if not time_location and key.startswith(("temporal_embed_dec.", "location_embed_dec.")):
            continue
        mapped[key] = value
    return mapped


def _load(decoder: PrithviMAEDecoder, path: str | os.PathLike[str], what: str,
          required: bool) -> bool:
    state = map_decoder_keys(read_state_dict(path), time_location=decoder.coords_encoding)
    if not state:
        if required:
            raise ConfigurationError(
                f"{what}: {str(path)!r} holds no MAE decoder weights (decoder.* or decoder_* "
                "keys); give a Prithvi MAE file, or pretrained=False to start the decoder "
                "from scratch"
            )
        warnings.warn(
            f"{what}: the encoder's checkpoint {str(path)!r} holds no MAE decoder weights; "
            "the decoder starts from scratch (pretrained=False silences this)",
            ConfigurationWarning, stacklevel=3)
        return False
    own = decoder.state_dict()
    missing = sorted(set(own) - set(state))
    unexpected = sorted(set(state) - set(own))
    wrong = sorted(f"{k} {tuple(v.shape)} vs model {tuple(own[k].shape)}"
                   for k, v in state.items() if k in own and own[k].shape != v.shape)
    if missing or unexpected or wrong:
        parts = [f"{label}: {', '.join(items[:8])}" for label, items in
                 (("missing", missing), ("unexpected", unexpected), ("shape mismatches", wrong))
                 if items]
        raise ConfigurationError(
            f"{what}: the MAE decoder weights of {str(path)!r} do not fit ({'; '.join(parts)}). "
            "Set decoder_embed_dim, decoder_depth and decoder_num_heads to the file's (the "
            "official models: 512, 8, 16) and the bands to the pre-trained ones"
        )
    decoder.load_state_dict(state, strict=True)
    return True


def build_mae_decoder(
    encoder: nn.Module,
    decoder_embed_dim: int = 512,
    decoder_depth: int = 8,
    decoder_num_heads: int = 16,
    mlp_ratio: float = 4.0,
    pretrained: bool | None = None,
    ckpt_path: str | None = None,
) -> PrithviMAEDecoder:
    """The MAE decoder for a Prithvi ViT ``encoder`` (official layout; 512 wide, 8 blocks).

    Args:
        encoder: The :class:`~geofm_prithvi.vit.PrithviViT` it decodes for.
        decoder_embed_dim: Token width (the official models: 512).
        decoder_depth: Blocks (official: 8).
        decoder_num_heads: Heads (official: 16).
        mlp_ratio: MLP hidden width over ``decoder_embed_dim``.
        pretrained: Load the ``decoder.*`` weights of the file the encoder was loaded from
            (True: required; None, the default: when the encoder was loaded from a file
            that has them, with a warning when it has none; False: start from scratch).
        ckpt_path: A file to load the decoder from instead (official layout or a geofm
            ``ReconstructionTask`` checkpoint).

    Raises:
        ConfigurationError: Not a Prithvi ViT, ``pretrained=True`` without encoder weights,
            or weights that do not fit.
    """
    what = "mae_decoder 'prithvi:prithvi_vit_mae'"
    if not isinstance(encoder, PrithviViT):
        raise ConfigurationError(
            f"{what} decodes for Prithvi ViT backbones (prithvi:prithvi_eo_*), not "
            f"{type(encoder).__name__}"
        )
    eps = float(encoder.norm.eps)
    decoder = PrithviMAEDecoder(
        encoder.embed_dim, encoder.in_chans, encoder.patch_size, encoder.img_size,
        decoder_embed_dim, decoder_depth, decoder_num_heads, mlp_ratio,
        coords_encoding=encoder.coords_encoding, position_grid=encoder.position_grid,
        coords_dtype=(encoder.temporal_embed_enc.precision if encoder.coords_encoding
                      else "float64"),
        norm_eps=eps,
    )
    if ckpt_path is not None:
        _load(decoder, ckpt_path, what, required=True)
    elif pretrained is not False and encoder.checkpoint_path is not None:
        _load(decoder, encoder.checkpoint_path, what, required=bool(pretrained))
    elif pretrained:
        raise ConfigurationError(
            f"{what}: pretrained=True loads the decoder from the encoder's weights file, but "
            "the backbone was built without one; set backbone_kwargs.pretrained (or "
            "ckpt_path), or give the decoder its own ckpt_path"
        )
    return decoder
