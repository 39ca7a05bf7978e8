"""Models: the contracts, model classes, factories and core components.

Importing this package is cheap; the classes below load their modules (and torch) on
first access: ``from geofm_core.models import PixelWiseModel``.
"""

from __future__ import annotations

from geofm_core._lazy import lazy_exports

__all__ = [
    "AuxiliaryHead",
    "Backbone",
    "Decoder",
    "EncoderDecoderFactory",
    "Head",
    "Model",
    "ModelFactory",
    "ModelOutput",
    "Neck",
    "PixelWiseModel",
    "ScalarOutputModel",
]

_LAZY = {
    "AuxiliaryHead": "geofm_core.models.pixelwise",
    "Backbone": "geofm_core.models.contracts",
    "Decoder": "geofm_core.models.contracts",
    "EncoderDecoderFactory": "geofm_core.models.factory",
    "Head": "geofm_core.models.contracts",
    "Model": "geofm_core.models.contracts",
    "ModelFactory": "geofm_core.models.contracts",
    "ModelOutput": "geofm_core.models.contracts",
    "Neck": "geofm_core.models.contracts",
    "PixelWiseModel": "geofm_core.models.pixelwise",
    "ScalarOutputModel": "geofm_core.models.scalar",
}


__getattr__, __dir__ = lazy_exports(__name__, _LAZY)
