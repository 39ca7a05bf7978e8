"""How TerraTorch names the TerraMind backbones and their weights (plain data, no torch).

Read by ``geofm convert terratorch`` through the plugin's ``geofm_conversion_rules`` hook.
TerraTorch's keywords of these backbones (``modalities``, ``merge_method``, ``bands``,
``img_size``, ``pretrained``, ``ckpt_path``, the drop rates) are geofm's too, so the rules
list only what differs: the weights' fixed position embeddings and the models geofm
does not have.
"""

from __future__ import annotations

from geofm_core.convert.rules import (
    BackboneFacts,
    ComponentRule,
    ConversionRules,
    Fixed,
    KeyRule,
    Unconvertible,
)
from geofm_terramind.constants import VARIANTS

__all__ = ["TERRATORCH"]

#: TerraTorch's weights of a TerraMind backbone, relative to it (``encoder.`` in a task
#: checkpoint): geofm's names, but for tensors geofm recomputes or does not have.
_KEYS = (
    KeyRule(r"encoder_embeddings\.[^.]+\.pos_emb", None,
            "the fixed sin-cos position embedding, which geofm computes"),
    KeyRule(r"tokenizer\..+", None,
            "TerraTorch's frozen pretrained tokenizers (of LULC and NDVI inputs); geofm "
            "embeds those modalities' pixels instead"),
)


def _rule(name: str) -> ComponentRule:
    spec = VARIANTS[name]
    return ComponentRule(
        "backbone", (name,), name, keys=_KEYS,
        # TerraTorch applies patch_size to new modalities only; its pretrained ones keep 16
        fixed={"patch_size": Fixed(16, "patch size", otherwise=(
            "TerraTorch applies patch_size only to new modalities (pretrained ones keep 16); "
            "geofm uses one patch size for all"))},
        facts=BackboneFacts(tokens=True, depth=spec.depth, label="TerraMind backbone"),
    )


#: The TerraMind plugin's TerraTorch rules.
TERRATORCH = ConversionRules(
    components=tuple(_rule(name) for name in VARIANTS),
    # Thinking-in-modalities (generating tokens first) and the gated v0.1 model: no
    # geofm equivalent.
    unconvertible=(Unconvertible("backbone", (
        "terramind_v01", *(f"{name}_tim" for name in VARIANTS))),),
)
