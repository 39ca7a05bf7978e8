"""The plugin module named by the ``geofm.plugins`` entry point; kept free of torch."""

from __future__ import annotations

from typing import TYPE_CHECKING

from geofm_core import RegisterCallback, hookimpl

if TYPE_CHECKING:
    from geofm_core.convert.rules import ConversionRules


@hookimpl
def geofm_register_components(register: RegisterCallback) -> None:
    """Register the example backbone and model factory under the ``example`` source."""
    register(
        "backbone", "tiny_cnn", "geofm_plugin_example.backbone:TinyCNN",
        description="Small 4-stage CNN (strides 4-32) for any number of bands",
        # what `geofm list --band/--modality` and `geofm describe` show; no weights
        metadata={"any_bands": True, "modalities": ("any",), "family": "CNN"},
    )
    register(
        "model_factory", "tiny_segmenter", "geofm_plugin_example.factory:TinySegmenterFactory",
        description="TinyCNN + a light FPN-style decoder for segmentation and regression",
    )


@hookimpl
def geofm_conversion_rules(framework: str) -> ConversionRules | None:
    """TerraTorch names of this plugin's components, for ``geofm convert``.

    The rules are plain data, imported only when a conversion asks.
    """
    if framework != "terratorch":
        return None
    from geofm_plugin_example._conversion import TERRATORCH

    return TERRATORCH
