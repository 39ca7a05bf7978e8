"""geofm-core: fine-tune geospatial foundation models, composed by name from plugins.

Importing this package is cheap: it does not import torch or lightning. The model
contracts (``Model``, ``ModelOutput``, ...) are loaded on first access.
"""

from __future__ import annotations

from geofm_core._lazy import lazy_exports
from geofm_core.errors import (
    AmbiguousComponentError,
    ComponentArgumentError,
    ComponentImportError,
    ComponentLookupError,
    ConfigurationError,
    DuplicateComponentError,
    GeofmError,
    InvalidNameError,
    OutputExistsError,
    OutputWriteError,
    PluginConflictError,
    PluginLoadError,
    PluginLoadWarning,
    UnknownComponentError,
)
from geofm_core.hookspecs import RegisterCallback, hookimpl
from geofm_core.names import KINDS, ComponentName, Kind, parse_name
from geofm_core.registry import ComponentSpec, Registry, get_registry, reset_registry

__version__ = "0.1.0"

__all__ = [
    "KINDS",
    "AmbiguousComponentError",
    "ComponentArgumentError",
    "ComponentImportError",
    "ComponentLookupError",
    "ComponentName",
    "ComponentSpec",
    "ConfigurationError",
    "DuplicateComponentError",
    "GeofmError",
    "InvalidNameError",
    "Kind",
    "Model",
    "ModelFactory",
    "ModelOutput",
    "OutputExistsError",
    "OutputWriteError",
    "PluginConflictError",
    "PluginLoadError",
    "PluginLoadWarning",
    "RegisterCallback",
    "Registry",
    "UnknownComponentError",
    "__version__",
    "get_registry",
    "hookimpl",
    "parse_name",
    "reset_registry",
]

# Names that need torch, imported on first access so `geofm list` stays fast.
_LAZY = {
    "Model": "geofm_core.models.contracts",
    "ModelFactory": "geofm_core.models.contracts",
    "ModelOutput": "geofm_core.models.contracts",
}


__getattr__, __dir__ = lazy_exports(__name__, _LAZY, eager=__all__)
