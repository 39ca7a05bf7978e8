"""Published facts about the Prithvi EO models: bands, normalisation, official weight files.

A light module (no torch; the core's band names are torch-free too): configs and the
CLI may read it cheaply.
"""

from __future__ import annotations

from dataclasses import dataclass

from geofm_core.data.bands import HLSBands

__all__ = [
    "HLS_BANDS",
    "PRETRAINED_BANDS",
    "PRITHVI_V1_MEAN",
    "PRITHVI_V1_STD",
    "PRITHVI_V2_MEAN",
    "PRITHVI_V2_STD",
    "SWIN_VARIANTS",
    "VARIANTS",
    "PrithviVariant",
    "SwinVariant",
    "WeightsFile",
]

#: Every Harmonized Landsat Sentinel-2 band name a ``bands`` list may use: the core's
#: band names (:class:`geofm_core.data.bands.HLSBands`), so data and model agree.
HLS_BANDS: tuple[str, ...] = tuple(band.value for band in HLSBands)

#: The six HLS bands every Prithvi EO model was pre-trained on, in the checkpoints' order.
PRETRAINED_BANDS: tuple[str, ...] = ("BLUE", "GREEN", "RED", "NIR_NARROW", "SWIR_1", "SWIR_2")

#: Per-band means (reflectance x 10 000) of Prithvi-EO-1.0's pre-training data.
PRITHVI_V1_MEAN: tuple[float, ...] = (775.0, 1081.0, 1229.0, 2497.0, 2204.0, 1611.0)
#: Per-band standard deviations of Prithvi-EO-1.0's pre-training data.
PRITHVI_V1_STD: tuple[float, ...] = (1282.0, 1270.0, 1399.0, 1368.0, 1292.0, 1155.0)
#: Per-band means of Prithvi-EO-2.0's pre-training data.
PRITHVI_V2_MEAN: tuple[float, ...] = (1087.0, 1342.0, 1433.0, 2734.0, 1958.0, 1363.0)
#: Per-band standard deviations of Prithvi-EO-2.0's pre-training data.
PRITHVI_V2_STD: tuple[float, ...] = (2248.0, 2179.0, 2178.0, 1850.0, 1242.0, 1049.0)


@dataclass(frozen=True)
class WeightsFile:
    """An official checkpoint on the Hugging Face Hub.

    ``sha256`` and ``approx_bytes`` are the values the Hub publishes for the file, where
    known; ``None`` where they could not be looked up (the real-file test then prints
    what it finds instead of checking it).
    """

    repo_id: str
    filename: str
    sha256: str | None = None
    approx_bytes: int | None = None


@dataclass(frozen=True)
class PrithviVariant:
    """Architecture of one Prithvi EO encoder and where its official weights live."""

    name: str
    embed_dim: int
    depth: int
    num_heads: int
    patch_size: tuple[int, int, int]
    coords_encoding: bool
    weights: WeightsFile
    mean: tuple[float, ...]
    std: tuple[float, ...]
    description: str
    #: Parameters of the encoder (six bands, one frame; the weights' patch embedding).
    parameters: int | None = None


def _variant(
    name: str, embed_dim: int, depth: int, num_heads: int, patch: int, tl: bool,
    repo: str, filename: str, v1: bool = False, sha256: str | None = None,
    approx_mb: int | None = None, params: str = "", parameters: int | None = None,
) -> PrithviVariant:
    what = "time + location encoding" if tl else "no time/location encoding"
    gen = "Prithvi-EO-1.0" if v1 else "Prithvi-EO-2.0"
    return PrithviVariant(
        name=name, embed_dim=embed_dim, depth=depth, num_heads=num_heads,
        patch_size=(1, patch, patch), coords_encoding=tl,
        weights=WeightsFile(repo, filename, sha256,
                            approx_mb * 1_000_000 if approx_mb else None),
        mean=PRITHVI_V1_MEAN if v1 else PRITHVI_V2_MEAN,
        std=PRITHVI_V1_STD if v1 else PRITHVI_V2_STD,
        description=(f"{gen} {params} ViT encoder (embed {embed_dim}, depth {depth}, "
                     f"patch {patch}, {what}); weights {repo}"),
        parameters=parameters,
    )


_ORG = "ibm-nasa-geospatial"

