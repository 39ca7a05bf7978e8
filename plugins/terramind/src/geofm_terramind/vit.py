"""The TerraMind v1 encoder: per-modality patch embeddings, one transformer, merged tokens.

Module and tensor names follow the official checkpoints (``encoder_embeddings.<key>.proj``,
``encoder_embeddings.<key>.mod_emb``, ``encoder.N.attn.qkv``, ``encoder.N.mlp.fc3``,
``encoder_norm``, the LayerNorms' zero ``bias`` buffers), so an official file maps onto it
key by key. The fixed sin-cos position embeddings are recomputed, not stored.
"""

from __future__ import annotations

import random
from collections.abc import Mapping, Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from geofm_core.errors import ConfigurationError
from geofm_core.models.layers import DropPath, Mlp

__all__ = [
    "MERGE_METHODS",
    "Attention",
    "Block",
    "GatedMlp",
    "LayerNorm",
    "PatchEmbedding",
    "TerraMindViT",
    "sincos_2d",
]

#: How the tokens of several modalities are combined (``None``: not at all).
MERGE_METHODS = ("mean", "max", "concat", "dict", None)


def sincos_2d(grid: tuple[int, int], dim: int, temperature: float = 10000.0) -> torch.Tensor:
    """Fixed 2-D sine-cosine position embedding ``(1, h*w, dim)`` of a ``(h, w)`` token grid.

    Channels are four blocks ``sin(a), cos(a), sin(b), cos(b)``; token ``n`` has
    ``a = n // h`` and ``b = n % h`` (the official embedding's layout: on the square
    grids it is made for, ``a`` is the token's row and ``b`` its column).
    """
    if dim % 4:
        raise ConfigurationError(f"embed_dim must be divisible by 4 for the 2-D sin-cos "
                                 f"position embedding, got {dim}")
    h, w = grid
    a, b = torch.meshgrid(torch.arange(w), torch.arange(h), indexing="ij")
    quarter = dim // 4
    omega = 1.0 / temperature ** (torch.arange(quarter, dtype=torch.float32) / quarter)
    out_a = a.reshape(-1).float()[:, None] * omega[None, :]
    out_b = b.reshape(-1).float()[:, None] * omega[None, :]
    return torch.cat([out_a.sin(), out_a.cos(), out_b.sin(), out_b.cos()], dim=1)[None]


