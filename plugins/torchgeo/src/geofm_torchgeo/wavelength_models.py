"""Conditioned torchgeo models: Copernicus-FM, Panopticon (wavelength), Scale-MAE (GSD).

:mod:`geofm_torchgeo.backbones` builds the torchgeo model and dispatches here for the
family's spectral inputs (:func:`prepare`) and its per-block tokens (:data:`LEVELS`).
This module does not import :mod:`geofm_torchgeo.backbones` (no import cycle).

Copernicus-FM (``copernicusfm_base``) runs in its ``spectral`` mode: each input band has
a centre wavelength and a bandwidth (nm, what torchgeo's model takes). Both come from
``bands`` (Sentinel-2 names through :func:`geofm_core.data.bands.wavelength_of`, radar
VV/VH/HH/HV as C-band) or from explicit ``wavelengths`` (µm) and ``bandwidths`` (nm).
Its per-patch metadata (longitude, latitude, time, area) is passed as NaN, which
torchgeo's model documents as "unknown": it then adds its learned coordinate, area and
time tokens instead. Tokens are (B, 1 + N, C), CLS first, as the ViT family's. Input
sizes must be multiples of the patch (16); non-square inputs work (the position
embedding is resized to the input's grid, where torchgeo's forward takes square ones).

Panopticon (``panopticon_vitb14``) takes a dict with the image and a channel id per band:
the centre wavelength in nm for optical bands (from ``bands`` or ``wavelengths``), and for
radar the negative ids of torchgeo's channel embedding, orbit unknown: VV -1, VH -2,
HH -3, HV -4. The wrapper builds that dict, so the backbone takes a (B, C, H, W) tensor.
Tokens are (B, 1 + N, 768), CLS first; any multiple of the patch (14), the position
embedding (of the ``img_size`` grid, 224 by default) resized with timm's resample.

Scale-MAE (``scalemae_large_patch16``) is a timm ViT-L whose position embedding is a
sin-cos function of the patch grid scaled by the ground sample distance (its ``res``,
metres, set with ``model_kwargs: {res: ...}``; torchgeo's default 1.0). torchgeo's model
computes it for the square ``img_size`` grid only; the wrapper computes it, with
torchgeo's sin-cos function, for the input's own grid, so any multiple of the patch (16)
works, square or not (identical to torchgeo's at the native grid). It is built as the ViT
family is (``in_chans``, ``bands`` checked); only the token levels come from here.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any

import torch

from geofm_core.data.bands import canonical_band, wavelength_of
from geofm_core.errors import ConfigurationError

__all__ = ["BANDWIDTHS_NM", "FAMILIES", "LEVELS", "PANOPTICON_RADAR_IDS", "prepare", "shape"]

#: The wavelength-conditioned families, whose spectral inputs :func:`prepare` makes and
#: whose shapes :func:`shape` reads (names as in ``_names.WRAPPED_FAMILIES``).
FAMILIES: tuple[str, ...] = ("copernicusfm", "panopticon")

#: Bandwidths (nm) per geofm band name: Sentinel-2 MSI's, rounded as in Copernicus-FM's
#: examples (B, G, R, NIR = 65, 35, 30, 115); radar as Copernicus-FM's Sentinel-1 input.
BANDWIDTHS_NM: dict[str, float] = {
    "COASTAL_AEROSOL": 20.0, "BLUE": 65.0, "GREEN": 35.0, "RED": 30.0, "RED_EDGE_1": 15.0,
    "RED_EDGE_2": 15.0, "RED_EDGE_3": 20.0, "NIR_BROAD": 115.0, "NIR_NARROW": 20.0,
    "WATER_VAPOR": 20.0, "CIRRUS": 30.0, "SWIR_1": 90.0, "SWIR_2": 180.0,
    "VV": 1e9, "VH": 1e9, "HH": 1e9, "HV": 1e9,
}

#: Radar polarisations as Copernicus-FM's Sentinel-1 input: C-band, 5 cm (in nm).
_RADAR_WAVELENGTH_NM = 5e7

#: Panopticon's radar channel ids (its embedding table's rows for unknown orbit).
PANOPTICON_RADAR_IDS: dict[str, float] = {"VV": -1.0, "VH": -2.0, "HH": -3.0, "HV": -4.0}


def _spectral(model: str, bands: Sequence[str] | None, wavelengths: Sequence[float] | None,
              bandwidths: Sequence[float] | None) -> tuple[list[float], list[float]]:
    """Centre wavelengths (µm) and bandwidths (nm) per input band."""
    count = len(bands) if bands is not None else len(wavelengths or bandwidths or ())
    if bands is None and (wavelengths is None or bandwidths is None):
        raise ConfigurationError(
            f"torchgeo:{model} is wavelength-conditioned: pass bands (their names give the "
            "wavelengths and bandwidths) or both wavelengths (µm) and bandwidths (nm), one "
            "per input band"
        )
    for field, values in (("wavelengths", wavelengths), ("bandwidths", bandwidths)):
        if values is not None and len(values) != count:
            raise ConfigurationError(
                f"torchgeo:{model}: {count} bands but {len(values)} {field}; give one per band"
            )
    names = [canonical_band(b) or str(b).upper() for b in bands] if bands else []
    waves: list[float] = []
    widths: list[float] = []
    for i in range(count):
        name = names[i] if names else None
        if wavelengths is not None:
            waves.append(float(wavelengths[i]))
        elif name in ("VV", "VH", "HH", "HV"):
            waves.append(_RADAR_WAVELENGTH_NM / 1000.0)
        else:
            value = wavelength_of(str(name))
            if value is None:
                raise ConfigurationError(
                    f"torchgeo:{model}: band {bands[i]!r} has no known centre wavelength; "  # type: ignore[index]
                    "pass wavelengths (µm) and bandwidths (nm), one per input band"
                )
            waves.append(value)
        if bandwidths is not None:
            widths.append(float(bandwidths[i]))
        elif name in BANDWIDTHS_NM:
            widths.append(BANDWIDTHS_NM[name])
        else:
            raise ConfigurationError(
                f"torchgeo:{model}: band {name or i!r} has no known bandwidth; pass "
                "bandwidths (nm, one per input band)"
            )
    return waves, widths


def _panopticon_ids(model: str, bands: Sequence[str] | None,
                    wavelengths: Sequence[float] | None) -> list[float]:
    """Panopticon's channel id per band: wavelength in nm, or a negative radar id."""
    if wavelengths is not None:
        if bands is not None and len(bands) != len(wavelengths):
            raise ConfigurationError(
                f"torchgeo:{model}: {len(bands)} bands but {len(wavelengths)} wavelengths"
            )
        return [float(w) * 1000.0 for w in wavelengths]
    if bands is None:
        raise ConfigurationError(
            f"torchgeo:{model} is wavelength-conditioned: pass bands (their names give the "
            "channel ids) or wavelengths (micrometres, one per input band)"
        )
    ids = []
    for band in bands:
        name = canonical_band(band) or str(band).upper()
        value = wavelength_of(name)
        if name in PANOPTICON_RADAR_IDS:
            ids.append(PANOPTICON_RADAR_IDS[name])
        elif value is not None:
            ids.append(value * 1000.0)
        else:
            raise ConfigurationError(
                f"torchgeo:{model}: band {band!r} is neither optical with a known centre "
                "wavelength nor radar (VV, VH, HH, HV); pass wavelengths (µm) instead"
            )
    return ids


