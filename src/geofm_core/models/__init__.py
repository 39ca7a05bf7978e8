"""Models: the contracts, model classes, factories and core components.

Importing this package is cheap; the classes below load their modules (and torch) on
first access: ``from geofm_core.models import PixelWiseModel``.
"""

from __future__ import annotations

import importlib
from typing import Any

__all__ = [
    "AuxiliaryHead",
    "EncoderDecoderFactory",
    "Model",
    "ModelFactory",
    "ModelOutput",
    "PixelWiseModel",
    "ScalarOutputModel",
]

_LAZY = {
    "AuxiliaryHead": "geofm_core.models.pixelwise",
    "EncoderDecoderFactory": "geofm_core.models.factory",
    "Model": "geofm_core.models.contracts",
    "ModelFactory": "geofm_core.models.contracts",
    "ModelOutput": "geofm_core.models.contracts",
    "PixelWiseModel": "geofm_core.models.pixelwise",
    "ScalarOutputModel": "geofm_core.models.scalar",
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'geofm_core.models' has no attribute {name!r}")
