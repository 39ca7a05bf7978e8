"""Artefacts on disk, in one place: atomic outputs, checkpoints and model weights.

* :mod:`geofm_core.io.atomic`: every file geofm writes goes through one helper (checks,
  one temporary naming scheme, stale-file clean-up, read-back check, rename).
* :mod:`geofm_core.io.checkpoints`: reading Lightning checkpoints safely
  (``weights_only=True``), the task class they record, and loading weights into a
  module with one message for weights that do not fit.
* :mod:`geofm_core.io.locations`: inputs given by URL (HTTP(S), object stores) or path.
* :mod:`geofm_core.io.weights`: model weights as safetensors (or a state dict file).

Import the submodules directly; this package imports nothing.
"""
