"""Regenerate ``geofm_torchgeo/_zoo.py`` and ``_zoo_weights.py`` from the installed torchgeo.

The generated modules are plain data (no torch): the capability metadata of every
torchgeo model geofm wraps (bands, modalities, weight sets with their URLs, licences and
normalisation), one-line descriptions, and TerraTorch's names for those models.

What torchgeo knows is read from it (``list_models``, ``get_model_weights``, each weight
set's ``url``, ``meta`` and ``transforms``); what it does not say is written here as small
tables of facts: the licences of its documentation's weight tables, geofm band names for
Landsat sensors, architecture facts, and TerraTorch's backbone names. A weight set that
the tables do not cover stops the generator with the names to add.

Run from the repository root after upgrading torchgeo (builds every model once, without
weights, to count its parameters; ``--keep-parameters`` reuses the committed counts)::

    python plugins/torchgeo/scripts/generate_zoo.py
    python plugins/torchgeo/scripts/generate_zoo.py --check   # exit 1 if out of date
"""

from __future__ import annotations

import argparse
import importlib
import re
import sys
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
PACKAGE = HERE.parent / "src" / "geofm_torchgeo"
ZOO = PACKAGE / "_zoo.py"
ZOO_WEIGHTS = PACKAGE / "_zoo_weights.py"
WIDTH = 100

#: torchgeo models geofm does not wrap, and why (the tests read this set too).
EXCLUDED: dict[str, str] = {
    "aurora_swin_unet": "a weather forecasting model on atmospheric variables, not an "
                        "image backbone",
    "unet": "complete segmentation models (field boundaries, tree cover), not backbones",
}

# ------------------------------------------------------------------------ licences
# From the License column of torchgeo's docs/api/weights/*.csv ("-" or absent: unknown),
# as SPDX ids where there is one (ODC-BY: ODC-By-1.0). Class -> licence -> members.

_S12_ALL = ("SENTINEL2_ALL_MOCO", "SENTINEL2_ALL_DINO", "SENTINEL2_ALL_MAE",
            "SENTINEL2_ALL_FGMAE", "SENTINEL2_RGB_MOCO", "SENTINEL2_ALL_SOFTCON",
            "SENTINEL1_ALL_MOCO", "SENTINEL1_GRD_MAE", "SENTINEL1_GRD_FGMAE",
            "SENTINEL1_GRD_SOFTCON")
_SSL4EO_L = tuple(f"LANDSAT_{s}_{m}" for s in ("TM_TOA", "ETM_TOA", "ETM_SR", "OLI_TIRS_TOA",
                                                "OLI_SR") for m in ("MOCO", "SIMCLR"))
_SATLAS = (
    *(f"SENTINEL2_{a}_{b}_SATLAS" for a in ("MI", "SI") for b in ("MS", "RGB")),
    "NAIP_RGB_MI_SATLAS", "NAIP_RGB_SI_SATLAS", "LANDSAT_MI_SATLAS", "LANDSAT_SI_SATLAS",
    "SENTINEL1_MI_SATLAS", "SENTINEL1_SI_SATLAS")
_CLOSP = ("SENTINEL2_ALL_CLOSP", "SENTINEL2_ALL_GEOCLOSP", "SENTINEL1_GRD_CLOSP",
          "SENTINEL1_GRD_GEOCLOSP")
_BY_METHOD: dict[str, tuple[str, ...]] = {
    "CC-BY-4.0": _S12_ALL, "CC0-1.0": _SSL4EO_L, "ODC-By-1.0": _SATLAS, "OpenRAIL": _CLOSP,
    "Apache-2.0": ("SENTINEL2_RGB_SECO", "SENTINEL2_ALL_DECUR", "SENTINEL1_ALL_DECUR"),
    "MIT": ("SENTINEL2_ALL_SECO_ECO", "SENTINEL2_ALL_NDVI_SECO_ECO"),
    "unknown": ("FMOW_RGB_GASSL",),
}
#: Per weights class: licence -> members (classes whose licences are not per method).
_PER_CLASS: dict[str, dict[str, tuple[str, ...]]] = {
    "CopernicusFM_Base_Weights": {"CC-BY-4.0": ("CopernicusFM_ViT",)},
    "CROMABase_Weights": {"CC-BY-4.0": ("CROMA_VIT",)},
    "CROMALarge_Weights": {"CC-BY-4.0": ("CROMA_VIT",)},
    "DOFABase16_Weights": {"CC-BY-4.0": ("DOFA_MAE",)},
    "DOFALarge16_Weights": {"CC-BY-4.0": ("DOFA_MAE",)},
    "EarthLoc_Weights": {"MIT": ("SENTINEL2_RESNET50",)},
    "Panopticon_Weights": {"Apache-2.0": ("VIT_BASE14",)},
    "ScaleMAELarge16_Weights": {"CC-BY-NC-4.0": ("FMOW_RGB",)},
    # Not in torchgeo's tables (Mask2Former Cityscapes weights converted by a third party).
    "Swin_T_Weights": {"unknown": ("CITYSCAPES_SEMSEG",)},
    "Swin_S_Weights": {"unknown": ("CITYSCAPES_SEMSEG",)},
    "Swin_B_Weights": {"unknown": ("CITYSCAPES_SEMSEG",)},
}


