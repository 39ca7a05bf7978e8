"""Plugin module of the ``torchgeo`` source (a stand-in, replaced on merge; imports no torch).

Registers each torchgeo model and weight set from :mod:`geofm_torchgeo._zoo` with its
metadata, pointing at a placeholder factory, so that the conversion rules can be tested
in this branch; the real module registers the real wrappers. What it must keep from here
is :func:`geofm_conversion_rules`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from geofm_core import RegisterCallback, hookimpl
from geofm_torchgeo._zoo import DESCRIPTIONS, MODELS

if TYPE_CHECKING:
    from geofm_core.convert.rules import ConversionRules


def placeholder(bands: list[str] | None = None, pretrained: bool = True,
                weights: str | None = None, out_indices: list[int] | None = None) -> Any:
    """Stand-in for the real wrappers (the arguments they take); builds nothing.

    Raises:
        NotImplementedError: always.
    """
    raise NotImplementedError("the torchgeo wrappers are not in this branch")


@hookimpl
def geofm_register_components(register: RegisterCallback) -> None:
    """Register every model and every ``<model>_<weights>`` under the ``torchgeo`` source."""
    target = "geofm_torchgeo._plugin:placeholder"
    for name, meta in MODELS.items():
        register("backbone", name, target, description=DESCRIPTIONS[name], metadata=meta)
        for weights in meta["weights"]:
            register("backbone", f"{name}_{weights['name'].lower()}", target,
                     description=weights["description"],
                     metadata={**meta, "weights": [weights]})


@hookimpl
def geofm_conversion_rules(framework: str) -> ConversionRules | None:
    """TerraTorch names of this plugin's backbones, for ``geofm convert``."""
    if framework != "terratorch":
        return None
    from geofm_torchgeo._conversion import TERRATORCH

    return TERRATORCH
