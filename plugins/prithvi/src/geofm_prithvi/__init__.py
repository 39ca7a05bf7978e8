"""Prithvi EO vision transformers (IBM/NASA) as geofm backbones (source ``prithvi``).

This package imports no torch: the model code lives in :mod:`geofm_prithvi.vit`,
:mod:`geofm_prithvi.configs` (the registered factories) and :mod:`geofm_prithvi.weights`;
the Prithvi Swin encoders in :mod:`geofm_prithvi.swin`, :mod:`geofm_prithvi.swin_configs`
and :mod:`geofm_prithvi.swin_weights`.
"""

from geofm_prithvi.constants import (
    HLS_BANDS,
    PRETRAINED_BANDS,
    PRITHVI_V1_MEAN,
    PRITHVI_V1_STD,
    PRITHVI_V2_MEAN,
    PRITHVI_V2_STD,
    SWIN_VARIANTS,
    VARIANTS,
)

__all__ = [
    "HLS_BANDS",
    "PRETRAINED_BANDS",
    "PRITHVI_V1_MEAN",
    "PRITHVI_V1_STD",
    "PRITHVI_V2_MEAN",
    "PRITHVI_V2_STD",
    "SWIN_VARIANTS",
    "VARIANTS",
]