def licence_of(cls: str, member: str) -> str | None:
    """The licence of ``cls.member`` from the tables above, or ``None`` when not listed."""
    table = _PER_CLASS.get(cls, _BY_METHOD)
    return next((spdx for spdx, members in table.items() if member in members), None)


# ------------------------------------------------------------------------ bands
# geofm names of torchgeo's per-sensor band names. Sentinel-2/1 and NAIP names resolve
# through geofm_core.data.bands.canonical_band; Landsat bands depend on the sensor.

_TM = {"B1": "BLUE", "B2": "GREEN", "B3": "RED", "B4": "NIR_NARROW", "B5": "SWIR_1",
       "B6": "THERMAL_INFRARED_1", "B7": "SWIR_2"}
# ETM+ records band 6 at low (VCID_1) and high (VCID_2) gain: one thermal band twice,
# which no geofm name tells apart, so the high-gain copy keeps a name of its own.
_ETM = {**_TM, "B6_VCID_1": "THERMAL_INFRARED_1", "B6_VCID_2": "THERMAL_INFRARED_1_HIGH_GAIN",
        "B8": "PANCHROMATIC"}
_OLI = {"B1": "COASTAL_AEROSOL", "B2": "BLUE", "B3": "GREEN", "B4": "RED", "B5": "NIR_NARROW",
        "B6": "SWIR_1", "B7": "SWIR_2", "B8": "PANCHROMATIC", "B9": "CIRRUS",
        "B10": "THERMAL_INFRARED_1", "B11": "THERMAL_INFRARED_2"}
LANDSAT_BANDS: dict[str, dict[str, str]] = {
    "TM": _TM, "ETM": _ETM, "OLI": _OLI,
}
#: Weight-member prefix -> (sensor table, description of the input).
LANDSAT_SETS: dict[str, tuple[str, str]] = {
    "LANDSAT_TM_TOA": ("TM", "Landsat 4-5 TM TOA"),
    "LANDSAT_ETM_TOA": ("ETM", "Landsat 7 ETM+ TOA"),
    "LANDSAT_ETM_SR": ("ETM", "Landsat 7 ETM+ SR"),
    "LANDSAT_OLI_TIRS_TOA": ("OLI", "Landsat 8-9 OLI-TIRS TOA"),
    "LANDSAT_OLI_SR": ("OLI", "Landsat 8-9 OLI SR"),
    "LANDSAT_MI": ("OLI", "Landsat 8-9"),
    "LANDSAT_SI": ("OLI", "Landsat 8-9"),
}
RGB = ("RED", "GREEN", "BLUE")
#: Weight sets whose meta lists no bands: class.member -> geofm bands.
BANDS_NOT_IN_META: dict[str, tuple[str, ...]] = {
    "ResNet50_Weights.FMOW_RGB_GASSL": RGB,
    "ScaleMAELarge16_Weights.FMOW_RGB": RGB,
    "Swin_T_Weights.CITYSCAPES_SEMSEG": RGB,
    "Swin_S_Weights.CITYSCAPES_SEMSEG": RGB,
    "Swin_B_Weights.CITYSCAPES_SEMSEG": RGB,
    # CROMA takes Sentinel-1 (2 bands) and Sentinel-2 (12 bands, no B10) as two inputs.
    "CROMABase_Weights.CROMA_VIT": ("VV", "VH", "B1", "B2", "B3", "B4", "B5", "B6", "B7",
                                    "B8", "B8A", "B9", "B11", "B12"),
    "CROMALarge_Weights.CROMA_VIT": ("VV", "VH", "B1", "B2", "B3", "B4", "B5", "B6", "B7",
                                     "B8", "B8A", "B9", "B11", "B12"),
}
#: Wavelength-conditioned models: any band fits, modalities of their pretraining data.
WAVELENGTH_MODELS: dict[str, tuple[str, ...]] = {
    "copernicusfm_base": ("optical", "multispectral", "hyperspectral", "sar", "dem"),
    "dofa_small_patch16_224": ("optical", "multispectral", "rgb", "hyperspectral", "sar"),
    "dofa_base_patch16_224": ("optical", "multispectral", "rgb", "hyperspectral", "sar"),
    "dofa_large_patch16_224": ("optical", "multispectral", "rgb", "hyperspectral", "sar"),
    "dofa_huge_patch14_224": ("optical", "multispectral", "rgb", "hyperspectral", "sar"),
    "panopticon_vitb14": ("optical", "multispectral", "rgb", "hyperspectral", "sar"),
}

