"""Clay v1 and v1.5 encoders as geofm backbones (source ``clay``).

This package imports no torch: the model lives in :mod:`geofm_clay.encoder`, the
registered factories in :mod:`geofm_clay.backbones`, the official checkpoints in
:mod:`geofm_clay.weights`.
"""

from geofm_clay.constants import PATCH_SIZE, VARIANTS, ClayVariant, WeightsFile

__all__ = ["PATCH_SIZE", "VARIANTS", "ClayVariant", "WeightsFile"]
