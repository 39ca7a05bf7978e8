"""Plugin module of the ``upernet`` source: registers components by name, imports nothing heavy."""

from __future__ import annotations

from geofm_core import RegisterCallback, hookimpl

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
