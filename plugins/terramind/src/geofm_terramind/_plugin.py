"""Plugin module of the ``terramind`` source: registers the encoders by name, imports no torch."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from geofm_core import RegisterCallback, hookimpl
from geofm_terramind.constants import MODALITIES, VARIANTS, TerraMindVariant

if TYPE_CHECKING:
    from geofm_core.convert.rules import ConversionRules

#: TerraMind's official weights are published under this licence on the Hugging Face Hub.
LICENSE = "Apache-2.0"


def variant_metadata(spec: TerraMindVariant) -> dict[str, Any]:
    """Capability metadata of one variant: one weight set per pretrained modality.

    A weight set is named after its modality (what ``modalities`` selects) and holds
    that modality's bands and pre-training normalisation; all come from one file.
    """
    url = f"https://huggingface.co/{spec.weights.repo_id}/resolve/main/{spec.weights.filename}"
    pretrained = [m for m in MODALITIES.values() if m.pretrained]
    return {
        "modalities": tuple(dict.fromkeys(m.kind for m in MODALITIES.values())),
        # new modalities ({name: channels}) and new bands start from random weights
        "any_bands": True,
        "patch_size": 16,
        "image_size": 224,
        "multi_temporal": False,
        "parameters": spec.parameters,
        "family": "ViT (multimodal)",
        "weights": tuple({
            "name": m.name,
            "bands": m.bands,
            "modalities": (m.kind,),
            "url": url,
            "license": LICENSE,
            "mean": m.mean,
            "std": m.std,
            "image_size": 224,
            "dataset": "TerraMesh",
            "method": "multimodal masked modelling (TerraMind)",
            "description": f"{spec.weights.repo_id}: the {m.name} patch embedding",
        } for m in pretrained),
    }


@hookimpl
def geofm_register_components(register: RegisterCallback) -> None:
    """Register the four TerraMind v1 encoders under the ``terramind`` source."""
    for name, spec in VARIANTS.items():
        register("backbone", name, f"geofm_terramind.configs:{name}",
                 description=spec.description, metadata=variant_metadata(spec))


@hookimpl
def geofm_conversion_rules(framework: str) -> ConversionRules | None:
    """TerraTorch names of the TerraMind backbones, for ``geofm convert`` (plain data)."""
    if framework != "terratorch":
        return None
    from geofm_terramind._conversion import TERRATORCH

    return TERRATORCH
