"""The Prithvi EO vision transformer encoder (3-D patches, 3-D sin-cos positions, time/location).

Module and parameter names follow the official ``prithvi_mae.py`` encoder
(``patch_embed.proj``, ``cls_token``, ``blocks.N.attn.qkv``, ``norm``,
``temporal_embed_enc.scale``, ...) so official checkpoints map onto it key by key.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from geofm_core.errors import ConfigurationError
from geofm_core.models.layers import DropPath, Mlp

__all__ = [
    "COORDS_DTYPES",
    "POSITION_GRIDS",
    "Attention",
    "Block",
    "LocationEncoder",
    "PatchEmbed3D",
    "PrithviViT",
    "TemporalEncoder",
    "init_linears_and_norms",
    "grid_position_embedding",
    "sincos_1d",
    "sincos_3d",
]


#: Position grids of :class:`PrithviViT`: sin-cos for the actual token grid, or the
#: ``img_size`` grid resized bicubically (TerraTorch's behaviour).
POSITION_GRIDS = ("recompute", "interpolate")
#: Precisions of the time/location encodings.
COORDS_DTYPES = ("float64", "float32")


def sincos_1d(dim: int, positions: torch.Tensor, precision: str = "float64") -> torch.Tensor:
    """1-D sine-cosine encoding: ``(M,)`` positions to ``(M, dim)``, sines then cosines.

    Computed in ``precision`` on the positions' device (float32 on devices without
    float64) and returned as float32.
    """
    if dim % 2:
        raise ValueError(f"sin-cos encoding needs an even dimension, got {dim}")
    wide = precision == "float64" and positions.device.type != "mps"
    dtype = torch.float64 if wide else torch.float32
    omega = torch.arange(dim // 2, dtype=dtype, device=positions.device) / (dim / 2.0)
    omega = 1.0 / 10000.0**omega
    out = positions.reshape(-1).to(dtype)[:, None] * omega[None, :]
    return torch.cat([out.sin(), out.cos()], dim=1).float()


def sincos_3d(
    dim: int, grid: tuple[int, int, int], *, cls_token: bool = True,
    device: torch.device | str | None = None,
) -> torch.Tensor:
    """3-D sine-cosine position embedding of a ``(t, h, w)`` token grid: ``(1, [1+] t*h*w, dim)``.

    Channels are split w 6/16, h 6/16, t 4/16 (in that order); tokens are ordered t, then h,
    then w; the CLS position, when requested, is all zeros.
    """
    if dim % 16:
        raise ValueError(f"the 3-D position embedding needs embed_dim divisible by 16, got {dim}")
    t, h, w = grid
    w_dim, h_dim, t_dim = dim // 16 * 6, dim // 16 * 6, dim // 16 * 4

    def axis(size: int) -> torch.Tensor:
        return torch.arange(size, device=device, dtype=torch.float32)

    emb_w = sincos_1d(w_dim, axis(w))[None, None, :, :].expand(t, h, w, w_dim)
    emb_h = sincos_1d(h_dim, axis(h))[None, :, None, :].expand(t, h, w, h_dim)
    emb_t = sincos_1d(t_dim, axis(t))[:, None, None, :].expand(t, h, w, t_dim)
    emb = torch.cat([emb_w, emb_h, emb_t], dim=-1).reshape(t * h * w, dim)
    if cls_token:
        emb = torch.cat([emb.new_zeros(1, dim), emb], dim=0)
    return emb[None]


def grid_position_embedding(
    dim: int, grid: tuple[int, int, int], base: tuple[int, int], mode: str,
    device: torch.device | str | None = None,
) -> torch.Tensor:
    """The ``(1, 1 + t*h*w, dim)`` sin-cos position embedding of a token grid.

    ``mode`` ``recompute``: the sin-cos of ``grid``; ``interpolate``: the ``base``
    ``(h, w)`` grid (for ``t`` frames) resized bicubically with aligned corners when
    ``grid`` differs from it (TerraTorch's encoder and MAE decoder).
    """
    t, h, w = grid
    if mode == "recompute" or (h, w) == base:
        return sincos_3d(dim, grid, device=device)
    stored = sincos_3d(dim, (t, *base), device=device)
    patches = stored[0, 1:].reshape(t, *base, dim).permute(0, 3, 1, 2)
    resized = F.interpolate(patches, size=(h, w), mode="bicubic", align_corners=True)
    flat = resized.permute(0, 2, 3, 1).reshape(1, t * h * w, dim)
    return torch.cat([stored[:, :1], flat], dim=1)


class PatchEmbed3D(nn.Module):
    """Non-overlapping ``(t, h, w)`` cubes to tokens with one Conv3d (kernel = stride = patch)."""

    def __init__(self, in_chans: int, embed_dim: int, patch_size: tuple[int, int, int]) -> None:
        super().__init__()
        self.patch_size = patch_size
        self.proj = nn.Conv3d(in_chans, embed_dim, kernel_size=patch_size, stride=patch_size)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Embed ``(B, C, T, H, W)`` into ``(B, T'*H'*W', embed_dim)`` tokens."""
        out: torch.Tensor = self.proj(x)
        return out.flatten(2).transpose(1, 2)


class Attention(nn.Module):
    """Multi-head self-attention with a fused, biased qkv projection."""

    def __init__(self, dim: int, num_heads: int, qkv_bias: bool = True) -> None:
        super().__init__()
        if dim % num_heads:
            raise ConfigurationError(
                f"embed_dim {dim} is not divisible by num_heads {num_heads}; choose values "
                "whose ratio is an integer"
            )
        self.num_heads = num_heads
        self.qkv = nn.Linear(dim, dim * 3, bias=qkv_bias)
        self.proj = nn.Linear(dim, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Attend over the ``N`` tokens of ``x`` (B, N, C)."""
        b, n, c = x.shape
        qkv = self.qkv(x).reshape(b, n, 3, self.num_heads, c // self.num_heads)
        q, k, v = qkv.permute(2, 0, 3, 1, 4).unbind(0)
        out = F.scaled_dot_product_attention(q, k, v)
        result: torch.Tensor = self.proj(out.transpose(1, 2).reshape(b, n, c))
        return result


class Block(nn.Module):
    """Pre-norm transformer block: ``x + attn(norm1(x))``, then ``x + mlp(norm2(x))``."""

    def __init__(
        self, dim: int, num_heads: int, mlp_ratio: float = 4.0, qkv_bias: bool = True,
        drop_path: float = 0.0, norm_eps: float = 1e-5,
    ) -> None:
        super().__init__()
        self.norm1 = nn.LayerNorm(dim, eps=norm_eps)
        self.attn = Attention(dim, num_heads, qkv_bias)
        self.norm2 = nn.LayerNorm(dim, eps=norm_eps)
        self.mlp = Mlp(dim, int(dim * mlp_ratio))
        self.drop_path = DropPath(drop_path)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Run attention and MLP with residual connections."""
        x = x + self.drop_path(self.attn(self.norm1(x)))
        out: torch.Tensor = x + self.drop_path(self.mlp(self.norm2(x)))
        return out


class TemporalEncoder(nn.Module):
    """(year, day of year) per frame to a sin-cos bias, half the channels each, times a scale.

    ``precision`` is that of the sin-cos (``float64``, or ``float32`` as TerraTorch).
    """

    def __init__(self, embed_dim: int, trainable_scale: bool = True,
                 precision: str = "float64") -> None:
        super().__init__()
        self.precision = precision
        self.year_dim = embed_dim // 2
        self.day_dim = embed_dim - self.year_dim
        if trainable_scale:
            self.scale = nn.Parameter(torch.full((1,), 0.1))
        else:
            self.register_buffer("scale", torch.ones(1))

    def forward(self, temporal_coords: torch.Tensor, tokens_per_frame: int) -> torch.Tensor:
        """``(B, T, 2)`` coordinates to a ``(B, T*tokens_per_frame, embed_dim)`` bias."""
        b, t, _ = temporal_coords.shape
        year = sincos_1d(self.year_dim, temporal_coords[..., 0], self.precision).reshape(b, t, -1)
        day = sincos_1d(self.day_dim, temporal_coords[..., 1], self.precision).reshape(b, t, -1)
        emb = self.scale * torch.cat([year, day], dim=-1)
        return emb.repeat_interleave(tokens_per_frame, dim=1)


class LocationEncoder(nn.Module):
    """(lat, lon) per sample to a sin-cos bias, half the channels each, times a scale.

    ``precision`` is that of the sin-cos (``float64``, or ``float32`` as TerraTorch).
    """

    def __init__(self, embed_dim: int, trainable_scale: bool = True,
                 precision: str = "float64") -> None:
        super().__init__()
        self.precision = precision
        self.lat_dim = embed_dim // 2
        self.lon_dim = embed_dim - self.lat_dim
        if trainable_scale:
            self.scale = nn.Parameter(torch.full((1,), 0.1))
        else:
            self.register_buffer("scale", torch.ones(1))

    def forward(self, location_coords: torch.Tensor) -> torch.Tensor:
        """``(B, 2)`` coordinates to a ``(B, 1, embed_dim)`` bias (added to every token)."""
        b = location_coords.shape[0]
        lat = sincos_1d(self.lat_dim, location_coords[:, 0], self.precision).reshape(b, 1, -1)
        lon = sincos_1d(self.lon_dim, location_coords[:, 1], self.precision).reshape(b, 1, -1)
        return self.scale * torch.cat([lat, lon], dim=-1)


def _pair(value: int | Sequence[int]) -> tuple[int, int]:
    if isinstance(value, int):
        return value, value
    h, w = value
    return int(h), int(w)


def init_linears_and_norms(root: nn.Module) -> None:
    """The official Prithvi initialisation: xavier-uniform linears, zero biases, unit norms."""
    for module in root.modules():
        if isinstance(module, nn.Linear):
            nn.init.xavier_uniform_(module.weight)
            if module.bias is not None:
                nn.init.zeros_(module.bias)
        elif isinstance(module, nn.LayerNorm):
            nn.init.ones_(module.weight)
            nn.init.zeros_(module.bias)


class PrithviViT(nn.Module):
    """Prithvi EO ViT encoder: returns the token sequences of the requested blocks.

    Input ``(B, C, H, W)`` is one frame; ``(B, C, T, H, W)`` is a time series. ``H`` and
    ``W`` must be multiples of the patch size (``input_multiple``); any number of frames
    works. The fixed 3-D sin-cos position embedding is computed for the actual token
    grid, so other sizes and frame counts need no interpolation (positions keep their
    pre-training spacing: one step per patch); ``position_grid="interpolate"`` resizes
    the ``img_size`` grid instead, as TerraTorch does. With
    ``coords_encoding=True`` (the ``_tl`` models) ``forward`` adds the encodings of
    ``temporal_coords`` (B, T, 2) = (year, day of year) and ``location_coords``
    (B, 2) = (lat, lon) to the patch tokens when they are given.

    Args:
        in_chans: Number of input bands.
        img_size: Nominal image size (H, W); any multiple of the patch size works.
        patch_size: ``(t, h, w)`` patch, or an int for ``(1, p, p)``.
        num_frames: Frames the model is configured for; sets ``out_channels``.
        embed_dim: Token width.
        depth: Number of transformer blocks.
        num_heads: Attention heads per block.
        mlp_ratio: MLP hidden width over ``embed_dim``.
        qkv_bias: Bias in the qkv projection.
        drop_path_rate: Stochastic depth of the last block (linearly from 0 over blocks).
        coords_encoding: Add time and location encodings (the ``_tl`` models).
        coords_scale_learn: Learn the encodings' scales (initialised to 0.1).
        out_indices: Blocks whose outputs are returned (default: all); negative counts
            from the end. The last block's output passes the final norm.
        norm_eps: LayerNorm epsilon.
        position_grid: ``recompute`` (sin-cos of the actual token grid) or
            ``interpolate`` (the ``img_size`` grid resized bicubically, corners aligned,
            frame by frame: what TerraTorch models were fine-tuned with).
        coords_dtype: Precision of the time/location sin-cos: ``float64`` or
            ``float32`` (TerraTorch's).
        drop_path_schedule: ``linear`` (0 at the first block, ``drop_path_rate`` at the
            last) or ``uniform`` (``drop_path_rate`` everywhere, TerraTorch's); training
            only.
    """

    def __init__(
        self,
        in_chans: int = 6,
        img_size: int | Sequence[int] = 224,
        patch_size: int | Sequence[int] = (1, 16, 16),
        num_frames: int = 1,
        embed_dim: int = 768,
        depth: int = 12,
        num_heads: int = 12,
        mlp_ratio: float = 4.0,
        qkv_bias: bool = True,
        drop_path_rate: float = 0.0,
        coords_encoding: bool = False,
        coords_scale_learn: bool = True,
        out_indices: Sequence[int] | None = None,
        norm_eps: float = 1e-5,
        position_grid: str = "recompute",
        coords_dtype: str = "float64",
        drop_path_schedule: str = "linear",
    ) -> None:
        super().__init__()
        if position_grid not in POSITION_GRIDS or coords_dtype not in COORDS_DTYPES \
                or drop_path_schedule not in ("linear", "uniform"):
            raise ConfigurationError(
                f"position_grid must be one of {', '.join(POSITION_GRIDS)}, coords_dtype "
                f"one of {', '.join(COORDS_DTYPES)} and drop_path_schedule linear or "
                f"uniform; got {position_grid!r}, {coords_dtype!r}, {drop_path_schedule!r}"
            )
        self.position_grid = position_grid
        patch = (1, patch_size, patch_size) if isinstance(patch_size, int) else tuple(patch_size)
        if len(patch) != 3:
            raise ConfigurationError(f"patch_size must be an int or (t, h, w), got {patch_size!r}")
        if num_frames < 1 or in_chans < 1:
            raise ConfigurationError(
                f"num_frames and in_chans must be at least 1, got {num_frames} and {in_chans}"
            )
        if embed_dim % 16:
            raise ConfigurationError(
                f"embed_dim must be divisible by 16 for the 3-D position embedding, got {embed_dim}"
            )
        self.in_chans = in_chans
        self.img_size = _pair(img_size)
        self.patch_size: tuple[int, int, int] = (int(patch[0]), int(patch[1]), int(patch[2]))
        self.num_frames = num_frames
        self.embed_dim = embed_dim
        self.depth = depth
        self.out_indices = self._check_indices(out_indices, depth)
        #: Channels of each returned item once reshaped to an image (embed_dim x frames).
        self.out_channels: list[int] = [embed_dim * num_frames] * len(self.out_indices)
        #: Input H and W must be multiples of this (the model pads otherwise).
        self.input_multiple: int = self.patch_size[1]
        self.coords_encoding = coords_encoding
        #: Names of the input bands, in order (set by the registered factories).
        self.bands: list[str] = [f"band_{i}" for i in range(in_chans)]
        #: Registry name of the variant, when built by a factory.
        self.variant: str = ""
        #: Bands of the loaded checkpoint's patch embedding (``None``: no weights loaded);
        #: ``bands`` maps the input onto them.
        self.pretrained_bands: tuple[str, ...] | None = None
        #: The file the weights came from (the MAE decoder may load its part of it).
        self.checkpoint_path: str | None = None
        #: Registry name of the masked-autoencoding decoder for this encoder (geofm:mae).
        self.mae_decoder: str = "prithvi:prithvi_vit_mae"

        self.patch_embed = PatchEmbed3D(in_chans, embed_dim, self.patch_size)
        self.cls_token = nn.Parameter(torch.zeros(1, 1, embed_dim))
        if coords_encoding:
            if self.patch_size[0] != 1:
                raise ConfigurationError(
                    "time/location encoding needs a temporal patch size of 1, got "
                    f"{self.patch_size[0]}"
                )
            self.temporal_embed_enc = TemporalEncoder(embed_dim, coords_scale_learn, coords_dtype)
            self.location_embed_enc = LocationEncoder(embed_dim, coords_scale_learn, coords_dtype)
        rates = [drop_path_rate if drop_path_schedule == "uniform"
                 else drop_path_rate * i / (depth - 1) if depth > 1 else 0.0
                 for i in range(depth)]
        self.blocks = nn.ModuleList(
            Block(embed_dim, num_heads, mlp_ratio, qkv_bias, drop_path=rate, norm_eps=norm_eps)
            for rate in rates
        )
        self.norm = nn.LayerNorm(embed_dim, eps=norm_eps)
        self.reset_parameters()

    @staticmethod
    def _check_indices(out_indices: Sequence[int] | None, depth: int) -> list[int]:
        if out_indices is None:
            return list(range(depth))
        result = []
        for i in out_indices:
            j = int(i) + depth if int(i) < 0 else int(i)
            if not 0 <= j < depth:
                raise ConfigurationError(
                    f"out_indices {list(out_indices)} has {i}, outside the {depth} blocks "
                    f"(use 0..{depth - 1} or negative indices from the end)"
                )
            result.append(j)
        if not result:
            raise ConfigurationError("out_indices is empty; give at least one block index")
        return result

    def _grid(self, frames: int, height: int, width: int) -> tuple[int, int, int]:
        pt, ph, pw = self.patch_size
        return frames // pt, height // ph, width // pw

    def reset_parameters(self) -> None:
        """Initialise like the official encoder: xavier linears and patch embedding."""
        init_linears_and_norms(self)
        w = self.patch_embed.proj.weight
        nn.init.xavier_uniform_(w.view(w.shape[0], -1))
        if self.patch_embed.proj.bias is not None:
            nn.init.zeros_(self.patch_embed.proj.bias)
        nn.init.normal_(self.cls_token, std=0.02)

    def position_embedding(self, grid: tuple[int, int, int], device: torch.device) -> torch.Tensor:
        """The fixed ``(1, 1 + t*h*w, embed_dim)`` position embedding of a token grid.

        Computed on every call (cheap next to the blocks) rather than cached for one
        size: no state to save (official files carry one for their pre-training grid,
        which the loader drops) and exports keep H and W dynamic. With
        ``position_grid="interpolate"`` a grid other than the ``img_size`` one is the
        ``img_size`` grid (for ``t`` frames) resized bicubically with aligned corners.
        """
        base = (self.img_size[0] // self.patch_size[1], self.img_size[1] // self.patch_size[2])
        return grid_position_embedding(self.embed_dim, grid, base, self.position_grid, device)

    def _to_5d(self, x: torch.Tensor) -> torch.Tensor:
        if x.ndim == 4:
            x = x.unsqueeze(2)
        if x.ndim != 5:
            raise ConfigurationError(
                f"Prithvi expects an image (B, C, H, W) or a time series (B, C, T, H, W), got "
                f"a tensor of shape {tuple(x.shape)}"
            )
        _, c, t, h, w = x.shape
        pt, ph, pw = self.patch_size
        if c != self.in_chans:
            raise ConfigurationError(
                f"Prithvi was built for {self.in_chans} bands but the input has {c}; set "
                "`bands` to the input's bands"
            )
        if h % ph or w % pw or t % pt:
            raise ConfigurationError(
                f"input of {t} frame(s) of {h}x{w} pixels is not a multiple of the patch size "
                f"{self.patch_size}; pad H and W to multiples of {ph} (PixelWiseModel does this "
                "using the backbone's input_multiple)"
            )
        return x

    def _embed(
        self, x: torch.Tensor, temporal_coords: torch.Tensor | None,
        location_coords: torch.Tensor | None,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Patch tokens with positions (and time/location) added, and the CLS token."""
        x = self._to_5d(x)
        b, _, t, h, w = x.shape
        grid = self._grid(t, h, w)
        tokens = self.patch_embed(x)
        pos = self.position_embedding(grid, tokens.device).to(tokens.dtype)
        tokens = tokens + pos[:, 1:]
        if self.coords_encoding:
            if temporal_coords is not None:
                if tuple(temporal_coords.shape) != (b, grid[0], 2):
                    raise ConfigurationError(
                        f"temporal_coords must have shape (B, T, 2) = ({b}, {grid[0]}, 2) "
                        f"(year, day of year per frame), got {tuple(temporal_coords.shape)}"
                    )
                enc = self.temporal_embed_enc(temporal_coords, grid[1] * grid[2])
                tokens = tokens + enc.to(tokens.dtype)
            if location_coords is not None:
                if tuple(location_coords.shape) != (b, 2):
                    raise ConfigurationError(
                        f"location_coords must have shape (B, 2) = ({b}, 2) (lat, lon), got "
                        f"{tuple(location_coords.shape)}"
                    )
                tokens = tokens + self.location_embed_enc(location_coords).to(tokens.dtype)
        cls = (self.cls_token + pos[:, :1]).expand(b, -1, -1)
        return tokens, cls

    def forward(
        self,
        x: torch.Tensor,
        temporal_coords: torch.Tensor | None = None,
        location_coords: torch.Tensor | None = None,
        **metadata: Any,
    ) -> list[torch.Tensor]:
        """Encode ``x``; return ``(B, 1 + T*h*w, embed_dim)`` tokens for each of ``out_indices``.

        Args:
            x: ``(B, C, H, W)`` or ``(B, C, T, H, W)``.
            temporal_coords: ``(B, T, 2)`` (year, day of year); used by ``_tl`` models.
            location_coords: ``(B, 2)`` (lat, lon); used by ``_tl`` models.
            **metadata: Other batch metadata, ignored.
        """
        tokens, cls = self._embed(x, temporal_coords, location_coords)
        tokens = torch.cat([cls, tokens], dim=1)

        wanted = set(self.out_indices)
        last = len(self.blocks) - 1
        outputs: dict[int, torch.Tensor] = {}
        for i, block in enumerate(self.blocks[: max(self.out_indices) + 1]):
            tokens = block(tokens)
            if i in wanted:
                outputs[i] = self.norm(tokens) if i == last else tokens
        return [outputs[i] for i in self.out_indices]

    def forward_masked(
        self,
        x: torch.Tensor,
        keep: torch.Tensor,
        temporal_coords: torch.Tensor | None = None,
        location_coords: torch.Tensor | None = None,
        **metadata: Any,
    ) -> torch.Tensor:
        """Encode only the patch tokens ``keep`` (B, n_keep): ``(B, 1 + n_keep, embed_dim)``.

        The masked-autoencoding pass (``geofm:mae``): positions and time/location are
        added before the tokens are selected; every block runs, then the final norm.
        """
        tokens, cls = self._embed(x, temporal_coords, location_coords)
        index = keep.unsqueeze(-1).expand(-1, -1, tokens.shape[-1])
        tokens = torch.cat([cls, torch.gather(tokens, 1, index)], dim=1)
        for block in self.blocks:
            tokens = block(tokens)
        out: torch.Tensor = self.norm(tokens)
        return out
