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
def geofm_list_components(kind: str, source: str, pattern: str) -> list[str] | None:
    """List timm model names matching ``pattern`` (backbones only)."""
    if kind != "backbone":
        return None
    import timm

    names: list[str] = list(timm.list_models())
    return [n for n in names if fnmatch.fnmatchcase(n, pattern)]
