"""Plugin module of the ``prithvi`` source: registers components by name, imports nothing heavy."""

from __future__ import annotations

from typing import TYPE_CHECKING

from geofm_core import RegisterCallback, hookimpl
from geofm_prithvi.constants import VARIANTS

if TYPE_CHECKING:
    from geofm_core.convert.rules import ConversionRules

#: (kind, name, target, description) of every component of this plugin.
COMPONENTS: tuple[tuple[str, str, str, str], ...] = tuple(
    ("backbone", name, f"geofm_prithvi.configs:{name}", spec.description)
    for name, spec in VARIANTS.items()
)


@hookimpl
def geofm_register_components(register: RegisterCallback) -> None:
    """Register this plugin's components under the ``prithvi`` source."""
    for kind, name, target, description in COMPONENTS:
        register(kind, name, target, description=description)


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
