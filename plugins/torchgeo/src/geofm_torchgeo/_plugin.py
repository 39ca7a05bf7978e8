"""Plugin module of the ``torchgeo`` source: registers backbones by name, imports nothing heavy.

One backbone per model of :data:`geofm_torchgeo._zoo.MODELS` (``torchgeo:resnet50``,
the weight set chosen with ``weights=``) and one per weight set with it bound
(``torchgeo:resnet50_sentinel2_all_moco``). TerraTorch's backbone names
(``torchgeo:satlas_swin_b_sentinel2_mi_ms``) resolve on demand through the dynamic hooks.
"""

from __future__ import annotations

import fnmatch
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from geofm_core import RegisterCallback, hookimpl
from geofm_torchgeo._names import weighted_name, wrapper_family
from geofm_torchgeo._zoo import DESCRIPTIONS, MODELS, TERRATORCH_NAMES

if TYPE_CHECKING:
    from geofm_core.convert.rules import ConversionRules

_TARGET = "geofm_torchgeo.backbones:"


def _restricted(meta: dict[str, Any], weights: str) -> dict[str, Any]:
    kept = [w for w in meta.get("weights") or () if w["name"] == weights]
    return {**meta, "weights": kept}


def components() -> list[tuple[str, str, str, dict[str, Any]]]:
    """(name, target, description, metadata) of every backbone registered up front."""
    out = []
    for model, meta in MODELS.items():
        if wrapper_family(model) is None:  # in torchgeo's zoo, not wrapped yet
            continue
        description = DESCRIPTIONS.get(model, f"TorchGeo {model}")
        out.append((model, f"{_TARGET}{model}", description, meta))
        for entry in meta.get("weights") or ():
            name = entry["name"]
            out.append((weighted_name(model, name), f"{_TARGET}{weighted_name(model, name)}",
                        f"{description}; weights {name}", _restricted(meta, name)))
    return out


@hookimpl
def geofm_register_components(register: RegisterCallback) -> None:
    """Register one backbone per TorchGeo model and per weight set."""
    for name, target, description, metadata in components():
        register("backbone", name, target, description=description, metadata=metadata)


def _aliases() -> dict[str, tuple[str, str | None]]:
    """TerraTorch names not already registered under the same spelling."""
    taken = {name for name, *_ in components()}
    return {k: v for k, v in TERRATORCH_NAMES.items() if k not in taken and v[0] in MODELS
            and wrapper_family(v[0]) is not None}


@hookimpl
def geofm_resolve_component(kind: str, source: str, name: str) -> Callable[..., Any] | None:
    """Resolve a TerraTorch backbone name (``ssl4eol_resnet50_landsat_etm_sr_moco``)."""
    if kind != "backbone" or name not in _aliases():
        return None
    from geofm_torchgeo.backbones import factory

    model, weights = _aliases()[name]
    return factory(model, weights)


@hookimpl
def geofm_component_metadata(kind: str, source: str, name: str) -> dict[str, Any] | None:
    """The metadata of a TerraTorch name: its model's, restricted to its weight set."""
    if kind != "backbone" or name not in _aliases():
        return None
    model, weights = _aliases()[name]
    meta = MODELS[model]
    return _restricted(meta, weights) if weights else meta


@hookimpl
def geofm_list_components(kind: str, source: str, pattern: str) -> list[str] | None:
    """TerraTorch names of TorchGeo backbones matching ``pattern``."""
    if kind != "backbone":
        return None
    return sorted(n for n in _aliases() if fnmatch.fnmatchcase(n, pattern))


@hookimpl
def geofm_conversion_rules(framework: str) -> ConversionRules | None:
    """TerraTorch names of this plugin's backbones, for ``geofm convert`` (plain data)."""
    if framework != "terratorch":
        return None
    from geofm_torchgeo._conversion import TERRATORCH

    return TERRATORCH
