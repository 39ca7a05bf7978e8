"""Plugin module of the ``prithvi`` source: registers components by name, imports nothing heavy."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from geofm_core import RegisterCallback, hookimpl
from geofm_prithvi.constants import (
    PRETRAINED_BANDS,
    SWIN_VARIANTS,
    VARIANTS,
    PrithviVariant,
    SwinVariant,
)

if TYPE_CHECKING:
    from geofm_core.convert.rules import ConversionRules

#: (kind, name, target, description) of every component of this plugin.
COMPONENTS: tuple[tuple[str, str, str, str], ...] = tuple(
    ("backbone", name, f"geofm_prithvi.configs:{name}", spec.description)
    for name, spec in VARIANTS.items()
) + tuple(
    ("backbone", name, f"geofm_prithvi.swin_configs:{name}", spec.description)
    for name, spec in SWIN_VARIANTS.items()
) + (
    ("mae_decoder", "prithvi_vit_mae", "geofm_prithvi.mae:build_mae_decoder",
     "Prithvi's MAE decoder (official decoder.* layout) for continued pre-training"),
)


#: Prithvi's official weights are published under this licence on the Hugging Face Hub.
LICENSE = "Apache-2.0"


def variant_metadata(spec: PrithviVariant) -> dict[str, Any]:
    """Capability metadata of one variant, from the facts in :mod:`geofm_prithvi.constants`."""
    weights = spec.weights
    return {
        "modalities": ("multispectral",),
        "bands": PRETRAINED_BANDS,
        # new bands get the mean of the pre-trained patch-embedding channels
        "any_bands": True,
        "patch_size": spec.patch_size[-1],
        "image_size": 224,
        "multi_temporal": True,
        "parameters": spec.parameters,
        "family": "ViT (MAE)",
        "forward_metadata": ("temporal_coords", "location_coords")
        if spec.coords_encoding else (),
        "weights": ({
            "name": weights.repo_id,
            "bands": PRETRAINED_BANDS,
            "modalities": ("multispectral",),
            "url": f"https://huggingface.co/{weights.repo_id}/resolve/main/{weights.filename}",
            "license": LICENSE,
            "sha256": weights.sha256 or "",
            "mean": spec.mean,
            "std": spec.std,
            "image_size": 224,
            "multi_temporal": True,
            "dataset": "HLS (Harmonized Landsat Sentinel-2)",
            "method": "mae",
        },),
    }


def swin_metadata(spec: SwinVariant) -> dict[str, Any]:
    """Capability metadata of one Prithvi Swin variant (single images, four levels)."""
    weights = spec.weights
    return {
        "modalities": ("multispectral",),
        "bands": PRETRAINED_BANDS,
        "any_bands": True,
        "patch_size": spec.patch_size,
        "image_size": 224,
        "multi_temporal": False,
        "parameters": spec.parameters,
        "family": "Swin",
        "weights": () if weights is None else ({
            "name": weights.repo_id,
            "bands": PRETRAINED_BANDS,
            "modalities": ("multispectral",),
            "url": f"https://huggingface.co/{weights.repo_id}/resolve/main/{weights.filename}",
            "license": LICENSE,
            "sha256": weights.sha256 or "",
            "image_size": 224,
            "multi_temporal": False,
            "dataset": "HLS (Harmonized Landsat Sentinel-2), GEDI L4A biomass",
            "method": "supervised",
            "description": spec.weights_note,
        },),
    }


@hookimpl
def geofm_register_components(register: RegisterCallback) -> None:
    """Register this plugin's components under the ``prithvi`` source."""
    for kind, name, target, description in COMPONENTS:
        if kind != "backbone":
            register(kind, name, target, description=description)
            continue
        metadata = (variant_metadata(VARIANTS[name]) if name in VARIANTS
                    else swin_metadata(SWIN_VARIANTS[name]))
        register(kind, name, target, description=description, metadata=metadata)


@hookimpl
def geofm_conversion_rules(framework: str) -> ConversionRules | None:
    """TerraTorch names of this plugin's components, for ``geofm convert``.

    Prithvi variants, aliases, PrithviModelFactory: plain data, imported only when a
    conversion asks.
    """
    if framework != "terratorch":
        return None
    from geofm_prithvi._conversion import TERRATORCH

    return TERRATORCH
