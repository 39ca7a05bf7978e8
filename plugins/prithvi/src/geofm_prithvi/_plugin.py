"""Plugin module of the ``prithvi`` source: registers components by name, imports nothing heavy."""

from __future__ import annotations

from geofm_core import RegisterCallback, hookimpl
from geofm_prithvi.constants import VARIANTS

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