class LayerNorm(nn.Module):
    """LayerNorm with a learned scale and a fixed zero ``bias`` buffer (the official layout)."""

    bias: torch.Tensor

    def __init__(self, dim: int, eps: float = 1e-6) -> None:
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(dim))
        # a buffer, not a parameter: the official files carry it, training leaves it zero
        self.register_buffer("bias", torch.zeros(dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Normalise over the last dimension."""
        return F.layer_norm(x, self.weight.shape, self.weight, self.bias, eps=self.eps)


class Attention(nn.Module):
    """Multi-head self-attention with a fused qkv projection."""

    def __init__(self, dim: int, num_heads: int, qkv_bias: bool, proj_bias: bool,
                 attn_drop: float = 0.0, proj_drop: float = 0.0) -> None:
        super().__init__()
        if dim % num_heads:
            raise ConfigurationError(f"embed_dim {dim} is not divisible by num_heads "
                                     f"{num_heads}; choose values whose ratio is an integer")
        self.num_heads = num_heads
        self.scale = (dim // num_heads) ** -0.5
        self.attn_drop = attn_drop
        self.qkv = nn.Linear(dim, dim * 3, bias=qkv_bias)
        self.proj = nn.Linear(dim, dim, bias=proj_bias)
        self.proj_drop = nn.Dropout(proj_drop)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Attend over the ``N`` tokens of ``x`` (B, N, C)."""
        b, n, c = x.shape
        q, k, v = self.qkv(x).reshape(b, n, 3, self.num_heads, c // self.num_heads) \
            .permute(2, 0, 3, 1, 4).unbind(0)
        out = F.scaled_dot_product_attention(
            q, k, v, dropout_p=self.attn_drop if self.training else 0.0, scale=self.scale)
        result: torch.Tensor = self.proj_drop(self.proj(out.transpose(1, 2).reshape(b, n, c)))
        return result


class GatedMlp(nn.Module):
    """SwiGLU: ``fc2(silu(fc1(x)) * fc3(x))`` with 2/3 of the hidden width (base and large)."""

    def __init__(self, dim: int, hidden: int, bias: bool) -> None:
        super().__init__()
        hidden = int(2 * hidden / 3)  # the gate's extra matrix keeps the parameter count
        self.fc1 = nn.Linear(dim, hidden, bias=bias)
        self.act = nn.SiLU()
        self.fc2 = nn.Linear(hidden, dim, bias=bias)
        self.fc3 = nn.Linear(dim, hidden, bias=bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Gate the hidden layer."""
        out: torch.Tensor = self.fc2(self.act(self.fc1(x)) * self.fc3(x))
        return out


class Block(nn.Module):
    """Pre-norm transformer block."""

    def __init__(self, dim: int, num_heads: int, mlp_ratio: float, *, bias: bool,
                 gated: bool, drop_path: float = 0.0, drop: float = 0.0,
                 attn_drop: float = 0.0) -> None:
        super().__init__()
        self.norm1 = LayerNorm(dim)
        self.attn = Attention(dim, num_heads, bias, bias, attn_drop, drop)
        self.drop_path = DropPath(drop_path)
        self.norm2 = LayerNorm(dim)
        hidden = int(dim * mlp_ratio)
        self.mlp: nn.Module = GatedMlp(dim, hidden, bias) if gated else Mlp(dim, hidden, bias,
                                                                            drop)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Attention and feed-forward, each residual."""
        x = x + self.drop_path(self.attn(self.norm1(x)))
        out: torch.Tensor = x + self.drop_path(self.mlp(self.norm2(x)))
        return out


class PatchEmbedding(nn.Module):
    """One image modality: channel-last flattened patches, a bias-free linear map, embeddings.

    Position and modality embeddings are added to the projected patches. The position
    grid is that of ``img_size``; other input sizes resize it bicubically (as the
    official code does).
    """

    pos_emb: torch.Tensor

    def __init__(self, channels: int, dim: int, patch_size: int, img_size: int) -> None:
        super().__init__()
        self.channels = channels
        self.patch_size = patch_size
        self.img_size = img_size
        self.proj = nn.Linear(channels * patch_size * patch_size, dim, bias=False)
        self.mod_emb = nn.Parameter(torch.zeros(1, 1, dim))
        side = img_size // patch_size
        self.register_buffer("pos_emb", sincos_2d((side, side), dim), persistent=False)

    def position_embedding(self, height: int, width: int) -> torch.Tensor:
        """The ``(1, h*w, dim)`` position embedding of an input of ``height x width`` pixels."""
        pos = self.pos_emb
        if (height, width) == (self.img_size, self.img_size):
            return pos
        side, dim = self.img_size // self.patch_size, pos.shape[-1]
        grid = pos.reshape(1, side, side, dim).permute(0, 3, 1, 2)
        size = (height // self.patch_size, width // self.patch_size)
        resized = F.interpolate(grid, size=size, mode="bicubic", align_corners=False)
        return resized.permute(0, 2, 3, 1).reshape(1, -1, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``(B, C, H, W)`` to ``(B, H/p * W/p, dim)`` tokens, embeddings added."""
        b, c, h, w = x.shape
        p = self.patch_size
        patches = x.reshape(b, c, h // p, p, w // p, p).permute(0, 2, 4, 3, 5, 1) \
            .reshape(b, (h // p) * (w // p), p * p * c)
        pos = self.position_embedding(h, w).to(x.dtype)
        out: torch.Tensor = self.proj(patches) + (pos + self.mod_emb)
        return out


def _check_indices(out_indices: Sequence[int] | None, depth: int) -> list[int]:
    if out_indices is None:
        return list(range(depth))
    result = []
    for i in out_indices:
        j = int(i) + depth if int(i) < 0 else int(i)
        if not 0 <= j < depth:
            raise ConfigurationError(
                f"out_indices {list(out_indices)} has {i}, outside the {depth} blocks (use "
                f"0..{depth - 1} or negative indices from the end)")
        result.append(j)
    if not result:
        raise ConfigurationError("out_indices is empty; give at least one block index")
    return result


class TerraMindViT(nn.Module):
    """TerraMind encoder over one or more image modalities.

    Input: one stacked tensor ``(B, C, H, W)`` whose channels are the modalities' in the
    order of ``modalities`` (split by their channel counts), or a dict of modality name
    -> ``(B, C_m, H, W)``. Each modality is patch-embedded, the token sequences are
    concatenated and encoded; each requested block's tokens are then merged per
    ``merge_method``: ``mean`` / ``max`` over the modalities (``(B, N, dim)``),
    ``concat`` along the channels (``(B, N, dim * M)``), ``dict`` (modality -> tokens)
    or ``None`` (the concatenated sequence). There is no CLS token.

    Args:
        modalities: ``(name, checkpoint key, channels, band names)`` per modality, in
            input order (built by :func:`geofm_terramind.configs.build_terramind`).
        img_size: Size of the position grid (square); other sizes resize it.
        patch_size: Patch size.
        embed_dim: Token width.
        depth: Number of blocks.
        num_heads: Attention heads.
        mlp_ratio: Feed-forward width over ``embed_dim``.
        bias: Biases in the qkv, projection and feed-forward layers.
        gated: SwiGLU feed-forward instead of a GELU MLP.
        merge_method: One of :data:`MERGE_METHODS`.
        out_indices: Blocks whose tokens are returned (default all; negative from the
            end). The last block's tokens pass the final norm.
        drop_path_rate: Stochastic depth, linear from 0 to this at the last block.
        drop_rate: Dropout after the attention projection and the MLP.
        attn_drop_rate: Attention dropout.
        modality_drop_rate: In training, drop each modality but one (chosen at random)
            with this probability.
    """

    def __init__(
        self,
        modalities: Sequence[tuple[str, str, int, Sequence[str]]],
        *,
        img_size: int = 224,
        patch_size: int = 16,
        embed_dim: int = 768,
        depth: int = 12,
        num_heads: int = 12,
        mlp_ratio: float = 4.0,
        bias: bool = True,
        gated: bool = False,
        merge_method: str | None = "mean",
        out_indices: Sequence[int] | None = None,
        drop_path_rate: float = 0.0,
        drop_rate: float = 0.0,
        attn_drop_rate: float = 0.0,
        modality_drop_rate: float = 0.0,
    ) -> None:
        super().__init__()
        if merge_method not in MERGE_METHODS:
            raise ConfigurationError(f"merge_method {merge_method!r} is not one of "
                                     f"{', '.join(map(str, MERGE_METHODS))}")
        if not 0.0 <= modality_drop_rate <= 1.0:
            raise ConfigurationError(
                f"modality_drop_rate must be in [0, 1], got {modality_drop_rate}")
        if not isinstance(img_size, int) or img_size % patch_size:
            raise ConfigurationError(
                f"img_size must be one int, a multiple of patch_size {patch_size}; got "
                f"{img_size!r}")
        if not modalities:
            raise ConfigurationError("TerraMind needs at least one modality")
        self.modality_names = [name for name, *_ in modalities]
        self.modality_keys = {name: key for name, key, *_ in modalities}
        self.modality_channels = {name: int(c) for name, _, c, _ in modalities}
        self.merge_method = merge_method
        self.modality_drop_rate = modality_drop_rate
        self.img_size = img_size
        self.patch_size = patch_size
        self.embed_dim = embed_dim
        self.depth = depth
        self.out_indices = _check_indices(out_indices, depth)
        self.encoder_embeddings = nn.ModuleDict({
            key: PatchEmbedding(c, embed_dim, patch_size, img_size)
            for _, key, c, _ in modalities})
        if merge_method == "concat":
            self.missing_mod_token = nn.Parameter(torch.zeros(embed_dim))
        rates = [r.item() for r in torch.linspace(0, drop_path_rate, depth, device="cpu")]
        self.encoder = nn.ModuleList(
            Block(embed_dim, num_heads, mlp_ratio, bias=bias, gated=gated, drop_path=rate,
                  drop=drop_rate, attn_drop=attn_drop_rate) for rate in rates)
        self.encoder_norm = LayerNorm(embed_dim)
        width = embed_dim * len(modalities) if merge_method == "concat" else embed_dim
        self._out_channels = [width] * len(self.out_indices)
        #: Input H and W must be multiples of this (PixelWiseModel pads otherwise).
        self.input_multiple: int = patch_size
        #: The input's band names in stacked order (the modalities' bands, concatenated).
        self.bands: list[str] = [b for *_, bands in modalities for b in bands]
        #: Bands of the loaded weights' patch embeddings (``None``: no weights loaded).
        self.pretrained_bands: tuple[str, ...] | None = None
        #: Registry name of the variant, when built by a factory.
        self.variant = ""
        self.reset_parameters()

    @property
    def out_channels(self) -> list[int]:
        """Channels of each returned level (tokens: their width).

        Raises:
            ConfigurationError: With ``merge_method`` ``dict`` or ``None``, whose outputs
                (per-modality dicts, one sequence of all modalities) no neck takes.
        """
        if self.merge_method in ("dict", None):
            what = ("a dict of tokens per modality" if self.merge_method
                    else "one token sequence of all modalities")
            raise ConfigurationError(
                f"TerraMind with merge_method {self.merge_method!r} returns {what} per level, "
                "which geofm's necks and decoders do not take; use mean, max or concat in a "
                "model")
        return self._out_channels

    def reset_parameters(self) -> None:
        """Initialise as the official code does (MAE-style xavier, qkv per part)."""
        for name, module in self.named_modules():
            if isinstance(module, nn.Linear):
                rows = module.weight.shape[0] // 3 if name.endswith("qkv") else \
                    module.weight.shape[0]
                bound = (6.0 / float(rows + module.weight.shape[1])) ** 0.5
                nn.init.uniform_(module.weight, -bound, bound)
                if module.bias is not None:
                    nn.init.zeros_(module.bias)
        for embedding in self.encoder_embeddings.values():
            assert isinstance(embedding, PatchEmbedding)
            nn.init.normal_(embedding.mod_emb, std=0.02)
        if self.merge_method == "concat":
            nn.init.normal_(self.missing_mod_token, std=0.02)

    # -- input --------------------------------------------------------------------

    def split_input(self, x: torch.Tensor | Mapping[str, torch.Tensor]
                    ) -> dict[str, torch.Tensor]:
        """The per-modality tensors of a stacked ``(B, C, H, W)`` input or a dict of them.

        Raises:
            ConfigurationError: The channels do not add up to the modalities', a dict
                names an unknown modality, or a size is not a multiple of the patch.
        """
        expected = ", ".join(f"{n}: {c}" for n, c in self.modality_channels.items())
        if isinstance(x, Mapping):
            unknown = [k for k in x if k not in self.modality_keys]
            if unknown or not x:
                raise ConfigurationError(
                    f"TerraMind input names modalities {unknown or 'none'}; this model was "
                    f"built for {self.modality_names} (give a dict of those names)")
            parts = dict(x)
        else:
            if x.ndim != 4 or x.shape[1] != sum(self.modality_channels.values()):
                raise ConfigurationError(
                    f"TerraMind got an input of shape {tuple(x.shape)}; it expects (B, C, H, "
                    f"W) with C = {sum(self.modality_channels.values())}, the channels of "
                    f"its modalities stacked in order ({expected}). Set `modalities` (and "
                    "`bands`) to what the data stacks, or stack the data's bands that way")
            chunks = torch.split(x, list(self.modality_channels.values()), dim=1)
            parts = dict(zip(self.modality_names, chunks, strict=True))
        for name, tensor in parts.items():
            c = self.modality_channels[name]
            if tensor.ndim != 4 or tensor.shape[1] != c:
                raise ConfigurationError(
                    f"TerraMind modality {name} expects (B, {c}, H, W), got "
                    f"{tuple(tensor.shape)} (channels per modality: {expected})")
            h, w = tensor.shape[-2:]
            if h % self.patch_size or w % self.patch_size:
                raise ConfigurationError(
                    f"TerraMind modality {name}: {h}x{w} pixels is not a multiple of the "
                    f"patch size {self.patch_size}; pad H and W (PixelWiseModel does this)")
        return parts

    # -- forward ------------------------------------------------------------------

    def forward(self, x: torch.Tensor | Mapping[str, torch.Tensor],
                **metadata: Any) -> list[Any]:
        """Encode; one merged token tensor (or dict) per entry of ``out_indices``.

        Args:
            x: Stacked ``(B, C, H, W)`` or a dict of modality name -> tensor.
            **metadata: Other batch metadata, ignored.
        """
        parts = self.split_input(x)
        names = list(parts)
        if self.training and self.modality_drop_rate and len(names) > 1:
            for name in random.sample(names, k=len(names) - 1):
                if random.random() < self.modality_drop_rate:
                    del parts[name]
            names = list(parts)
        tokens = [self.encoder_embeddings[self.modality_keys[n]](parts[n]) for n in names]
        counts = [t.shape[1] for t in tokens]
        seq = torch.cat(tokens, dim=1)
        wanted, last = set(self.out_indices), self.depth - 1
        levels: dict[int, torch.Tensor] = {}
        for i, block in enumerate(self.encoder[: max(self.out_indices) + 1]):
            seq = block(seq)
            if i in wanted:
                levels[i] = self.encoder_norm(seq) if i == last else seq
        return [self._merge(levels[i], counts, names) for i in self.out_indices]

    def _merge(self, seq: torch.Tensor, counts: list[int], names: list[str]) -> Any:
        if self.merge_method is None:
            return seq
        split = torch.split(seq, counts, dim=1)
        if self.merge_method == "dict":
            return dict(zip(names, split, strict=True))
        if len(set(counts)) > 1:
            raise ConfigurationError(
                f"merge_method {self.merge_method!r} needs the same token grid for every "
                f"modality, got {dict(zip(names, counts, strict=True))} tokens; give the "
                "modalities the same H and W, or use merge_method 'dict'")
        stacked = torch.stack(split, dim=1)  # (B, M, N, D)
        if self.merge_method == "mean":
            return stacked.mean(dim=1)
        if self.merge_method == "max":
            return stacked.max(dim=1)[0]
        missing = len(self.modality_names) - len(names)
        if missing:  # dropped or absent modalities: the learned stand-in, at the end
            b, _, n, _ = stacked.shape
            filler = self.missing_mod_token.repeat(b, missing, n, 1)
            stacked = torch.cat([stacked, filler], dim=1)
        return torch.cat(stacked.unbind(dim=1), dim=-1)
