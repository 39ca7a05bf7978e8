"""TerraMind v1 encoders (IBM/ESA) as geofm backbones (source ``terramind``).

This package imports no torch: the model lives in :mod:`geofm_terramind.vit`, the
registered factories in :mod:`geofm_terramind.configs`, weight loading in
:mod:`geofm_terramind.weights`.
"""

from geofm_terramind.constants import MODALITIES, VARIANTS, Modality, modality_for

__all__ = ["MODALITIES", "VARIANTS", "Modality", "modality_for"]
