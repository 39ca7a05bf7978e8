"""``geofm convert terratorch CONFIG.yaml``: a TerraTorch LightningCLI config as geofm YAML.

The conversion is pure YAML work (no torch import): TerraTorch's task class paths
become geofm's short task names; ``EncoderDecoderFactory`` and the legacy
``PrithviModelFactory`` model arguments become ``geofm:encoder_decoder`` arguments
(prefixed ``backbone_*`` / ``decoder_*`` / ``head_*`` keys grouped into component
kwargs, component names mapped to registry names, the implicit token-to-image neck of
Prithvi backbones made explicit); the generic TerraTorch datamodules become the
GeoTIFF datamodules; ``trainer``, ``optimizer`` and ``lr_scheduler`` are copied.

Nothing is dropped silently: every key that has no geofm equivalent is listed (on
stderr and as a comment block at the top of the output), and so is every mapping that
changes behaviour. The component kwargs written are checked against the signatures of
the registered components by the tests (``KNOWN_KWARGS``).
"""

from __future__ import annotations

import copy
import importlib.util
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from geofm_core.errors import ConfigurationError

__all__ = [
    "KNOWN_KWARGS",
    "Conversion",
    "convert_config",
    "convert_file",
    "render",
]

# --------------------------------------------------------------------------- tables

#: TerraTorch task class names -> (geofm short class name, geofm task).
TASKS: dict[str, tuple[str, str]] = {
    "SemanticSegmentationTask": ("SemanticSegmentationTask", "segmentation"),
    "PixelwiseRegressionTask": ("PixelwiseRegressionTask", "regression"),
    "ClassificationTask": ("ClassificationTask", "classification"),
    "MultiLabelClassificationTask": ("MultiLabelClassificationTask", "multilabel"),
}

#: TerraTorch generic datamodules -> (geofm datamodule, task family).
DATAMODULES: dict[str, tuple[str, str]] = {
    "GenericNonGeoSegmentationDataModule": ("GeoTiffSegmentationDataModule", "segmentation"),
    "GenericNonGeoPixelwiseRegressionDataModule": ("GeoTiffRegressionDataModule", "regression"),
    "GenericNonGeoClassificationDataModule": ("GeoTiffClassificationDataModule",
                                              "classification"),
}

#: TerraTorch model factories this converter knows.
ENCODER_DECODER_FACTORIES = ("EncoderDecoderFactory",)
LEGACY_PRITHVI_FACTORIES = ("PrithviModelFactory",)
OTHER_TERRATORCH_FACTORIES = (
    "SMPModelFactory", "TimmModelFactory", "GenericUnetModelFactory", "ClayModelFactory",
    "Clay1_5ModelFactory", "SatMAEModelFactory", "WxCModelFactory", "FullModelFactory",
    "GenericModelFactory", "ObjectDetectionModelFactory",
)

#: Losses TerraTorch names per geofm task family -> geofm loss names.
LOSSES: dict[str, dict[str, str]] = {
    "segmentation": {"ce": "ce", "jaccard": "jaccard", "dice": "dice", "focal": "focal",
                     "lovasz": "lovasz"},
    "regression": {"mse": "mse", "mae": "mae", "rmse": "rmse", "huber": "huber"},
    "classification": {"ce": "ce", "bce": "bce", "jaccard": "jaccard", "focal": "focal"},
    "multilabel": {"bce": "bce", "ce": "ce", "jaccard": "jaccard", "focal": "focal"},
}

#: TerraTorch Prithvi backbone names (and legacy aliases) -> geofm prithvi variant.
PRITHVI_BACKBONES: dict[str, str] = {
    "prithvi_eo_v1_100": "prithvi_eo_v1_100",
    "prithvi_eo_v2_tiny_tl": "prithvi_eo_v2_tiny_tl",
    "prithvi_eo_v2_100_tl": "prithvi_eo_v2_100_tl",
    "prithvi_eo_v2_300": "prithvi_eo_v2_300",
    "prithvi_eo_v2_300_tl": "prithvi_eo_v2_300_tl",
    "prithvi_eo_v2_600": "prithvi_eo_v2_600",
    "prithvi_eo_v2_600_tl": "prithvi_eo_v2_600_tl",
    "prithvi_vit_100": "prithvi_eo_v1_100",
    "prithvi_vit_300": "prithvi_eo_v2_300",
}

#: TerraTorch Prithvi variants geofm has no registered name for: the nearest geofm
#: variant (same layout without time/location encoding) and architecture overrides.
PRITHVI_SUBSTITUTES: dict[str, tuple[str, dict[str, int]]] = {
    "prithvi_eo_tiny": ("prithvi_eo_v1_100", {"embed_dim": 256, "depth": 4, "num_heads": 4}),
    "prithvi_vit_tiny": ("prithvi_eo_v1_100", {"embed_dim": 256, "depth": 4, "num_heads": 4}),
    "prithvi_eo_v2_100": ("prithvi_eo_v1_100", {}),
}

#: Depth and patch size of every geofm Prithvi variant (for implicit necks).
PRITHVI_DEPTH: dict[str, int] = {
    "prithvi_eo_v1_100": 12, "prithvi_eo_v2_tiny_tl": 12, "prithvi_eo_v2_100_tl": 12,
    "prithvi_eo_v2_300": 24, "prithvi_eo_v2_300_tl": 24, "prithvi_eo_v2_600": 32,
    "prithvi_eo_v2_600_tl": 32,
}
PRITHVI_PATCH: dict[str, int] = {name: 14 if "600" in name else 16 for name in PRITHVI_DEPTH}

#: Name prefixes of TerraTorch's own (non-Prithvi, non-timm) backbones.
TERRATORCH_ONLY_BACKBONES = (
    "terramind", "clay", "satlas", "dofa", "ssl4eo", "galileo", "croma", "decur", "scalemae",
    "prithvi_swin", "satmae", "remoteclip", "unet", "multimae", "terrafm", "copernicus",
)

#: TerraTorch neck names -> geofm neck names.
NECKS: dict[str, str] = {
    "SelectIndices": "geofm:select_indices",
    "ReshapeTokensToImage": "geofm:reshape_tokens_to_image",
    "InterpolateToPyramidal": "geofm:interpolate_to_pyramidal",
    "LearnedInterpolateToPyramidal": "geofm:learned_interpolate_to_pyramidal",
    "MaxpoolToPyramidal": "geofm:maxpool_to_pyramidal",
    "PermuteDims": "geofm:permute_dims",
    "AddBottleneckLayer": "geofm:add_bottleneck_layer",
}

#: TerraTorch decoder names -> geofm decoder names.
DECODERS: dict[str, str] = {
    "UperNetDecoder": "upernet:upernet",
    "FCNDecoder": "geofm:fcn",
    "IdentityDecoder": "geofm:identity",
    "LinearDecoder": "geofm:linear",
    "MLPDecoder": "geofm:mlp",
    "UNetDecoder": "smp:unet",
}

#: smp model class names (TerraTorch ``smp_<Name>`` decoders) -> geofm smp decoder names.
SMP_DECODERS: dict[str, str] = {
    "Unet": "smp:unet", "UnetPlusPlus": "smp:unetplusplus", "FPN": "smp:fpn",
    "PSPNet": "smp:pspnet", "DeepLabV3": "smp:deeplabv3", "DeepLabV3Plus": "smp:deeplabv3plus",
    "Linknet": "smp:linknet", "MAnet": "smp:manet", "PAN": "smp:pan", "UPerNet": "smp:upernet",
    "Segformer": "smp:segformer", "DPT": "smp:dpt",
}

