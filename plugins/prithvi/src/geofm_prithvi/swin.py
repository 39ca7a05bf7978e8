"""The Prithvi Swin encoder: TerraTorch's ``prithvi_swin_B``/``_L`` (an MMSegmentation-style Swin).

Written from the architecture: a patch embedding (Conv2d + LayerNorm), four stages of
shifted-window blocks, each stage normalised into one feature map and merged 2x2 into
the next. Behaviour that decides the outputs, as TerraTorch has it:

* any input size: the patch embedding pads bottom/right by replicating the edge to a
  multiple of the patch, a patch merging pads odd maps with zeros, and the attention
  pads each map with zeros to whole windows (the shift mask is built on the padded map);
* every odd block shifts by ``window_size // 2``, even on maps no larger than a window;
* the 2x2 merge concatenates each channel's four pixels in row-major order (as
  ``nn.Unfold`` lays them out), not timm's quadrant order, so timm's blocks do not fit
  the checkpoints' ``reduction`` weights.

Module names are geofm's (``attn``, ``mlp.fc1``); :mod:`geofm_prithvi.swin_weights`
maps TerraTorch's (``attn.w_msa``, ``ffn.layers.0.0``) onto them.
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
    "PatchMerging",
    "PrithviSwin",
    "SwinBlock",
    "SwinPatchEmbed",
    "SwinStage",
    "WindowAttention",
    "relative_position_index",
    "shift_mask",
]

#: The attention logit added between tokens of different regions of a shifted window.
_MASKED = -100.0


def relative_position_index(window: int) -> torch.Tensor:
    """``(w*w, w*w)`` index into the ``(2w-1)**2`` relative-position table of a window."""
    rows, cols = torch.meshgrid(torch.arange(window), torch.arange(window), indexing="ij")
    coords = torch.stack([rows.flatten(), cols.flatten()])  # (2, w*w)
    delta = coords[:, :, None] - coords[:, None, :] + (window - 1)  # shift to >= 0
    return delta[0] * (2 * window - 1) + delta[1]


def _windows(x: torch.Tensor, window: int) -> torch.Tensor:
    """``(B, H, W, C)`` with H, W multiples of ``window`` to ``(B*nW, window*window, C)``."""
    b, h, w, c = x.shape
    x = x.view(b, h // window, window, w // window, window, c).permute(0, 1, 3, 2, 4, 5)
    return x.reshape(-1, window * window, c)


def _unwindow(windows: torch.Tensor, window: int, b: int, h: int, w: int) -> torch.Tensor:
    """Inverse of :func:`_windows`: back to ``(B, H, W, C)``."""
    c = windows.shape[-1]
    x = windows.view(b, h // window, w // window, window, window, c).permute(0, 1, 3, 2, 4, 5)
    return x.reshape(b, h, w, c)


def shift_mask(height: int, width: int, window: int, shift: int,
               device: torch.device | None = None) -> torch.Tensor:
    """``(nW, w*w, w*w)`` additive mask of a shifted ``height x width`` map (multiples of w).

    After the cyclic shift, a window can hold pixels from up to four regions of the map;
    tokens attend only within their region (other logits get -100).
    """
    region = torch.zeros(height, width, device=device)
    bounds = ((0, -window), (-window, -shift), (-shift, None))
    label = 0
    for top, bottom in bounds:
        for left, right in bounds:
            region[top:bottom, left:right] = label
            label += 1
    ids = _windows(region[None, :, :, None], window).squeeze(-1)  # (nW, w*w)
    different = ids[:, None, :] != ids[:, :, None]
    return torch.zeros_like(different, dtype=torch.float32).masked_fill(different, _MASKED)


class SwinPatchEmbed(nn.Module):
    """Non-overlapping patches to tokens: Conv2d (kernel = stride = patch), then LayerNorm.

    Inputs whose size is not a multiple of the patch are padded at the bottom and right
    by replicating the last row/column (TerraTorch's ``padding_mode="replicate"``).
    """

    def __init__(self, in_chans: int, embed_dim: int, patch_size: int) -> None:
        super().__init__()
        self.patch_size = patch_size
        self.proj = nn.Conv2d(in_chans, embed_dim, kernel_size=patch_size, stride=patch_size)
        self.norm = nn.LayerNorm(embed_dim)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, tuple[int, int]]:
        """``(B, C, H, W)`` to ``(B, h*w, embed_dim)`` tokens and the grid ``(h, w)``."""
        p = self.patch_size
        pad_h, pad_w = -x.shape[-2] % p, -x.shape[-1] % p
        if pad_h or pad_w:
            x = F.pad(x, (0, pad_w, 0, pad_h), mode="replicate")
        out: torch.Tensor = self.proj(x)
        grid = (out.shape[2], out.shape[3])
        return self.norm(out.flatten(2).transpose(1, 2)), grid


class WindowAttention(nn.Module):
    """Multi-head self-attention inside square windows, with a learned relative-position bias."""

    def __init__(self, dim: int, num_heads: int, window_size: int, qkv_bias: bool = True) -> None:
        super().__init__()
        if dim % num_heads:
            raise ConfigurationError(
                f"Swin stage width {dim} is not divisible by its {num_heads} heads; choose "
                "embed_dim and num_heads so that every stage's ratio is an integer"
            )
        self.num_heads = num_heads
        self.window_size = window_size
        self.scale = (dim // num_heads) ** -0.5
        self.relative_position_bias_table = nn.Parameter(
            torch.zeros((2 * window_size - 1) ** 2, num_heads))
        # computed from the window size, so not saved (official files carry it; dropped)
        self.register_buffer("relative_position_index", relative_position_index(window_size),
                             persistent=False)
        self.qkv = nn.Linear(dim, dim * 3, bias=qkv_bias)
        self.proj = nn.Linear(dim, dim)

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        """Attend within each window of ``x`` ``(B*nW, w*w, C)``; ``mask`` is ``(nW, w*w, w*w)``."""
        bw, n, c = x.shape
        qkv = self.qkv(x).reshape(bw, n, 3, self.num_heads, c // self.num_heads)
        q, k, v = qkv.permute(2, 0, 3, 1, 4).unbind(0)
        logits = (q * self.scale) @ k.transpose(-2, -1)
        index = self.relative_position_index
        assert isinstance(index, torch.Tensor)  # a buffer; typed Tensor | Module by nn
        bias = self.relative_position_bias_table[index.reshape(-1)].view(n, n, -1)
        logits = logits + bias.permute(2, 0, 1)[None]
        if mask is not None:
            windows = mask.shape[0]
            logits = logits.view(bw // windows, windows, self.num_heads, n, n) + mask[None, :, None]
            logits = logits.view(bw, self.num_heads, n, n)
        out = logits.softmax(dim=-1) @ v
        result: torch.Tensor = self.proj(out.transpose(1, 2).reshape(bw, n, c))
        return result


class SwinBlock(nn.Module):
    """Pre-norm (shifted-)window attention and MLP, each with a residual connection."""

    def __init__(self, dim: int, num_heads: int, window_size: int, shift: bool,
                 mlp_ratio: float = 4.0, qkv_bias: bool = True, drop_path: float = 0.0) -> None:
        super().__init__()
        self.window_size = window_size
        self.shift_size = window_size // 2 if shift else 0
        self.norm1 = nn.LayerNorm(dim)
        self.attn = WindowAttention(dim, num_heads, window_size, qkv_bias)
        self.norm2 = nn.LayerNorm(dim)
        self.mlp = Mlp(dim, int(mlp_ratio * dim))
        self.drop_path = DropPath(drop_path)

    def _attend(self, x: torch.Tensor, grid: tuple[int, int]) -> torch.Tensor:
        b, _, c = x.shape
        h, w = grid
        win, shift = self.window_size, self.shift_size
        x = x.view(b, h, w, c)
        pad_h, pad_w = -h % win, -w % win
        x = F.pad(x, (0, 0, 0, pad_w, 0, pad_h))  # zeros after norm1, as TerraTorch
        hp, wp = h + pad_h, w + pad_w
        mask = None
        if shift:
            x = torch.roll(x, shifts=(-shift, -shift), dims=(1, 2))
            mask = shift_mask(hp, wp, win, shift, x.device).to(x.dtype)
        out = _unwindow(self.attn(_windows(x, win), mask), win, b, hp, wp)
        if shift:
            out = torch.roll(out, shifts=(shift, shift), dims=(1, 2))
        return out[:, :h, :w].reshape(b, h * w, c)

    def forward(self, x: torch.Tensor, grid: tuple[int, int]) -> torch.Tensor:
        """``(B, h*w, C)`` tokens on the grid ``(h, w)`` to the same shape."""
        x = x + self.drop_path(self._attend(self.norm1(x), grid))
        out: torch.Tensor = x + self.drop_path(self.mlp(self.norm2(x)))
        return out


class PatchMerging(nn.Module):
    """2x2 neighbourhoods to one token: LayerNorm over the 4C values, then Linear(4C, 2C).

    The 4C vector holds, for each channel in turn, its top-left, top-right, bottom-left
    and bottom-right pixel; odd maps are padded with zeros at the bottom/right first.
    """

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.norm = nn.LayerNorm(4 * dim)
        self.reduction = nn.Linear(4 * dim, 2 * dim, bias=False)

    def forward(self, x: torch.Tensor, grid: tuple[int, int]
                ) -> tuple[torch.Tensor, tuple[int, int]]:
        """``(B, h*w, C)`` to ``(B, ceil(h/2)*ceil(w/2), 2C)`` and the new grid."""
        b, _, c = x.shape
        h, w = grid
        x = F.pad(x.view(b, h, w, c), (0, 0, 0, w % 2, 0, h % 2))
        quads = [x[:, i::2, j::2] for i in (0, 1) for j in (0, 1)]
        merged = torch.stack(quads, dim=-1)  # (B, h/2, w/2, C, 4): channel-major
        new_grid = (merged.shape[1], merged.shape[2])
        out: torch.Tensor = self.reduction(self.norm(merged.reshape(b, -1, 4 * c)))
        return out, new_grid


class SwinStage(nn.Module):
    """One resolution: its blocks, its feature norm and the merging into the next stage.

    Even blocks attend in plain windows, odd ones in shifted windows; the last stage
    merges nothing.
    """

    def __init__(self, dim: int, depth: int, num_heads: int, window_size: int,
                 drop_path: Sequence[float], merge: bool, mlp_ratio: float = 4.0) -> None:
        super().__init__()
        self.blocks = nn.ModuleList(
            SwinBlock(dim, num_heads, window_size, shift=i % 2 == 1, mlp_ratio=mlp_ratio,
                      drop_path=drop_path[i])
            for i in range(depth)
        )
        self.norm = nn.LayerNorm(dim)
        self.downsample = PatchMerging(dim) if merge else None

    def forward(self, x: torch.Tensor, grid: tuple[int, int]
                ) -> tuple[torch.Tensor, torch.Tensor, tuple[int, int]]:
        """Return the stage's normalised ``(B, h, w, C)`` map, the next stage's tokens and grid."""
        for block in self.blocks:
            x = block(x, grid)
        feature = self.norm(x).view(x.shape[0], *grid, -1)
        if self.downsample is None:
            return feature, x, grid
        merged, new_grid = self.downsample(x, grid)
        return feature, merged, new_grid


def _ints(value: int | Sequence[int], count: int, name: str) -> tuple[int, ...]:
    values = (value,) * count if isinstance(value, int) else tuple(int(v) for v in value)
    if len(values) != count or any(v < 1 for v in values):
        raise ConfigurationError(
            f"{name} must be {count} positive integers (one per stage), got {value!r}")
    return values


class PrithviSwin(nn.Module):
    """Prithvi Swin encoder: the normalised feature maps of the requested stages.

    Input ``(B, C, H, W)`` of any size (padded inside as TerraTorch does); stage ``i``
    has ``embed_dim * 2**i`` channels at stride ``patch_size * 2**i`` (rounded up).

    Args:
        in_chans: Number of input bands.
        img_size: Pre-training image size (nominal: any size works).
        patch_size: Patch size of the embedding (the first stride).
        embed_dim: Width of the first stage (doubled by every merging).
        depths: Blocks per stage.
        num_heads: Attention heads per stage.
        window_size: Side of the attention windows, in tokens.
        mlp_ratio: MLP hidden width over the stage width.
        drop_path_rate: Stochastic depth, linear from 0 over all blocks to this value
            (TerraTorch's rule; training only).
        out_indices: Stages whose feature maps are returned (default all; negative from
            the end).
    """

    def __init__(
        self,
        in_chans: int = 6,
        img_size: int | Sequence[int] = 224,
        patch_size: int = 4,
        embed_dim: int = 128,
        depths: Sequence[int] = (2, 2, 18, 2),
        num_heads: int | Sequence[int] = (4, 8, 16, 32),
        window_size: int = 7,
        mlp_ratio: float = 4.0,
        drop_path_rate: float = 0.1,
        out_indices: Sequence[int] | None = None,
    ) -> None:
        super().__init__()
        stages = len(depths)
        depth_list = _ints(depths, stages, "depths") if stages else ()
        heads = _ints(num_heads, stages, "num_heads")
        if not stages or in_chans < 1 or patch_size < 1 or embed_dim < 1 or window_size < 2:
            raise ConfigurationError(
                f"Prithvi Swin needs at least one stage, in_chans, patch_size and embed_dim of "
                f"at least 1 and window_size of at least 2; got depths={list(depths)}, "
                f"in_chans={in_chans}, patch_size={patch_size}, embed_dim={embed_dim}, "
                f"window_size={window_size}"
            )
        self.in_chans = in_chans
        self.img_size = (img_size, img_size) if isinstance(img_size, int) else tuple(img_size)
        self.patch_size = patch_size
        self.window_size = window_size
        self.embed_dim = embed_dim
        self.depths = depth_list
        self.out_indices = self._check_indices(out_indices, stages)
        widths = [embed_dim * 2**i for i in range(stages)]
        #: Channels of each returned feature map.
        self.out_channels: list[int] = [widths[i] for i in self.out_indices]
        #: Strides of each returned feature map (its size is the input's over it, rounded up).
        self.reductions: list[int] = [patch_size * 2**i for i in self.out_indices]
        #: Any size works: the encoder pads inside, as TerraTorch's does, so models must
        #: not pad before it.
        self.input_multiple: int = 1
        #: Names of the input bands, in order (set by the registered factories).
        self.bands: list[str] = [f"band_{i}" for i in range(in_chans)]
        #: Registry name of the variant, when built by a factory.
        self.variant: str = ""
        #: Bands of the loaded checkpoint's patch embedding (``None``: no weights loaded).
        self.pretrained_bands: tuple[str, ...] | None = None
        #: Checkpoint keys dropped when weights were loaded, name -> why.
        self.dropped_keys: dict[str, str] = {}

        self.patch_embed = SwinPatchEmbed(in_chans, embed_dim, patch_size)
        total = sum(depth_list)
        rates = [drop_path_rate * i / (total - 1) if total > 1 else 0.0 for i in range(total)]
        starts = [sum(depth_list[:i]) for i in range(stages)]
        self.stages = nn.ModuleList(
            SwinStage(widths[i], depth_list[i], heads[i], window_size,
                      rates[starts[i]:starts[i] + depth_list[i]], merge=i < stages - 1,
                      mlp_ratio=mlp_ratio)
            for i in range(stages)
        )
        self.reset_parameters()

    @staticmethod
    def _check_indices(out_indices: Sequence[int] | None, stages: int) -> list[int]:
        if out_indices is None:
            return list(range(stages))
        result = [int(i) + stages if int(i) < 0 else int(i) for i in out_indices]
        if not result or any(not 0 <= j < stages for j in result):
            raise ConfigurationError(
                f"out_indices {list(out_indices)} must name stages 0..{stages - 1} (or "
                "negative indices from the end), at least one"
            )
        return result

    def reset_parameters(self) -> None:
        """Swin's usual initialisation: truncated normal (std 0.02) linears and bias tables."""
        for module in self.modules():
            if isinstance(module, nn.Linear):
                nn.init.trunc_normal_(module.weight, std=0.02)
                if module.bias is not None:
                    nn.init.zeros_(module.bias)
            elif isinstance(module, nn.LayerNorm):
                nn.init.ones_(module.weight)
                nn.init.zeros_(module.bias)
            elif isinstance(module, WindowAttention):
                nn.init.trunc_normal_(module.relative_position_bias_table, std=0.02)

    def forward(self, x: torch.Tensor, **metadata: Any) -> list[torch.Tensor]:
        """Encode ``x`` ``(B, C, H, W)``; return ``(B, C_i, H_i, W_i)`` maps of ``out_indices``.

        Args:
            x: The image batch.
            **metadata: Batch metadata (coordinates, ...), ignored.
        """
        if x.ndim != 4 or x.shape[1] != self.in_chans:
            raise ConfigurationError(
                f"Prithvi Swin was built for images (B, {self.in_chans}, H, W) but got a tensor "
                f"of shape {tuple(x.shape)}; set `bands` to the input's bands (the Swin "
                "encoders take one frame)"
            )
        tokens, grid = self.patch_embed(x)
        wanted = set(self.out_indices)
        features: dict[int, torch.Tensor] = {}
        for i, stage in enumerate(self.stages[: max(self.out_indices) + 1]):
            feature, tokens, grid = stage(tokens, grid)
            if i in wanted:
                features[i] = feature.permute(0, 3, 1, 2).contiguous()
        return [features[i] for i in self.out_indices]
