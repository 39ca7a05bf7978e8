"""``geofm convert terratorch CONFIG.yaml``: a TerraTorch LightningCLI config as geofm YAML.

The conversion is YAML work: TerraTorch's task class paths become geofm's short task
names; ``EncoderDecoderFactory`` model arguments become ``geofm:encoder_decoder``
arguments (prefixed ``backbone_*`` / ``decoder_*`` / ``head_*`` keys grouped into
component kwargs, component names mapped to registry names, implicit necks made
explicit); the generic TerraTorch datamodules become the GeoTIFF datamodules;
``trainer``, ``optimizer`` and ``lr_scheduler`` are copied.

Component names and their arguments come from conversion rules: the core's for its
own necks, decoders, heads and timm, each plugin's for its components (the
``geofm_conversion_rules`` hook, see :mod:`geofm_core.convert.rules`). Keywords no rule
mentions are checked against the component's real signature, which imports that
component's module; a config whose keywords the rules cover imports no torch.

Nothing is dropped silently: every key that has no geofm equivalent is listed (on
stderr and as a comment block at the top of the output), and so is every mapping that
changes behaviour.

Modules: ``tables`` (TerraTorch vocabulary, the core's rules), ``names`` (name
resolution), ``parts`` (component kwargs), ``model`` (encoder-decoder arguments),
``factories``, ``task`` and ``detection`` (object detection), ``data``, ``datasets`` and
``transforms``, ``trainer``, ``entry``.
"""

from __future__ import annotations

from geofm_core.convert.terratorch.entry import (
    convert_config,
    convert_file,
    is_terratorch_config,
    render,
)
from geofm_core.convert.terratorch.names import map_backbone, map_decoder, rule_book
from geofm_core.convert.terratorch.report import Conversion

__all__ = [
    "Conversion",
    "convert_config",
    "convert_file",
    "is_terratorch_config",
    "map_backbone",
    "map_decoder",
    "render",
    "rule_book",
]
