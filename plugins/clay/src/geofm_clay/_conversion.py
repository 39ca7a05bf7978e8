"""How TerraTorch names the Clay backbone and its arguments (plain data, no torch).

Read by ``geofm convert terratorch`` through the plugin's ``geofm_conversion_rules`` hook.
TerraTorch registers Clay v1 as the backbone ``clay_v1_base`` (its ``Embedder``, weights
under ``clay_encoder.*``), used with ``EncoderDecoderFactory`` or ``ClayModelFactory``.
Its v1.5 code is reachable only through ``Clay1_5ModelFactory``, which builds Clay's MAE
pre-training model (decoder, teacher, losses), not a model to fine-tune: that factory is
refused with the geofm way to fine-tune Clay v1.5 instead.
"""

from __future__ import annotations

from typing import Any

from geofm_clay.constants import PATCH_SIZE, VARIANTS
from geofm_core.convert.rules import (
    BackboneFacts,
    ComponentRule,
    ConversionRules,
    FactoryRule,
    Fixed,
    KeyRule,
    Report,
    Unconvertible,
)
from geofm_core.errors import ConfigurationError

__all__ = ["TERRATORCH", "clay15_model_factory"]

#: TerraTorch's Embedder bands when a config names none (Clay's Sentinel-2 names).
_TERRATORCH_BANDS = ["blue", "green", "red", "nir", "swir16", "swir22"]

_NOTE = ("TerraTorch gives a band name it does not know (an integer band included) the "
         "wavelength 0.0 without a word; geofm needs a wavelength per band (a band name it "
         "knows, or wavelengths: in µm). Without necks, TerraTorch hands the decoder only the "
         "last block's tokens (Embedder.prepare_features_for_image_model); geofm's "
         "reshape_tokens_to_image keeps every level, which a decoder reading the last level "
         "(fcn) sees alike. TerraTorch freezes the encoder after loading a ckpt_path; geofm "
         "freezes it only with freeze_backbone")

_V1 = ComponentRule(
    "backbone", ("clay_v1_base",), "clay_v1_base",
    # TerraTorch's Datacuber passes gsd 1.0 and zero time/location channels (its forward
    # gets neither from the task); its fine-tuned weights saw those. Its default bands
    # are Clay's six Sentinel-2 names.
    defaults={"gsd": 1.0, "encode_metadata": False, "bands": _TERRATORCH_BANDS},
    keys=(KeyRule(r"clay_encoder\.(.+)", r"\1"),),
    fixed={"vpt": Fixed(False, "prompt tuning setting",
                        otherwise="geofm's Clay backbone has no visual prompt tuning (vpt)")},
    ignored={
        "img_size": "geofm's Clay computes the position code for each input's own grid",
        "num_frames": "Clay encodes one date per sample",
        "vpt_n_tokens": "only used with vpt, which geofm's Clay backbone does not have",
        "vpt_dropout": "only used with vpt, which geofm's Clay backbone does not have",
        "features_only": "geofm's Clay backbone always returns its block tokens",
        "model_bands": "TerraTorch's Clay reads its bands from bands",
        "pretrained_bands": "Clay's patch embedding is generated from wavelengths",
    },
    note=_NOTE,
    facts=BackboneFacts(tokens=True, depth=VARIANTS["clay_v1_base"].depth,
                        patch_size=PATCH_SIZE, takes_bands=True, label="Clay backbone"),
)


def clay15_model_factory(model_args: dict[str, Any], report: Report) -> dict[str, Any]:
    """Refuse TerraTorch's ``Clay1_5ModelFactory``: it builds Clay's MAE pre-training model.

    Raises:
        ConfigurationError: Always; the converter lists the model as not converted with
            this message, which names the encoder size the config's ``dim``/``depth``
            describe and the geofm config that fine-tunes it.
    """
    dims = tuple(model_args.get(k) for k in ("dim", "depth", "heads", "dim_head"))
    size = next((name for name, spec in VARIANTS.items() if spec.version == "v1.5"
                 and (spec.dim, spec.depth, spec.heads, spec.dim_head) == dims),
                "clay_v1_5_large")
    report.drop("model_factory", "Clay1_5ModelFactory", "Clay's MAE pre-training model")
    raise ConfigurationError(
        "TerraTorch's Clay1_5ModelFactory builds Clay v1.5's MAE pre-training model (masked "
        "encoder, MAE decoder, teacher): its forward returns the pre-training losses and it "
        "ignores decoder and num_classes, so there is no fine-tuning model to convert. To "
        f"fine-tune that encoder in geofm, write model_factory: geofm:encoder_decoder with "
        f"backbone: clay:{size}, backbone_kwargs: {{bands: [...] or wavelengths: [...], gsd: "
        "...}, necks [geofm:select_indices, geofm:reshape_tokens_to_image] and a decoder "
        "(clay:clay_v1_5_large loads Clay's published weights with pretrained: true)")


#: The Clay plugin's TerraTorch rules.
TERRATORCH = ConversionRules(
    components=(_V1,),
    factories=(
        # TerraTorch's Clay factory: an encoder-decoder factory with the backbone's
        # pretrained and bands at the top level (and num_frames, which Clay ignores).
        FactoryRule(
            ("ClayModelFactory",),
            backbone_args=("bands", "pretrained"),
            backbone_defaults={"pretrained": True},
            notes={"num_frames": "dropped: Clay encodes one date per sample",
                   "in_channels": "dropped: the Clay backbone takes its input channels from "
                                  "its bands",
                   "checkpoint_path": "dropped: TerraTorch reads it only for a backbone given "
                                      "as a module; pass backbone_kwargs ckpt_path instead"},
        ),
        FactoryRule(("Clay1_5ModelFactory",),
                    convert="geofm_clay._conversion:clay15_model_factory"),
    ),
    # the backbone name TerraTorch's v1.5 example gives Clay1_5ModelFactory (which ignores
    # it); no TerraTorch registry has it
    unconvertible=(Unconvertible("backbone", ("clay15",)),),
)
