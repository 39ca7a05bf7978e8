"""The ``geofm`` source: the core's own components, registered like any plugin's.

Each table lists ``(kind, name, "module:attr", description)``; nothing is imported
until a component is built.
"""

from __future__ import annotations

from geofm_core.hookspecs import RegisterCallback, hookimpl

ComponentTable = tuple[tuple[str, str, str, str], ...]

#: Necks, decoders, heads and model factories of ``geofm_core.models``.
MODEL_COMPONENTS: ComponentTable = ()

#: Losses of ``geofm_core.tasks.losses``.
LOSS_COMPONENTS: ComponentTable = ()


@hookimpl
def geofm_register_components(register: RegisterCallback) -> None:
    """Register the core's necks, decoders, heads, losses and model factories."""
    for kind, name, target, description in MODEL_COMPONENTS + LOSS_COMPONENTS:
        register(kind, name, target, description=description)