# ------------------------------------------------------------------------ methods
#: ssl_method values -> how descriptions name them.
METHOD_LABELS: dict[str, str] = {
    "moco": "MoCo", "simclr": "SimCLR", "dino": "DINO", "mae": "MAE", "fg-mae": "FG-MAE",
    "decur": "DeCUR", "softcon": "SoftCon", "seco": "SeCo", "seco-eco": "SeCo-Eco",
    "gassl": "GASSL", "croma": "CROMA", "closp": "CLOSP", "geoclosp": "GeoCLOSP",
    "scale-mae": "Scale-MAE", "supervised": "supervised", "mae+distill": "MAE + distillation",
    "dinov2+spectral_progressive_pretraining": "DINOv2 + spectral progressive pretraining",
}
#: Weight sets whose meta names no ssl_method: member suffix -> method.
METHOD_BY_SUFFIX: dict[str, str] = {
    "_GEOCLOSP": "geoclosp", "_CLOSP": "closp", "_SATLAS": "supervised",
    "CITYSCAPES_SEMSEG": "supervised", "SENTINEL2_RESNET50": "supervised",
    "FMOW_RGB": "scale-mae",
}

# ------------------------------------------------------------------------ models
#: Model -> (family, patch size, native image size, any number of bands, description).
ARCHITECTURES: dict[str, tuple[str, int | None, int | None, bool, str]] = {
    "copernicusfm_base": ("ViT", 16, 224, True, (
        "Copernicus-FM ViT-B/16: wavelength/bandwidth hypernetwork, any Copernicus sensor")),
    "croma_base": ("ViT", 8, 120, False, (
        "CROMA ViT-B/8: radar-optical contrastive MAE, Sentinel-1 and Sentinel-2 encoders")),
    "croma_large": ("ViT", 8, 120, False, (
        "CROMA ViT-L/8: radar-optical contrastive MAE, Sentinel-1 and Sentinel-2 encoders")),
    "dofa_small_patch16_224": ("ViT", 16, 224, True, (
        "DOFA ViT-S/16: wavelength-conditioned patch embedding (no pretrained weights)")),
    "dofa_base_patch16_224": ("ViT", 16, 224, True, (
        "DOFA ViT-B/16: wavelength-conditioned patch embedding, any optical or SAR bands")),
    "dofa_large_patch16_224": ("ViT", 16, 224, True, (
        "DOFA ViT-L/16: wavelength-conditioned patch embedding, any optical or SAR bands")),
    "dofa_huge_patch14_224": ("ViT", 14, 224, True, (
        "DOFA ViT-H/14: wavelength-conditioned patch embedding (no pretrained weights)")),
    "earthloc": ("ResNet", None, 320, False, (
        "EarthLoc ResNet-50 + descriptor head: Sentinel-2 RGB retrieval to locate photos")),
    "panopticon_vitb14": ("ViT", 14, 224, True, (
        "Panopticon ViT-B/14 (DINOv2): spectral cross-attention, any optical/SAR channels")),
    "resnet18": ("ResNet", None, None, True, (
        "ResNet-18 (timm): small CNN; SSL4EO-L Landsat, SSL4EO-S12 and SeCo Sentinel-2")),
    "resnet50": ("ResNet", None, None, True, (
        "ResNet-50 (timm): CNN; Landsat, Sentinel-1/2, fMoW RGB and Satlas weights")),
    "resnet152": ("ResNet", None, None, True, (
        "ResNet-152 (timm): deep CNN; SatlasPretrain Sentinel-2, single or multi-image")),
    "scalemae_large_patch16": ("ViT", 16, 224, False, (
        "Scale-MAE ViT-L/16: MAE with resolution-aware position encoding, fMoW RGB")),
    "swin_t": ("Swin", 4, None, False, (
        "Swin-T (torchvision): Mask2Former Cityscapes segmentation backbone, RGB")),
    "swin_s": ("Swin", 4, None, False, (
        "Swin-S (torchvision): Mask2Former Cityscapes segmentation backbone, RGB")),
    "swin_b": ("Swin", 4, None, False, (
        "Swin-B (torchvision): Mask2Former Cityscapes segmentation backbone, RGB")),
    "swin_v2_t": ("Swin", 4, None, False, (
        "Swin V2-T (torchvision): SatlasPretrain Sentinel-2 backbone, single or multi-image")),
    "swin_v2_b": ("Swin", 4, None, False, (
        "Swin V2-B (torchvision): SatlasPretrain backbone, Sentinel-1/2, Landsat, NAIP")),
    "vit_small_patch16_224": ("ViT", 16, 224, True, (
        "ViT-S/16 (timm): SSL4EO-L Landsat and SSL4EO-S12 Sentinel-1/2 weights")),
    "vit_base_patch16_224": ("ViT", 16, 224, True, (
        "ViT-B/16 (timm): SSL4EO-S12 MAE and FG-MAE, Sentinel-1 and Sentinel-2")),
    "vit_large_patch16_224": ("ViT", 16, 224, True, (
        "ViT-L/16 (timm): SSL4EO-S12 MAE, FG-MAE and CLOSP, Sentinel-1 and Sentinel-2")),
    "vit_huge_patch14_224": ("ViT", 14, 224, True, (
        "ViT-H/14 (timm): SSL4EO-S12 MAE and FG-MAE, Sentinel-1 and Sentinel-2")),
    "vit_small_patch14_dinov2": ("ViT", 14, 224, True, (
        "ViT-S/14 DINOv2 (timm): SoftCon weights for Sentinel-1 and Sentinel-2")),
    "vit_base_patch14_dinov2": ("ViT", 14, 224, True, (
        "ViT-B/14 DINOv2 (timm): SoftCon weights for Sentinel-1 and Sentinel-2")),
}
#: Arguments that build a model without downloading anything (to count its parameters).
BUILD_KWARGS: dict[str, dict[str, Any]] = {"earthloc": {"pretrained": False}}