def prepare(family: str, model: str, *, bands: Sequence[str] | None,
            wavelengths: Sequence[float] | None, bandwidths: Sequence[float] | None,
            ) -> dict[str, Any]:
    """The spectral inputs of a family's model, checked before the model is built.

    Args:
        family: One of :data:`FAMILIES`.
        model: The torchgeo model name (for messages).
        bands: The data's band names, in order.
        wavelengths: Centre wavelengths (µm) per band, overriding ``bands``.
        bandwidths: Bandwidths (nm) per band, overriding ``bands``.

    Returns:
        The backbone's ``extras``: Copernicus-FM's ``wavelengths`` (µm) and ``bandwidths``
        (nm); Panopticon's ``chn_ids`` (nm for optical bands, negative ids for radar).

    Raises:
        ConfigurationError: A band without a known wavelength or bandwidth, or counts
            that differ.
    """
    if family == "panopticon":
        return {"chn_ids": _panopticon_ids(model, bands, wavelengths)}
    if family != "copernicusfm":
        raise ConfigurationError(f"torchgeo:{model}: no wavelength wrapper {family!r}")
    waves, widths = _spectral(model, bands, wavelengths, bandwidths)
    return {"wavelengths": waves, "bandwidths": widths}


def shape(family: str, tg: Any) -> tuple[list[int], int]:
    """Channels of each level and the input multiple (patch size) of a built model.

    Args:
        family: One of :data:`FAMILIES`.
        tg: The model torchgeo's builder returned.

    Returns:
        ``(channels, input_multiple)``.
    """
    if family == "panopticon":
        vit = tg.model
        return [int(vit.embed_dim)] * len(vit.blocks), int(vit.patch_embed.patch_size[0])
    patch = int(tg.patch_embed_spectral.kernel_size)
    return [int(tg.pos_embed.shape[-1])] * len(tg.blocks), patch


