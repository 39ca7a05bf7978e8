"""Clay's encoder for fine-tuning: wavelength-generated patch embedding, metadata, transformer.

Clay (v1 and v1.5 share the layout) embeds each 8 x 8 patch with a convolution whose
kernel is *generated* from the input bands' centre wavelengths (micrometres): each
wavelength gets a sin-cos code, refined by a residual MLP (``fclayer``); a one-layer
transformer over 128 learned weight tokens, the band codes and a bias token
(``weight_generator``) turns each band code into that band's kernel slice and the bias
token into the bias. So any set of optical (or radar) bands fits one set of weights.

The patch tokens then get, added, a ``(dim - 8)``-wide 2-D sin-cos position code whose
frequencies are scaled by the ground sample distance (metres), followed by 8 metadata
channels: time ``(sin week, cos week, sin hour, cos hour)`` and location
``(sin lat, cos lat, sin lon, cos lon)``, zeros when unknown (as Clay's own fine-tuning
passes them). A CLS token is prepended and the tokens pass pre-norm blocks (attention
without biases, a GELU MLP); the last block's output passes the final norm.

This is the fine-tuning path: no patch masking (Clay's MAE pre-training masks 75 %).
State-dict keys are those of Clay's ``Encoder`` (``cls_token``, ``patch_embedding.*``,
``transformer.*``), so official checkpoints load after removing ``model.encoder.``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from geofm_core.errors import ConfigurationError

__all__ = [
    "WAVE_DIM",
    "ClayEncoder",
    "DynamicEmbedding",
    "encode_location",
    "encode_time",
    "iso_week",
    "position_encoding",
    "wavelength_encoding",
]

#: Width of the wavelength codes and of the weight generator's tokens.
WAVE_DIM = 128
#: Learned tokens the weight generator attends over besides the bands.
_LATENT_TOKENS = 128
#: Clay scales the generated kernel by this (its initialisation scale).
_KERNEL_SCALE = 0.02
#: Time and location channels appended to the position code.
_METADATA_CHANNELS = 8


# -- fixed encodings -----------------------------------------------------------------


def wavelength_encoding(wavelengths: torch.Tensor, dim: int = WAVE_DIM) -> torch.Tensor:
    """Sin-cos code of each wavelength (µm): ``(C, dim)``, sines then cosines.

    Frequencies ``10000 ** -(i / (dim/2 - 1))``, ``i = 0 .. dim/2 - 1``, as Clay's.
    """
    steps = torch.arange(dim // 2, device=wavelengths.device) / (dim // 2 - 1)
    frequencies = 1.0 / (10000 ** steps)
    angles = wavelengths[:, None] * frequencies[None, :]
    return torch.cat((angles.sin(), angles.cos()), dim=1).float()


def position_encoding(height: int, width: int, dim: int, gsd: float,
                      device: torch.device | None = None) -> torch.Tensor:
    """Clay's GSD-scaled 2-D sin-cos code of a ``height x width`` grid: ``(h*w, dim)``.

    Columns ``(sin x, cos x, sin y, cos y)``, each ``dim / 4`` wide. Clay's exponent is
    ``2 i / (dim/4 - 1) / dim`` (so its frequencies stay close to ``gsd``); it is kept as
    is, since the weights were trained with it.
    """
    if dim % 4:
        raise ConfigurationError(f"Clay's position code needs dim - 8 divisible by 4, got {dim}")
    rows, cols = torch.meshgrid(torch.arange(height, device=device),
                                torch.arange(width, device=device), indexing="ij")
    steps = torch.arange(dim // 4, device=device) / (dim // 4 - 1)
    frequencies = 1.0 / (10000 ** (2 * steps / dim)) * gsd
    x = cols.flatten()[:, None] * frequencies[None, :]
    y = rows.flatten()[:, None] * frequencies[None, :]
    return torch.cat((x.sin(), x.cos(), y.sin(), y.cos()), dim=1).float()


def _jan1_iso_weekday(year: torch.Tensor) -> torch.Tensor:
    """ISO weekday (Monday 1 .. Sunday 7) of 1 January of each (Gregorian) year."""
    y = year - 1
    sunday_based = (1 + 5 * (y % 4) + 4 * (y % 100) + 6 * (y % 400)) % 7  # Sunday = 0
    return (sunday_based + 6) % 7 + 1


def _has_53_weeks(year: torch.Tensor) -> torch.Tensor:
    def p(y: torch.Tensor) -> torch.Tensor:
        return (y + y // 4 - y // 100 + y // 400) % 7

    return (p(year) == 4) | (p(year - 1) == 3)


def iso_week(year: torch.Tensor, day_of_year: torch.Tensor) -> torch.Tensor:
    """ISO 8601 week number (1..53) of day ``day_of_year`` (1-based) of ``year``.

    What Clay's data pipeline takes (``date.isocalendar().week``), computed on tensors.
    """
    year = year.long()
    day = day_of_year.long()
    weekday = (_jan1_iso_weekday(year) - 1 + day - 1) % 7 + 1
    week = torch.div(day - weekday + 10, 7, rounding_mode="floor")
    # week 53 of a 52-week year is week 1 of the next; week 0 the last of the previous
    week = torch.where((week == 53) & ~_has_53_weeks(year), 1, week)
    previous = torch.where(_has_53_weeks(year - 1), 53, 52)
    return torch.where(week < 1, previous, week)


def encode_time(temporal_coords: torch.Tensor) -> torch.Tensor:
    """Clay's time channels from geofm's ``temporal_coords``: ``(B, 4)``.

    Args:
        temporal_coords: ``(B, 2)`` or ``(B, 1, 2)``: year and day of year (1-based; a
            fraction of a day gives the hour).

    Returns:
        ``(sin w, cos w, sin h, cos h)`` with ``w = 2 pi week / 52`` (ISO week) and
        ``h = 2 pi hour / 24``, as Clay's ``normalize_timestamp``.
    """
    coords = temporal_coords
    if coords.ndim == 3 and coords.shape[1] == 1:
        coords = coords[:, 0]
    if coords.ndim != 2 or coords.shape[1] != 2:
        raise ConfigurationError(
            "Clay takes one date per sample: temporal_coords must be (B, 2) or (B, 1, 2) "
            f"= (year, day of year), got shape {tuple(temporal_coords.shape)}"
        )
    coords = coords.double()
    day = torch.floor(coords[:, 1])
    hour = torch.floor((coords[:, 1] - day) * 24)
    week = iso_week(coords[:, 0], day).double() * 2 * math.pi / 52
    hour = hour * 2 * math.pi / 24
    return torch.stack((week.sin(), week.cos(), hour.sin(), hour.cos()), dim=1).float()


def encode_location(location_coords: torch.Tensor) -> torch.Tensor:
    """Clay's location channels from ``location_coords`` ``(B, 2)`` = (lat, lon) in degrees.

    Returns:
        ``(sin lat, cos lat, sin lon, cos lon)``: ``(B, 4)``, as Clay's ``normalize_latlon``.
    """
    if location_coords.ndim != 2 or location_coords.shape[1] != 2:
        raise ConfigurationError(
            "location_coords must be (B, 2) = (latitude, longitude) in degrees, got shape "
            f"{tuple(location_coords.shape)}"
        )
    radians = location_coords.double() * math.pi / 180
    lat, lon = radians[:, 0], radians[:, 1]
    return torch.stack((lat.sin(), lat.cos(), lon.sin(), lon.cos()), dim=1).float()


# -- patch embedding -----------------------------------------------------------------


class _ResidualMLP(nn.Module):
    """``x + gelu(l2(gelu(l1(x))))``: refines the wavelength codes (Clay's ``fclayer``)."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.l1 = nn.Linear(dim, dim)
        self.l2 = nn.Linear(dim, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Refine ``(C, dim)`` codes."""
        return x + F.gelu(self.l2(F.gelu(self.l1(x))))


class _WeightGenerator(nn.Module):
    """A one-layer transformer that turns band codes into a kernel per band and a bias."""

    def __init__(self, wave_dim: int, kernel_size: int, embed_dim: int) -> None:
        super().__init__()
        layer = nn.TransformerEncoderLayer(
            d_model=wave_dim, nhead=4, activation="gelu", dropout=0.0, norm_first=False,
            batch_first=True,
        )
        self.encoder = nn.TransformerEncoder(layer, 1, enable_nested_tensor=False)
        self.fc_weight = nn.Linear(wave_dim, kernel_size * kernel_size * embed_dim)
        self.fc_bias = nn.Linear(wave_dim, embed_dim)
        self.weight_tokens = nn.Parameter(torch.randn(_LATENT_TOKENS, wave_dim) * 0.02)
        self.bias_token = nn.Parameter(torch.randn(1, wave_dim) * 0.02)

    def forward(self, codes: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``(C, wave_dim)`` codes -> ``(C, P*P*D)`` kernel rows and a ``(D,)`` bias."""
        tokens = torch.cat((self.weight_tokens, codes, self.bias_token), dim=0)
        mixed = self.encoder(tokens)
        bands = slice(_LATENT_TOKENS, -1)
        # the band tokens keep a skip connection around the generator
        weight = self.fc_weight(mixed[bands] + tokens[bands])
        return weight, self.fc_bias(mixed[-1])


class DynamicEmbedding(nn.Module):
    """Patch embedding with a kernel generated from the bands' wavelengths.

    Args:
        patch_size: Side of the square patches (Clay's 8).
        embed_dim: Token width.
        wave_dim: Width of the wavelength codes.
    """

    def __init__(self, patch_size: int, embed_dim: int, wave_dim: int = WAVE_DIM) -> None:
        super().__init__()
        self.patch_size = patch_size
        self.embed_dim = embed_dim
        self.wave_dim = wave_dim
        self.weight_generator = _WeightGenerator(wave_dim, patch_size, embed_dim)
        self.fclayer = _ResidualMLP(wave_dim)
        for module in self.modules():  # Clay's initialisation
            if isinstance(module, nn.Linear):
                nn.init.xavier_uniform_(module.weight)
                if module.bias is not None:
                    nn.init.zeros_(module.bias)

    def forward(self, x: torch.Tensor, wavelengths: torch.Tensor) -> torch.Tensor:
        """Embed ``(B, C, H, W)`` pixels of bands at ``wavelengths`` (C,): ``(B, h*w, D)``."""
        codes = self.fclayer(wavelength_encoding(wavelengths, self.wave_dim))
        rows, bias = self.weight_generator(codes)
        p = self.patch_size
        # each band's row holds its kernel slice laid out as (out channel, ky, kx)
        kernel = rows.reshape(x.shape[1], self.embed_dim, p, p).transpose(0, 1)
        patches = F.conv2d(x, kernel * _KERNEL_SCALE, bias=bias, stride=p)
        return patches.flatten(2).transpose(1, 2)


# -- transformer ---------------------------------------------------------------------


class _Attention(nn.Module):
    """Pre-norm multi-head self-attention without biases (``heads * dim_head`` inner width)."""

    def __init__(self, dim: int, heads: int, dim_head: int) -> None:
        super().__init__()
        self.heads = heads
        self.norm = nn.LayerNorm(dim)
        self.to_qkv = nn.Linear(dim, 3 * heads * dim_head, bias=False)
        self.to_out = nn.Linear(heads * dim_head, dim, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Attend over ``(B, N, dim)`` tokens."""
        b, n, _ = x.shape
        q, k, v = (t.reshape(b, n, self.heads, -1).transpose(1, 2)
                   for t in self.to_qkv(self.norm(x)).chunk(3, dim=-1))
        out = F.scaled_dot_product_attention(q, k, v)
        result: torch.Tensor = self.to_out(out.transpose(1, 2).reshape(b, n, -1))
        return result


class _FeedForward(nn.Module):
    """Pre-norm GELU MLP; ``net`` is (norm, linear, GELU, linear) as in Clay's keys."""

    def __init__(self, dim: int, hidden: int) -> None:
        super().__init__()
        self.net = nn.Sequential(nn.LayerNorm(dim), nn.Linear(dim, hidden), nn.GELU(),
                                 nn.Linear(hidden, dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Transform ``(B, N, dim)`` tokens."""
        out: torch.Tensor = self.net(x)
        return out


class _Block(nn.ModuleList):
    """One block, ``[attention, feed-forward]`` (a list, so keys read ``layers.N.0.*``)."""

    def __init__(self, dim: int, heads: int, dim_head: int, hidden: int) -> None:
        super().__init__([_Attention(dim, heads, dim_head), _FeedForward(dim, hidden)])

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
        """Both residual steps."""
        attention, feed_forward = self[0], self[1]
        x = attention(x) + x
        out: torch.Tensor = feed_forward(x) + x
        return out


class _Transformer(nn.Module):
    """Clay's blocks and the final norm (keys ``layers.N.*``, ``norm.*``)."""

    def __init__(self, dim: int, depth: int, heads: int, dim_head: int, hidden: int) -> None:
        super().__init__()
        self.layers = nn.ModuleList(_Block(dim, heads, dim_head, hidden) for _ in range(depth))
        self.norm = nn.LayerNorm(dim)


class ClayEncoder(nn.Module):
    """Clay's encoder (no masking) returning the tokens of chosen blocks.

    Inputs are ``(B, C, H, W)`` with one wavelength per band and ``H``, ``W`` multiples
    of the patch (``input_multiple``); non-square inputs work (the position code is made
    for the input's grid). Outputs are ``(B, 1 + h*w, dim)`` tokens, CLS first, one per
    entry of ``out_indices``; the last block's tokens pass the final norm.

    Args:
        wavelengths: Centre wavelength (µm) of each input band, in order.
        dim: Token width.
        depth: Transformer blocks.
        heads: Attention heads.
        dim_head: Width of each head.
        mlp_ratio: Feed-forward hidden width over ``dim``.
        gsd: Ground sample distance of the input (metres per pixel); scales the
            position code's frequencies.
        patch_size: Patch side.
        out_indices: Blocks whose tokens are returned (default all; negative count
            from the end).
        encode_metadata: Fill the time and location channels from ``forward``'s
            ``temporal_coords`` / ``location_coords``; ``False`` keeps them zero whatever
            the batch holds (TerraTorch's Clay backbone).

    Raises:
        ConfigurationError: No wavelengths, a non-positive GSD, ``dim`` that does not
            fit the position code, or block indices out of range.
    """

    wavelengths: torch.Tensor

    def __init__(
        self,
        wavelengths: Sequence[float],
        *,
        dim: int,
        depth: int,
        heads: int,
        dim_head: int,
        mlp_ratio: float,
        gsd: float = 10.0,
        patch_size: int = 8,
        out_indices: Sequence[int] | None = None,
        encode_metadata: bool = True,
    ) -> None:
        super().__init__()
        if not wavelengths:
            raise ConfigurationError("Clay needs the wavelength (µm) of each input band")
        if not gsd > 0:
            raise ConfigurationError(f"gsd is the ground sample distance in metres (> 0), "
                                     f"got {gsd!r}")
        if (dim - _METADATA_CHANNELS) % 4:
            raise ConfigurationError(f"Clay's dim must be 8 more than a multiple of 4, got {dim}")
        self.dim = dim
        self.depth = depth
        self.gsd = float(gsd)
        self.encode_metadata = encode_metadata
        self.patch_size = patch_size
        self.input_multiple = patch_size
        self.out_indices = self._check_indices(out_indices, depth)
        self.out_channels: list[int] = [dim] * len(self.out_indices)
        # set by the registered factories: the band names and the variant
        self.bands: list[str] = [f"BAND_{i}" for i in range(len(wavelengths))]
        self.variant = ""
        self.register_buffer("wavelengths", torch.tensor([float(w) for w in wavelengths]),
                             persistent=False)
        self.cls_token = nn.Parameter(torch.randn(1, 1, dim) * 0.02)
        self.patch_embedding = DynamicEmbedding(patch_size, dim)
        self.transformer = _Transformer(dim, depth, heads, dim_head, int(dim * mlp_ratio))

    @staticmethod
    def _check_indices(out_indices: Sequence[int] | None, depth: int) -> list[int]:
        if out_indices is None:
            return list(range(depth))
        indices = []
        for i in out_indices:
            if isinstance(i, bool) or not isinstance(i, int) or not -depth <= i < depth:
                raise ConfigurationError(
                    f"out_indices {list(out_indices)} has {i!r}, outside the {depth} blocks "
                    f"(0..{depth - 1}, or negative from the end)"
                )
            indices.append(i % depth)
        if not indices:
            raise ConfigurationError("out_indices is empty; give at least one block index")
        return indices

    def _check_input(self, x: torch.Tensor) -> None:
        bands = int(self.wavelengths.numel())
        if x.ndim != 4 or x.shape[1] != bands:
            raise ConfigurationError(
                f"Clay encoder built for {bands} bands (wavelengths "
                f"{[round(w, 4) for w in self.wavelengths.tolist()]} µm) takes (B, {bands}, H, "
                f"W) inputs, got shape {tuple(x.shape)}; set bands/wavelengths to the data's"
            )
        if x.shape[-2] % self.patch_size or x.shape[-1] % self.patch_size:
            raise ConfigurationError(
                f"Clay encoder: input size {tuple(x.shape[-2:])} is not a multiple of the "
                f"patch size {self.patch_size}; crop or pad the input (geofm's models pad "
                "using the backbone's input_multiple)"
            )

    def forward_encoded(self, x: torch.Tensor, time: torch.Tensor | None = None,
                        latlon: torch.Tensor | None = None) -> list[torch.Tensor]:
        """Encode with Clay's own metadata channels (already sin-cos encoded).

        Args:
            x: ``(B, C, H, W)`` normalised pixels.
            time: ``(B, 4)`` time channels (see :func:`encode_time`), zeros if ``None``.
            latlon: ``(B, 4)`` location channels (see :func:`encode_location`), zeros if
                ``None``.

        Returns:
            ``(B, 1 + h*w, dim)`` tokens for each of ``out_indices``.
        """
        self._check_input(x)
        b = x.shape[0]
        zeros = x.new_zeros(b, 4)
        for name, value in (("time", time), ("latlon", latlon)):
            if value is not None and tuple(value.shape) != (b, 4):
                raise ConfigurationError(f"Clay's {name} channels must be (B, 4) = ({b}, 4), "
                                         f"got {tuple(value.shape)}")
        metadata = torch.cat((zeros if time is None else time.to(x),
                              zeros if latlon is None else latlon.to(x)), dim=1)
        patches = self.patch_embedding(x, self.wavelengths.to(x.dtype))
        h, w = x.shape[-2] // self.patch_size, x.shape[-1] // self.patch_size
        position = position_encoding(h, w, self.dim - _METADATA_CHANNELS, self.gsd,
                                     x.device).to(x.dtype)
        encoding = torch.cat((position.expand(b, -1, -1),
                              metadata[:, None, :].expand(-1, h * w, -1)), dim=-1)
        tokens = torch.cat((self.cls_token.expand(b, -1, -1), patches + encoding), dim=1)
        wanted = set(self.out_indices)
        levels: dict[int, torch.Tensor] = {}
        for i, block in enumerate(self.transformer.layers[:max(wanted) + 1]):
            tokens = block(tokens)
            if i in wanted:
                levels[i] = self.transformer.norm(tokens) if i == self.depth - 1 else tokens
        return [levels[i] for i in self.out_indices]

    def forward(self, x: torch.Tensor, temporal_coords: torch.Tensor | None = None,
                location_coords: torch.Tensor | None = None) -> list[torch.Tensor]:
        """Encode ``x``; the batch's date and place become Clay's metadata channels.

        Args:
            x: ``(B, C, H, W)`` normalised pixels, bands in the order of ``wavelengths``.
            temporal_coords: ``(B, 2)`` or ``(B, 1, 2)`` (year, day of year), or ``None``.
            location_coords: ``(B, 2)`` (latitude, longitude) in degrees, or ``None``.

        Returns:
            ``(B, 1 + h*w, dim)`` tokens for each of ``out_indices``.
        """
        if not self.encode_metadata:
            return self.forward_encoded(x)
        time = None if temporal_coords is None else encode_time(temporal_coords)
        latlon = None if location_coords is None else encode_location(location_coords)
        return self.forward_encoded(x, time, latlon)
