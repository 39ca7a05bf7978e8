"""How TerraTorch names the smp decoders and encoders and their arguments (no torch).

Read by ``geofm convert terratorch`` through the plugin's ``geofm_conversion_rules`` hook:
TerraTorch's ``smp_<Model>`` decoders and ``UNetDecoder`` as this plugin's decoders, and
``SMPModelFactory`` (a whole smp model) as an smp encoder plus an smp decoder.
"""

from __future__ import annotations

from typing import Any

from geofm_core.convert.rules import (
    ComponentRule,
    ConversionRules,
    DecoderFacts,
    FactoryRule,
    KeyRule,
    Report,
    pop_prefixed,
)

__all__ = ["DECODER_ARGS", "DECODERS", "TERRATORCH", "smp_model_factory"]

#: smp model class names (TerraTorch's ``smp_<Name>`` decoders) -> this plugin's decoders.
DECODERS: dict[str, str] = {
    "Unet": "unet", "UnetPlusPlus": "unetplusplus", "FPN": "fpn", "PSPNet": "pspnet",
    "DeepLabV3": "deeplabv3", "DeepLabV3Plus": "deeplabv3plus", "Linknet": "linknet",
    "MAnet": "manet", "PAN": "pan", "UPerNet": "upernet", "Segformer": "segformer",
    "DPT": "dpt",
}

_USE_NORM = {"decoder_use_norm": "use_norm", "decoder_use_batchnorm": "use_norm"}
_UNET = {**_USE_NORM, "decoder_channels": "decoder_channels",
         "decoder_attention_type": "attention_type",
         "decoder_interpolation": "interpolation_mode"}
_DEEPLAB = {"decoder_channels": "out_channels", "decoder_atrous_rates": "atrous_rates",
            "decoder_aspp_separable": "aspp_separable", "decoder_aspp_dropout": "aspp_dropout"}

#: smp model-constructor keywords (as TerraTorch passes them) -> this plugin's decoder
#: keywords, per decoder; the whole list, as SMPModelFactory's arguments are converted
#: from it alone.
DECODER_ARGS: dict[str, dict[str, str]] = {
    "unet": _UNET,
    "unetplusplus": _UNET,
    "fpn": {"decoder_pyramid_channels": "pyramid_channels",
            "decoder_segmentation_channels": "segmentation_channels",
            "decoder_merge_policy": "merge_policy", "decoder_dropout": "dropout",
            "decoder_interpolation": "interpolation_mode"},
    "pspnet": {**_USE_NORM, "psp_out_channels": "out_channels", "psp_dropout": "dropout",
               "psp_use_batchnorm": "use_norm"},
    "deeplabv3": _DEEPLAB,
    "deeplabv3plus": _DEEPLAB,
    "linknet": {**_USE_NORM},
    "manet": {**_USE_NORM, "decoder_channels": "decoder_channels",
              "decoder_pab_channels": "pab_channels",
              "decoder_interpolation": "interpolation_mode"},
    "pan": {"decoder_channels": "decoder_channels",
            "decoder_interpolation": "interpolation_mode"},
    "upernet": {**_USE_NORM, "decoder_channels": "decoder_channels"},
    "segformer": {"decoder_segmentation_channels": "segmentation_channels"},
    "dpt": {"decoder_readout": "readout",
            "decoder_intermediate_channels": "intermediate_channels",
            "decoder_fusion_channels": "fusion_channels"},
}

#: smp models whose segmentation head does not upsample (the decoder ends at full size).
_NO_UPSAMPLING = ("Unet", "UnetPlusPlus", "Linknet", "MAnet")

#: How TerraTorch's SMPModelFactory names its weights (an smp model in ``smp_model``).
_SMP_MODEL_KEYS = (
    KeyRule(r"smp_model\.encoder\.(.+)", r"backbone.encoder.\1"),
    KeyRule(r"smp_model\.decoder\.(.+)", r"decoder.decoder.\1"),
    KeyRule(r"smp_model\.segmentation_head\.0\.(\w+)", r"head.classifier.\1"),
)

#: smp's boolean batch-norm switch as this plugin's ``use_norm`` names.
_NORM_VALUES = {"use_norm": ((True, "batchnorm"), (False, "identity"))}

#: smp builds these with one level fewer than it is given and skips the first.
_SKIPS_FIRST_LEVEL = ("Unet", "UnetPlusPlus", "MAnet")


def _smp_rule(model: str, decoder: str) -> ComponentRule:
    facts = DecoderFacts(
        levels_from="decoder_channels",
        levels_note=f"smp skips the first level TerraTorch passes to smp_{model}",
    ) if model in _SKIPS_FIRST_LEVEL else None
    args = DECODER_ARGS[decoder]
    return ComponentRule(
        "decoder", (f"smp_{model}",), decoder, args=args,
        values=_NORM_VALUES if "use_norm" in args.values() else {},
        note=f"smp_{model} written as smp:{decoder}: geofm's smp decoders take the decoder part "
             "of the smp model, on the backbone's levels (finest first)",
        facts=facts,
    )