def _copernicusfm_levels(backbone: Any, x: torch.Tensor) -> list[torch.Tensor]:
    """Tokens after each block, as torchgeo's ``forward_features`` makes them.

    The steps are torchgeo's with unknown (NaN) metadata, except that the position
    embedding is resized to the (H / patch, W / patch) grid with torchgeo's own resize,
    so that non-square inputs work too (torchgeo's forward assumes a square grid).
    """
    from torchgeo.models.copernicusfm import resize_abs_pos_embed

    tg: Any = backbone.model
    waves, widths = backbone.extras["wavelengths"], backbone.extras["bandwidths"]
    patch = backbone.input_multiple
    if x.shape[1] != len(waves):
        raise ValueError(
            f"torchgeo:{backbone.name} got {x.shape[1]} bands but has {len(waves)} "
            f"wavelengths ({waves}); pass bands or wavelengths matching the input"
        )
    if x.shape[-2] % patch or x.shape[-1] % patch:
        raise ValueError(
            f"torchgeo:{backbone.name} takes sizes that are multiples of {patch}; got "
            f"{tuple(x.shape[-2:])}: crop or pad the input"
        )
    tokens = tg.patch_embed_spectral(
        x, wavelengths=torch.tensor(waves, device=x.device).float() * 1000.0,
        bandwidths=torch.tensor(widths, device=x.device).float(),
    )
    side = math.isqrt(tg.num_patches)
    grid = (x.shape[-2] // patch, x.shape[-1] // patch)
    pos = resize_abs_pos_embed(tg.pos_embed, grid, (side, side), num_prefix_tokens=1)
    # NaN metadata: torchgeo adds its learned coordinate, area and time tokens instead
    pos = (pos + tg.coord_fc(tg.coord_token) + tg.scale_fc(tg.scale_token)
           + tg.time_fc(tg.time_token))
    cls = (tg.cls_token + pos[:, :1]).expand(x.shape[0], -1, -1)
    h = torch.cat((cls, tokens + pos[:, 1:]), dim=1)
    out = []
    for block in tg.blocks:
        h = block(h)
        out.append(h)
    return out


def _panopticon_levels(backbone: Any, x: torch.Tensor) -> list[torch.Tensor]:
    """Tokens after each block of Panopticon's timm ViT, fed the dict it takes."""
    from timm.layers.pos_embed import resample_abs_pos_embed

    vit: Any = backbone.model.model
    ids = backbone.extras["chn_ids"]
    patch = backbone.input_multiple
    if x.shape[1] != len(ids):
        raise ValueError(
            f"torchgeo:{backbone.name} got {x.shape[1]} bands but has {len(ids)} channel "
            f"ids ({ids}); pass bands or wavelengths matching the input"
        )
    if x.shape[-2] % patch or x.shape[-1] % patch:
        raise ValueError(
            f"torchgeo:{backbone.name} takes sizes that are multiples of {patch}; got "
            f"{tuple(x.shape[-2:])}: crop or pad the input"
        )
    chn_ids = torch.tensor(ids, device=x.device).float().expand(x.shape[0], -1)
    tokens = vit.patch_embed({"imgs": x, "chn_ids": chn_ids.clone()})
    grid = (x.shape[-2] // patch, x.shape[-1] // patch)
    # timm's _pos_embed with the grid given (the patch embed returns flat tokens)
    pos = resample_abs_pos_embed(vit.pos_embed, new_size=grid,
                                 old_size=vit.patch_embed.grid_size, num_prefix_tokens=1)
    cls = vit.cls_token.expand(x.shape[0], -1, -1)
    h = vit.norm_pre(vit.patch_drop(vit.pos_drop(torch.cat((cls, tokens), dim=1) + pos)))
    out = []
    for block in vit.blocks:
        h = block(h)
        out.append(h)
    return out


def _scalemae_levels(backbone: Any, x: torch.Tensor) -> list[torch.Tensor]:
    """Tokens after each block, with the GSD sin-cos position embedding of the input grid."""
    from torchgeo.models.scale_mae import get_2d_sincos_pos_embed_from_grid_torch

    vit: Any = backbone.model
    patch = backbone.input_multiple
    if x.shape[-2] % patch or x.shape[-1] % patch:
        raise ValueError(
            f"torchgeo:{backbone.name} takes sizes that are multiples of {patch}; got "
            f"{tuple(x.shape[-2:])}: crop or pad the input"
        )
    embed = vit.patch_embed  # its forward insists on img_size; proj + norm are its steps
    tokens = embed.norm(embed.proj(x).flatten(2).transpose(1, 2))
    batch, dim = x.shape[0], int(vit.embed_dim)
    gh, gw = x.shape[-2] // patch, x.shape[-1] // patch
    res = torch.full((batch,), float(vit.res), dtype=tokens.dtype, device=x.device)
    cols = torch.arange(gw, dtype=res.dtype, device=x.device)
    rows = torch.arange(gh, dtype=res.dtype, device=x.device)
    # torchgeo's grid for a square side, written for (gh, gw): x coordinates first
    grid = torch.stack(torch.meshgrid(cols, rows, indexing="xy"), dim=0)
    grid = torch.einsum("chw,n->cnhw", grid, res)
    pos = get_2d_sincos_pos_embed_from_grid_torch(dim, grid).reshape(batch, gh * gw, dim)
    pos = torch.cat((torch.zeros_like(pos[:, :1]), pos), dim=1)  # CLS: zero, as torchgeo
    h = torch.cat((vit.cls_token.expand(batch, -1, -1), tokens), dim=1) + pos
    h = vit.norm_pre(vit.patch_drop(vit.pos_drop(h)))
    out = []
    for block in vit.blocks:
        h = block(h)
        out.append(h)
    return out


#: Per-block tokens of each family: ``LEVELS[family](backbone, x)``.
LEVELS: dict[str, Callable[[Any, torch.Tensor], list[torch.Tensor]]] = {
    "copernicusfm": _copernicusfm_levels, "panopticon": _panopticon_levels,
    "scalemae": _scalemae_levels,
}
