"""The data's band names against the bands of the backbone's pretrained weights.

Counting bands (:func:`geofm_core.tasks.guards.check_input_bands`) misses six bands in
another order than the weights': training then runs, and learns the weights' RED from
the data's NIR. Names catch it before any batch, where both sides say them:

* the data module: ``input_band_names()`` returns the geofm names of the bands per
  frame the model gets, in order, and the field they come from (``None``: unknown);
* the backbone (``model.backbone`` / ``model.encoder``, else the model):
  ``pretrained_bands``, the geofm names of the bands its loaded weights were trained
  on, in the weights' order (``None``: no weights, nothing to check); and, for a
  backbone that maps its input onto the pretrained channels itself (a first layer
  built from a ``bands`` argument), ``bands``: the input bands it was built for.

The rules, with D the data's bands, P the weights' and B the backbone's input bands
(P when it has no ``bands``):

* a name on either side that is not a geofm band name: no check;
* D equal to B: fine. A band of B missing from P starts untrained; a backbone that
  builds from ``bands`` says so itself when it loads its weights, so no warning here;
* D the same bands as B in another order: :class:`ConfigurationError`, reorder
  ``output_bands``;
* a backbone that maps bands itself, built for other bands than D: error, set its
  ``bands`` to D (or select B with ``output_bands``);
* a backbone with fixed channels (no ``bands``): a band of D that is also in P but sits
  at another position is an error (reorder); bands of D missing from P take over the
  channels of P's bands at their positions and start, in effect, untrained:
  :class:`ConfigurationWarning` naming both lists and those bands (fine-tuning learns
  them; it is a choice, not a mistake).
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from typing import Any

from geofm_core.data.bands import canonical_band
from geofm_core.errors import ConfigurationError, ConfigurationWarning

__all__ = ["check_band_names"]


def _canonical(names: Any) -> list[str] | None:
    """The geofm names of ``names``, or ``None`` when any is unknown (or it is no list)."""
    if names is None or isinstance(names, str) or not isinstance(names, Sequence):
        return None
    out = [canonical_band(n) if isinstance(n, str) else None for n in names]
    return None if not out or None in out else [n for n in out if n is not None]


def _backbone(model: Any) -> Any:
    for attr in ("backbone", "encoder"):
        part = getattr(model, attr, None)
        if part is not None and hasattr(part, "pretrained_bands"):
            return part
    return model


def _listed(names: Sequence[str]) -> str:
    return f"[{', '.join(names)}]"


def check_band_names(model: Any, datamodule: Any) -> None:
    """Compare the data's band names with the backbone's pretrained bands (see the module).

    Raises:
        ConfigurationError: the same bands in another order, or a backbone built for
            other bands than the data give; the message names both lists and the fix.
    """
    getter = getattr(datamodule, "input_band_names", None)
    given = getter() if callable(getter) else None
    if not given:
        return
    data, field = _canonical(given[0]), given[1]
    part = _backbone(model)
    weights = _canonical(getattr(part, "pretrained_bands", None))
    if data is None or weights is None:
        return
    raw_built = getattr(part, "bands", None)
    adapts = raw_built is not None
    built = _canonical(raw_built) if adapts else weights
    if built is None or len(built) != len(data) or built == data:
        return  # unknown names; a count mismatch is check_input_bands' message
    who = f"the backbone ({type(part).__name__})"
    sides = (f"the data give {_listed(data)} ({field}); {who} takes {_listed(built)}"
             + (f", mapped onto its weights' bands {_listed(weights)}" if adapts else
                " (its pretrained weights' bands, in their order)"))
    if sorted(built) == sorted(data):
        raise ConfigurationError(
            f"band order differs: {sides}. Reorder output_bands to {_listed(built)} "
            "(with dataset_bands naming the file's bands)"
            + (f", or build the backbone with bands: {_listed(data)}" if adapts else "")
        )
    if adapts:
        raise ConfigurationError(
            f"bands differ: {sides}. Build the backbone for the data's bands (its bands "
            f"argument: {_listed(data)}; bands its weights lack start untrained) or select "
            f"{_listed(built)} with output_bands"
        )
    misplaced = [b for i, b in enumerate(data) if b in weights and weights[i] != b]
    if misplaced:
        raise ConfigurationError(
            f"band order differs: {sides}; {', '.join(misplaced)} sit at other positions "
            f"than in the weights. Reorder output_bands so that each band of "
            f"{_listed(weights)} the data have is at its position"
        )
    new = [f"{b} (in the channel of {weights[i]})"
           for i, b in enumerate(data) if b not in weights]
    warnings.warn(
        f"bands missing from the pretrained weights: {sides}. {', '.join(new)} start "
        "untrained and are learned in fine-tuning; choose weights trained on them if "
        "there are some (`geofm list backbone --band NAME`)",
        ConfigurationWarning, stacklevel=2,
    )
