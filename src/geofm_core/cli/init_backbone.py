"""The backbone ``geofm init`` writes: one whose pretrained bands are the data's bands.

Chosen from the registry's capability metadata (:mod:`geofm_core.metadata`), so any
installed plugin's weights can be picked. Candidates are backbones bound to one weight
set, returning feature maps (no patch size: a decoder takes them without necks) and
taking ``pretrained``. A weight set whose bands are the data's bands in order wins; one
whose bands are all among the data's, and at least 60 % of them, comes next (its bands
are then selected with ``output_bands``); among equals, the smallest model. Without
band names or a match, the default stays a timm ResNet-50, whose first layer adapts to
any band count.
"""

from __future__ import annotations

import inspect
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from geofm_core.data.bands import canonical_band

__all__ = ["DEFAULT_BACKBONE", "BackboneChoice", "choose_backbone", "data_band_names"]

DEFAULT_BACKBONE = "timm:resnet50"


@dataclass
class BackboneChoice:
    """What the starter config gets: the backbone, its arguments and why."""

    backbone: str
    kwargs: dict[str, Any]
    note: str
    #: Bands to select from the files (names), when the weights take a subset.
    output_bands: list[str] | None = None
    alternatives: list[str] = field(default_factory=list)


def data_band_names(names: Sequence[str | None] | None) -> list[str] | None:
    """The files' band names in geofm's vocabulary, or ``None`` if any is unknown."""
    if not names:
        return None
    canonical = [canonical_band(n) if n else None for n in names]
    if any(c is None for c in canonical):
        return None
    return [c for c in canonical if c is not None]


def _takes_pretrained(spec: Any) -> bool:
    try:
        parameters = inspect.signature(spec.load()).parameters
    except Exception:  # a plugin that cannot be imported is no candidate
        return False
    return "pretrained" in parameters


def choose_backbone(names: list[str] | None, count: int) -> BackboneChoice:
    """The backbone for data with ``count`` bands named ``names`` (geofm names or None)."""
    fallback = BackboneChoice(
        DEFAULT_BACKBONE, {"in_chans": count, "pretrained": True},
        "backbone: timm:resnet50 with ImageNet weights, its first layer adapted to "
        f"{count} bands" + ("" if names else " (name the bands with --bands to let geofm "
                            "init pick a backbone pretrained on them)"))
    if not names:
        return fallback
    from geofm_core.registry import get_registry

    ranked: list[tuple[int, int, int, str, list[str]]] = []
    for spec in get_registry().list("backbone"):
        meta = spec.metadata
        if meta is None or len(meta.weights) != 1 or meta.patch_size is not None:
            continue
        bands = list(meta.weights[0].bands)
        # a subset must keep most of the data's bands: dropping half of them to fit a
        # weight set loses more than pretrained weights bring
        if not bands or not set(bands) <= set(names) or len(bands) < 0.6 * len(names):
            continue
        exact = 0 if bands == names else 1
        ranked.append((exact, -len(bands), meta.parameters or 10**12, spec.qualified_name,
                       bands))
    for exact, _, _, name, bands in sorted(ranked):
        spec = get_registry().get("backbone", name)
        if not _takes_pretrained(spec):
            continue
        weights = spec.metadata.weights[0] if spec.metadata else None
        what = f"{weights.name} ({weights.license or 'licence unknown'})" if weights else ""
        others = [r[3] for r in sorted(ranked) if r[3] != name][:3]
        if exact == 0:
            return BackboneChoice(name, {"pretrained": True},
                                  f"backbone: {name}, pretrained on exactly these bands: {what}",
                                  alternatives=others)
        return BackboneChoice(
            name, {"pretrained": True},
            f"backbone: {name}, pretrained on {len(bands)} of these bands ({what}); "
            "output_bands selects them", output_bands=bands, alternatives=others)
    return fallback
