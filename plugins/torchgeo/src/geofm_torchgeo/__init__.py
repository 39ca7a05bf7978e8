"""TorchGeo's pretrained backbones as geofm backbones (source ``torchgeo``; no torch here)."""