_USE_NORM = {"decoder_use_norm": "use_norm", "decoder_use_batchnorm": "use_norm"}
#: smp model-constructor keywords (as TerraTorch passes them) -> geofm smp decoder kwargs.
SMP_DECODER_ARGS: dict[str, dict[str, str]] = {
    "smp:unet": {**_USE_NORM, "decoder_channels": "decoder_channels",
                 "decoder_attention_type": "attention_type",
                 "decoder_interpolation": "interpolation_mode"},
    "smp:unetplusplus": {**_USE_NORM, "decoder_channels": "decoder_channels",
                         "decoder_attention_type": "attention_type",
                         "decoder_interpolation": "interpolation_mode"},
    "smp:fpn": {"decoder_pyramid_channels": "pyramid_channels",
                "decoder_segmentation_channels": "segmentation_channels",
                "decoder_merge_policy": "merge_policy", "decoder_dropout": "dropout",
                "decoder_interpolation": "interpolation_mode"},
    "smp:pspnet": {**_USE_NORM, "psp_out_channels": "out_channels", "psp_dropout": "dropout",
                   "psp_use_batchnorm": "use_norm"},
    "smp:deeplabv3": {"decoder_channels": "out_channels", "decoder_atrous_rates": "atrous_rates",
                      "decoder_aspp_separable": "aspp_separable",
                      "decoder_aspp_dropout": "aspp_dropout"},
    "smp:deeplabv3plus": {"decoder_channels": "out_channels",
                          "decoder_atrous_rates": "atrous_rates",
                          "decoder_aspp_separable": "aspp_separable",
                          "decoder_aspp_dropout": "aspp_dropout"},
    "smp:linknet": {**_USE_NORM},
    "smp:manet": {**_USE_NORM, "decoder_channels": "decoder_channels",
                  "decoder_pab_channels": "pab_channels",
                  "decoder_interpolation": "interpolation_mode"},
    "smp:pan": {"decoder_channels": "decoder_channels",
                "decoder_interpolation": "interpolation_mode"},
    "smp:upernet": {**_USE_NORM, "decoder_channels": "decoder_channels"},
    "smp:segformer": {"decoder_segmentation_channels": "segmentation_channels"},
    "smp:dpt": {"decoder_readout": "readout",
                "decoder_intermediate_channels": "intermediate_channels",
                "decoder_fusion_channels": "fusion_channels"},
}

#: Keyword arguments this converter may write for each geofm component (besides the
#: ones the factory fills in). The tests check them against the real signatures.
KNOWN_KWARGS: dict[tuple[str, str], tuple[str, ...]] = {
    ("backbone", "prithvi:prithvi_eo_v1_100"): (
        "bands", "num_frames", "img_size", "out_indices", "pretrained", "ckpt_path",
        "pretrained_bands", "drop_path_rate", "embed_dim", "depth", "num_heads"),
    ("backbone", "timm:resnet18"): (
        "pretrained", "in_chans", "out_indices", "checkpoint_path", "model_kwargs"),
    ("neck", "geofm:select_indices"): ("indices",),
    ("neck", "geofm:reshape_tokens_to_image"): ("remove_cls_token", "effective_time_dim"),
    ("neck", "geofm:interpolate_to_pyramidal"): ("scale_factor", "mode"),
    ("neck", "geofm:learned_interpolate_to_pyramidal"): (),
    ("neck", "geofm:maxpool_to_pyramidal"): ("kernel_size",),
    ("neck", "geofm:permute_dims"): ("new_order",),
    ("neck", "geofm:add_bottleneck_layer"): (),
    ("decoder", "upernet:upernet"): ("channels", "pool_scales", "align_corners"),
    ("decoder", "geofm:fcn"): ("channels", "num_convs", "in_index"),
    ("decoder", "geofm:identity"): ("out_index",),
    ("decoder", "geofm:linear"): ("upsampling", "in_index"),
    ("decoder", "geofm:mlp"): ("channels", "activation", "in_index"),
    ("head", "geofm:segmentation"): ("channel_list", "dropout"),
    ("head", "geofm:regression"): ("channel_list", "dropout", "final_act",
                                   "learned_upscale_layers"),
    ("head", "geofm:classification"): ("dim_list", "dropout"),
    ("backbone", "smp:resnet18"): ("in_channels", "depth", "weights", "output_stride"),
    **{("decoder", name): tuple(dict.fromkeys(args.values()))
       for name, args in SMP_DECODER_ARGS.items()},
}

#: TerraTorch backbone kwargs of Prithvi backbones -> geofm prithvi kwargs.
PRITHVI_ARGS: dict[str, str] = {
    "pretrained": "pretrained", "bands": "bands", "ckpt_path": "ckpt_path",
    "pretrained_bands": "pretrained_bands", "num_frames": "num_frames", "img_size": "img_size",
    "out_indices": "out_indices", "drop_path": "drop_path_rate",
    "drop_path_rate": "drop_path_rate", "embed_dim": "embed_dim", "depth": "depth",
    "num_heads": "num_heads",
}

#: Plain (decoder-name-independent) decoder kwarg renames, per geofm decoder.
DECODER_ARGS: dict[str, dict[str, str]] = {
    "upernet:upernet": {"channels": "channels", "pool_scales": "pool_scales",
                        "align_corners": "align_corners"},
    "geofm:fcn": {"channels": "channels", "num_convs": "num_convs", "in_index": "in_index"},
    "geofm:identity": {"out_index": "out_index"},
    "geofm:linear": {"upsampling_size": "upsampling", "in_index": "in_index"},
    "geofm:mlp": {"channels": "channels", "activation": "activation", "out_index": "in_index"},
    "smp:unet": {"channels": "decoder_channels", "use_batchnorm": "use_norm",
                 "attention_type": "attention_type"},
}

#: TerraTorch head kwargs per geofm task -> geofm head kwargs.
HEAD_ARGS: dict[str, dict[str, str]] = {
    "segmentation": {"channel_list": "channel_list", "dropout": "dropout"},
    "regression": {"channel_list": "channel_list", "dropout": "dropout",
                   "final_act": "final_act", "learned_upscale_layers": "learned_upscale_layers"},
    "classification": {"dim_list": "dim_list", "dropout": "dropout"},
    "multilabel": {"dim_list": "dim_list", "dropout": "dropout"},
}

#: torch activation class names -> geofm activation names.
ACTIVATIONS: dict[str, str] = {
    "relu": "relu", "gelu": "gelu", "silu": "silu", "leakyrelu": "leaky_relu", "tanh": "tanh",
    "sigmoid": "sigmoid", "identity": "identity",
}

#: Task arguments with the same name and meaning in both.
SAME_TASK_ARGS = ("aux_loss", "class_weights", "ignore_index", "lr", "optimizer_hparams",
                  "scheduler_hparams", "freeze_backbone", "freeze_decoder", "freeze_head",
                  "class_names", "lr_overrides")

#: TerraTorch task arguments without a geofm counterpart, with their TerraTorch defaults.
TASK_ONLY_ARGS: dict[str, Any] = {
    "test_dataloaders_names": None, "output_on_inference": "prediction",
    "output_most_probable": True, "path_to_record_metrics": None,
    "tiled_inference_on_testing": False, "tiled_inference_on_validation": False,
}

#: Datamodule arguments with the same name and meaning in both (per family).
SAME_DATA_ARGS: dict[str, tuple[str, ...]] = {
    "segmentation": (
        "train_data_root", "val_data_root", "test_data_root", "predict_data_root",
        "train_label_data_root", "val_label_data_root", "test_label_data_root",
        "train_split", "val_split", "test_split", "batch_size", "num_workers", "means", "stds",
        "constant_scale", "no_data_replace", "no_label_replace", "expand_temporal_dimension",
        "rgb_indices", "drop_last", "pin_memory", "num_classes", "reduce_zero_label"),
    "regression": (
        "train_data_root", "val_data_root", "test_data_root", "predict_data_root",
        "train_label_data_root", "val_label_data_root", "test_label_data_root",
        "train_split", "val_split", "test_split", "batch_size", "num_workers", "means", "stds",
        "constant_scale", "no_data_replace", "no_label_replace", "expand_temporal_dimension",
        "rgb_indices", "drop_last", "pin_memory"),
    "classification": (
        "train_data_root", "val_data_root", "test_data_root", "predict_data_root",
        "train_split", "val_split", "test_split", "batch_size", "num_workers", "means", "stds",
        "constant_scale", "no_data_replace", "expand_temporal_dimension", "rgb_indices",
        "drop_last", "pin_memory", "num_classes"),
}

#: TerraTorch datamodule arguments without a geofm counterpart, with their defaults.
DATA_ONLY_ARGS: dict[str, Any] = {
    "ignore_split_file_extensions": True, "allow_substring_split_file": True,
    "check_stackability": True, "predict_dataset_bands": None, "predict_output_bands": None,
}

#: Top-level LightningCLI keys copied unchanged.
TOP_LEVEL_COPIED = ("seed_everything", "trainer", "optimizer", "lr_scheduler", "ckpt_path",
                    "return_predictions")

_HLS = {"COASTAL_AEROSOL", "BLUE", "GREEN", "RED", "RED_EDGE_1", "RED_EDGE_2", "RED_EDGE_3",
        "NIR_BROAD", "NIR_NARROW", "SWIR_1", "SWIR_2", "WATER_VAPOR", "CIRRUS",
        "THERMAL_INFRARED_1", "THERMAL_INFRARED_2"}


