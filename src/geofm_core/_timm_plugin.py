"""The dynamic ``timm`` source: ``timm:<any timm model>`` as a feature-extracting backbone.

timm has well over a thousand models, so they are resolved on demand instead of being
listed up front. Only resolving or listing into this source imports timm.
"""

from __future__ import annotations

import fnmatch
import functools
from collections.abc import Callable
from typing import Any

from geofm_core.hookspecs import RegisterCallback, hookimpl

TARGET = "geofm_core.models.timm_backbone:TimmBackbone"


@hookimpl
def geofm_register_components(register: RegisterCallback) -> None:
    """Nothing to register up front: every name is resolved on demand."""


@hookimpl
def geofm_resolve_component(kind: str, source: str, name: str) -> Callable[..., Any] | None:
    """Resolve ``timm:<model>`` to a backbone factory with the model name bound."""
    if kind != "backbone":
        return None
    import timm

    if not timm.is_model(name):
        return None
    from geofm_core.models.timm_backbone import TimmBackbone

    return functools.partial(TimmBackbone, name)


@hookimpl
def geofm_component_metadata(kind: str, source: str, name: str) -> dict[str, Any] | None:
    """The pretrained tags of timm for of ``name`` as weight sets (licence from its pretrained cfg).

    ``timm:resnet18`` lists every tag of the architecture, its default first (what
    ``pretrained=True`` loads); ``timm:resnet18.a1_in1k`` just that one. Weights for
    3-channel inputs are RGB images (ImageNet and the like): bands RED, GREEN, BLUE.
    """
    if kind != "backbone":
        return None
    import timm
    from timm.models import get_pretrained_cfg

    arch, _, tag = name.partition(".")
    default = get_pretrained_cfg(arch)
    tags = [name] if tag else timm.list_pretrained(f"{arch}.*", exclude_filters="")
    if default is not None and not tag and f"{arch}.{default.tag}" in tags:
        tags.remove(f"{arch}.{default.tag}")
        tags.insert(0, f"{arch}.{default.tag}")
    weights = []
    for full in tags:
        cfg = get_pretrained_cfg(full)
        if cfg is None:
            continue
        rgb = len(cfg.input_size) == 3 and cfg.input_size[0] == 3
        weights.append({
            "name": full,
            "bands": ("RED", "GREEN", "BLUE") if rgb else (),
            "modalities": ("rgb",) if rgb else (),
            "url": f"hf-hub:{cfg.hf_hub_id}" if cfg.hf_hub_id else (cfg.url or ""),
            "license": cfg.license or "unknown",
            "mean": cfg.mean if rgb and cfg.mean else (),
            "std": cfg.std if rgb and cfg.std else (),
            "image_size": cfg.input_size[-1] if cfg.input_size else None,
            "dataset": _dataset(cfg.tag or ""),
        })
    return {
        "any_bands": True,
        "modalities": ("rgb",) if any(w["modalities"] for w in weights) else (),
        "image_size": default.input_size[-1] if default and default.input_size else None,
        "weights": weights,
    }


def _dataset(tag: str) -> str:
    """The pretraining data a timm tag names, for the common ImageNet tags."""
    for part, dataset in (("in22k", "ImageNet-22k"), ("in21k", "ImageNet-21k"),
                          ("in12k", "ImageNet-12k"), ("in1k", "ImageNet-1k")):
        if part in tag:
            return dataset
    return ""


@hookimpl
def geofm_list_components(kind: str, source: str, pattern: str) -> list[str] | None:
    """List timm model names matching ``pattern`` (backbones only)."""
    if kind != "backbone":
        return None
    import timm

    names: list[str] = list(timm.list_models())
    return [n for n in names if fnmatch.fnmatchcase(n, pattern)]
