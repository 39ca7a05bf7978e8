"""How TerraTorch names the Galileo encoders and their arguments (plain data, no torch).

Read by ``geofm convert terratorch`` through the plugin's ``geofm_conversion_rules`` hook.
TerraTorch's example configs name ``galileo_nano_encoder``, ``galileo_tiny_encoder`` and
``galileo_base_encoder``; each converts to ``galileo:galileo_<variant>``.
"""

from __future__ import annotations

from geofm_core.convert.rules import BackboneFacts, ComponentRule, ConversionRules
from geofm_galileo.constants import VARIANTS

__all__ = ["TERRATORCH", "TERRATORCH_NAMES"]

#: TerraTorch's backbone names -> the registered geofm names (without source).
TERRATORCH_NAMES: dict[str, str] = {f"{name}_encoder": name for name in VARIANTS}

#: TerraTorch's keywords of these backbones -> geofm's.
_ARGS = {"model_bands": "bands"}

_NOTE = ("geofm's Galileo returns one image-like feature map per block (tokens of the S1/S2 "
         "groups averaged per patch over time and groups); select levels with out_indices "
         "or geofm:select_indices")


def _rule(foreign: str, target: str) -> ComponentRule:
    return ComponentRule(
        "backbone", (foreign,), target, args=_ARGS, note=_NOTE,
        facts=BackboneFacts(depth=VARIANTS[target].depth, takes_bands=True,
                            label="Galileo backbone", bands_from_data=True))


#: The Galileo plugin's TerraTorch rules.
TERRATORCH = ConversionRules(
    components=tuple(_rule(f, t) for f, t in sorted(TERRATORCH_NAMES.items())),
)