# ------------------------------------------------------------------------ TerraTorch
# TerraTorch's backbone registry names of torchgeo models (terratorch/models/backbones/
# torchgeo_resnet.py, torchgeo_vit.py, torchgeo_swin_satlas.py, dofa_vit.py): name ->
# (torchgeo model, weights member or None). TerraTorch's own spelling, oddities included
# (satlas_swin_b_landsat_mi_rgb loads LANDSAT_SI_SATLAS).


def _prefixed(prefix: str, model: str, members: Iterable[str]) -> dict[str, tuple[str, str]]:
    return {f"{prefix}_{model}_{m.lower()}": (model, m) for m in members}


_LANDSAT_TT = tuple(f"LANDSAT_{s}_{m}" for s in ("TM_TOA", "ETM_TOA", "ETM_SR", "OLI_TIRS_TOA",
                                                  "OLI_SR") for m in ("MOCO", "SIMCLR"))
TERRATORCH: dict[str, tuple[str, str | None]] = {
    **_prefixed("ssl4eol", "resnet18", _LANDSAT_TT),
    **_prefixed("ssl4eos12", "resnet18", ("SENTINEL2_ALL_MOCO", "SENTINEL2_RGB_MOCO")),
    **_prefixed("seco", "resnet18", ("SENTINEL2_RGB_SECO",)),
    **_prefixed("fmow", "resnet50", ("FMOW_RGB_GASSL",)),
    **_prefixed("ssl4eol", "resnet50", _LANDSAT_TT),
    **_prefixed("ssl4eos12", "resnet50", (
        "SENTINEL1_ALL_DECUR", "SENTINEL1_ALL_MOCO", "SENTINEL2_ALL_DECUR",
        "SENTINEL2_ALL_DINO", "SENTINEL2_ALL_MOCO", "SENTINEL2_RGB_MOCO")),
    **_prefixed("seco", "resnet50", ("SENTINEL2_RGB_SECO",)),
    **_prefixed("satlas", "resnet50", (
        "SENTINEL2_MI_MS_SATLAS", "SENTINEL2_MI_RGB_SATLAS", "SENTINEL2_SI_MS_SATLAS",
        "SENTINEL2_SI_RGB_SATLAS")),
    "satlas_resnet152_sentinel2_mi_ms": ("resnet152", "SENTINEL2_MI_MS_SATLAS"),
    "satlas_resnet152_sentinel2_mi_rgb": ("resnet152", "SENTINEL2_MI_RGB_SATLAS"),
    **_prefixed("satlas", "resnet152", ("SENTINEL2_SI_MS_SATLAS", "SENTINEL2_SI_RGB_SATLAS")),
    **_prefixed("ssl4eol", "vit_small_patch16_224", (
        m for m in _LANDSAT_TT if m != "LANDSAT_OLI_TIRS_TOA_MOCO")),
    **_prefixed("ssl4eos12", "vit_small_patch16_224", (
        "SENTINEL2_ALL_DINO", "SENTINEL2_ALL_MOCO")),
    **{f"satlas_swin_t_sentinel2_{k}": ("swin_v2_t", f"SENTINEL2_{k.upper()}_SATLAS")
       for k in ("mi_ms", "mi_rgb", "si_ms", "si_rgb")},
    **{f"satlas_swin_b_sentinel2_{k}": ("swin_v2_b", f"SENTINEL2_{k.upper()}_SATLAS")
       for k in ("mi_ms", "mi_rgb", "si_ms", "si_rgb")},
    "satlas_swin_b_naip_mi_rgb": ("swin_v2_b", "NAIP_RGB_MI_SATLAS"),
    "satlas_swin_b_naip_si_rgb": ("swin_v2_b", "NAIP_RGB_SI_SATLAS"),
    "satlas_swin_b_landsat_mi_ms": ("swin_v2_b", "LANDSAT_MI_SATLAS"),
    "satlas_swin_b_landsat_mi_rgb": ("swin_v2_b", "LANDSAT_SI_SATLAS"),
    "satlas_swin_b_sentinel1_mi": ("swin_v2_b", "SENTINEL1_MI_SATLAS"),
    "satlas_swin_b_sentinel1_si": ("swin_v2_b", "SENTINEL1_SI_SATLAS"),
    "dofa_small_patch16_224": ("dofa_small_patch16_224", None),
    "dofa_base_patch16_224": ("dofa_base_patch16_224", "DOFA_MAE"),
    "dofa_large_patch16_224": ("dofa_large_patch16_224", "DOFA_MAE"),
}

