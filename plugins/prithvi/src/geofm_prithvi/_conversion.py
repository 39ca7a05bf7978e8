"""How TerraTorch names the Prithvi backbones and their arguments (plain data, no torch).

Read by ``geofm convert terratorch`` through the plugin's ``geofm_conversion_rules`` hook.
"""

from __future__ import annotations

from geofm_core.convert.rules import (
    BackboneFacts,
    ComponentRule,
    ConversionRules,
    FactoryRule,
    Fixed,
    KeyRule,
)
from geofm_prithvi.constants import SWIN_VARIANTS, VARIANTS

__all__ = ["SWIN_KEYS", "TERRATORCH"]

#: TerraTorch's older names of registered variants.
_ALIASES: dict[str, tuple[str, ...]] = {
    "prithvi_eo_v1_100": ("prithvi_vit_100",),
    "prithvi_eo_v2_300": ("prithvi_vit_300",),
}

#: TerraTorch variants with no registered geofm name: the registered variant with the
#: same layout (without time/location encoding) and the architecture that differs.
_SUBSTITUTES: dict[tuple[str, ...], tuple[str, dict[str, int]]] = {
    ("prithvi_eo_tiny", "prithvi_vit_tiny"): (
        "prithvi_eo_v1_100", {"embed_dim": 256, "depth": 4, "num_heads": 4}),
    ("prithvi_eo_v2_100",): ("prithvi_eo_v1_100", {}),
}

_ENCODING = ("geofm's *_tl variants always encode time and location (when the batch has "
             "them), the others never; pick the variant instead")


#: TerraTorch's weights of a Prithvi backbone, relative to it: the same names as geofm's,
#: but for the position-embedding buffer, which geofm computes.
_KEYS = (KeyRule("pos_embed", None, "the fixed sin-cos position embedding, which geofm "
                 "computes for the input's grid"),)


def _defaults(coords: bool) -> dict[str, str]:
    # TerraTorch resizes the img_size position grid bicubically for other input sizes and
    # computes the time/location sin-cos in float32; its fine-tuned weights expect both.
    # Its drop path (training only) is the same for every block.
    out = {"position_grid": "interpolate", "drop_path_schedule": "uniform"}
    if coords:
        out["coords_dtype"] = "float32"
    return out


def _rule(names: tuple[str, ...], variant: str, overrides: dict[str, int]) -> ComponentRule:
    spec = VARIANTS[variant]
    return ComponentRule(
        "backbone", names, variant,
        args={"drop_path": "drop_path_rate"},
        defaults=_defaults(spec.coords_encoding),
        keys=_KEYS,
        overrides=overrides,
        fixed={"coords_encoding": Fixed(["location", "time"] if spec.coords_encoding else [],
                                        "encoding", otherwise=_ENCODING, unordered=True)},
        # TerraTorch loads ckpt_path only with pretrained: true; geofm loads it always.
        ignored_unless={"ckpt_path": "pretrained"},
        # TerraTorch's PrithviViT takes **kwargs and drops them; pretrain_img_size belongs
        # to its Swin backbones, yet configs pass it to Prithvi too.
        ignored={"pretrain_img_size": "TerraTorch's Prithvi ViT takes and ignores it (its "
                                      "position grid follows img_size)"},
        facts=BackboneFacts(tokens=True, depth=spec.depth, patch_size=spec.patch_size[-1],
                            takes_bands=True, label="Prithvi backbone", new_int_bands=True),
    )


_STAGE = r"stages[._](\d+)"
#: TerraTorch's (MMSegmentation's) names of a Prithvi Swin's weights -> geofm's, relative
#: to the backbone; the Swin loader (``geofm_prithvi.swin_weights``) reads the same rules.
#: Task checkpoints spell stages ``stages_N`` (timm's features wrapper), model files
#: ``stages.N``.
SWIN_KEYS = (
    KeyRule(r"(.+)\.relative_position_index", None,
            "the relative-position index, which geofm computes from the window size"),
    KeyRule(r"head\..+", None,
            "the classifier head TerraTorch's Swin carries and its features skip"),
    KeyRule(_STAGE + r"\.blocks\.(\d+)\.attn\.w_msa\.(.+)", r"stages.\1.blocks.\2.attn.\3"),
    KeyRule(_STAGE + r"\.blocks\.(\d+)\.ffn\.layers\.0\.0\.(\w+)",
            r"stages.\1.blocks.\2.mlp.fc1.\3"),
    KeyRule(_STAGE + r"\.blocks\.(\d+)\.ffn\.layers\.1\.(\w+)",
            r"stages.\1.blocks.\2.mlp.fc2.\3"),
    KeyRule(_STAGE + r"\.(.+)", r"stages.\1.\2"),
    KeyRule(r"patch_embed\.projection\.(\w+)", r"patch_embed.proj.\1"),
)

#: TerraTorch's spellings of the Swin variants (timm registry names, case and all).
_SWIN_NAMES = {"prithvi_swin_b": "prithvi_swin_B", "prithvi_swin_l": "prithvi_swin_L"}


def _swin_rule(variant: str) -> ComponentRule:
    name = _SWIN_NAMES[variant]
    return ComponentRule(
        "backbone", (name, f"timm_{name}"), variant,
        # TerraTorch's Swin has no position grid: the size only names the pre-training
        args={"pretrain_img_size": "img_size"},
        keys=SWIN_KEYS,
        fixed={"patch_size": Fixed(SWIN_VARIANTS[variant].patch_size, "patch size")},
        ignored={
            # TerraTorch derives the channels from the bands and drops the frames
            "in_chans": "TerraTorch sets it from the bands",
            "num_frames": "TerraTorch's Swin takes single images and drops it",
        },
        ignored_unless={"ckpt_path": "pretrained"},
        note=("new bands start from the mean of the pre-trained patch-embedding channels "
              "(TerraTorch: random); only matters when loading weights"),
        facts=BackboneFacts(takes_bands=True, label="Prithvi Swin backbone",
                            new_int_bands=True),
    )


#: The Prithvi plugin's TerraTorch rules.
TERRATORCH = ConversionRules(
    components=(
        *(_rule((name, *_ALIASES.get(name, ())), name, {}) for name in VARIANTS),
        *(_rule(names, variant, overrides)
          for names, (variant, overrides) in _SUBSTITUTES.items()),
        *(_swin_rule(variant) for variant in SWIN_VARIANTS),
    ),
    factories=(
        # TerraTorch's legacy factory: EncoderDecoderFactory with backbone arguments at
        # the top level (and its own defaults for them).
        FactoryRule(
            ("PrithviModelFactory",),
            backbone_args=("bands", "pretrained", "num_frames"),
            backbone_defaults={"pretrained": True, "num_frames": 1},
            notes={"in_channels": "dropped: the Prithvi backbone takes its input channels "
                                  "from its bands"},
            dropped={"prepare_features_for_image_model": "TerraTorch itself no longer "
                                                         "supports it; express it as necks"},
        ),
    ),
    # The Prithvi-EO-2.0 models fine-tuned with TerraTorch by its authors (the 1.0 ones
    # are MMSegmentation models).
    published={
        "ibm-nasa-geospatial/Prithvi-EO-2.0-300M-TL-Sen1Floods11": (
            "config.yaml", "Prithvi-EO-V2-300M-TL-Sen1Floods11.pt"),
        "ibm-nasa-geospatial/Prithvi-EO-2.0-300M-BurnScars": (
            "burn_scars_config.yaml", "Prithvi_EO_V2_300M_BurnScars.pt"),
    },
)
