"""Conditioned torchgeo models: Copernicus-FM, Panopticon, CROMA (bands), Scale-MAE (GSD).

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

CROMA (``croma_base``, ``croma_large``) has a radar encoder (VV, VH), an optical encoder
(the 12 Sentinel-2 L2A bands, :data:`CROMA_OPTICAL`) and a joint cross-attention encoder
on both. ``bands`` choose: only VV, VH -> radar; only the 12 optical bands -> optical;
both (any interleaving; each group in its order) -> joint. The levels are the chosen
encoder's blocks (radar: half the depth; optical: the depth; joint: half the depth, on
the normalised radar and optical encodings, as torchgeo's forward). CROMA has no CLS
token: tokens are (B, N, C), so ``geofm:reshape_tokens_to_image`` needs
``remove_cls_token: false``. Its ALiBi attention bias is a buffer for one square size:
inputs must be ``img_size`` (CROMA's ``image_size``, 120 by default, a multiple of 8).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any

import torch

from geofm_core.data.bands import canonical_band, wavelength_of
from geofm_core.errors import ConfigurationError

__all__ = [
    "BANDWIDTHS_NM", "CROMA_OPTICAL", "FAMILIES", "LEVELS", "PANOPTICON_RADAR_IDS",
    "block_outputs", "check_input", "prepare", "shape",
]

#: The families whose inputs come from the bands: :func:`prepare` makes those inputs and
#: :func:`shape` reads their shapes (names as in ``_names.WRAPPED_FAMILIES``).
FAMILIES: tuple[str, ...] = ("copernicusfm", "panopticon", "croma")

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

#: CROMA's optical bands (Sentinel-2 L2A, B1..B12 without B10) in its order.
CROMA_OPTICAL: tuple[str, ...] = (
    "COASTAL_AEROSOL", "BLUE", "GREEN", "RED", "RED_EDGE_1", "RED_EDGE_2", "RED_EDGE_3",
    "NIR_BROAD", "NIR_NARROW", "WATER_VAPOR", "SWIR_1", "SWIR_2",
)

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


def _croma_inputs(model: str, bands: Sequence[str] | None,
                  builder_kwargs: dict[str, Any]) -> dict[str, Any]:
    """CROMA's modalities and the input positions of each, from the band names."""
    if bands is None:
        raise ConfigurationError(
            f"torchgeo:{model} takes radar (VV, VH) and/or the 12 Sentinel-2 L2A bands "
            f"({', '.join(CROMA_OPTICAL)}): pass bands to choose"
        )
    names = [canonical_band(b) or str(b).upper() for b in bands]
    sar = [i for i, n in enumerate(names) if n in ("VV", "VH")]
    optical = [i for i, n in enumerate(names) if n not in ("VV", "VH")]
    if sar and [names[i] for i in sar] != ["VV", "VH"]:
        raise ConfigurationError(
            f"torchgeo:{model}: its radar encoder takes VV then VH; the bands give "
            f"{', '.join(names[i] for i in sar)}"
        )
    if optical and tuple(names[i] for i in optical) != CROMA_OPTICAL:
        raise ConfigurationError(
            f"torchgeo:{model}: its optical encoder takes the 12 Sentinel-2 L2A bands "
            f"{', '.join(CROMA_OPTICAL)} in that order; the bands give "
            f"{', '.join(names[i] for i in optical)}"
        )
    modalities = (["sar"] if sar else []) + (["optical"] if optical else [])
    builder_kwargs["modalities"] = modalities
    if "img_size" in builder_kwargs:  # CROMA calls it image_size
        builder_kwargs["image_size"] = builder_kwargs.pop("img_size")
    return {"modalities": modalities, "sar_index": sar, "optical_index": optical}


def prepare(family: str, model: str, *, bands: Sequence[str] | None,
            wavelengths: Sequence[float] | None, bandwidths: Sequence[float] | None,
            builder_kwargs: dict[str, Any] | None = None) -> dict[str, Any]:
    """The spectral inputs of a family's model, checked before the model is built.

    Args:
        family: One of :data:`FAMILIES`.
        model: The torchgeo model name (for messages).
        bands: The data's band names, in order.
        wavelengths: Centre wavelengths (µm) per band, overriding ``bands``.
        bandwidths: Bandwidths (nm) per band, overriding ``bands``.
        builder_kwargs: torchgeo builder's keyword arguments, completed in place (CROMA:
            ``modalities``, ``img_size`` as ``image_size``).

    Returns:
        The backbone's ``extras``: Copernicus-FM's ``wavelengths`` (µm) and ``bandwidths``
        (nm); Panopticon's ``chn_ids`` (nm for optical bands, negative ids for radar);
        CROMA's ``modalities`` and the input positions ``sar_index``, ``optical_index``.

    Raises:
        ConfigurationError: A band without a known wavelength or bandwidth, or counts
            that differ.
    """
    if family == "croma":
        return _croma_inputs(model, bands, {} if builder_kwargs is None else builder_kwargs)
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
    if family == "croma":
        depth = int(tg.encoder_depth) // 2 if "sar" in tg.modalities else tg.encoder_depth
        return [int(tg.encoder_dim)] * int(depth), int(tg.patch_size)
    if family == "panopticon":
        vit = tg.model
        return [int(vit.embed_dim)] * len(vit.blocks), int(vit.patch_embed.patch_size[0])
    patch = int(tg.patch_embed_spectral.kernel_size)
    return [int(tg.pos_embed.shape[-1])] * len(tg.blocks), patch