# ------------------------------------------------------------------------ reading torchgeo

_HASH = re.compile(r"-([0-9a-f]{8,64})\.[A-Za-z]+$")


def _leaves(transform: Any) -> list[Any]:
    children = list(transform.children()) if hasattr(transform, "children") else []
    if not children:
        return [transform]
    return [leaf for child in children for leaf in _leaves(child)]


def _values(value: Any) -> list[float]:
    if hasattr(value, "flatten"):
        value = value.flatten().tolist()
    if isinstance(value, int | float):
        value = [value]
    return [float(v) for v in value]


def read_transforms(transform: Any, bands: int) -> tuple[tuple[float, ...], tuple[float, ...],
                                                          int | None]:
    """The normalisation the transforms apply, as one ``(x - mean) / std`` per band, and size.

    Consecutive ``Normalize`` steps are composed into one; a step with one value applies
    to every band. Mean and std are empty when there is no ``Normalize`` or its length
    fits neither one value nor ``bands``; size is the last resize or crop's.
    """
    mean, std = [0.0] * bands, [1.0] * bands
    seen, size = False, None
    for leaf in _leaves(transform):
        kind = type(leaf).__name__
        if kind == "Normalize":
            flags = getattr(leaf, "flags", {})
            m = _values(flags["mean"] if "mean" in flags else leaf.mean)
            s = _values(flags["std"] if "std" in flags else leaf.std)
            if not bands or {len(m), len(s)} - {1, bands}:
                return (), (), size
            m, s = m * bands if len(m) == 1 else m, s * bands if len(s) == 1 else s
            mean = [mean[i] + m[i] * std[i] for i in range(bands)]
            std = [std[i] * s[i] for i in range(bands)]
            seen = True
        elif kind in ("Resize", "CenterCrop"):
            raw = getattr(leaf, "size", None)
            raw = raw if raw is not None else getattr(leaf, "flags", {}).get("size")
            if isinstance(raw, Sequence) and raw:
                size = int(raw[0])
            elif isinstance(raw, int):
                size = raw
    if not seen:
        return (), (), size
    return tuple(round(v, 6) for v in mean), tuple(round(v, 6) for v in std), size


def geofm_bands(cls: str, member: str, meta: dict[str, Any]) -> tuple[str, ...]:
    """The geofm names of a weight set's bands, in torchgeo's order."""
    from geofm_core.data.bands import canonical_band

    key = f"{cls}.{member}"
    if key in BANDS_NOT_IN_META:
        return tuple(canonical_band(b) or b for b in BANDS_NOT_IN_META[key])
    raw = [str(b) for b in meta.get("bands", ())]
    if not raw:
        return ()
    sensor = next((s for p, (s, _) in LANDSAT_SETS.items() if member.startswith(p)), None)
    out = []
    for band in raw:
        if sensor is not None:
            name = LANDSAT_BANDS[sensor].get(band.removeprefix("SR_").replace("B0", "B"))
        elif band.upper() in ("R", "G", "B"):
            name = {"R": "RED", "G": "GREEN", "B": "BLUE"}[band.upper()]
        else:
            name = canonical_band(band) or (band.upper() if band.upper() == "NDVI" else None)
        if name is None:
            raise SystemExit(f"{key}: no geofm name for band {band!r}; add it to the tables")
        out.append(name)
    return tuple(out)


def modalities_of(model: str, member: str, bands: Sequence[str]) -> tuple[str, ...]:
    """What a weight set's bands are, in geofm's modality names."""
    if model in WAVELENGTH_MODELS:
        return WAVELENGTH_MODELS[model]
    mods: list[str] = []
    optical = [b for b in bands if b not in ("VV", "VH", "HH", "HV")]
    if len(optical) < len(bands):
        mods.append("sar")
    if optical:
        mods += ["optical", "rgb" if set(optical) <= set(RGB) else "multispectral"]
    if any(b.startswith("THERMAL") for b in bands):
        mods.append("thermal")
    return tuple(mods)


