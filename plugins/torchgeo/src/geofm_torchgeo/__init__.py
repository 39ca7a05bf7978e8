"""TorchGeo's pretrained backbones as geofm backbones (source ``torchgeo``).

Importing this package is light; :mod:`geofm_torchgeo.backbones` imports torch and
torchgeo when a backbone is built.
"""

from __future__ import annotations

__all__ = ["__version__"]

__version__ = "0.1.0"
