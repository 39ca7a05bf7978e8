"""Plugin module of the ``clay`` source: registers components by name, imports nothing heavy."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from geofm_clay.constants import IMAGE_SIZE, LICENSE, PATCH_SIZE, VARIANTS, ClayVariant
from geofm_core import RegisterCallback, hookimpl

if TYPE_CHECKING:
    from geofm_core.convert.rules import ConversionRules

#: (kind, name, target, description) of every component of this plugin.
COMPONENTS: tuple[tuple[str, str, str, str], ...] = tuple(
    ("backbone", name, f"geofm_clay.backbones:{name}", spec.description)
    for name, spec in VARIANTS.items()
)

#: What Clay v1 and v1.5 were pre-trained on (Clay's model cards).
_DATASETS = {
    "v1": "Sentinel-2, Landsat 8/9, NAIP, LINZ, Sentinel-1 RTC, DEM (Clay v1 data)",
    "v1.5": "Sentinel-2, Landsat 8/9, NAIP, LINZ, Sentinel-1 RTC, MODIS (Clay v1.5 data)",
}


def variant_metadata(name: str, spec: ClayVariant) -> dict[str, Any]:
    """Capability metadata of one variant, from the facts in :mod:`geofm_clay.constants`."""
    weights = () if spec.weights is None else ({
        "name": name,
        "modalities": ("multispectral", "sar"),
        "url": spec.weights.url,
        "license": LICENSE,
        "image_size": IMAGE_SIZE,
        "dataset": _DATASETS[spec.version],
        "method": "mae",
        "description": f"Clay {spec.version} official encoder weights",
    },)
    return {
        "modalities": ("multispectral", "sar"),
        "any_bands": True,
        "wavelength_conditioned": True,
        "patch_size": PATCH_SIZE,
        "image_size": IMAGE_SIZE,
        "parameters": spec.parameters,
        "family": "ViT (Clay MAE)",
        "forward_metadata": ("temporal_coords", "location_coords"),
        "weights": weights,
    }


@hookimpl
def geofm_register_components(register: RegisterCallback) -> None:
    """Register this plugin's components under the ``clay`` source."""
    for kind, name, target, description in COMPONENTS:
        register(kind, name, target, description=description,
                 metadata=variant_metadata(name, VARIANTS[name]))


@hookimpl
def geofm_conversion_rules(framework: str) -> ConversionRules | None:
    """TerraTorch names of this plugin's components, for ``geofm convert``."""
    if framework != "terratorch":
        return None
    from geofm_clay._conversion import TERRATORCH

    return TERRATORCH