def _input_text(member: str, bands: Sequence[str]) -> str:
    n = len(bands)
    landsat = next((d for p, (_, d) in LANDSAT_SETS.items() if member.startswith(p)), None)
    if landsat:
        return f"{n} {landsat} bands"
    if member.startswith("SENTINEL1") or set(bands) == {"VV", "VH"}:
        return f"Sentinel-1 {', '.join(bands)}"
    if member.startswith("NAIP"):
        return "NAIP RGB"
    if member.startswith("SENTINEL2") and set(bands) <= set(RGB):
        return "Sentinel-2 RGB"
    if member.startswith("SENTINEL2") and "NDVI" in bands:
        return f"{n - 1} Sentinel-2 bands and NDVI"
    if member.startswith("SENTINEL2"):
        return "all 13 Sentinel-2 L1C bands" if n == 13 else f"{n} Sentinel-2 bands"
    if tuple(bands[:2]) == ("VV", "VH") and n == 14:
        return "Sentinel-1 VV, VH and 12 Sentinel-2 bands"
    return "RGB" if set(bands) <= set(RGB) and bands else "any bands, by wavelength"


def describe_weights(model: str, member: str, meta: dict[str, Any], bands: Sequence[str],
                     method: str) -> str:
    """One line: data set, method and input of a weight set."""
    label = METHOD_LABELS.get(method, method)
    dataset = str(meta.get("dataset", "")).split(" - ")[0].removesuffix(" Dataset")
    if dataset == label:  # SeCo: the data set is named after the method
        dataset = ""
    if "_MI_" in f"_{member}_":
        label += " (multi-image)"
    elif "_SI_" in f"_{member}_":
        label += " (single-image)"
    return f"{dataset} {label} on {_input_text(member, bands)}".strip()


def method_of(member: str, meta: dict[str, Any]) -> str:
    """The pretraining method torchgeo names, or the one its weight name implies."""
    if meta.get("ssl_method"):
        return str(meta["ssl_method"])
    found = next((m for s, m in METHOD_BY_SUFFIX.items() if member.endswith(s)), None)
    if found is None:
        raise SystemExit(f"{member}: no ssl_method in meta; add it to METHOD_BY_SUFFIX")
    return found


def read_weights(model: str, enum: Any) -> list[dict[str, Any]]:
    """Every weight set of ``model`` as a mapping of WeightSet fields, sorted by name."""
    out, missing = [], []
    for member in sorted(enum, key=lambda m: m.name):
        meta, cls = dict(member.meta), type(member).__name__
        spdx = licence_of(cls, member.name)
        if spdx is None:
            missing.append(f"{cls}.{member.name}")
            continue
        bands = geofm_bands(cls, member.name, meta)
        if meta.get("in_chans") is not None and bands and len(bands) != meta["in_chans"]:
            raise SystemExit(f"{cls}.{member.name}: {len(bands)} bands, in_chans "
                             f"{meta['in_chans']}")
        mean, std, size = read_transforms(member.transforms, len(bands))
        found = _HASH.search(member.url.rsplit("/", 1)[-1])
        method = method_of(member.name, meta)
        out.append({
            "name": member.name, "bands": bands,
            "modalities": modalities_of(model, member.name, bands), "url": member.url,
            "license": spdx, "sha256": found.group(1) if found else "", "mean": mean,
            "std": std,
            "image_size": meta.get("img_size") or meta.get("image_size") or size,
            "multi_temporal": "_MI_" in f"_{member.name}_",
            "dataset": str(meta.get("dataset", "")), "method": method,
            "description": describe_weights(model, member.name, meta, bands, method),
        })
    if missing:
        raise SystemExit(f"no licence for {', '.join(missing)}; add them to the licence tables")
    return out


def count_parameters(name: str) -> int:
    """Parameters of ``name`` built without weights."""
    from torchgeo.models import get_model

    model = get_model(name, **BUILD_KWARGS.get(name, {}))
    return int(sum(p.numel() for p in model.parameters()))


