"""Galileo encoders (nasaharvest; Tseng et al. 2025) as geofm backbones (source ``galileo``).

This package imports no torch: the model code lives in :mod:`geofm_galileo.encoder`,
:mod:`geofm_galileo.backbone`, :mod:`geofm_galileo.configs` (the registered factories)
and :mod:`geofm_galileo.weights`.
"""

from geofm_galileo.constants import (
    BAND_TO_GALILEO,
    DEFAULT_MONTH,
    DEFAULT_PATCH_SIZE,
    PRETRAINED_BANDS,
    PRETRAINED_MEAN,
    PRETRAINED_STD,
    VARIANTS,
)

__all__ = [
    "BAND_TO_GALILEO",
    "DEFAULT_MONTH",
    "DEFAULT_PATCH_SIZE",
    "PRETRAINED_BANDS",
    "PRETRAINED_MEAN",
    "PRETRAINED_STD",
    "VARIANTS",
]