# --------------------------------------------------------------------------- report


@dataclass
class Conversion:
    """The converted config and what could not be mapped, or was mapped with a difference.

    Attributes:
        config: The geofm config (a plain dict, ready for ``yaml.safe_dump``).
        unmapped: One line per TerraTorch key or value with no geofm equivalent (not in
            ``config``).
        notes: One line per mapping that changes behaviour or fills in a TerraTorch
            default.
        source: Where the TerraTorch config came from (for messages).
    """

    config: dict[str, Any]
    unmapped: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    source: str = "<config>"


class _Report:
    def __init__(self) -> None:
        self.unmapped: list[str] = []
        self.notes: list[str] = []

    def drop(self, path: str, value: Any, why: str) -> None:
        self.unmapped.append(f"{path}: {_short(value)} ({why})")

    def note(self, path: str, text: str) -> None:
        self.notes.append(f"{path}: {text}")


def _short(value: Any) -> str:
    text = str(yaml.safe_dump(value, default_flow_style=True, width=10_000)).strip()
    text = text.removesuffix("...").strip()
    return text if len(text) <= 120 else text[:117] + "..."


def _class_name(class_path: Any) -> str:
    return str(class_path).rpartition(".")[2] if class_path else ""


def _is_terratorch_path(class_path: Any) -> bool:
    return isinstance(class_path, str) and class_path.startswith("terratorch.")


# --------------------------------------------------------------------------- names


def _prefixed(kwargs: dict[str, Any], prefix: str) -> dict[str, Any]:
    """Pop the keys of ``kwargs`` starting with ``prefix`` (TerraTorch's extract_prefix_keys)."""
    found = {k[len(prefix):]: kwargs.pop(k) for k in list(kwargs) if k.startswith(prefix)}
    return found


def _strip_source(name: str, source: str) -> str:
    return name[len(source) + 1:] if name.startswith(source + "_") else name


def map_backbone(name: str) -> tuple[str, str, dict[str, int]]:
    """Map a TerraTorch backbone name to ``(geofm name, family, architecture overrides)``.

    ``family`` is ``prithvi``, ``timm`` or ``unknown`` (then the name is returned
    unchanged).
    """
    bare = _strip_source(name, "terratorch")
    if bare in PRITHVI_BACKBONES:
        return f"prithvi:{PRITHVI_BACKBONES[bare]}", "prithvi", {}
    if bare in PRITHVI_SUBSTITUTES:
        variant, overrides = PRITHVI_SUBSTITUTES[bare]
        return f"prithvi:{variant}", "prithvi", dict(overrides)
    if name.startswith("timm_"):
        return f"timm:{name[5:]}", "timm", {}
    if name.startswith("terratorch_") or bare.lower().startswith(TERRATORCH_ONLY_BACKBONES):
        return name, "unknown", {}
    if re.fullmatch(r"[a-z0-9_.\-]+", name):
        return f"timm:{name}", "timm_bare", {}
    return name, "unknown", {}


def map_decoder(name: str) -> str | None:
    """The geofm decoder name of a TerraTorch decoder name, or None."""
    bare = _strip_source(name, "terratorch")
    if bare in DECODERS:
        return DECODERS[bare]
    if name.startswith("smp_") and name[4:] in SMP_DECODERS:
        return SMP_DECODERS[name[4:]]
    return None


def _activation(value: Any) -> str | None:
    if not isinstance(value, str):
        return None
    key = value.rpartition(".")[2].lower().replace("_", "")
    return ACTIVATIONS.get(key)


# --------------------------------------------------------------------------- model


