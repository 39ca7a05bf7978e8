"""Plugin module of the ``smp`` source: registers components by name, imports nothing heavy."""

from __future__ import annotations

from geofm_core import RegisterCallback, hookimpl

#: (kind, name, target, description) of every component of this plugin.
COMPONENTS: tuple[tuple[str, str, str, str], ...] = ()


@hookimpl
def geofm_register_components(register: RegisterCallback) -> None:
    """Register this plugin's components under the ``smp`` source."""
    for kind, name, target, description in COMPONENTS:
        register(kind, name, target, description=description)
