"""How TerraTorch names the UperNet decoder and where its defaults differ (no torch).

Read by ``geofm convert terratorch`` through the plugin's ``geofm_conversion_rules`` hook.
"""

from __future__ import annotations

from geofm_core.convert.rules import ComponentRule, ConversionRules, DecoderFacts, KeyRule

__all__ = ["TERRATORCH"]

#: The UperNet plugin's TerraTorch rules.
TERRATORCH = ConversionRules(components=(
    ComponentRule(
        "decoder", ("UperNetDecoder",), "upernet",
        # TerraTorch's UperNetDecoder defaults to align_corners=True, upernet:upernet to False.
        defaults={"align_corners": True},
        # TerraTorch's scale_modules are the layers of this neck, applied before UperNet.
        neck_flags={"scale_modules": "geofm:learned_interpolate_to_pyramidal"},
        facts=DecoderFacts(levels=4),
        # TerraTorch's ConvModule names its layers; geofm's ConvBNReLU is a Sequential.
        keys=(KeyRule(r"(.+)\.conv\.(\w+)", r"\1.0.\2"),
              KeyRule(r"(.+)\.norm\.(\w+)", r"\1.1.\2")),
    ),
))