def smp_model_factory(args: dict[str, Any], report: Report) -> dict[str, Any]:
    """``SMPModelFactory`` model_args as ``geofm:encoder_decoder`` ones: smp encoder + decoder."""
    out: dict[str, Any] = {}
    backbone = args.pop("backbone", None)
    model = args.pop("model", None)
    bands = args.pop("bands", None)
    in_channels = args.pop("in_channels", None)
    if in_channels is None and isinstance(bands, list):
        in_channels = len(bands)
    if bands is not None:
        report.note("bands", "smp encoders take no band names; written as the backbone's "
                    "in_channels")
    pretrained = args.pop("pretrained", True)
    bk = pop_prefixed(args, "backbone_")
    smp_args = pop_prefixed(args, "smp_")
    aux = pop_prefixed(args, "aux_")
    if aux:
        report.drop("aux_*", aux, "smp's classification head on the encoder has no geofm "
                    "counterpart")
    out["backbone"] = f"smp:{backbone}" if isinstance(backbone, str) else backbone
    out["backbone_kwargs"] = _encoder_kwargs(in_channels, pretrained, smp_args, bk, report)
    decoder = DECODERS.get(model) if isinstance(model, str) else None
    if decoder is None:
        report.drop("model", model, "no geofm smp decoder of that name")
        out["decoder"] = model
    else:
        out["decoder"] = f"smp:{decoder}"
        dkw = _decoder_kwargs(decoder, smp_args, report)
        if dkw:
            out["decoder_kwargs"] = dkw
        report.note("model", (
            f"smp {model} written as the backbone {out['backbone']} and the decoder "
            f"{out['decoder']}; geofm's head with kernel_size 3 is smp's segmentation head"
            + ("" if model in _NO_UPSAMPLING else
               f" (smp upsamples {model}'s output with aligned corners, geofm rescales "
               "without: outputs differ slightly)")))
    if report.task == "regression" and args.pop("regression_relu", False):
        out["head_kwargs"] = {"final_act": "relu"}
    num_classes = args.pop("num_classes", None)
    if num_classes is not None and report.task != "regression":
        out["num_classes"] = num_classes
    if report.task == "segmentation" and decoder is not None:
        out["head_kwargs"] = {"kernel_size": 3}
    for key in list(args):
        report.drop(key, args.pop(key), "SMPModelFactory argument geofm has no counterpart for")
    return out


def _encoder_kwargs(in_channels: Any, pretrained: Any, smp_args: dict[str, Any],
                    bk: dict[str, Any], report: Report) -> dict[str, Any]:
    out: dict[str, Any] = {}
    if in_channels is not None:
        out["in_channels"] = in_channels
    if pretrained is True:
        out["weights"] = "imagenet"
    elif isinstance(pretrained, str):
        out["weights"] = pretrained
    if "encoder_depth" in smp_args:
        out["depth"] = smp_args.pop("encoder_depth")
    if "encoder_output_stride" in smp_args:
        out["output_stride"] = smp_args.pop("encoder_output_stride")
    for key, value in bk.items():
        if key == "output_stride":
            out[key] = value
        else:
            report.drop(f"backbone_{key}", value, "geofm's smp backbones take in_channels, "
                        "depth, weights and output_stride")
    return out


def _decoder_kwargs(decoder: str, smp_args: dict[str, Any], report: Report) -> dict[str, Any]:
    out: dict[str, Any] = {}
    renames = DECODER_ARGS[decoder]
    for key, value in smp_args.items():
        if key in renames:
            new = renames[key]
            if new == "use_norm" and isinstance(value, bool):
                value = "batchnorm" if value else "identity"
            out[new] = value
        elif key == "upsampling":
            report.note("smp_upsampling", f"{value} dropped: geofm rescales outputs to the "
                        "input size")
        else:
            report.drop(f"smp_{key}", value, f"smp:{decoder} takes no such argument")
    return out


#: The smp plugin's TerraTorch rules.
TERRATORCH = ConversionRules(
    components=(
        *(_smp_rule(model, decoder) for model, decoder in DECODERS.items()),
        ComponentRule(
            "decoder", ("UNetDecoder",), "unet",
            args={"channels": "decoder_channels", "use_batchnorm": "use_norm",
                  "attention_type": "attention_type"},
            values=_NORM_VALUES,
            # TerraTorch feeds the finest level twice, so its last block keeps that level's
            # resolution instead of upsampling it.
            defaults={"upsample_last": False},
            note="written as smp:unet (the smp U-Net decoder TerraTorch's UNetDecoder wraps)"),
    ),
    factories=(
        FactoryRule(("SMPModelFactory",), tasks=("segmentation", "regression"),
                    convert="geofm_smp_decoders._conversion:smp_model_factory",
                    keys=_SMP_MODEL_KEYS),
    ),
)
