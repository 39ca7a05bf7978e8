"""Galileo's encoder, with the official module and parameter names.

:class:`GalileoEncoder` takes Galileo's own inputs (channel-last tensors of the four
input kinds and their per-group masks, 1 = absent) and holds the parameters under the
names of the official ``encoder.pt`` (``space_time_embed.S2_RGB.proj.weight``,
``blocks.3.attn.q.weight``, ``s_t_channel_embed``, ...), so that file loads strictly.

Tokens: one per channel group and patch (space groups), per group, patch and time step
(space-time groups), per group and time step (time groups), per group (static groups).
Each gets a quarter of its width from each of four encodings: its channel group (learned),
its time step (fixed sin-cos), its month (fixed sin-cos table) and its patch position
(2D sin-cos scaled by the ground distance a patch covers); kinds without time or space
get zeros in those quarters. Masked tokens are left out of the attention, as Galileo
does by moving them to the end of each sequence; they come back as zeros.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import nn

from geofm_core.models.layers import DropPath, Mlp
from geofm_galileo.constants import (
    BASE_GSD,
    SPACE_BANDS,
    SPACE_GROUPS,
    SPACE_TIME_BANDS,
    SPACE_TIME_GROUPS,
    STATIC_BANDS,
    STATIC_GROUPS,
    TIME_BANDS,
    TIME_GROUPS,
)

__all__ = ["Block", "FlexiPatchEmbed", "GalileoEncoder", "GalileoTokens", "sincos_1d"]


def _indices(bands: tuple[str, ...], groups: dict[str, tuple[str, ...]]) -> dict[str, list[int]]:
    return {name: [bands.index(b) for b in members] for name, members in groups.items()}


def sincos_1d(dim: int, positions: torch.Tensor) -> torch.Tensor:
    """Galileo's 1D sin-cos encoding: ``(M, dim)`` for ``M`` positions (sines, then cosines).

    The frequencies are ``1 / 10000 ** (i / (2 * dim))``, as in the official code (not the
    MAE convention ``i / (dim / 2)``).
    """
    if dim % 2:
        raise ValueError(f"sin-cos encodings need an even width, got {dim}")
    omega = torch.arange(dim // 2, device=positions.device) / dim / 2.0
    omega = 1.0 / 10000**omega
    angles = positions.reshape(-1).to(omega.dtype)[:, None] * omega[None, :]
    return torch.cat([torch.sin(angles), torch.cos(angles)], dim=1)


def month_table(dim: int) -> torch.Tensor:
    """``(12, dim)``: month ``m`` (0-based) as ``sin`` of its angle repeated, then ``cos``."""
    angles = torch.arange(0, 13) / (12 / (2 * math.pi))
    sin = torch.sin(angles)[:-1, None].expand(12, dim // 2)
    cos = torch.cos(angles)[:-1, None].expand(12, dim // 2)
    return torch.cat([sin, cos], dim=-1).contiguous()


def spatial_encoding(dim: int, h: int, w: int, gsd_ratio: torch.Tensor) -> torch.Tensor:
    """``(B, h, w, dim)``: column then row position, each scaled by the batch's GSD ratio.

    Galileo's 2D encoding, which it writes for square grids; the same formula on an
    ``h x w`` grid (first half: the column, second half: the row).
    """
    device = gsd_ratio.device
    rows, cols = torch.meshgrid(torch.arange(h, device=device), torch.arange(w, device=device),
                                indexing="ij")
    b = gsd_ratio.shape[0]
    col = cols[None].to(gsd_ratio.dtype) * gsd_ratio[:, None, None]
    row = rows[None].to(gsd_ratio.dtype) * gsd_ratio[:, None, None]
    emb = torch.cat([sincos_1d(dim // 2, col), sincos_1d(dim // 2, row)], dim=1)
    return emb.reshape(b, h, w, dim)


class FlexiPatchEmbed(nn.Module):
    """Patch embedding whose kernel is resized to any patch size (FlexiViT's pseudo-inverse).

    The stored kernel has ``base_patch_size``; for another size ``p`` it is replaced by
    ``pinv(R) @ kernel``, ``R`` the bicubic (antialiased) resize from the base size to
    ``p``, so that a resized patch gives the same token as the original one would.

    Args:
        in_chans: Input channels (the group's bands).
        embed_dim: Token width.
        patch_size: The stored kernel's size.
    """

    def __init__(self, in_chans: int, embed_dim: int, patch_size: int) -> None:
        super().__init__()
        self.base_patch_size = patch_size
        self.proj = nn.Conv2d(in_chans, embed_dim, kernel_size=patch_size, stride=patch_size)
        self._pinvs: dict[int, torch.Tensor] = {}

    def _pinv(self, size: int) -> torch.Tensor:
        if size not in self._pinvs:
            base = self.base_patch_size
            basis = torch.eye(base * base).reshape(base * base, 1, base, base)
            resized = F.interpolate(basis, size=(size, size), mode="bicubic", antialias=True)
            self._pinvs[size] = torch.linalg.pinv(resized.reshape(base * base, size * size))
        return self._pinvs[size]

    def kernel(self, size: int) -> torch.Tensor:
        """The kernel for patches of ``size`` pixels."""
        weight = self.proj.weight
        if size == self.base_patch_size:
            return weight
        out_ch, in_ch = weight.shape[:2]
        pinv = self._pinv(size).to(device=weight.device, dtype=weight.dtype)
        flat = weight.reshape(out_ch * in_ch, -1) @ pinv.T
        return flat.reshape(out_ch, in_ch, size, size)

    def forward(self, x: torch.Tensor, patch_size: int) -> torch.Tensor:
        """``(N, C, H, W)`` -> ``(N, D, H // p, W // p)``."""
        return F.conv2d(x, self.kernel(patch_size), self.proj.bias, stride=patch_size)


class Attention(nn.Module):
    """Multi-head self-attention with separate ``q``, ``k``, ``v`` projections (Galileo's)."""

    def __init__(self, dim: int, num_heads: int) -> None:
        super().__init__()
        if dim % num_heads:
            raise ValueError(f"embedding size {dim} is not divisible by {num_heads} heads")
        self.num_heads = num_heads
        self.q = nn.Linear(dim, dim)
        self.k = nn.Linear(dim, dim)
        self.v = nn.Linear(dim, dim)
        self.proj = nn.Linear(dim, dim)

    def forward(self, x: torch.Tensor, keep: torch.Tensor | None = None) -> torch.Tensor:
        """``x`` (B, N, D); ``keep`` (B, N), True where a key takes part (None: all)."""
        b, n, d = x.shape

        def heads(t: torch.Tensor) -> torch.Tensor:
            return t.reshape(b, n, self.num_heads, d // self.num_heads).transpose(1, 2)

        mask = None if keep is None else keep[:, None, None, :]
        out = F.scaled_dot_product_attention(heads(self.q(x)), heads(self.k(x)),
                                             heads(self.v(x)), attn_mask=mask)
        projected: torch.Tensor = self.proj(out.transpose(1, 2).reshape(b, n, d))
        return projected


class Block(nn.Module):
    """Pre-norm transformer block with stochastic depth."""

    def __init__(self, dim: int, num_heads: int, mlp_ratio: float, drop_path: float) -> None:
        super().__init__()
        self.norm1 = nn.LayerNorm(dim)
        self.attn = Attention(dim, num_heads)
        self.norm2 = nn.LayerNorm(dim)
        self.mlp = Mlp(dim, int(dim * mlp_ratio))
        self.drop_path = DropPath(drop_path)

    def forward(self, x: torch.Tensor, keep: torch.Tensor | None = None) -> torch.Tensor:
        """``x`` (B, N, D); ``keep`` as in :class:`Attention`."""
        x = x + self.drop_path(self.attn(self.norm1(x), keep))
        out: torch.Tensor = x + self.drop_path(self.mlp(self.norm2(x)))
        return out


class GalileoTokens(NamedTuple):
    """Galileo's tokens by input kind, with their masks (1 = absent or masked).

    Shapes: ``space_time`` (B, h, w, T, G_st, D), ``space`` (B, h, w, G_sp, D),
    ``time`` (B, T, G_t, D), ``static`` (B, G_s, D); the masks drop the last axis.
    """

    space_time: torch.Tensor
    space: torch.Tensor
    time: torch.Tensor
    static: torch.Tensor
    space_time_mask: torch.Tensor
    space_mask: torch.Tensor
    time_mask: torch.Tensor
    static_mask: torch.Tensor


class GalileoEncoder(nn.Module):
    """Galileo's encoder (the official ``Encoder``'s architecture and parameter names).

    Args:
        embedding_size: Token width (a multiple of 16: each encoding takes a quarter, and
            the patch position splits its quarter into two sin-cos halves).
        depth: Transformer blocks.
        num_heads: Attention heads.
        mlp_ratio: MLP hidden width over the token width.
        max_sequence_length: Time steps the time-step encoding covers.
        max_patch_size: Patch size of the stored patch-embedding kernels.
        drop_path: Stochastic depth rate of every block (Galileo's is uniform).
    """

    def __init__(self, embedding_size: int = 128, depth: int = 2, num_heads: int = 8,
                 mlp_ratio: float = 2.0, max_sequence_length: int = 24,
                 max_patch_size: int = 8, drop_path: float = 0.0) -> None:
        super().__init__()
        if embedding_size % 16:
            raise ValueError(f"embedding_size must be a multiple of 16, got {embedding_size}")
        self.embedding_size = embedding_size
        self.max_patch_size = max_patch_size
        self.max_sequence_length = max_sequence_length
        self.space_time_groups = _indices(SPACE_TIME_BANDS, SPACE_TIME_GROUPS)
        self.space_groups = _indices(SPACE_BANDS, SPACE_GROUPS)
        self.time_groups = _indices(TIME_BANDS, TIME_GROUPS)
        self.static_groups = _indices(STATIC_BANDS, STATIC_GROUPS)
        quarter = embedding_size // 4
        self.blocks = nn.ModuleList(
            [Block(embedding_size, num_heads, mlp_ratio, drop_path) for _ in range(depth)])
        # Frozen parameters, not buffers: the official file stores them as such.
        self.pos_embed = nn.Parameter(
            sincos_1d(quarter, torch.arange(max_sequence_length)), requires_grad=False)
        self.month_embed = nn.Embedding(12, quarter)
        self.month_embed.weight = nn.Parameter(month_table(quarter), requires_grad=False)
        self.s_t_channel_embed = nn.Parameter(torch.zeros(len(SPACE_TIME_GROUPS), quarter))
        self.sp_channel_embed = nn.Parameter(torch.zeros(len(SPACE_GROUPS), quarter))
        self.t_channel_embed = nn.Parameter(torch.zeros(len(TIME_GROUPS), quarter))
        self.st_channel_embed = nn.Parameter(torch.zeros(len(STATIC_GROUPS), quarter))
        self.space_time_embed = nn.ModuleDict({
            name: FlexiPatchEmbed(len(idx), embedding_size, max_patch_size)
            for name, idx in self.space_time_groups.items()})
        self.space_embed = nn.ModuleDict({
            name: FlexiPatchEmbed(len(idx), embedding_size, max_patch_size)
            for name, idx in self.space_groups.items()})
        self.time_embed = nn.ModuleDict({
            name: nn.Linear(len(idx), embedding_size) for name, idx in self.time_groups.items()})
        self.static_embed = nn.ModuleDict({
            name: nn.Linear(len(idx), embedding_size)
            for name, idx in self.static_groups.items()})
        self.norm = nn.LayerNorm(embedding_size)
        for module in self.modules():
            if isinstance(module, nn.Linear):  # as the official code: xavier, zero bias
                nn.init.xavier_uniform_(module.weight)
                nn.init.zeros_(module.bias)

    # -- projection ---------------------------------------------------------------

    @staticmethod
    def _embed(modules: nn.ModuleDict, name: str) -> FlexiPatchEmbed:
        module = modules[name]
        assert isinstance(module, FlexiPatchEmbed)
        return module

    def _patches(self, embed: FlexiPatchEmbed, x: torch.Tensor, p: int) -> torch.Tensor:
        """(B, H, W, [T,] C) -> (B, h, w, [T,] D)."""
        if x.ndim == 5:
            b, h, w, t, c = x.shape
            flat = x.permute(0, 3, 4, 1, 2).reshape(b * t, c, h, w)
            out: torch.Tensor = embed(flat, p)
            return out.reshape(b, t, *out.shape[1:]).permute(0, 3, 4, 1, 2)
        single: torch.Tensor = embed(x.permute(0, 3, 1, 2), p)
        return single.permute(0, 2, 3, 1)

    def project(self, s_t_x: torch.Tensor, sp_x: torch.Tensor, t_x: torch.Tensor,
                st_x: torch.Tensor, s_t_m: torch.Tensor, sp_m: torch.Tensor,
                t_m: torch.Tensor, st_m: torch.Tensor, patch_size: int) -> GalileoTokens:
        """Embed each channel group; a group masked everywhere in the batch gets zeros.

        Pixel masks are read at each patch's top-left pixel (Galileo assumes them
        constant over a patch).
        """
        b, h, w, t, _ = s_t_x.shape
        p = patch_size
        d = self.embedding_size
        s_t_m = s_t_m[:, ::p, ::p][:, : h // p, : w // p]
        sp_m = sp_m[:, ::p, ::p][:, : h // p, : w // p]
        st_tokens = [
            self._patches(self._embed(self.space_time_embed, name), s_t_x[..., idx], p)
            if s_t_m[..., g].min() == 0 else s_t_x.new_zeros(b, h // p, w // p, t, d)
            for g, (name, idx) in enumerate(self.space_time_groups.items())]
        sp_tokens = [
            self._patches(self._embed(self.space_embed, name), sp_x[..., idx], p)
            if sp_m[..., g].min() == 0 else sp_x.new_zeros(b, h // p, w // p, d)
            for g, (name, idx) in enumerate(self.space_groups.items())]
        t_tokens = [
            self.time_embed[name](t_x[..., idx]) if t_m[..., g].min() == 0
            else t_x.new_zeros(b, t, d)
            for g, (name, idx) in enumerate(self.time_groups.items())]
        s_tokens = [
            self.static_embed[name](st_x[..., idx]) if st_m[..., g].min() == 0
            else st_x.new_zeros(b, d)
            for g, (name, idx) in enumerate(self.static_groups.items())]
        return GalileoTokens(torch.stack(st_tokens, -2), torch.stack(sp_tokens, -2),
                             torch.stack(t_tokens, -2), torch.stack(s_tokens, -2),
                             s_t_m, sp_m, t_m, st_m)

    # -- encodings ------------------------------------------------------------------

    def encode_positions(self, tokens: GalileoTokens, months: torch.Tensor, patch_size: int,
                         input_resolution_m: float = BASE_GSD) -> GalileoTokens:
        """Add the channel, time-step, month and patch-position encodings.

        Args:
            tokens: The projected tokens.
            months: (B, T) month index of each time step, 0 = January.
            patch_size: Pixels per patch side.
            input_resolution_m: Ground distance of a pixel.
        """
        s_t, sp, tm, st = tokens.space_time, tokens.space, tokens.time, tokens.static
        b, h, w, t, g_st, _ = s_t.shape
        g_sp, g_t, g_s = sp.shape[-2], tm.shape[-2], st.shape[-2]
        q = self.embedding_size // 4
        if t > self.max_sequence_length:
            raise ValueError(f"Galileo takes at most {self.max_sequence_length} time steps, "
                             f"got {t}")
        step = self.pos_embed[:t]
        month = self.month_embed(months)  # (B, T, q)
        gsd_ratio = s_t.new_ones(b) * (input_resolution_m * patch_size / BASE_GSD)
        where = spatial_encoding(q, h, w, gsd_ratio)  # (B, h, w, q)
        st_embed = torch.cat([
            self.s_t_channel_embed.expand(b, h, w, t, g_st, q),
            step[None, None, None, :, None].expand(b, h, w, t, g_st, q),
            month[:, None, None, :, None].expand(b, h, w, t, g_st, q),
            where[:, :, :, None, None].expand(b, h, w, t, g_st, q)], dim=-1)
        sp_embed = torch.cat([
            self.sp_channel_embed.expand(b, h, w, g_sp, q), sp.new_zeros(b, h, w, g_sp, 2 * q),
            where[:, :, :, None].expand(b, h, w, g_sp, q)], dim=-1)
        t_embed = torch.cat([
            self.t_channel_embed.expand(b, t, g_t, q), step[None, :, None].expand(b, t, g_t, q),
            month[:, :, None].expand(b, t, g_t, q), tm.new_zeros(b, t, g_t, q)], dim=-1)
        s_embed = torch.cat([self.st_channel_embed.expand(b, g_s, q),
                             st.new_zeros(b, g_s, 3 * q)], dim=-1)
        return tokens._replace(space_time=s_t + st_embed, space=sp + sp_embed,
                               time=tm + t_embed, static=st + s_embed)

    # -- sequences ------------------------------------------------------------------

    @staticmethod
    def flatten(tokens: GalileoTokens) -> tuple[torch.Tensor, torch.Tensor]:
        """One (B, N, D) sequence and its (B, N) mask: space-time, space, time, static."""
        b, d = tokens.space_time.shape[0], tokens.space_time.shape[-1]
        x = torch.cat([tokens.space_time.reshape(b, -1, d), tokens.space.reshape(b, -1, d),
                       tokens.time.reshape(b, -1, d), tokens.static.reshape(b, -1, d)], dim=1)
        m = torch.cat([tokens.space_time_mask.reshape(b, -1), tokens.space_mask.reshape(b, -1),
                       tokens.time_mask.reshape(b, -1), tokens.static_mask.reshape(b, -1)],
                      dim=1)
        return x, m

    @staticmethod
    def unflatten(x: torch.Tensor, like: GalileoTokens) -> GalileoTokens:
        """Split a (B, N, D) sequence back into the shapes of ``like``."""
        sizes = [like.space_time[..., 0].numel() // like.space_time.shape[0],
                 like.space[..., 0].numel() // like.space.shape[0],
                 like.time[..., 0].numel() // like.time.shape[0],
                 like.static[..., 0].numel() // like.static.shape[0]]
        parts = torch.split(x, sizes, dim=1)
        return like._replace(
            space_time=parts[0].reshape(like.space_time.shape[:-1] + x.shape[-1:]),
            space=parts[1].reshape(like.space.shape[:-1] + x.shape[-1:]),
            time=parts[2].reshape(like.time.shape[:-1] + x.shape[-1:]),
            static=parts[3].reshape(like.static.shape[:-1] + x.shape[-1:]))

    @staticmethod
    def compact(x: torch.Tensor, masked: torch.Tensor) -> tuple[
            torch.Tensor, torch.Tensor, torch.Tensor]:
        """Move the kept tokens to the front (stable), cut to the longest row.

        Returns:
            The (B, L, D) tokens, the order used (B, N), and (B, L) padding flags (True:
            a masked token's slot).
        """
        kept = (~masked).int()
        order_kept, order = torch.sort(kept, dim=1, descending=True, stable=True)
        x = x.gather(1, order[:, :, None].expand_as(x)) * order_kept[..., None]
        length = int(order_kept.sum(-1).max())
        return x[:, :length], order, order_kept[:, :length] == 0

    @staticmethod
    def restore(x: torch.Tensor, order: torch.Tensor, padding: torch.Tensor) -> torch.Tensor:
        """Undo :meth:`compact`: tokens back in place, masked ones zero."""
        b, n = order.shape
        out = x.new_zeros(b, n, x.shape[-1])
        kept = x * (~padding)[..., None].to(x.dtype)
        return out.scatter(1, order[:, : x.shape[1], None].expand_as(kept), kept)

    def forward(self, s_t_x: torch.Tensor, sp_x: torch.Tensor, t_x: torch.Tensor,
                st_x: torch.Tensor, s_t_m: torch.Tensor, sp_m: torch.Tensor,
                t_m: torch.Tensor, st_m: torch.Tensor, months: torch.Tensor,
                patch_size: int, input_resolution_m: float = BASE_GSD,
                exit_after: int | None = None, add_layernorm_on_exit: bool = True,
                return_blocks: tuple[int, ...] = ()) -> tuple[GalileoTokens, list[GalileoTokens]]:
        """Encode Galileo's inputs.

        Args:
            s_t_x: (B, H, W, T, 13) space-time channels (:data:`SPACE_TIME_BANDS`).
            sp_x: (B, H, W, 16) space channels.
            t_x: (B, T, 6) time channels.
            st_x: (B, 18) static channels.
            s_t_m: (B, H, W, T, 7) group masks, 1 = absent (also ``sp_m``, ``t_m``,
                ``st_m`` with the last axis over the groups of their kind).
            sp_m: Space group masks.
            t_m: Time group masks.
            st_m: Static group masks.
            months: (B, T) 0-based month of each time step.
            patch_size: Pixels per patch side (kernels are resized from
                ``max_patch_size``).
            input_resolution_m: Ground distance of a pixel.
            exit_after: Run only this many blocks (None: all).
            add_layernorm_on_exit: Apply the final norm to the output.
            return_blocks: 0-based blocks whose output tokens (normed when
                ``add_layernorm_on_exit``) are returned as well.

        Returns:
            The output tokens, and the tokens after each block of ``return_blocks``.
        """
        tokens = self.project(s_t_x, sp_x, t_x, st_x, s_t_m, sp_m, t_m, st_m, patch_size)
        if exit_after is not None and exit_after <= 0:
            return self._finish(tokens, add_layernorm_on_exit), []
        encoded = self.encode_positions(tokens, months, patch_size, input_resolution_m)
        x, m = self.flatten(encoded)
        x, order, padding = self.compact(x, m >= 1)
        keep = ~padding if bool(padding.any()) else None
        levels: list[GalileoTokens] = []
        for i, block in enumerate(self.blocks):
            if exit_after is not None and i >= exit_after:
                break
            x = block(x, keep)
            if i in return_blocks:
                levels.append(self._finish(self.unflatten(self.restore(x, order, padding),
                                                          tokens), add_layernorm_on_exit))
        out = self.unflatten(self.restore(x, order, padding), tokens)
        return self._finish(out, add_layernorm_on_exit), levels

    def _finish(self, tokens: GalileoTokens, norm: bool) -> GalileoTokens:
        if not norm:
            return tokens
        return tokens._replace(space_time=self.norm(tokens.space_time),
                               space=self.norm(tokens.space), time=self.norm(tokens.time),
                               static=self.norm(tokens.static))

    @staticmethod
    def average_tokens(tokens: GalileoTokens) -> torch.Tensor:
        """(B, D): the mean of every unmasked token (Galileo's pooled embedding)."""
        x, m = GalileoEncoder.flatten(tokens)
        kept = (m < 1).to(x.dtype)
        return (x * kept[..., None]).sum(1) / kept.sum(1, keepdim=True)