#: Every registered variant, by its registry name (``prithvi:<name>``).
VARIANTS: dict[str, PrithviVariant] = {
    v.name: v
    for v in (
        _variant("prithvi_eo_v1_100", 768, 12, 12, 16, False,
                 f"{_ORG}/Prithvi-EO-1.0-100M", "Prithvi_EO_V1_100M.pt", v1=True,
                 approx_mb=454, params="100M",
                 parameters=86_237_184),
        _variant("prithvi_eo_v2_tiny_tl", 192, 12, 3, 16, True,
                 f"{_ORG}/Prithvi-EO-2.0-tiny-TL", "Prithvi_EO_V2_tiny_TL.pt",
                 sha256="d47326db9bad502b611f73e3e3f3a0e68b7b82640d67c22c795417f7209f8d70",
                 approx_mb=129, params="tiny",
                 parameters=5_634_050),
        _variant("prithvi_eo_v2_100_tl", 768, 12, 12, 16, True,
                 f"{_ORG}/Prithvi-EO-2.0-100M-TL", "Prithvi_EO_V2_100M_TL.pt", params="100M",
                 parameters=86_237_186),
        _variant("prithvi_eo_v2_300", 1024, 24, 16, 16, False,
                 f"{_ORG}/Prithvi-EO-2.0-300M", "Prithvi_EO_V2_300M.pt", params="300M",
                 parameters=303_886_336),
        _variant("prithvi_eo_v2_300_tl", 1024, 24, 16, 16, True,
                 f"{_ORG}/Prithvi-EO-2.0-300M-TL", "Prithvi_EO_V2_300M_TL.pt",
                 approx_mb=1330, params="300M",
                 parameters=303_886_338),
        _variant("prithvi_eo_v2_600", 1280, 32, 16, 14, False,
                 f"{_ORG}/Prithvi-EO-2.0-600M", "Prithvi_EO_V2_600M.pt", params="600M",
                 parameters=631_188_480),
        _variant("prithvi_eo_v2_600_tl", 1280, 32, 16, 14, True,
                 f"{_ORG}/Prithvi-EO-2.0-600M-TL", "Prithvi_EO_V2_600M_TL.pt",
                 approx_mb=2640, params="600M",
                 parameters=631_188_482),
    )
}


@dataclass(frozen=True)
class SwinVariant:
    """Architecture of one Prithvi Swin encoder (TerraTorch's ``prithvi_swin_*``), its weights."""

    name: str
    embed_dim: int
    depths: tuple[int, ...]
    num_heads: tuple[int, ...]
    window_size: int
    patch_size: int
    description: str
    #: Parameters of the encoder (six bands; TerraTorch's feature model, no classifier).
    parameters: int
    #: Published weights holding this encoder, if any.
    weights: WeightsFile | None = None
    #: What the published weights are (for the metadata).
    weights_note: str = ""


#: Every registered Prithvi Swin variant, by its registry name (``prithvi:<name>``).
#: Parameter counts are TerraTorch 1.2.11's ``BACKBONE_REGISTRY.build("prithvi_swin_B")``
#: and ``("prithvi_swin_L")`` (features only, six bands), counted in the peer environment.
SWIN_VARIANTS: dict[str, SwinVariant] = {
    "prithvi_swin_b": SwinVariant(
        "prithvi_swin_b", 128, (2, 2, 18, 2), (4, 8, 16, 32), 7, 4,
        "Prithvi Swin-B encoder (TerraTorch's prithvi_swin_B: embed 128, depths 2-2-18-2, "
        "window 7, patch 4), four levels at strides 4-32",
        parameters=86_751_160,
        weights=WeightsFile("ibm-granite/granite-geospatial-biomass", "biomass_model.ckpt"),
        weights_note="the encoder of granite-geospatial-biomass, a TerraTorch task fine-tuned "
                     "from Prithvi Swin-B on HLS and GEDI above-ground biomass",
    ),
    "prithvi_swin_l": SwinVariant(
        "prithvi_swin_l", 192, (2, 2, 18, 2), (6, 12, 24, 48), 7, 4,
        "Prithvi Swin-L encoder (TerraTorch's prithvi_swin_L: embed 192, depths 2-2-18-2, "
        "window 7, patch 4), four levels at strides 4-32; no published weights",
        parameters=195_007_380,
    ),
}
