"""How component names are spelt from model and weight-set names (plain text, no torch)."""

from __future__ import annotations

__all__ = ["WRAPPED_FAMILIES", "weighted_name", "wrapper_family"]

#: Model-name prefixes of the torchgeo models a geofm wrapper serves, and the wrapper.
#: Models of torchgeo's zoo without one would not be registered (see the plugin's README).
WRAPPED_FAMILIES: tuple[tuple[str, str], ...] = (
    ("resnet", "resnet"), ("vit_", "vit"), ("swin", "swin"), ("dofa", "dofa"),
    ("copernicusfm", "copernicusfm"), ("panopticon", "panopticon"),
    ("scalemae", "scalemae"), ("croma", "croma"), ("earthloc", "earthloc"),
)


def wrapper_family(model: str) -> str | None:
    """Which wrapper serves the torchgeo model ``model`` (``resnet``, ...), or None."""
    return next((family for prefix, family in WRAPPED_FAMILIES if model.startswith(prefix)),
                None)


def weighted_name(model: str, weights: str) -> str:
    """The component name of ``model`` with the weight set ``weights`` bound."""
    return f"{model}_{weights.lower()}"
