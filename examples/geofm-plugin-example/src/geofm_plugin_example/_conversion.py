"""How a TerraTorch config would name the example backbone (plain data, no torch).

Read by ``geofm convert terratorch`` through the plugin's ``geofm_conversion_rules`` hook:
a TerraTorch config with ``backbone: example_tiny_cnn`` converts to ``example:tiny_cnn``.
"""

from __future__ import annotations

from geofm_core.convert.rules import BackboneFacts, ComponentRule, ConversionRules

__all__ = ["TERRATORCH"]

#: The example plugin's TerraTorch rules.
TERRATORCH = ConversionRules(components=(
    ComponentRule(
        "backbone", ("example_tiny_cnn", "tiny_cnn_v1"), "tiny_cnn",
        # TerraTorch spells the channel count in_channels, TinyCNN in_chans.
        args={"in_channels": "in_chans", "stage_widths": "widths"},
        # bands: [...] in the config become in_chans: len(bands).
        facts=BackboneFacts(channels_arg="in_chans"),
    ),
))
