"""Plugin module of the ``upernet`` source: registers components by name, imports nothing heavy."""

from __future__ import annotations

from typing import TYPE_CHECKING

from geofm_core import RegisterCallback, hookimpl

if TYPE_CHECKING:
    from geofm_core.convert.rules import ConversionRules

#: (kind, name, target, description) of every component of this plugin.
COMPONENTS: tuple[tuple[str, str, str, str], ...] = (
    ("decoder", "upernet", "geofm_upernet.upernet:UperNetDecoder",
     "UperNet (MMSeg UPerHead): pyramid pooling on the last level, FPN, fused 3x3 conv; "
     "4 levels"),
)


@hookimpl
def geofm_register_components(register: RegisterCallback) -> None:
    """Register this plugin's components under the ``upernet`` source."""
    for kind, name, target, description in COMPONENTS:
        register(kind, name, target, description=description)


@hookimpl
def geofm_conversion_rules(framework: str) -> ConversionRules | None:
    """TerraTorch names of this plugin's components, for ``geofm convert``.

    UperNetDecoder: plain data, imported only when a conversion asks.
    """
    if framework != "terratorch":
        return None
    from geofm_upernet._conversion import TERRATORCH

    return TERRATORCH