class _ModelConverter:
    """Converts TerraTorch model_args to ``geofm:encoder_decoder`` model_args."""

    def __init__(self, task: str, report: _Report, path: str) -> None:
        self.task = task
        self.report = report
        self.path = path
        self.scale_modules = False

    def convert(self, args: dict[str, Any], legacy: bool,
                aux_heads: Any = None) -> dict[str, Any]:
        args = copy.deepcopy(args)
        rep, path = self.report, self.path
        out: dict[str, Any] = {}
        backbone = args.pop("backbone", None)
        decoder = args.pop("decoder", None)
        necks = args.pop("necks", None)
        aux = args.pop("aux_decoders", None)
        if aux_heads is not None:
            aux = [*(aux or []), *aux_heads]
        bk = dict(args.pop("backbone_kwargs", None) or {})
        dk = dict(args.pop("decoder_kwargs", None) or {})
        hk = dict(args.pop("head_kwargs", None) or {})
        bk.update(_prefixed(args, "backbone_"))
        dk.update(_prefixed(args, "decoder_"))
        hk.update(_prefixed(args, "head_"))
        if legacy:
            self._legacy_args(args, bk)
        num_classes = args.pop("num_classes", None)
        rescale = args.pop("rescale", None)
        for key in list(args):
            why = ("PEFT is not supported by geofm:encoder_decoder" if key == "peft_config"
                   else "no geofm:encoder_decoder argument of that name")
            rep.drop(f"{path}.{key}", args.pop(key), why)

        if not isinstance(backbone, str):
            rep.drop(f"{path}.backbone", backbone, "only backbone names can be converted")
            out["backbone"] = backbone
            family, bkw, variant = "unknown", bk, None
        else:
            out["backbone"], family, overrides = map_backbone(backbone)
            variant = out["backbone"].partition(":")[2] if family == "prithvi" else None
            if family == "prithvi" and (overrides or backbone != variant):
                if overrides:
                    rep.note(f"{path}.backbone", (
                        f"TerraTorch's {backbone} is written as {out['backbone']} with "
                        f"{overrides} (same layout; geofm registers no {backbone})"))
                for key, value in overrides.items():
                    bk.setdefault(key, value)
            bkw = self._backbone_kwargs(family, variant, bk)
            if family == "timm_bare":
                rep.note(f"{path}.backbone", (
                    f"{backbone!r} is not a TerraTorch backbone geofm knows; written as the "
                    f"timm model {out['backbone']} (TerraTorch also falls back to timm)"))
            elif family == "unknown":
                rep.drop(f"{path}.backbone", backbone,
                         "a TerraTorch-only backbone with no geofm equivalent; kept as is, "
                         "replace it with a geofm backbone (`geofm list backbone`)")
        if bkw:
            out["backbone_kwargs"] = bkw

        dec_name = None
        if decoder is not None:
            if not isinstance(decoder, str):
                rep.drop(f"{path}.decoder", decoder, "only decoder names can be converted")
                out["decoder"] = decoder
            else:
                dec_name = map_decoder(decoder)
                if dec_name is None:
                    rep.drop(f"{path}.decoder", decoder,
                             "no geofm decoder of that name; kept as is, replace it "
                             "(`geofm list decoder`)")
                    out["decoder"] = decoder
                else:
                    out["decoder"] = dec_name
                    self._decoder_note(decoder, dec_name, f"{path}.decoder")
        dkw = self._decoder_kwargs(decoder, dec_name, dk, f"{path}.decoder_")
        if dkw:
            out["decoder_kwargs"] = dkw

        neck_list = self._necks(necks, out)
        if family == "prithvi" and not necks:
            neck_list = self._implicit_necks(variant, bkw, dec_name, legacy)
        if self.scale_modules:
            neck_list.append({"name": "geofm:learned_interpolate_to_pyramidal"})
        widths = (dkw or {}).get("decoder_channels")
        if isinstance(decoder, str) and decoder.startswith("smp_") and isinstance(widths, list) \
                and dec_name in ("smp:unet", "smp:unetplusplus", "smp:manet"):
            # smp builds these with encoder_depth = levels - 1 and skips the first level;
            # geofm's smp decoders use every level they get, so keep the last len(widths).
            indices = list(range(-len(widths), 0))
            neck_list.append({"name": "geofm:select_indices", "indices": indices})
            rep.note(f"{path}.necks", (
                f"smp skips the first level TerraTorch passes to {decoder}; written as "
                f"select_indices {indices} (one level per decoder width)"))
        if neck_list:
            out["necks"] = neck_list

        hkw = self._head_kwargs(hk, f"{path}.head_")
        if hkw:
            out["head_kwargs"] = hkw
        if aux:
            aux_list = self._aux(aux)
            if aux_list:
                out["aux_decoders"] = aux_list
        if num_classes is not None:
            if self.task == "regression":
                rep.note(f"{path}.num_classes", (
                    f"{num_classes} dropped: geofm regression predicts one value per pixel"))
            else:
                out["num_classes"] = num_classes
        if rescale is not None:
            if rescale is False and out.get("decoder") == "geofm:fcn":
                out["rescale"] = True
                rep.note(f"{path}.rescale", "false written as true: TerraTorch's FCNDecoder "
                         "upsamples to the input size itself, geofm:fcn does not")
            else:
                out["rescale"] = rescale
        return out

    # -- SMPModelFactory and TimmModelFactory: whole smp / timm models, written as parts
    def convert_smp(self, args: dict[str, Any], aux_heads: Any = None) -> dict[str, Any]:
        """``SMPModelFactory`` args: an smp encoder and an smp decoder by name."""
        args = copy.deepcopy(args)
        rep, path = self.report, self.path
        out: dict[str, Any] = {}
        backbone = args.pop("backbone", None)
        model = args.pop("model", None)
        bands = args.pop("bands", None)
        in_channels = args.pop("in_channels", None)
        if in_channels is None and isinstance(bands, list):
            in_channels = len(bands)
        if bands is not None:
            rep.note(f"{path}.bands", "smp encoders take no band names; written as the "
                     "backbone's in_channels")
        pretrained = args.pop("pretrained", True)
        bk = _prefixed(args, "backbone_")
        smp_args = _prefixed(args, "smp_")
        aux = _prefixed(args, "aux_")
        if aux:
            rep.drop(f"{path}.aux_*", aux, "smp's classification head on the encoder has no "
                     "geofm counterpart")
        if aux_heads is not None:
            rep.drop(f"{self.path}.aux_heads", aux_heads, "not used by SMPModelFactory")
        out["backbone"] = f"smp:{backbone}" if isinstance(backbone, str) else backbone
        bkw: dict[str, Any] = {}
        if in_channels is not None:
            bkw["in_channels"] = in_channels
        if pretrained is True:
            bkw["weights"] = "imagenet"
        elif isinstance(pretrained, str):
            bkw["weights"] = pretrained
        if "encoder_depth" in smp_args:
            bkw["depth"] = smp_args.pop("encoder_depth")
        if "encoder_output_stride" in smp_args:
            bkw["output_stride"] = smp_args.pop("encoder_output_stride")
        for key, value in bk.items():
            if key == "output_stride":
                bkw[key] = value
            else:
                rep.drop(f"{path}.backbone_{key}", value,
                         "geofm's smp backbones take in_channels, depth, weights and "
                         "output_stride")
        out["backbone_kwargs"] = bkw
        decoder = SMP_DECODERS.get(model) if isinstance(model, str) else None
        if decoder is None:
            rep.drop(f"{path}.model", model, "no geofm smp decoder of that name")
            out["decoder"] = model
        else:
            out["decoder"] = decoder
            dkw: dict[str, Any] = {}
            for key, value in smp_args.items():
                if key in SMP_DECODER_ARGS[decoder]:
                    new = SMP_DECODER_ARGS[decoder][key]
                    if new == "use_norm" and isinstance(value, bool):
                        value = "batchnorm" if value else "identity"
                    dkw[new] = value
                elif key == "upsampling":
                    rep.note(f"{path}.smp_upsampling", f"{value} dropped: geofm rescales "
                             "outputs to the input size")
                else:
                    rep.drop(f"{path}.smp_{key}", value,
                             f"{decoder} takes no such argument")
            if dkw:
                out["decoder_kwargs"] = dkw
            rep.note(f"{path}.model", (
                f"smp {model} written as the backbone {out['backbone']} and the decoder "
                f"{decoder}; geofm's head (a 1x1 conv) replaces smp's segmentation head"))
        if self.task == "regression" and args.pop("regression_relu", False):
            out["head_kwargs"] = {"final_act": "relu"}
        num_classes = args.pop("num_classes", None)
        if num_classes is not None and self.task != "regression":
            out["num_classes"] = num_classes
        for key in list(args):
            rep.drop(f"{path}.{key}", args.pop(key), "SMPModelFactory argument geofm has no "
                     "counterpart for")
        return out

    def convert_timm(self, args: dict[str, Any]) -> dict[str, Any]:
        """``TimmModelFactory`` args: a whole timm classifier, written as backbone + head."""
        args = copy.deepcopy(args)
        rep, path = self.report, self.path
        out: dict[str, Any] = {}
        backbone = args.pop("backbone", None)
        out["backbone"] = f"timm:{backbone}" if isinstance(backbone, str) else backbone
        bkw: dict[str, Any] = {}
        pretrained = args.pop("pretrained", True)
        if isinstance(pretrained, bool):
            bkw["pretrained"] = pretrained
        else:
            bkw["pretrained"] = False
            rep.drop(f"{path}.pretrained", pretrained, "weights by name or path are not "
                     "loaded by geofm's timm backbone; use checkpoint_path with a timm file")
        if "in_channels" in args:
            bkw["in_chans"] = args.pop("in_channels")
        extra = _prefixed(args, "backbone_")
        if extra:
            bkw["model_kwargs"] = extra
        out["backbone_kwargs"] = bkw
        if "num_classes" in args:
            out["num_classes"] = args.pop("num_classes")
        rep.note(f"{path}.backbone", (
            f"the timm classifier {backbone} written as the feature backbone "
            f"{out['backbone']}, average pooling of its last level and geofm's "
            "classification head (in place of timm's own classifier)"))
        for key in list(args):
            rep.drop(f"{path}.{key}", args.pop(key), "TimmModelFactory argument geofm has no "
                     "counterpart for")
        return out

    # -- legacy PrithviModelFactory
    def _legacy_args(self, args: dict[str, Any], bk: dict[str, Any]) -> None:
        path, rep = self.path, self.report
        if "bands" in args:
            bk["bands"] = args.pop("bands")
        in_channels = args.pop("in_channels", None)
        if in_channels is not None:
            rep.note(f"{path}.in_channels", (
                f"{in_channels} dropped: the Prithvi backbone takes its input channels from "
                "its bands"))
        bk["pretrained"] = args.pop("pretrained", True)  # the legacy factory's default
        bk["num_frames"] = args.pop("num_frames", 1)
        prep = args.pop("prepare_features_for_image_model", None)
        if prep is not None:
            rep.drop(f"{path}.prepare_features_for_image_model", prep,
                     "TerraTorch itself no longer supports it; express it as necks")

    # -- backbone
    def _backbone_kwargs(self, family: str, variant: str | None,
                         bk: dict[str, Any]) -> dict[str, Any]:
        rep, path = self.report, f"{self.path}.backbone_"
        out: dict[str, Any] = {}
        if family == "prithvi":
            assert variant is not None
            bands = bk.get("bands")
            for key in list(bk):
                value = bk.pop(key)
                if key in PRITHVI_ARGS:
                    out[PRITHVI_ARGS[key]] = value
                elif key in ("in_chans", "in_channels"):
                    if bands is not None and value != len(bands):
                        rep.drop(f"{path}{key}", value,
                                 f"differs from the {len(bands)} bands; geofm takes the "
                                 "channels from bands")
                    else:
                        rep.note(f"{path}{key}", f"{value} dropped: the Prithvi backbone "
                                 "takes its input channels from its bands")
                elif key == "patch_size" and _patch(value) == PRITHVI_PATCH[variant]:
                    rep.note(f"{path}{key}", f"{value} dropped: the variant's own patch size")
                elif key == "coords_encoding":
                    own = ["location", "time"] if variant.endswith("_tl") else []
                    if sorted(value or []) == own:
                        rep.note(f"{path}{key}", f"{value} dropped: the variant's own encoding")
                    else:
                        rep.drop(f"{path}{key}", value, "geofm's *_tl variants always encode "
                                 "time and location (when the batch has them), the others "
                                 "never; pick the variant instead")
                else:
                    rep.drop(f"{path}{key}", value,
                             f"prithvi:{variant} takes no such argument (`geofm describe "
                             f"backbone prithvi:{variant}`)")
            if out.get("ckpt_path") is not None and not out.get("pretrained", False):
                rep.note(f"{path}ckpt_path", (
                    f"{out.pop('ckpt_path')} dropped: TerraTorch ignores ckpt_path unless "
                    "pretrained is true (geofm would load it)"))
            return out
        if family in ("timm", "timm_bare"):
            extra: dict[str, Any] = {}
            bands = bk.pop("bands", None)
            for key in list(bk):
                value = bk.pop(key)
                if key in ("pretrained", "in_chans", "out_indices", "checkpoint_path"):
                    out[key] = value
                elif key == "features_only":
                    rep.note(f"{path}{key}", f"{value} dropped: geofm timm backbones always "
                             "return feature maps")
                elif key == "model_kwargs" and isinstance(value, dict):
                    extra.update(value)
                else:
                    extra[key] = value
            if bands is not None:
                if "in_chans" not in out:
                    out["in_chans"] = len(bands)
                rep.note(f"{path}bands", (
                    f"a timm backbone takes no band names; written as in_chans: "
                    f"{out['in_chans']}"))
            if extra:
                out["model_kwargs"] = extra
                rep.note(f"{path}*", (
                    f"{sorted(extra)} passed to timm.create_model through model_kwargs"))
            return out
        return dict(bk)

    def _implicit_necks(self, variant: str | None, bkw: dict[str, Any], dec_name: str | None,
                        legacy: bool) -> list[dict[str, Any]]:
        """The neck TerraTorch applies implicitly to Prithvi tokens, written out."""
        assert variant is not None
        frames = int(bkw.get("num_frames", 1) or 1)
        reshape: dict[str, Any] = {"name": "geofm:reshape_tokens_to_image"}
        if frames > 1:
            reshape["effective_time_dim"] = frames
        necks = [reshape]
        where = "PrithviModelFactory" if legacy else "a Prithvi backbone without necks"
        self.report.note(f"{self.path}.necks", (
            f"{where}: TerraTorch reshapes the tokens to images implicitly; written as the "
            "neck geofm:reshape_tokens_to_image"))
        if dec_name == "upernet:upernet":
            depth = int(bkw.get("depth") or PRITHVI_DEPTH[variant])
            out_indices = bkw.get("out_indices")
            count = len(out_indices) if out_indices else depth
            if count != 4:
                indices = [(i + 1) * count // 4 - 1 for i in range(4)]
                necks.insert(0, {"name": "geofm:select_indices", "indices": indices})
                self.report.note(f"{self.path}.necks", (
                    f"TerraTorch's UperNetDecoder took all {count} block outputs; geofm's "
                    f"upernet:upernet takes 4 levels, so select_indices {indices} is added"))
        return necks

    # -- necks
    def _necks(self, necks: Any, out: dict[str, Any]) -> list[dict[str, Any]]:
        if not necks:
            return []
        rep = self.report
        if not isinstance(necks, list):
            rep.drop(f"{self.path}.necks", necks, "necks must be a list of {name: ...}")
            return []
        result: list[dict[str, Any]] = []
        for i, neck in enumerate(necks):
            where = f"{self.path}.necks[{i}]"
            if not isinstance(neck, dict) or "name" not in neck:
                rep.drop(where, neck, "a neck is a mapping with a name")
                continue
            kwargs = dict(neck)
            name = _strip_source(str(kwargs.pop("name")), "terratorch")
            if name == "AggregateTokens":
                result.extend(self._aggregate_tokens(kwargs, where, out))
                continue
            if name not in NECKS:
                rep.drop(where, neck, "no geofm neck of that name (`geofm list neck`)")
                continue
            geofm_name = NECKS[name]
            allowed = KNOWN_KWARGS[("neck", geofm_name)]
            entry: dict[str, Any] = {"name": geofm_name}
            for key, value in kwargs.items():
                if key in allowed:
                    entry[key] = value
                elif key == "h" and value is None:
                    continue
                else:
                    rep.drop(f"{where}.{key}", value, f"{geofm_name} takes no such argument; "
                             "geofm finds the token grid from the image size")
            result.append(entry)
        return result

    def _aggregate_tokens(self, kwargs: dict[str, Any], where: str,
                          out: dict[str, Any]) -> list[dict[str, Any]]:
        pooling = kwargs.pop("pooling", "mean")
        index = kwargs.pop("index", -1)
        for key, value in kwargs.items():
            self.report.drop(f"{where}.{key}", value, "AggregateTokens takes no such argument")
        mapped = {"mean": "avg", "max": "max", "CLS": "cls"}.get(pooling) \
            if isinstance(pooling, str) else None
        if self.task not in ("classification", "multilabel") or mapped is None:
            self.report.drop(where, {"name": "AggregateTokens", "pooling": pooling},
                             "geofm pools tokens only in classification models, with "
                             "pooling avg, max or cls")
            return []
        out["pooling"] = mapped
        self.report.note(where, (
            f"AggregateTokens (pooling {pooling}, index {index}) written as select_indices "
            f"[{index}] and the classification model's pooling: {mapped}"))
        return [{"name": "geofm:select_indices", "indices": [index]}]

    # -- decoder
    def _decoder_note(self, tt_name: str, geofm_name: str, where: str) -> None:
        bare = _strip_source(tt_name, "terratorch")
        notes = {
            "FCNDecoder": "geofm:fcn is MMSeg's FCN head (conv blocks, no upsampling), not "
                          "TerraTorch's transposed-conv FCNDecoder; the output is rescaled to "
                          "the input size",
            "LinearDecoder": "TerraTorch's LinearDecoder includes the class layer; geofm adds "
                             "its segmentation head after geofm:linear",
            "MLPDecoder": "geofm:mlp is a per-pixel MLP on one level; TerraTorch's MLPDecoder "
                          "concatenates all inputs",
            "UNetDecoder": "written as smp:unet (the smp U-Net decoder TerraTorch's "
                           "UNetDecoder wraps)",
        }
        if bare in notes:
            self.report.note(where, notes[bare])
        elif geofm_name.startswith("smp:") and tt_name.startswith("smp_"):
            self.report.note(where, (
                f"{tt_name} written as {geofm_name}: geofm's smp decoders take the decoder "
                "part of the smp model, on the backbone's levels (finest first)"))

    def _decoder_kwargs(self, tt_name: Any, geofm_name: str | None, dk: dict[str, Any],
                        where: str) -> dict[str, Any]:
        if geofm_name is None:
            return dict(dk)
        rep = self.report
        out: dict[str, Any] = {}
        if isinstance(tt_name, str) and tt_name.startswith("smp_"):
            renames = SMP_DECODER_ARGS[geofm_name]
        else:
            renames = DECODER_ARGS[geofm_name]
        for key, value in dk.items():
            if key in renames:
                new = renames[key]
                if new == "activation":
                    act = _activation(value)
                    if act is None:
                        rep.drop(f"{where}{key}", value, "no geofm activation of that name")
                        continue
                    value = act
                if new == "use_norm" and isinstance(value, bool):
                    value = "batchnorm" if value else "identity"
                out[new] = value
            elif geofm_name == "upernet:upernet" and key == "scale_modules":
                if value:
                    self.scale_modules = True
                    rep.note(f"{where}{key}", "true written as the neck "
                             "geofm:learned_interpolate_to_pyramidal (the same layers)")
                else:
                    rep.note(f"{where}{key}", "false dropped (the default)")
            elif key == "num_classes":
                rep.note(f"{where}{key}", "dropped: geofm's head takes num_classes")
            else:
                rep.drop(f"{where}{key}", value,
                         f"{geofm_name} takes no such argument (`geofm describe decoder "
                         f"{geofm_name}`)")
        if geofm_name == "upernet:upernet":
            # TerraTorch's UperNetDecoder defaults to align_corners=True, geofm's to False
            out.setdefault("align_corners", True)
        return out

    # -- head
    def _head_kwargs(self, hk: dict[str, Any], where: str) -> dict[str, Any]:
        renames = HEAD_ARGS[self.task]
        rep = self.report
        out: dict[str, Any] = {}
        for key, value in hk.items():
            if key in renames:
                if key == "final_act":
                    if value is None:
                        continue
                    act = _activation(value)
                    if act is None:
                        rep.drop(f"{where}{key}", value, "no geofm activation of that name")
                        continue
                    value = act
                out[renames[key]] = value
            elif key == "batch_norm" and value is True:
                rep.note(f"{where}{key}", "true dropped (geofm's head blocks always use "
                         "batch norm)")
            elif key == "linear_after_pool":
                rep.note(f"{where}{key}", (
                    f"{value} dropped: geofm pools first, then applies the head's layers"))
            else:
                rep.drop(f"{where}{key}", value, "the geofm head takes no such argument")
        return out

    # -- auxiliary heads
    def _aux(self, aux: Any) -> list[dict[str, Any]]:
        rep = self.report
        if not isinstance(aux, list):
            rep.drop(f"{self.path}.aux_decoders", aux, "expected a list")
            return []
        result = []
        for i, item in enumerate(aux):
            where = f"{self.path}.aux_decoders[{i}]"
            spec = item.get("init_args", item) if isinstance(item, dict) else None
            if not isinstance(spec, dict) or "name" not in spec or "decoder" not in spec:
                rep.drop(where, item, "an auxiliary head needs a name and a decoder")
                continue
            dec = spec["decoder"]
            geofm_name = map_decoder(dec) if isinstance(dec, str) else None
            if geofm_name is None:
                rep.drop(where, item, "no geofm decoder of that name")
                continue
            args = dict(spec.get("decoder_args") or {})
            dk = _prefixed(args, "decoder_")
            hk = _prefixed(args, "head_")
            for key, value in args.items():
                rep.drop(f"{where}.decoder_args.{key}", value, "not a decoder_ or head_ key")
            entry: dict[str, Any] = {"name": spec["name"], "decoder": geofm_name}
            main_scale_modules = self.scale_modules
            dkw = self._decoder_kwargs(dec, geofm_name, dk, f"{where}.decoder_args.decoder_")
            if self.scale_modules != main_scale_modules:
                self.scale_modules = main_scale_modules
                rep.drop(f"{where}.decoder_args.decoder_scale_modules", True,
                         "geofm's auxiliary heads share the main necks; add "
                         "geofm:learned_interpolate_to_pyramidal to the necks instead")
            if dkw:
                entry["decoder_kwargs"] = dkw
            hkw = self._head_kwargs(hk, f"{where}.decoder_args.head_")
            if hkw:
                entry["head_kwargs"] = hkw
            result.append(entry)
        return result


def _patch(value: Any) -> int | None:
    if isinstance(value, int):
        return value
    if isinstance(value, list | tuple) and value and all(isinstance(v, int) for v in value):
        return int(value[-1]) if len(set(value[-2:])) == 1 else None
    return None


# --------------------------------------------------------------------------- task


def _convert_model(model: dict[str, Any], report: _Report,
                   cli_optimizer: bool = False) -> tuple[dict[str, Any], str | None]:
    class_path = model.get("class_path")
    name = _class_name(class_path)
    if name not in TASKS or not (_is_terratorch_path(class_path) or class_path == name):
        report.drop("model.class_path", class_path,
                    "not a TerraTorch task geofm has; the model section is kept as is")
        return copy.deepcopy(model), None
    geofm_class, task = TASKS[name]
    args = dict(model.get("init_args") or {})
    out: dict[str, Any] = {}
    base = "model.init_args"

    factory = args.pop("model_factory", None)
    model_args = args.pop("model_args", None) or {}
    aux_heads = args.pop("aux_heads", None)
    factory_name = _class_name(factory)
    converter = _ModelConverter(task, report, f"{base}.model_args")
    if factory_name in ENCODER_DECODER_FACTORIES + LEGACY_PRITHVI_FACTORIES:
        out["model_factory"] = "geofm:encoder_decoder"
        out["model_args"] = converter.convert(
            model_args, legacy=factory_name in LEGACY_PRITHVI_FACTORIES, aux_heads=aux_heads)
    elif factory_name == "SMPModelFactory" and task in ("segmentation", "regression"):
        out["model_factory"] = "geofm:encoder_decoder"
        out["model_args"] = converter.convert_smp(model_args, aux_heads)
    elif factory_name == "TimmModelFactory" and task in ("classification", "multilabel"):
        out["model_factory"] = "geofm:encoder_decoder"
        out["model_args"] = converter.convert_timm(model_args)
        if aux_heads is not None:
            report.drop(f"{base}.aux_heads", aux_heads, "not used by TimmModelFactory")
    elif factory is None and "model" in args:
        out["model"] = args.pop("model")
        report.note(f"{base}.model", "a ready module, copied; geofm calls it as "
                    "model(image, **metadata) and expects a ModelOutput or a tensor")
    else:
        report.drop(f"{base}.model_factory", factory,
                    "only EncoderDecoderFactory, PrithviModelFactory, SMPModelFactory "
                    "(segmentation) and TimmModelFactory (classification) are converted; "
                    "model_args are kept as they are")
        out["model_factory"] = factory
        out["model_args"] = model_args
        if aux_heads is not None:
            report.drop(f"{base}.aux_heads", aux_heads, "not converted with this factory")
    if "model" in args:
        report.drop(f"{base}.model", args.pop("model"), "given together with a model_factory")

    if "loss" in args:
        loss = _convert_loss(args.pop("loss"), task, report, f"{base}.loss")
        if loss is not None:
            out["loss"] = loss
    elif task == "multilabel":
        report.note(f"{base}.loss", "not given: TerraTorch's MultiLabelClassificationTask "
                    "defaults to 'ce', geofm's to 'bce'")
    for key in SAME_TASK_ARGS:
        if key in args:
            out[key] = args.pop(key)
    if task == "regression":
        for key in ("class_weights", "class_names"):
            if key in out:
                report.drop(f"{base}.{key}", out.pop(key), "does not apply to regression")
    optimizer = args.pop("optimizer", None)
    scheduler = args.pop("scheduler", None)
    if cli_optimizer:
        # Lightning's top-level optimizer / lr_scheduler replace the task's settings, in
        # TerraTorch and in geofm alike; only explicit task values are carried over.
        if optimizer:
            out["optimizer"] = _class_name(optimizer)
        if scheduler:
            out["scheduler"] = _class_name(scheduler)
    else:
        out["optimizer"] = _class_name(optimizer) if optimizer else "Adam"
        if optimizer is None:
            report.note(f"{base}.optimizer", "not given: TerraTorch uses Adam (geofm's "
                        "default is AdamW), written as Adam")
        out["scheduler"] = _class_name(scheduler) if scheduler else None
        if scheduler is None:
            report.note(f"{base}.scheduler", "not given: TerraTorch uses no scheduler "
                        "(geofm's default is ReduceLROnPlateau), written as null")
    hparams = out.get("scheduler_hparams")
    if isinstance(hparams, dict) and "interval" in hparams:
        hparams = dict(hparams)
        interval = hparams.pop("interval")
        out["scheduler_hparams"] = hparams
        if interval == "epoch":
            report.note(f"{base}.scheduler_hparams.interval", "epoch dropped (geofm steps "
                        "schedulers every epoch)")
        else:
            report.drop(f"{base}.scheduler_hparams.interval", interval,
                        "geofm steps schedulers every epoch")
    if "plot_on_val" in args:
        plot = args.pop("plot_on_val")
        out["plot_on_val"] = 10 if plot else 0
        if plot:
            report.note(f"{base}.plot_on_val", (
                f"{plot}: TerraTorch plots the first 10 validation batches every {int(plot)} "
                "epoch(s); geofm plots the first plot_on_val batches every validation epoch, "
                "written as 10"))
    if "tiled_inference_parameters" in args:
        tiled = args.pop("tiled_inference_parameters")
        if task in ("segmentation", "regression") and isinstance(tiled, dict):
            out["tiled_inference"] = _convert_tiling(tiled, report,
                                                     f"{base}.tiled_inference_parameters")
        elif tiled is not None:
            report.drop(f"{base}.tiled_inference_parameters", tiled,
                        "geofm tiles pixel-wise tasks only")
    for key, default in TASK_ONLY_ARGS.items():
        if key in args:
            value = args.pop(key)
            if value == default:
                report.note(f"{base}.{key}", f"{_short(value)} dropped (the TerraTorch "
                            "default; geofm has no such option)")
            else:
                report.drop(f"{base}.{key}", value, "geofm has no such option")
    for key in list(args):
        report.drop(f"{base}.{key}", args.pop(key), f"{geofm_class} has no such argument")
    return {"class_path": geofm_class, "init_args": out}, task


def _convert_loss(loss: Any, task: str, report: _Report, where: str) -> Any:
    table = LOSSES[task]
    if isinstance(loss, str):
        if loss in table:
            return table[loss]
        report.drop(where, loss, f"no geofm {task} loss of that name; geofm's default is used")
        return None
    if isinstance(loss, list | dict):
        weights = {n: 1.0 for n in loss} if isinstance(loss, list) else dict(loss)
        out = {}
        for name, weight in weights.items():
            if name in table:
                out[table[name]] = weight
            else:
                report.drop(f"{where}.{name}", weight, f"no geofm {task} loss of that name")
        return out or None
    report.drop(where, loss, "expected a loss name, list or mapping")
    return None


def _convert_tiling(tiled: dict[str, Any], report: _Report, where: str) -> dict[str, Any]:
    tiled = dict(tiled)
    crop = tiled.pop("crop", 224)
    stride = tiled.pop("stride", 192)
    h_crop, w_crop = tiled.pop("h_crop", None), tiled.pop("w_crop", None)
    h_stride, w_stride = tiled.pop("h_stride", None), tiled.pop("w_stride", None)
    if h_crop is not None or w_crop is not None:
        crop = h_crop if h_crop is not None else w_crop
        if None not in (h_crop, w_crop) and h_crop != w_crop:
            report.drop(f"{where}.w_crop", w_crop, f"geofm tiles are square; crop {crop} used")
    if h_stride is not None or w_stride is not None:
        stride = h_stride if h_stride is not None else w_stride
        if None not in (h_stride, w_stride) and h_stride != w_stride:
            report.drop(f"{where}.w_stride", w_stride,
                        f"geofm strides are equal in both directions; stride {stride} used")
    out: dict[str, Any] = {"crop": crop, "stride": stride}
    if "batch_size" in tiled:
        out["batch_size"] = tiled.pop("batch_size")
    blend = tiled.pop("blend_overlaps", True)
    average = tiled.pop("average_patches", True)
    out["blend"] = "ramp" if blend else "average"
    if not blend and not average:
        report.note(f"{where}.average_patches", "false: geofm always merges overlaps; "
                    "written as blend: average")
    for key in list(tiled):
        value = tiled.pop(key)
        if key == "verbose":
            report.note(f"{where}.verbose", f"{value} dropped (progress only)")
        else:
            report.drop(f"{where}.{key}", value, "geofm's tiled inference has no such option")
    report.note(where, "geofm tiles test and predict batches; TerraTorch tiles predict (and "
                "test only with tiled_inference_on_testing)")
    return out


# --------------------------------------------------------------------------- data


def _convert_data(data: dict[str, Any], task: str | None,
                  task_args: dict[str, Any], report: _Report) -> dict[str, Any]:
    class_path = data.get("class_path")
    name = _class_name(class_path)
    if name not in DATAMODULES or not (_is_terratorch_path(class_path) or class_path == name):
        report.drop("data.class_path", class_path,
                    "not a generic TerraTorch datamodule geofm can replace; the data section "
                    "is kept as is")
        return copy.deepcopy(data)
    geofm_class, family = DATAMODULES[name]
    if task == "multilabel" and family == "classification":
        geofm_class = "GeoTiffMultiLabelDataModule"
        report.note("data.class_path", "multi-label task: written as GeoTiffMultiLabelDataModule"
                    " (it reads labels from CSV files given as {stage}_label_data_root)")
    args = dict(data.get("init_args") or {})
    base = "data.init_args"
    out: dict[str, Any] = {}
    for key in SAME_DATA_ARGS[family]:
        if key in args:
            out[key] = args.pop(key)
    if "img_grep" in args:
        out["img_pattern"] = args.pop("img_grep")
    else:
        report.note(f"{base}.img_grep", "not given: TerraTorch globs '*', geofm's img_pattern "
                    "defaults to '*.tif'")
    if family != "classification":
        if "label_grep" in args:
            out["label_pattern"] = args.pop("label_grep")
        else:
            report.note(f"{base}.label_grep", "not given: TerraTorch globs '*', geofm's "
                        "label_pattern defaults to '*.tif'")
    elif "no_data_replace" not in out:
        out["no_data_replace"] = 0
        report.note(f"{base}.no_data_replace", "not given: TerraTorch's classification "
                    "datamodule replaces nodata with 0, written as 0")
    _convert_bands(args, out, report, base)
    if family == "segmentation":
        ignore = task_args.get("ignore_index")
        if ignore is not None:
            out["ignore_index"] = ignore
        elif out.get("reduce_zero_label"):
            out["ignore_index"] = -1
            report.note(f"{base}.reduce_zero_label", "TerraTorch turns label 0 into -1; "
                        "written with ignore_index: -1")
    elif args.get("reduce_zero_label"):
        report.drop(f"{base}.reduce_zero_label", args.pop("reduce_zero_label"),
                    f"geofm's {family} datamodule has no such option")
    else:
        args.pop("reduce_zero_label", None)
    if "no_label_replace" in out and family == "segmentation" and \
            out.get("ignore_index") is None and out["no_label_replace"] is not None:
        report.note(f"{base}.no_label_replace", (
            f"{out['no_label_replace']}: labels of that value are only ignored where the "
            "task sets ignore_index to it"))
    train_aug = _convert_transforms(args.pop("train_transform", None), report,
                                    f"{base}.train_transform")
    if train_aug:
        out["train_augmentations"] = train_aug
    val_tf = args.pop("val_transform", None)
    test_tf = args.pop("test_transform", None)
    val_aug = _convert_transforms(val_tf, report, f"{base}.val_transform")
    if val_aug:
        out["val_augmentations"] = val_aug
    test_report = _Report()
    test_aug = _convert_transforms(test_tf, test_report, f"{base}.test_transform")
    if test_aug != val_aug:
        report.drop(f"{base}.test_transform", test_tf, "geofm applies val_augmentations to "
                    "validation and test alike")
    else:
        report.unmapped.extend(test_report.unmapped)
    for key, default in DATA_ONLY_ARGS.items():
        if key in args:
            value = args.pop(key)
            if value == default:
                report.note(f"{base}.{key}", f"{_short(value)} dropped (the TerraTorch default;"
                            " geofm has no such option)")
            else:
                report.drop(f"{base}.{key}", value, "geofm has no such option")
    for key in list(args):
        report.drop(f"{base}.{key}", args.pop(key), f"{geofm_class} has no such argument")
    return {"class_path": geofm_class, "init_args": out}


def _convert_bands(args: dict[str, Any], out: dict[str, Any], report: _Report,
                   base: str) -> None:
    dataset = args.pop("dataset_bands", None)
    output = args.pop("output_bands", None)
    if dataset is None:
        if output is not None:
            out["output_bands"] = output
        return
    names_ok = all(isinstance(b, str) and b.upper() in _HLS for b in dataset)
    if names_ok and (output is None or all(isinstance(b, str) for b in output)):
        out["dataset_bands"] = dataset
        if output is not None:
            out["output_bands"] = output
        return
    # TerraTorch matches output bands by value in dataset_bands (ints, [a, b] ranges and
    # custom names included); geofm's dataset_bands takes HLS names only, so write positions.
    dataset = _expand_bands(dataset)
    wanted = _expand_bands(output) if output is not None else list(dataset)
    positions = []
    for band in wanted:
        if band in dataset:
            positions.append(dataset.index(band))
        else:
            report.drop(f"{base}.output_bands", band, "not in dataset_bands")
    out["output_bands"] = positions
    report.note(f"{base}.dataset_bands", (
        f"{_short(dataset)} holds entries geofm's dataset_bands does not take (HLS names "
        f"only); output_bands written as 0-based positions {positions}"))


def _expand_bands(bands: Sequence[Any]) -> list[Any]:
    out: list[Any] = []
    for band in bands:
        if isinstance(band, list | tuple) and len(band) == 2 and all(
                isinstance(v, int) for v in band):
            out.extend(range(band[0], band[1] + 1))
        else:
            out.append(band)
    return out


def _size(args: dict[str, Any]) -> int | list[int] | None:
    size = args.pop("size", None)
    height, width = args.pop("height", None), args.pop("width", None)
    if size is not None:
        if isinstance(size, int):
            return size
        height, width = size[0], size[1]
    if height is None or width is None:
        return None
    return int(height) if height == width else [int(height), int(width)]


def _prob(args: dict[str, Any], default: float = 0.5) -> float:
    return float(args.pop("p", default))


def _flip(name: str) -> Callable[[dict[str, Any]], list[Any]]:
    def convert(args: dict[str, Any]) -> list[Any]:
        p = _prob(args)
        return [name if p == 0.5 else {name: p}]
    return convert


def _rot90(args: dict[str, Any]) -> list[Any]:
    p = _prob(args)
    return ["rot90" if p == 1.0 else {"rot90": p}]


def _flip_any(args: dict[str, Any]) -> list[Any]:
    p = _prob(args)
    return ["hflip", "vflip"] if p == 0.5 else [{"hflip": p}, {"vflip": p}]


def _d4(args: dict[str, Any]) -> list[Any]:
    p = _prob(args, 1.0)
    if p != 1.0:
        raise ValueError("p below 1")
    return ["hflip", "rot90"]


def _sized(name: str) -> Callable[[dict[str, Any]], list[Any]]:
    def convert(args: dict[str, Any]) -> list[Any]:
        size = _size(args)
        if size is None:
            raise ValueError("needs height and width (or size)")
        p = _prob(args, 1.0)
        if p != 1.0:
            raise ValueError("p below 1")
        return [{name: size}]
    return convert


def _random_resized_crop(args: dict[str, Any]) -> list[Any]:
    size = _size(args)
    if size is None:
        raise ValueError("needs size")
    spec: dict[str, Any] = {"size": size}
    for key in ("scale", "ratio"):
        if key in args:
            spec[key] = list(args.pop(key))
    _prob(args, 1.0)
    return [{"random_resized_crop": spec}]


#: albumentations transform names -> converters to geofm augmentation entries.
TRANSFORMS: dict[str, Callable[[dict[str, Any]], list[Any]]] = {
    "HorizontalFlip": _flip("hflip"),
    "VerticalFlip": _flip("vflip"),
    "RandomRotate90": _rot90,
    "D4": _d4,
    "Flip": _flip_any,
    "RandomCrop": _sized("random_crop"),
    "CenterCrop": _sized("center_crop"),
    "Resize": _sized("resize"),
    "RandomResizedCrop": _random_resized_crop,
}
#: Transforms that geofm's batch pipeline makes unnecessary.
NO_OP_TRANSFORMS = ("ToTensorV2", "FlattenTemporalIntoChannels", "UnflattenTemporalFromChannels")


def _convert_transforms(transforms: Any, report: _Report, where: str) -> list[Any]:
    if transforms is None:
        return []
    if not isinstance(transforms, list):
        report.drop(where, transforms, "expected a list of albumentations transforms")
        return []
    out: list[Any] = []
    for i, item in enumerate(transforms):
        spot = f"{where}[{i}]"
        class_path = item.get("class_path") if isinstance(item, dict) else item
        name = _class_name(class_path)
        args = dict((item.get("init_args") or {}) if isinstance(item, dict) else {})
        if name in NO_OP_TRANSFORMS:
            report.note(spot, f"{name} dropped (geofm batches are tensors already; frames "
                        "are folded for augmentation automatically)")
            continue
        converter = TRANSFORMS.get(name)
        if converter is None:
            report.drop(spot, item, "no geofm augmentation for it (geofm has hflip, vflip, "
                        "rot90, random_crop, random_resized_crop, resize, center_crop)")
            continue
        args.pop("always_apply", None)
        try:
            entries = converter(args)
        except (ValueError, TypeError, IndexError) as exc:
            report.drop(spot, item, f"cannot be converted: {exc}")
            continue
        if args:
            report.drop(spot, args, f"arguments of {name} geofm's augmentation does not take")
        if name == "D4":
            report.note(spot, "D4 written as hflip + rot90 (together the same 8 symmetries)")
        elif name == "Flip":
            report.note(spot, "Flip (a random horizontal, vertical or double flip) written "
                        "as independent hflip and vflip")
        out.extend(entries)
    if out:
        report.note(where, "geofm applies augmentations to whole batches on the device "
                    "(kornia), after normalisation")
    return out


# --------------------------------------------------------------------------- trainer


def _package_available(name: str) -> bool:
    return importlib.util.find_spec(name) is not None


def _convert_trainer(trainer: Any, report: _Report) -> Any:
    if not isinstance(trainer, dict):
        return copy.deepcopy(trainer)
    out = copy.deepcopy(trainer)
    callbacks = out.get("callbacks")
    if isinstance(callbacks, dict):
        callbacks = [callbacks]
    if isinstance(callbacks, list):
        kept = []
        for i, cb in enumerate(callbacks):
            class_path = cb.get("class_path") if isinstance(cb, dict) else None
            name = _class_name(class_path)
            where = f"trainer.callbacks[{i}]"
            if _is_terratorch_path(class_path):
                report.drop(where, cb, "a TerraTorch callback geofm has no counterpart for")
            elif name.startswith("Rich") and not _package_available("rich"):
                report.drop(where, cb, "needs the rich package, which is not installed here; "
                            "Lightning's default progress bar is used (pip install rich and "
                            "add it back)")
            else:
                kept.append(cb)
        if kept:
            out["callbacks"] = kept
        else:
            out.pop("callbacks", None)
    logger = out.get("logger")
    if isinstance(logger, dict) and _class_name(logger.get("class_path")) == "TensorBoardLogger" \
            and not (_package_available("tensorboard") or _package_available("tensorboardX")):
        init = dict(logger.get("init_args") or {})
        csv_args = {k: init[k] for k in ("save_dir", "name", "version", "prefix") if k in init}
        out["logger"] = {"class_path": "lightning.pytorch.loggers.CSVLogger",
                         "init_args": csv_args}
        report.note("trainer.logger", "TensorBoardLogger needs tensorboard, which is not "
                    "installed here: written as CSVLogger with the same save_dir and name "
                    "(Lightning's own fallback)")
    return out


# --------------------------------------------------------------------------- entry


def is_terratorch_config(config: Any) -> bool:
    """Whether ``config`` looks like a TerraTorch LightningCLI config."""
    if not isinstance(config, dict):
        return False
    model = config.get("model")
    data = config.get("data")
    paths = [s.get("class_path") for s in (model, data) if isinstance(s, dict)]
    if any(_is_terratorch_path(p) for p in paths):
        return True
    if any(isinstance(p, str) and p in DATAMODULES for p in paths):
        return True
    factory = (model or {}).get("init_args", {}) if isinstance(model, dict) else {}
    factory_name = _class_name(factory.get("model_factory")) if isinstance(factory, dict) else ""
    return factory_name in (ENCODER_DECODER_FACTORIES + LEGACY_PRITHVI_FACTORIES
                            + OTHER_TERRATORCH_FACTORIES)


def convert_config(config: dict[str, Any], source: str = "<config>") -> Conversion:
    """Convert a parsed TerraTorch config.

    Raises:
        ConfigurationError: ``config`` is not a TerraTorch config.
    """
    if not is_terratorch_config(config):
        raise ConfigurationError(
            f"{source} is not a TerraTorch config: it has no terratorch.* model or data "
            "class_path, no generic TerraTorch datamodule and no TerraTorch model_factory "
            "(EncoderDecoderFactory, PrithviModelFactory, ...). `geofm convert terratorch` "
            "converts configs written for `terratorch fit`"
        )
    report = _Report()
    out: dict[str, Any] = {}
    task: str | None = None
    task_args: dict[str, Any] = {}
    for key, value in config.items():
        if key in ("model", "data"):
            continue
        if key == "trainer":
            out[key] = _convert_trainer(value, report)
        elif key in TOP_LEVEL_COPIED:
            out[key] = copy.deepcopy(value)
        else:
            report.drop(key, value, "not a `geofm fit` setting")
    model = config.get("model")
    if isinstance(model, dict):
        converted, task = _convert_model(model, report, cli_optimizer="optimizer" in config)
        out["model"] = converted
        task_args = dict(converted.get("init_args") or {})
    elif model is not None:
        report.drop("model", model, "expected a class_path / init_args mapping")
    data = config.get("data")
    if isinstance(data, dict):
        out["data"] = _convert_data(data, task, task_args, report)
    elif data is not None:
        report.drop("data", data, "expected a class_path / init_args mapping")
    first: tuple[str, ...] = ("seed_everything", "trainer", "model", "data")
    ordered: dict[str, Any] = {k: out[k] for k in first if k in out}
    ordered.update({k: v for k, v in out.items() if k not in ordered})
    return Conversion(ordered, report.unmapped, report.notes, source)


def convert_file(path: str | Path) -> Conversion:
    """Read and convert a TerraTorch YAML config file.

    Raises:
        ConfigurationError: The file is missing, not YAML, or not a TerraTorch config.
    """
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigurationError(f"cannot read {path}: {exc.strerror or exc}") from exc
    try:
        config = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ConfigurationError(f"{path} is not valid YAML: {exc}") from exc
    return convert_config(config, str(path))


def render(conversion: Conversion) -> str:
    """The converted config as YAML text, with the unmapped keys and notes as a header."""
    lines = [f"# Converted from the TerraTorch config {conversion.source} by "
             "`geofm convert terratorch`."]
    if conversion.unmapped:
        lines.append("#")
        lines.append("# NOT CONVERTED (no geofm equivalent; review before training):")
        lines += [f"#   - {item}" for item in conversion.unmapped]
    if conversion.notes:
        lines.append("#")
        lines.append("# Converted with a difference, or a TerraTorch default written out:")
        lines += [f"#   - {item}" for item in conversion.notes]
    body = str(yaml.safe_dump(conversion.config, sort_keys=False, default_flow_style=False,
                              width=100))
    return "\n".join(lines) + "\n\n" + body
