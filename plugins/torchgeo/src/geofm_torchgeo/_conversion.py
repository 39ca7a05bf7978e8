"""How TerraTorch names the torchgeo backbones and their arguments (plain data, no torch).

Read by ``geofm convert terratorch`` through the plugin's ``geofm_conversion_rules`` hook.
TerraTorch registers one backbone per torchgeo weight set (``ssl4eos12_resnet50_sentinel2_
all_moco``, ``satlas_swin_b_sentinel2_mi_ms``, ``dofa_base_patch16_224``, ...; see
:data:`geofm_torchgeo._zoo.TERRATORCH_NAMES`); each converts to the registered
per-weight-set name ``torchgeo:<model>_<weights>``, or to ``torchgeo:<model>`` for a model
without weights.
"""

from __future__ import annotations

from geofm_core.convert.rules import BackboneFacts, ComponentRule, ConversionRules
from geofm_torchgeo._zoo import TERRATORCH_NAMES

__all__ = ["TERRATORCH", "target_of"]

#: TerraTorch's keywords of these backbones -> geofm's.
_ARGS = {"model_bands": "bands"}

#: TerraTorch builds these backbones without weights unless ``pretrained: true``
#: (its default is False); geofm's per-weight-set names load their weights by default.
_DEFAULTS = {"pretrained": False}

_FACTS = BackboneFacts(takes_bands=True, label="torchgeo backbone")

_NOTE = ("TerraTorch's torchgeo wrappers select out_indices from the model's own stages "
         "(timm feature levels for ResNets, torchvision `features` entries for Swin, blocks "
         "for ViTs); check that the geofm backbone's levels match")


def target_of(model: str, member: str | None) -> str:
    """The registered geofm name (without source) for a torchgeo model and weight set."""
    return model if member is None else f"{model}_{member.lower()}"


def _rule(name: str, model: str, member: str | None) -> ComponentRule:
    return ComponentRule(
        "backbone", (name,), target_of(model, member),
        args=_ARGS, defaults=_DEFAULTS, facts=_FACTS, note=_NOTE,
        # TerraTorch reads ckpt_data only with pretrained: true.
        ignored={"ckpt_data": "TerraTorch's path for other weights of the same backbone; "
                              "not converted (pass the weights to geofm instead)"},
    )


#: The torchgeo plugin's TerraTorch rules.
TERRATORCH = ConversionRules(
    components=tuple(_rule(name, model, member)
                     for name, (model, member) in sorted(TERRATORCH_NAMES.items())),
)
