"""Plugin module of the ``galileo`` source: registers the encoders, imports nothing heavy."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from geofm_core import RegisterCallback, hookimpl
from geofm_galileo.constants import (
    DEFAULT_PATCH_SIZE,
    HF_REPO_ID,
    LICENSE,
    PRETRAINED_BANDS,
    PRETRAINED_MEAN,
    PRETRAINED_STD,
    VARIANTS,
    GalileoVariant,
)

if TYPE_CHECKING:
    from geofm_core.convert.rules import ConversionRules

_TARGET = "geofm_galileo.configs:"


def variant_metadata(spec: GalileoVariant) -> dict[str, Any]:
    """Capability metadata of one variant, from the facts in :mod:`geofm_galileo.constants`."""
    return {
        "modalities": ("optical", "multispectral", "sar", "dem"),
        "bands": (*PRETRAINED_BANDS, "NDVI", "DEM", "SLOPE"),
        "patch_size": DEFAULT_PATCH_SIZE,
        "multi_temporal": True,
        "parameters": spec.parameters,
        "family": "ViT (Galileo)",
        "forward_metadata": ("temporal_coords", "location_coords"),
        "weights": ({
            "name": f"galileo_{spec.name}",
            "bands": PRETRAINED_BANDS,
            "modalities": ("multispectral", "sar"),
            "url": f"https://huggingface.co/{HF_REPO_ID}/tree/main/{spec.folder}",
            "license": LICENSE,
            "mean": PRETRAINED_MEAN,
            "std": PRETRAINED_STD,
            "multi_temporal": True,
            "dataset": "Galileo pre-training set (S1, S2, ERA5, TerraClimate, VIIRS, SRTM, "
                       "Dynamic World, WorldCereal, LandScan; 127k global samples)",
            "method": "galileo (latent and pixel masked modelling)",
            "description": "S1 in dB, S2 in reflectance x 10 000; mean/std reproduce "
                           "Galileo's (x - (m - 2s)) / 4s",
        },),
    }


@hookimpl
def geofm_register_components(register: RegisterCallback) -> None:
    """Register one backbone per official Galileo encoder."""
    for name, spec in VARIANTS.items():
        register("backbone", name, f"{_TARGET}{name}", description=spec.description,
                 metadata=variant_metadata(spec))


@hookimpl
def geofm_conversion_rules(framework: str) -> ConversionRules | None:
    """TerraTorch's names of the Galileo encoders, for ``geofm convert terratorch``."""
    if framework != "terratorch":
        return None
    from geofm_galileo._conversion import TERRATORCH

    return TERRATORCH
