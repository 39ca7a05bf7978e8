"""Published facts about Galileo (Tseng et al. 2025): channel groups, variants, weights.

A light module (no torch): ``_plugin.py``, configs and the CLI read it cheaply. The
facts come from the official repository (``nasaharvest/galileo``: the band lists and
groups of its encoder, ``config/models/{nano,tiny,base}.json``, the normalisation
statistics of its pre-training data) and its Hugging Face repository.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = [
    "BAND_TO_GALILEO",
    "BASE_GSD",
    "DEFAULT_MONTH",
    "DEFAULT_PATCH_SIZE",
    "HF_REPO_ID",
    "LICENSE",
    "PRETRAINED_BANDS",
    "PRETRAINED_MEAN",
    "PRETRAINED_STD",
    "SPACE_BANDS",
    "SPACE_GROUPS",
    "SPACE_TIME_BANDS",
    "SPACE_TIME_GROUPS",
    "STATIC_BANDS",
    "STATIC_GROUPS",
    "TIME_BANDS",
    "TIME_GROUPS",
    "VARIANTS",
    "GalileoVariant",
]

#: Channel groups of the space-time inputs (one token per group, patch and time step),
#: in the encoder's order, each with its Galileo band names.
SPACE_TIME_GROUPS: dict[str, tuple[str, ...]] = {
    "S1": ("VV", "VH"),
    "S2_RGB": ("B2", "B3", "B4"),
    "S2_Red_Edge": ("B5", "B6", "B7"),
    "S2_NIR_10m": ("B8",),
    "S2_NIR_20m": ("B8A",),
    "S2_SWIR": ("B11", "B12"),
    "NDVI": ("NDVI",),
}
#: Channel groups of the space inputs (one token per group and patch): SRTM, Dynamic
#: World and WorldCereal.
SPACE_GROUPS: dict[str, tuple[str, ...]] = {
    "SRTM": ("elevation", "slope"),
    "DW": ("DW_water", "DW_trees", "DW_grass", "DW_flooded_vegetation", "DW_crops",
           "DW_shrub_and_scrub", "DW_built", "DW_bare", "DW_snow_and_ice"),
    "WC": ("WC_temporarycrops", "WC_maize", "WC_wintercereals", "WC_springcereals",
           "WC_irrigation"),
}
#: Channel groups of the time inputs (one token per group and time step): ERA5,
#: TerraClimate and VIIRS night lights.
TIME_GROUPS: dict[str, tuple[str, ...]] = {
    "ERA5": ("temperature_2m", "total_precipitation_sum"),
    "TC": ("def", "soil", "aet"),
    "VIIRS": ("avg_rad",),
}
#: Channel groups of the static inputs (one token per group): LandScan, location
#: (cartesian x, y, z of latitude and longitude) and static Dynamic World / WorldCereal.
STATIC_GROUPS: dict[str, tuple[str, ...]] = {
    "LS": ("b1",),
    "location": ("x", "y", "z"),
    "DW_static": tuple(f"{b}_static" for b in SPACE_GROUPS["DW"]),
    "WC_static": tuple(f"{b}_static" for b in SPACE_GROUPS["WC"]),
}


def _flat(groups: dict[str, tuple[str, ...]]) -> tuple[str, ...]:
    return tuple(b for members in groups.values() for b in members)


#: The space-time channels in the order of the encoder's input tensor (S1, S2, NDVI).
SPACE_TIME_BANDS: tuple[str, ...] = _flat(SPACE_TIME_GROUPS)
#: The space channels in input order.
SPACE_BANDS: tuple[str, ...] = _flat(SPACE_GROUPS)
#: The time channels in input order.
TIME_BANDS: tuple[str, ...] = _flat(TIME_GROUPS)
#: The static channels in input order.
STATIC_BANDS: tuple[str, ...] = _flat(STATIC_GROUPS)

#: geofm band names (:mod:`geofm_core.data.bands`, after :func:`canonical_band`) and the
#: plugin's extra names -> Galileo's channel. ``NDVI`` must be given precomputed and in
#: Galileo's scale (raw NDVI); ``DEM`` and ``SLOPE`` feed the SRTM space group.
BAND_TO_GALILEO: dict[str, str] = {
    "VV": "VV", "VH": "VH",
    "BLUE": "B2", "GREEN": "B3", "RED": "B4",
    "RED_EDGE_1": "B5", "RED_EDGE_2": "B6", "RED_EDGE_3": "B7",
    "NIR_BROAD": "B8", "NIR_NARROW": "B8A", "SWIR_1": "B11", "SWIR_2": "B12",
    "NDVI": "NDVI", "DEM": "elevation", "SLOPE": "slope",
}

#: The S1 and S2 bands Galileo was pre-trained on, geofm names, in input order.
PRETRAINED_BANDS: tuple[str, ...] = ("VV", "VH", "BLUE", "GREEN", "RED", "RED_EDGE_1",
                                     "RED_EDGE_2", "RED_EDGE_3", "NIR_BROAD", "NIR_NARROW",
                                     "SWIR_1", "SWIR_2")

# Per-band mean and standard deviation of the pre-training data (S1 in dB, S2 in
# reflectance x 10 000), from the official PRETRAINING_NORMALIZING_DICT. Galileo
# normalises as (x - (mean - 2 std)) / (4 std); PRETRAINED_MEAN / PRETRAINED_STD are that
# affine map written as geofm's (x - mean') / std'.
_STATS_MEAN = (-11.728724389184965, -18.85558188024017, 1395.3408730676722,
               1338.4026921784578, 1343.09883810357, 1543.8607982512297, 2186.2022069512263,
               2525.0932853316694, 2410.3377187373408, 2750.2854646886753, 2234.911100061487,
               1474.5311266077113)
_STATS_STD = (4.887145774840316, 5.730270320384293, 917.7041440370853, 913.2988423581528,
              1092.678723527555, 1047.2206083460424, 1048.0101611156767, 1143.6903026819996,
              1098.979177731649, 1204.472755085893, 1145.9774063078878, 980.2429840007796)
#: geofm means that reproduce Galileo's normalisation of :data:`PRETRAINED_BANDS`.
PRETRAINED_MEAN: tuple[float, ...] = tuple(
    m - 2 * s for m, s in zip(_STATS_MEAN, _STATS_STD, strict=True))
#: geofm standard deviations that reproduce Galileo's normalisation.
PRETRAINED_STD: tuple[float, ...] = tuple(4 * s for s in _STATS_STD)

#: Ground sample distance (m) a pixel is assumed to have; the spatial encoding scales
#: with ``input_resolution_m * patch_size / BASE_GSD``.
BASE_GSD = 10
#: The patch size Galileo's own fine-tuning uses (``eval.py --patch_size``, default 4).
DEFAULT_PATCH_SIZE = 4
#: Calendar month (1-12) of every time step when neither ``months`` nor the batch says:
#: July, Galileo's fine-tuning wrapper's default (its 0-based month index 6).
DEFAULT_MONTH = 7

#: The Hugging Face repository of the official weights (``models/<variant>/``).
HF_REPO_ID = "nasaharvest/galileo"
#: The licence of the code and weights.
LICENSE = "MIT"


@dataclass(frozen=True)
class GalileoVariant:
    """Architecture of one official Galileo encoder (``config.json`` ``model.encoder``).

    Attributes:
        name: ``nano``, ``tiny`` or ``base`` (the folder ``models/<name>`` on the Hub).
        embedding_size: Token width.
        depth: Number of transformer blocks.
        num_heads: Attention heads.
        mlp_ratio: MLP hidden width over the token width.
        max_sequence_length: Time steps the position encoding covers.
        max_patch_size: Patch size of the stored patch-embedding kernels.
        parameters: Parameter count of the encoder (all of ``parameters()``, the
            frozen position and month tables included).
    """

    name: str
    embedding_size: int
    depth: int
    num_heads: int
    mlp_ratio: float
    max_sequence_length: int
    max_patch_size: int
    parameters: int

    @property
    def folder(self) -> str:
        """The variant's folder in the Hugging Face repository."""
        return f"models/{self.name}"

    @property
    def description(self) -> str:
        """One line for listings."""
        return (f"Galileo-{self.name} encoder (ViT, {self.embedding_size} wide, {self.depth} "
                f"blocks; S1/S2 space-time groups; Tseng et al. 2025)")


#: The official encoders; parameter counts are those of the reference ``Encoder``
#: (``single_file_galileo.py``) built from ``config/models/<name>.json``.
VARIANTS: dict[str, GalileoVariant] = {
    "galileo_nano": GalileoVariant("nano", 128, 4, 8, 4.0, 24, 8, 1_037_856),
    "galileo_tiny": GalileoVariant("tiny", 192, 12, 3, 4.0, 24, 8, 5_705_520),
    "galileo_base": GalileoVariant("base", 768, 12, 12, 4.0, 24, 8, 86_523_072),
}