def read_zoo(keep_parameters: bool) -> dict[str, dict[str, Any]]:
    """Every wrapped torchgeo model's metadata mapping, sorted by name."""
    from torchgeo.models import get_model_weights, list_models

    from geofm_core.metadata import MODALITIES

    old: dict[str, Any] = {}
    if keep_parameters:
        sys.path.insert(0, str(PACKAGE.parent))
        old = importlib.import_module("geofm_torchgeo._zoo").MODELS
    names = sorted(n for n in list_models() if n not in EXCLUDED)
    unknown = [n for n in names if n not in ARCHITECTURES]
    if unknown:
        raise SystemExit(f"new torchgeo models {', '.join(unknown)}: add them to ARCHITECTURES "
                         "(or EXCLUDED)")
    models: dict[str, dict[str, Any]] = {}
    for name in names:
        try:
            weights = read_weights(name, get_model_weights(name))
        except KeyError:  # a model without pretrained weights
            weights = []
        family, patch, image, any_bands, _ = ARCHITECTURES[name]
        seen = {m for w in weights for m in w["modalities"]}
        seen |= set(WAVELENGTH_MODELS.get(name, ()))
        bandsets = {w["bands"] for w in weights}
        models[name] = {
            "family": family, "modalities": tuple(m for m in MODALITIES if m in seen),
            "bands": bandsets.pop() if len(bandsets) == 1 else (),
            "any_bands": any_bands, "wavelength_conditioned": name in WAVELENGTH_MODELS,
            "patch_size": patch, "image_size": image, "multi_temporal": False,
            "parameters": (old[name]["parameters"] if name in old else count_parameters(name)),
            "weights": weights,
        }
        print(f"{name}: {len(weights)} weight sets", file=sys.stderr)
    for alias, (model, member) in TERRATORCH.items():
        listed: list[dict[str, Any]] = models.get(model, {}).get("weights", [])
        have = {w["name"] for w in listed}
        if model not in models or (member is not None and member not in have):
            raise SystemExit(f"TerraTorch's {alias}: torchgeo has no {model} {member}")
    return models


# ------------------------------------------------------------------------ writing


def _s(text: str) -> str:
    """A double-quoted Python literal of ``text``."""
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _lit(value: Any) -> str:
    if isinstance(value, str):
        return _s(value)
    if isinstance(value, float):
        return repr(value)
    if isinstance(value, tuple):
        if len(value) > 1 and len(set(value)) == 1 and not isinstance(value[0], tuple):
            return f"({_lit(value[0])},) * {len(value)}"
        return "(" + ", ".join(_lit(v) for v in value) + ("," if len(value) == 1 else "") + ")"
    return repr(value)


def _wrap(head: str, items: Sequence[str], tail: str, indent: str) -> list[str]:
    """``head item, item, ... tail`` wrapped at WIDTH, continuation lines at ``indent``."""
    lines, line = [], head
    for i, item in enumerate(items):
        piece = item + (", " if i < len(items) - 1 else tail)
        if len(line) + len(piece.rstrip()) > WIDTH and line.strip():
            lines.append(line.rstrip())
            line = indent
        line += piece
    lines.append(line.rstrip())
    return lines


def _tuple_const(name: str, value: tuple[Any, ...]) -> list[str]:
    text = f"{name} = {_lit(value)}"
    if len(text) <= WIDTH:
        return [text]
    if value and all(isinstance(v, tuple) for v in value):  # a (mean, std) pair
        lines = [f"{name} = ("]
        for part in value:
            lines += _wrap("    (", [_lit(v) for v in part], "),", "     ")
        return [*lines, ")"]
    return _wrap(f"{name} = (", [_lit(v) for v in value], ")", "    ")


HEADER = '''"""{doc}

GENERATED by plugins/torchgeo/scripts/generate_zoo.py from torchgeo {version}; do not edit,
rerun it (after upgrading torchgeo, or to change the facts it encodes). Plain data: it
imports nothing but the standard library and its sibling data module.
"""

from __future__ import annotations

from typing import Any

'''


def render_weights(models: dict[str, dict[str, Any]], version: str) -> str:
    """The text of ``_zoo_weights.py``."""
    consts: dict[tuple[Any, ...], str] = {}
    lines: list[str] = []

    def const(prefix: str, value: tuple[Any, ...]) -> str:
        if value not in consts:
            consts[value] = f"_{prefix}{sum(c.startswith(f'_{prefix}') for c in consts.values())}"
        return consts[value]

    body = ["#: torchgeo model name -> its weight sets (WeightSet fields), sorted by name.",
            "WEIGHTS: dict[str, list[dict[str, Any]]] = {"]
    for name, entry in models.items():
        if not entry["weights"]:
            body.append(f"    {_lit(name)}: [],")
            continue
        body.append(f"    {_lit(name)}: [")
        for w in entry["weights"]:
            args = [_lit(w["name"]), const("B", w["bands"]), const("M", w["modalities"]),
                    const("N", (w["mean"], w["std"])), _lit(w["image_size"]),
                    _lit(w["multi_temporal"])]
            body += _wrap("        _w(", args, ",", "           ")
            body.append(f"           {_lit(w['url'])},")
            body += _wrap("           ", [_lit(w["license"]), _lit(w["sha256"]),
                                          _lit(w["dataset"]), _lit(w["method"])], ",",
                          "           ")
            body.append(f"           {_lit(w['description'])}),")
        body.append("    ],")
    body.append("}")
    lines.append("# Band lists (geofm names), modalities and normalisations the weight sets share.")
    lines.append("# Normalisations are (mean, std): torchgeo's transforms composed into one")
    lines.append("# (x - mean) / std per band, on the data in the scale those transforms take.")
    for value, cname in consts.items():
        lines += _tuple_const(cname, value)
    doc = "torchgeo's pretrained weight sets, as geofm weight-set mappings."
    helper = '''

def _w(name: str, bands: tuple[str, ...], modalities: tuple[str, ...],
       norm: tuple[tuple[float, ...], tuple[float, ...]], image_size: int | None,
       multi_temporal: bool, url: str, spdx: str, sha256: str, dataset: str, method: str,
       description: str) -> dict[str, Any]:
    return {"name": name, "bands": bands, "modalities": modalities, "url": url,
            "license": spdx, "sha256": sha256, "mean": norm[0], "std": norm[1],
            "image_size": image_size, "multi_temporal": multi_temporal, "dataset": dataset,
            "method": method, "description": description}


'''
    return (HEADER.format(doc=doc, version=version) + '__all__ = ["WEIGHTS"]\n\n'
            + "\n".join(lines) + helper + "\n".join(body) + "\n")


