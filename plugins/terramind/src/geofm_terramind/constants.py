"""Published facts about TerraMind v1: modalities, their bands and normalisation, variants.

A light module (no torch): ``_plugin.py``, the converter and the CLI read it cheaply.
The numbers are those TerraTorch ships with its TerraMind backbones (1.2.11); band names
are the core's (:mod:`geofm_core.data.bands`).
"""

from __future__ import annotations

from dataclasses import dataclass

from geofm_core.data.bands import SENTINEL2_L1C_BANDS

__all__ = [
    "MODALITIES",
    "VARIANTS",
    "Modality",
    "TerraMindVariant",
    "WeightsFile",
    "modality_by_key",
    "modality_for",
]


@dataclass(frozen=True)
class Modality:
    """One image-like TerraMind input modality.

    Attributes:
        name: geofm's (and TerraTorch's) name, as a ``modalities`` list spells it.
        key: The modality's key in the official checkpoint
            (``encoder_embeddings.<key>.proj.weight``).
        bands: Its channels, in the checkpoint's order (geofm band names where they
            exist).
        kind: The metadata modality (``multispectral``, ``sar``, ...).
        mean: Pre-training mean per band (TerraTorch's ``v1_pretraining_mean``).
        std: Pre-training standard deviation per band.
        pretrained: The v1 checkpoints hold a raw-pixel patch embedding for it. LULC and
            NDVI are only tokenized there (TerraTorch runs their pretrained tokenizers
            first); geofm embeds their pixels with new weights.
    """

    name: str
    key: str
    bands: tuple[str, ...]
    kind: str
    mean: tuple[float, ...] = ()
    std: tuple[float, ...] = ()
    pretrained: bool = True


_S2L2A_BANDS = tuple(b for b in SENTINEL2_L1C_BANDS if b != "CIRRUS")

#: The image-like modalities by name, in TerraTorch's order of preference when matching.
MODALITIES: dict[str, Modality] = {m.name: m for m in (
    Modality("S2L2A", "untok_sen2l2a@224", _S2L2A_BANDS, "multispectral",
             (1390.458, 1503.317, 1718.197, 1853.91, 2199.1, 2779.975, 2987.011, 3083.234,
              3132.22, 3162.988, 2424.884, 1857.648),
             (2106.761, 2141.107, 2038.973, 2134.138, 2085.321, 1889.926, 1820.257,
              1871.918, 1753.829, 1797.379, 1434.261, 1334.311)),
    Modality("S2L1C", "untok_sen2l1c@224", SENTINEL2_L1C_BANDS, "multispectral",
             (2357.089, 2137.385, 2018.788, 2082.986, 2295.651, 2854.537, 3122.849, 3040.56,
              3306.481, 1473.847, 506.07, 2472.825, 1838.929),
             (1624.683, 1675.806, 1557.708, 1833.702, 1823.738, 1733.977, 1732.131,
              1679.732, 1727.26, 1024.687, 442.165, 1331.411, 1160.419)),
    Modality("S1RTC", "untok_sen1rtc@224", ("VV", "VH"), "sar",
             (-10.93, -17.329), (4.391, 4.459)),
    Modality("S1GRD", "untok_sen1grd@224", ("VV", "VH"), "sar",
             (-12.599, -20.293), (5.195, 5.890)),
    Modality("RGB", "untok_sen2rgb@224", ("RED", "GREEN", "BLUE"), "rgb",
             (87.271, 80.931, 66.667), (58.767, 47.663, 42.631)),
    Modality("DEM", "untok_dem@224", ("DEM",), "dem", (670.665,), (951.272,)),
    Modality("LULC", "untok_lulc@224", tuple(f"LULC_{i}" for i in range(10)), "lulc",
             pretrained=False),
    Modality("NDVI", "untok_ndvi@224", ("NDVI",), "multispectral", (0.327,), (0.322,),
             pretrained=False),
)}

_BY_KEY = {m.key: m for m in MODALITIES.values()}


def modality_by_key(key: str) -> Modality | None:
    """The modality whose checkpoint key is ``key`` (``untok_sen2l1c@224``), if any."""
    return _BY_KEY.get(key)


def modality_for(name: str) -> Modality | None:
    """The modality a TerraTorch-style name means (``S2L1C``, ``s2l1c``, ``sen1``, ...).

    Matching follows TerraTorch's: lower case, ``s2``/``s1`` read as ``sen2``/``sen1``,
    a raw-pixel checkpoint key taken as is, ``sen1`` without ``rtc`` meaning GRD. Other
    checkpoint keys (``tok_sen2l2a@224``: tokenized inputs) match nothing.
    """
    if name in _BY_KEY:
        return _BY_KEY[name]
    if "@" in name:  # another checkpoint key: a tokenized or generation-side modality
        return None
    folded = name.lower().replace("s2", "sen2").replace("s1", "sen1")
    for needle, found in (("sen2l2a", "S2L2A"), ("sen2l1c", "S2L1C"), ("sen1rtc", "S1RTC"),
                          ("sen1", "S1GRD"), ("rgb", "RGB"), ("dem", "DEM"),
                          ("lulc", "LULC"), ("ndvi", "NDVI")):
        if needle in folded:
            return MODALITIES[found]
    return None


@dataclass(frozen=True)
class WeightsFile:
    """An official checkpoint on the Hugging Face Hub."""

    repo_id: str
    filename: str


@dataclass(frozen=True)
class TerraMindVariant:
    """Architecture of one TerraMind v1 encoder and where its weights live.

    ``gated`` variants use a SwiGLU feed-forward and no biases in the linear layers;
    the others a GELU MLP with biases. Every variant has bias-free LayerNorms (eps 1e-6).
    """

    name: str
    embed_dim: int
    depth: int
    num_heads: int
    gated: bool
    weights: WeightsFile
    #: Encoder parameters with ``modalities: [S2L2A]`` (TerraTorch, meta device).
    parameters: int
    description: str


_ORG = "ibm-esa-geospatial"


def _variant(size: str, dim: int, depth: int, heads: int, gated: bool,
             parameters: int) -> TerraMindVariant:
    mlp = "SwiGLU, no biases" if gated else "GELU MLP"
    return TerraMindVariant(
        name=f"terramind_v1_{size}", embed_dim=dim, depth=depth, num_heads=heads,
        gated=gated, weights=WeightsFile(f"{_ORG}/TerraMind-1.0-{size}",
                                         f"TerraMind_v1_{size}.pt"),
        parameters=parameters,
        description=(f"TerraMind-1.0-{size} encoder (embed {dim}, depth {depth}, {heads} "
                     f"heads, {mlp}, patch 16); modalities S2L1C, S2L2A, S1GRD, S1RTC, "
                     f"DEM, RGB (+ LULC, NDVI untrained); weights {_ORG}/TerraMind-1.0-{size}"),
    )


#: Every registered variant by registry name (``terramind:<name>``).
VARIANTS: dict[str, TerraMindVariant] = {v.name: v for v in (
    _variant("tiny", 192, 12, 3, False, 5_923_968),
    _variant("small", 384, 12, 6, False, 22_464_768),
    _variant("base", 768, 12, 12, True, 87_313_920),
    _variant("large", 1024, 24, 16, True, 305_137_664),
)}
