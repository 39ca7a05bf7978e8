"""Galileo as a geofm backbone: one stacked image in, image-like feature maps out.

The image is ``(B, C, H, W)`` or ``(B, C, T, H, W)`` with one band name per channel
(:mod:`geofm_core.data.bands` names or Sentinel-2 ones: ``B2`` .. ``B12``, ``B8A``,
``VV``, ``VH``; plus ``NDVI``, ``DEM``, ``SLOPE``). Each band goes to its Galileo channel;
the channel groups with none of their bands in the data are masked, as Galileo masks
missing inputs. ``DEM``/``SLOPE`` feed the SRTM space group (read at the first time
step); ``location_coords`` (latitude, longitude) feed the static location group.

Feature maps: the output tokens of each block of ``out_indices``, averaged per spatial
patch over the time steps and the present space-time groups (S1, the S2 groups, NDVI),
as Galileo's own segmentation fine-tuning pools them, give ``(B, D, H / p, W / p)``
(``pooling="all"`` averages every unmasked token of the patch, space groups and the
broadcast time/static tokens included: Galileo's ``apply_mask_and_average_tokens_per_
patch``).
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from typing import Literal

import torch
from torch import nn

from geofm_core.data.bands import canonical_band
from geofm_core.errors import ConfigurationError
from geofm_galileo.constants import (
    BAND_TO_GALILEO,
    BASE_GSD,
    DEFAULT_MONTH,
    DEFAULT_PATCH_SIZE,
    SPACE_BANDS,
    SPACE_GROUPS,
    SPACE_TIME_BANDS,
    SPACE_TIME_GROUPS,
    STATIC_BANDS,
    STATIC_GROUPS,
    TIME_GROUPS,
)
from geofm_galileo.encoder import GalileoEncoder, GalileoTokens

__all__ = ["DEFAULT_BANDS", "GalileoBackbone", "PartialGroupWarning", "months_from_doy"]

#: The bands taken when none are given: Galileo's ten Sentinel-2 bands, in its order.
DEFAULT_BANDS: tuple[str, ...] = ("B2", "B3", "B4", "B5", "B6", "B7", "B8", "B8A", "B11", "B12")

Pooling = Literal["space_time", "all"]

# First day of year (1-based) of February .. December in a common year.
_MONTH_STARTS = (32, 60, 91, 121, 152, 182, 213, 244, 274, 305, 335)


class PartialGroupWarning(UserWarning):
    """Some bands of a Galileo channel group are missing; they are filled with zeros."""


def _supported() -> str:
    names = {v: k for k, v in BAND_TO_GALILEO.items()}
    s2 = {"B2": "BLUE", "B3": "GREEN", "B4": "RED", "B5": "RED_EDGE_1", "B6": "RED_EDGE_2",
          "B7": "RED_EDGE_3", "B8": "NIR_BROAD", "B8A": "NIR_NARROW", "B11": "SWIR_1",
          "B12": "SWIR_2"}
    parts = [f"{b} ({s2[b]})" if b in s2 else names.get(b, b) for b in SPACE_TIME_BANDS]
    return ", ".join([*parts, "DEM", "SLOPE"])


def months_from_doy(temporal_coords: torch.Tensor) -> torch.Tensor:
    """(B, T) 0-based months of ``temporal_coords`` (B, T, 2) = (year, day of year)."""
    year = temporal_coords[..., 0].round().long()
    day = temporal_coords[..., 1].round().long()
    leap = (year % 4 == 0) & ((year % 100 != 0) | (year % 400 == 0))
    day = torch.where(leap & (day > 59), day - 1, day)  # Feb 29 counts as Feb 28
    starts = torch.tensor(_MONTH_STARTS, device=day.device)
    return torch.bucketize(day, starts, right=True)


class GalileoBackbone(nn.Module):
    """A :class:`GalileoEncoder` fed from one band stack, returning per-patch feature maps.

    Args:
        encoder: The encoder.
        bands: One name per input channel (default :data:`DEFAULT_BANDS`).
        patch_size: Pixels per patch side (Galileo fine-tunes with 4; the stored kernels
            are resized to it).
        months: Calendar month (1-12) of every time step, or one per step; used when
            the batch has no ``temporal_coords`` (default: July, as Galileo's
            fine-tuning).
        out_indices: Blocks whose outputs are returned (default: all; negative counts
            from the end).
        final_norm: Apply the encoder's final LayerNorm to every returned level
            (Galileo's frozen-feature evaluation does; its fine-tuning does not).
        pooling: ``space_time`` (the space-time groups) or ``all`` (every token of the
            patch); see the module docstring.
        input_resolution_m: Ground distance of a pixel (scales the position encoding).
        drop_unknown_bands: Ignore bands Galileo has no channel for (``B1``, ``B9``,
            ``B10``, ...), as its Sentinel-2 wrapper does, instead of refusing them.
        use_location: Feed ``location_coords`` to the location group when given.
    """

    def __init__(self, encoder: GalileoEncoder, bands: Sequence[str] | None = None, *,
                 patch_size: int = DEFAULT_PATCH_SIZE,
                 months: int | Sequence[int] | None = None,
                 out_indices: Sequence[int] | None = None, final_norm: bool = False,
                 pooling: Pooling = "space_time", input_resolution_m: float = BASE_GSD,
                 drop_unknown_bands: bool = False, use_location: bool = True) -> None:
        super().__init__()
        self.encoder = encoder
        self.bands = list(DEFAULT_BANDS if bands is None else bands)
        # read by geofm's checks before training: the channel count, and (set by the
        # factories once weights are loaded) the bands those weights were trained on
        self.in_chans = len(self.bands)
        self.pretrained_bands: list[str] | None = None
        if isinstance(patch_size, bool) or not isinstance(patch_size, int) or patch_size < 1:
            raise ConfigurationError(f"galileo: patch_size must be a positive int, got "
                                     f"{patch_size!r} (Galileo fine-tunes with 4)")
        if pooling not in ("space_time", "all"):
            raise ConfigurationError(
                f"galileo: pooling must be 'space_time' or 'all', got {pooling!r}")
        self.patch_size = patch_size
        self.input_multiple = patch_size
        self.final_norm = final_norm
        self.pooling = pooling
        self.input_resolution_m = float(input_resolution_m)
        self.use_location = use_location
        self.months = self._check_months(months)
        depth = len(encoder.blocks)
        self.out_indices = self._check_indices(out_indices, depth)
        self.out_channels: list[int] = [encoder.embedding_size] * len(self.out_indices)
        self._plan(drop_unknown_bands)

    # -- configuration ----------------------------------------------------------------

    @staticmethod
    def _check_months(months: int | Sequence[int] | None) -> list[int] | None:
        if months is None:
            return None
        values = [months] if isinstance(months, int) else list(months)
        if not values or any(isinstance(m, bool) or not isinstance(m, int) or not 1 <= m <= 12
                             for m in values):
            raise ConfigurationError(
                f"galileo: months must be calendar months 1-12 (one for all time steps or "
                f"one per step), got {months!r}")
        return [m - 1 for m in values]

    @staticmethod
    def _check_indices(out_indices: Sequence[int] | None, depth: int) -> list[int]:
        if out_indices is None:
            return list(range(depth))
        if isinstance(out_indices, int):
            out_indices = [out_indices]
        resolved = []
        for i in out_indices:
            if isinstance(i, bool) or not isinstance(i, int) or not -depth <= i < depth:
                raise ConfigurationError(
                    f"galileo: out_indices entry {i!r} is not a block of this {depth}-block "
                    f"encoder; use 0..{depth - 1} or negative indices from the end")
            resolved.append(i % depth)
        if not resolved:
            raise ConfigurationError("galileo: out_indices is empty; name at least one block")
        return resolved

    def _plan(self, drop_unknown: bool) -> None:
        """Map each input channel to a Galileo channel and mask the groups without data."""
        st_src: list[int] = []
        st_dst: list[int] = []
        sp_src: list[int] = []
        sp_dst: list[int] = []
        seen: dict[str, int] = {}
        for i, band in enumerate(self.bands):
            if not isinstance(band, str):
                raise ConfigurationError(
                    f"galileo: bands entry {band!r} is not a band name; Galileo maps bands "
                    f"by name: {_supported()}")
            name = canonical_band(band) or band.strip().upper()
            channel = BAND_TO_GALILEO.get(name)
            if channel is None:
                if drop_unknown:
                    continue
                raise ConfigurationError(
                    f"galileo: band {band!r}{f' ({name})' if name != band else ''} has no "
                    f"Galileo channel; Galileo takes {_supported()}. Select those bands "
                    "(the data module's output_bands) or pass drop_unknown_bands=True to "
                    "ignore the others")
            if channel in seen:
                raise ConfigurationError(
                    f"galileo: bands {self.bands[seen[channel]]!r} and {band!r} are both "
                    f"Galileo's {channel}; give each band once")
            seen[channel] = i
            if channel in SPACE_TIME_BANDS:
                st_src.append(i)
                st_dst.append(SPACE_TIME_BANDS.index(channel))
            else:
                sp_src.append(i)
                sp_dst.append(SPACE_BANDS.index(channel))
        if not st_src:
            raise ConfigurationError(
                f"galileo: none of the bands {self.bands} is a Sentinel-1/2 band; the "
                f"feature maps pool the space-time groups, so give at least one of "
                f"{_supported()}")
        self._st_src, self._st_dst, self._sp_src, self._sp_dst = st_src, st_dst, sp_src, sp_dst
        self.st_present = [g for g, members in enumerate(SPACE_TIME_GROUPS.values())
                           if any(seen.get(b) is not None for b in members)]
        self.sp_present = [g for g, members in enumerate(SPACE_GROUPS.values())
                           if any(seen.get(b) is not None for b in members)]
        groups = {**SPACE_TIME_GROUPS, **SPACE_GROUPS}
        partial = {name: [b for b in members if b not in seen]
                   for name, members in groups.items()
                   if any(b in seen for b in members) and not all(b in seen for b in members)}
        if partial:
            warnings.warn(
                "galileo: channel group(s) with missing bands, filled with zeros (Galileo "
                "masks whole groups only): " + "; ".join(
                    f"{g} lacks {', '.join(b)}" for g, b in partial.items()),
                PartialGroupWarning, stacklevel=3)

    # -- forward ------------------------------------------------------------------------

    def _months(self, b: int, t: int, device: torch.device,
                months: torch.Tensor | Sequence[int] | None,
                temporal_coords: torch.Tensor | None) -> torch.Tensor:
        if months is not None:
            given = torch.as_tensor(months, device=device).long() - 1
            if given.ndim == 1:
                given = given[None].expand(b, -1)
            if given.shape != (b, t):
                raise ConfigurationError(
                    f"galileo: months has shape {tuple(given.shape)}, expected ({b}, {t}) or "
                    f"({t},): one calendar month (1-12) per time step")
            return given
        if temporal_coords is not None:
            if temporal_coords.shape[:2] != (b, t) or temporal_coords.shape[-1] != 2:
                raise ConfigurationError(
                    f"galileo: temporal_coords has shape {tuple(temporal_coords.shape)}, "
                    f"expected ({b}, {t}, 2): (year, day of year) per time step")
            return months_from_doy(temporal_coords)
        fixed = self.months if self.months is not None else [DEFAULT_MONTH - 1]
        if len(fixed) == 1:
            fixed = fixed * t
        if len(fixed) != t:
            raise ConfigurationError(
                f"galileo: months lists {len(fixed)} months but the input has {t} time steps")
        return torch.tensor(fixed, device=device).long()[None].expand(b, -1)

    def inputs(self, x: torch.Tensor, *, temporal_coords: torch.Tensor | None = None,
               location_coords: torch.Tensor | None = None,
               months: torch.Tensor | Sequence[int] | None = None) -> tuple[torch.Tensor, ...]:
        """Galileo's nine inputs (values, masks, 0-based months) for a band stack."""
        if x.ndim == 4:
            x = x[:, :, None]
        if x.ndim != 5 or x.shape[1] != len(self.bands):
            raise ConfigurationError(
                f"galileo: expected an image (B, {len(self.bands)}, [T,] H, W) for the bands "
                f"{self.bands}, got shape {tuple(x.shape)}")
        b, _, t, h, w = x.shape
        last = x.permute(0, 3, 4, 2, 1)  # (B, H, W, T, C)
        s_t_x = last.new_zeros(b, h, w, t, len(SPACE_TIME_BANDS))
        s_t_x[..., self._st_dst] = last[..., self._st_src]
        sp_x = last.new_zeros(b, h, w, len(SPACE_BANDS))
        if self._sp_src:
            sp_x[..., self._sp_dst] = last[:, :, :, 0, self._sp_src]
        s_t_m = last.new_ones(b, h, w, t, len(SPACE_TIME_GROUPS))
        s_t_m[..., self.st_present] = 0
        sp_m = last.new_ones(b, h, w, len(SPACE_GROUPS))
        sp_m[..., self.sp_present] = 0
        t_x = last.new_zeros(b, t, sum(len(g) for g in TIME_GROUPS.values()))
        t_m = last.new_ones(b, t, len(TIME_GROUPS))
        st_x = last.new_zeros(b, len(STATIC_BANDS))
        st_m = last.new_ones(b, len(STATIC_GROUPS))
        if location_coords is not None and self.use_location:
            lat, lon = torch.deg2rad(location_coords[:, 0]), torch.deg2rad(location_coords[:, 1])
            xyz = torch.stack([lat.cos() * lon.cos(), lat.cos() * lon.sin(), lat.sin()], -1)
            start = STATIC_BANDS.index("x")
            st_x[:, start:start + 3] = xyz.to(st_x.dtype)
            st_m[:, list(STATIC_GROUPS).index("location")] = 0
        month = self._months(b, t, x.device, months, temporal_coords)
        return s_t_x, sp_x, t_x, st_x, s_t_m, sp_m, t_m, st_m, month

    def pool(self, tokens: GalileoTokens) -> torch.Tensor:
        """(B, D, h, w): the tokens of each patch averaged (see the module docstring)."""
        s_t, m = tokens.space_time, tokens.space_time_mask
        b, h, w, t, g, d = s_t.shape
        parts = [s_t.reshape(b, h, w, t * g, d)]
        masks = [m.reshape(b, h, w, t * g)]
        if self.pooling == "all":
            parts += [tokens.space,
                      tokens.time.reshape(b, 1, 1, -1, d).expand(b, h, w, -1, d),
                      tokens.static[:, None, None].expand(b, h, w, -1, d)]
            masks += [tokens.space_mask,
                      tokens.time_mask.reshape(b, 1, 1, -1).expand(b, h, w, -1),
                      tokens.static_mask[:, None, None].expand(b, h, w, -1)]
        x, keep = torch.cat(parts, dim=3), 1.0 - torch.cat(masks, dim=3).to(s_t.dtype)
        mean = (x * keep[..., None]).sum(3) / keep.sum(3, keepdim=True).clamp(min=1.0)
        return mean.permute(0, 3, 1, 2).contiguous()

    def encode(self, x: torch.Tensor, **metadata: torch.Tensor) -> tuple[
            GalileoTokens, list[GalileoTokens]]:
        """The output tokens and those of the ``out_indices`` blocks."""
        inputs = self.inputs(x, **metadata)
        encoded: tuple[GalileoTokens, list[GalileoTokens]] = self.encoder(
            *inputs, patch_size=self.patch_size, input_resolution_m=self.input_resolution_m,
            add_layernorm_on_exit=self.final_norm, return_blocks=tuple(self.out_indices))
        return encoded

    def forward(self, x: torch.Tensor, temporal_coords: torch.Tensor | None = None,
                location_coords: torch.Tensor | None = None,
                months: torch.Tensor | None = None) -> list[torch.Tensor]:
        """One (B, D, H / p, W / p) feature map per entry of ``out_indices``.

        Args:
            x: (B, C, H, W) or (B, C, T, H, W) bands in the order of ``bands``.
            temporal_coords: (B, T, 2) year and day of year; gives each step's month.
            location_coords: (B, 2) latitude and longitude in degrees.
            months: (B, T) or (T,) calendar months; wins over ``temporal_coords``.
        """
        metadata = {"temporal_coords": temporal_coords, "location_coords": location_coords,
                    "months": months}
        _, levels = self.encode(x, **{k: v for k, v in metadata.items() if v is not None})
        by_block = dict(zip(sorted(set(self.out_indices)), levels, strict=True))
        return [self.pool(by_block[i]) for i in self.out_indices]

    def pooled(self, x: torch.Tensor, **metadata: torch.Tensor) -> torch.Tensor:
        """(B, D): the mean of every unmasked output token (Galileo's pooled embedding)."""
        out, _ = self.encode(x, **metadata)
        return GalileoEncoder.average_tokens(out)