def render_zoo(models: dict[str, dict[str, Any]], version: str) -> str:
    """The text of ``_zoo.py``."""
    doc = "Capability metadata of torchgeo's models, descriptions, TerraTorch's names for them."
    out = [HEADER.format(doc=doc, version=version).replace(
        "from typing import Any\n", "from typing import Any\n\n"
        "from geofm_torchgeo._zoo_weights import WEIGHTS"),
        '__all__ = ["DESCRIPTIONS", "EXCLUDED", "MODELS", "TERRATORCH_NAMES"]\n']
    out.append("#: torchgeo models not wrapped, and why.")
    out.append("EXCLUDED: dict[str, str] = {")
    for name, why in sorted(EXCLUDED.items()):
        out.append(f"    {_lit(name)}:")
        out.append(f"        {_lit(why)},")
    out.append("}\n")
    out.append("#: torchgeo model name -> geofm_core.metadata.ComponentMetadata fields.")
    out.append("MODELS: dict[str, dict[str, Any]] = {")
    for name, e in models.items():
        out.append(f"    {_lit(name)}: {{")
        pairs = [f"{_lit(k)}: {_lit(e[k])}" for k in (
            "family", "modalities", "bands", "any_bands", "wavelength_conditioned",
            "patch_size", "image_size", "multi_temporal", "parameters")]
        pairs.append(f'"weights": WEIGHTS[{_lit(name)}]')
        if len(_lit(e["bands"])) > WIDTH - 20:  # a long band list on lines of its own
            pairs.remove(f'"bands": {_lit(e["bands"])}')
            out += _wrap('        "bands": (', [_lit(b) for b in e["bands"]], "),",
                         "            ")
        out += _wrap("        ", pairs, ",", "        ")
        out.append("    },")
    out.append("}\n")
    out.append("#: torchgeo model name -> one line: architecture, size, what it is for.")
    out.append("DESCRIPTIONS: dict[str, str] = {")
    for name in models:
        out.append(f"    {_lit(name)}:")
        out.append(f"        {_lit(ARCHITECTURES[name][4])},")
    out.append("}\n")
    out.append("#: TerraTorch backbone name -> (torchgeo model, weights member or None).")
    out.append("TERRATORCH_NAMES: dict[str, tuple[str, str | None]] = {")
    for alias, (model, member) in sorted(TERRATORCH.items()):
        line = f"    {_lit(alias)}: ({_lit(model)}, {_lit(member)}),"
        if len(line) > WIDTH:
            line = f"    {_lit(alias)}:\n        ({_lit(model)}, {_lit(member)}),"
        out.append(line)
    out.append("}")
    return "\n".join(out) + "\n"


def main(argv: list[str] | None = None) -> int:
    """Write (or with ``--check``, compare) the generated modules."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="exit 1 if the files differ")
    parser.add_argument("--keep-parameters", action="store_true",
                        help="reuse the committed parameter counts instead of building models")
    args = parser.parse_args(argv)
    import torchgeo

    models = read_zoo(args.keep_parameters)
    texts = {ZOO_WEIGHTS: render_weights(models, torchgeo.__version__),
             ZOO: render_zoo(models, torchgeo.__version__)}
    stale = [p for p, t in texts.items() if not p.exists() or p.read_text() != t]
    if args.check:
        for path in stale:
            print(f"{path} is out of date; rerun {Path(__file__).name}", file=sys.stderr)
        return 1 if stale else 0
    for path in stale:
        path.write_text(texts[path])
        print(f"wrote {path}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