def check_input(backbone: Any, x: torch.Tensor, values: Sequence[Any], what: str,
                multiple: int | None = None) -> None:
    """Refuse an input whose band count differs from ``values`` or whose size misfits.

    Args:
        backbone: The wrapping backbone (its ``name`` is used in messages).
        x: The input (B, C, H, W).
        values: One entry per band the model was built for (wavelengths, channel ids).
        what: What ``values`` are, for the message.
        multiple: The size H and W must be multiples of, when the model needs one.

    Raises:
        ValueError: Naming the model, both counts or the size, and the fix.
    """
    if x.shape[1] != len(values):
        raise ValueError(
            f"torchgeo:{backbone.name} got {x.shape[1]} bands but has {len(values)} {what} "
            f"({list(values)}); pass bands or wavelengths matching the input"
        )
    if multiple and (x.shape[-2] % multiple or x.shape[-1] % multiple):
        raise ValueError(
            f"torchgeo:{backbone.name} takes sizes that are multiples of {multiple}; got "
            f"{tuple(x.shape[-2:])}: crop or pad the input"
        )


def block_outputs(blocks: Any, h: torch.Tensor) -> list[torch.Tensor]:
    """The tokens after each transformer block of ``blocks``, run in order on ``h``."""
    out = []
    for block in blocks:
        h = block(h)
        out.append(h)
    return out


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
    check_input(backbone, x, waves, "wavelengths", patch)
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
    return block_outputs(tg.blocks, h)


def _panopticon_levels(backbone: Any, x: torch.Tensor) -> list[torch.Tensor]:
    """Tokens after each block of Panopticon's timm ViT, fed the dict it takes."""
    from timm.layers.pos_embed import resample_abs_pos_embed

    vit: Any = backbone.model.model
    ids = backbone.extras["chn_ids"]
    patch = backbone.input_multiple
    check_input(backbone, x, ids, "channel ids", patch)
    chn_ids = torch.tensor(ids, device=x.device).float().expand(x.shape[0], -1)
    tokens = vit.patch_embed({"imgs": x, "chn_ids": chn_ids.clone()})
    grid = (x.shape[-2] // patch, x.shape[-1] // patch)
    # timm's _pos_embed with the grid given (the patch embed returns flat tokens)
    pos = resample_abs_pos_embed(vit.pos_embed, new_size=grid,
                                 old_size=vit.patch_embed.grid_size, num_prefix_tokens=1)
    cls = vit.cls_token.expand(x.shape[0], -1, -1)
    h = vit.norm_pre(vit.patch_drop(vit.pos_drop(torch.cat((cls, tokens), dim=1) + pos)))
    return block_outputs(vit.blocks, h)


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
    return block_outputs(vit.blocks, h)


def _croma_blocks(encoder: Any, imgs: torch.Tensor, bias: torch.Tensor) -> list[torch.Tensor]:
    """Tokens after each block of one CROMA modality encoder (before its final norm)."""
    b, c, h, w = imgs.shape
    p = int(encoder.patch_size)
    # torchgeo's patchify, b c (h i) (w j) -> b (h w) (c i j)
    patches = imgs.reshape(b, c, h // p, p, w // p, p).permute(0, 2, 4, 1, 3, 5)
    x = encoder.linear_input(patches.reshape(b, (h // p) * (w // p), c * p * p))
    out = []
    for attn, ffn in encoder.transformer.layers:
        x = attn(x, bias) + x
        x = ffn(x) + x
        out.append(x)
    return out


def _croma_levels(backbone: Any, x: torch.Tensor) -> list[torch.Tensor]:
    """Tokens (B, N, C) after each block of the encoder the bands chose."""
    tg: Any = backbone.model
    sar, optical = backbone.extras["sar_index"], backbone.extras["optical_index"]
    size = int(tg.image_size)
    if x.shape[1] != len(sar) + len(optical):
        raise ValueError(
            f"torchgeo:{backbone.name} got {x.shape[1]} bands but was built for "
            f"{len(sar) + len(optical)}; pass bands matching the input"
        )
    if tuple(x.shape[-2:]) != (size, size):
        raise ValueError(
            f"torchgeo:{backbone.name} takes {size} x {size} inputs (its attention bias is "
            f"made for that size); got {tuple(x.shape[-2:])}: build with img_size "
            f"{x.shape[-1]} (a multiple of 8) for square inputs, or crop"
        )
    bias = tg.attn_bias
    radar = _croma_blocks(tg.s1_encoder, x[:, sar], bias) if sar else []
    optic = _croma_blocks(tg.s2_encoder, x[:, optical], bias) if optical else []
    if not (radar and optic):
        return radar or optic
    h = tg.s1_encoder.transformer.norm_out(radar[-1])
    context = tg.s2_encoder.transformer.norm_out(optic[-1])
    out = []
    for self_attn, cross_attn, ffn in tg.joint_encoder.layers:
        h = self_attn(h, bias) + h
        h = cross_attn(h, context, bias) + h
        h = ffn(h) + h
        out.append(h)
    return out


#: Per-block tokens of each family: ``LEVELS[family](backbone, x)``.
LEVELS: dict[str, Callable[[Any, torch.Tensor], list[torch.Tensor]]] = {
    "copernicusfm": _copernicusfm_levels, "panopticon": _panopticon_levels,
    "scalemae": _scalemae_levels, "croma": _croma_levels,
}
