"""TerraTorch facts and the core's own conversion tables.

Plugins declare their components' TerraTorch names through ``geofm_conversion_rules``;
only the core's components (``geofm:*`` necks, decoders and heads, ``timm:*``
backbones) and TerraTorch's task, data and trainer vocabulary are tabled here.
"""

from __future__ import annotations

from typing import Any

from geofm_core.convert.rules import (
    ComponentRule,
    ConversionRules,
    FactoryRule,
    KeyRule,
)
from geofm_core.data.bands import band_names

__all__ = [
    "ACTIVATIONS",
    "CHANNEL_KEYWORDS",
    "CHECKPOINT_CALLBACKS",
    "CORE_RULES",
    "DATAMODULES",
    "DATA_ONLY_ARGS",
        "DETECTION_FRAMEWORKS",
    "DETECTION_KWARGS",
    "DETECTION_TASKS",
    "DETECTION_TASK_ONLY",
    "ENCODER_DECODER_FACTORIES",
    "FACTORY_FILLED",
    "FRAMEWORK",
    "GEOFM_WRITER",
    "HEADS",
    "HEAD_ARGS",
    "HLS_NAMES",
    "LIGHTNING_CHECKPOINT",
    "LOSSES",
    "OTHER_TERRATORCH_FACTORIES",
    "PARAMETER_PREFIXES",
    "SAME_DATA_ARGS",
    "SAME_TASK_ARGS",
    "TASKS",
    "TASK_ONLY_ARGS",
    "TERRATORCH_CALLBACKS",
    "TERRATORCH_ONLY_BACKBONES",
    "TIMM_KEYS",
    "TOP_LEVEL_COPIED",
    "TRAINER_ARGS",
    "WRITER_CALLBACKS",
    "head_keys",
]

#: The framework name plugins are asked about.
FRAMEWORK = "terratorch"

#: TerraTorch task class names -> (geofm short class name, geofm task).
TASKS: dict[str, tuple[str, str]] = {
    "SemanticSegmentationTask": ("SemanticSegmentationTask", "segmentation"),
    "PixelwiseRegressionTask": ("PixelwiseRegressionTask", "regression"),
    "ClassificationTask": ("ClassificationTask", "classification"),
    "MultiLabelClassificationTask": ("MultiLabelClassificationTask", "multilabel"),
}

#: TerraTorch's object detection task -> geofm's task class per geofm task (Mask R-CNN
#: is geofm's InstanceSegmentationTask).
DETECTION_TASKS: dict[str, dict[str, str]] = {
    "ObjectDetectionTask": {"object_detection": "ObjectDetectionTask",
                            "instance_segmentation": "InstanceSegmentationTask"},
}

#: TerraTorch ObjectDetectionModelFactory frameworks -> geofm:detection frameworks.
DETECTION_FRAMEWORKS: dict[str, str] = {
    "faster-rcnn": "faster_rcnn", "retinanet": "retinanet", "fcos": "fcos",
    "mask-rcnn": "mask_rcnn",
}

_RCNN = ("rpn_pre_nms_top_n_train", "rpn_pre_nms_top_n_test", "rpn_post_nms_top_n_train",
         "rpn_post_nms_top_n_test", "rpn_nms_thresh", "rpn_fg_iou_thresh", "rpn_bg_iou_thresh",
         "rpn_batch_size_per_image", "rpn_positive_fraction", "rpn_score_thresh",
         "box_detections_per_img", "box_fg_iou_thresh",
         "box_bg_iou_thresh", "box_batch_size_per_image", "box_positive_fraction",
         "bbox_reg_weights")
_ONE_STAGE = ("score_thresh", "nms_thresh", "detections_per_img", "topk_candidates")

#: Plain-value keyword arguments of torchvision's detectors (0.2x) per geofm framework:
#: TerraTorch's ``framework_*`` arguments, without the prefix. (Module-valued ones, the
#: anchor generator, heads and RoI poolers, cannot be written in YAML; geofm:detection
#: builds them.) The first two of each are its score threshold and NMS IoU threshold.
DETECTION_KWARGS: dict[str, tuple[str, ...]] = {
    "faster_rcnn": ("box_score_thresh", "box_nms_thresh", *_RCNN),
    "mask_rcnn": ("box_score_thresh", "box_nms_thresh", *_RCNN),
    "retinanet": (*_ONE_STAGE, "fg_iou_thresh", "bg_iou_thresh"),
    "fcos": (*_ONE_STAGE, "center_sampling_radius"),
}

#: TerraTorch ObjectDetectionTask arguments without a geofm counterpart, with their
#: TerraTorch defaults.
DETECTION_TASK_ONLY: dict[str, Any] = {"ignore_index": -1}

#: TerraTorch generic datamodules -> (geofm datamodule, task family).
DATAMODULES: dict[str, tuple[str, str]] = {
    "GenericNonGeoSegmentationDataModule": ("GeoTiffSegmentationDataModule", "segmentation"),
    "GenericNonGeoPixelwiseRegressionDataModule": ("GeoTiffRegressionDataModule", "regression"),
    "GenericNonGeoClassificationDataModule": ("GeoTiffClassificationDataModule",
                                              "classification"),
}

#: TerraTorch's composing factory (converted by the core).
ENCODER_DECODER_FACTORIES = ("EncoderDecoderFactory",)
#: Other TerraTorch factories: a config naming one is a TerraTorch config, even when no
#: plugin converts the factory (plugins' factory rules add to these).
OTHER_TERRATORCH_FACTORIES = (
    "TimmModelFactory", "GenericUnetModelFactory", "SatMAEModelFactory", "WxCModelFactory",
    "FullModelFactory", "GenericModelFactory", "ObjectDetectionModelFactory",
)

#: Losses TerraTorch names per geofm task family -> geofm loss names.
LOSSES: dict[str, dict[str, str]] = {
    "segmentation": {"ce": "ce", "jaccard": "jaccard", "dice": "dice", "focal": "focal",
                     "lovasz": "lovasz"},
    "regression": {"mse": "mse", "mae": "mae", "rmse": "rmse", "huber": "huber"},
    "classification": {"ce": "ce", "bce": "bce", "jaccard": "jaccard", "focal": "focal"},
    "multilabel": {"bce": "bce", "ce": "ce", "jaccard": "jaccard", "focal": "focal"},
}

#: Name prefixes of TerraTorch's own backbones that no installed plugin may convert; they
#: are never taken for timm names (plugins add theirs with ``Unconvertible``). Families
#: that have a geofm plugin of their own are not listed: the core names no plugin, and
#: without that plugin their names get the timm fallback's note with the install hint.
TERRATORCH_ONLY_BACKBONES = (
    "satlas", "dofa", "ssl4eo", "croma", "decur", "scalemae",
    "satmae", "remoteclip", "unet", "multimae", "terrafm", "copernicus",
)

#: TerraTorch keywords giving a backbone's number of input channels.
CHANNEL_KEYWORDS = ("in_chans", "in_channels")

#: Arguments geofm:encoder_decoder fills in itself, per kind: never passed through.
FACTORY_FILLED: dict[str, tuple[str, ...]] = {
    "backbone": (), "neck": ("in_channels",), "decoder": ("in_channels",),
    "head": ("in_channels", "num_classes"),
}

_NECK_NAMES = {
    "SelectIndices": "select_indices",
    "ReshapeTokensToImage": "reshape_tokens_to_image",
    "InterpolateToPyramidal": "interpolate_to_pyramidal",
    "LearnedInterpolateToPyramidal": "learned_interpolate_to_pyramidal",
    "MaxpoolToPyramidal": "maxpool_to_pyramidal",
    "PermuteDims": "permute_dims",
    "AddBottleneckLayer": "add_bottleneck_layer",
}

#: Weights of TerraTorch's necks, relative to the neck, where geofm's names differ.
_NECK_KEYS: dict[str, tuple[KeyRule, ...]] = {
    # TerraTorch wraps the one transposed conv of the second level in a Sequential.
    "LearnedInterpolateToPyramidal": (KeyRule(r"fpn2\.0\.(\w+)", r"fpn2.\1"),),
}

#: Weights of a TerraTorch timm backbone (the timm model itself) in geofm's wrapper.
TIMM_KEYS = (KeyRule(r"(.+)", r"model.\1"),)

#: The core's TerraTorch rules (source ``geofm``): its necks and decoders, and timm's
#: TimmModelFactory (a whole timm classifier, written as a timm backbone and geofm's head).
CORE_RULES = ConversionRules(factories=(
    FactoryRule(("TimmModelFactory",), tasks=("classification", "multilabel"),
                convert="geofm_core.convert.terratorch.factories:convert_timm"),
), components=(
    *(ComponentRule("neck", (tt,), f"geofm:{name}", keys=_NECK_KEYS.get(tt, ()))
      for tt, name in _NECK_NAMES.items()),
    # The same layers and weight names as TerraTorch's FCNDecoder.
    ComponentRule("decoder", ("FCNDecoder",), "geofm:upscale_fcn"),
    ComponentRule("decoder", ("IdentityDecoder",), "geofm:identity"),
    ComponentRule(
        "decoder", ("LinearDecoder",), "geofm:linear", args={"upsampling_size": "upsampling"},
        note="TerraTorch's LinearDecoder includes the class layer; geofm adds its "
             "segmentation head after geofm:linear"),
    ComponentRule(
        "decoder", ("MLPDecoder",), "geofm:mlp", args={"out_index": "in_index"},
        activations=("activation",),
        note="geofm:mlp is a per-pixel MLP on one level; TerraTorch's MLPDecoder "
             "concatenates all inputs"),
))

#: geofm head of each task.
HEADS: dict[str, str] = {
    "segmentation": "geofm:segmentation", "regression": "geofm:regression",
    "classification": "geofm:classification", "multilabel": "geofm:classification",
}

def head_keys(task: str, head_kwargs: dict[str, Any]) -> tuple[KeyRule, ...]:
    """How TerraTorch names the weights of a task's head, relative to the head.

    TerraTorch's heads are ``head = Sequential(blocks, dropout, last layer)``, each block
    a ``Sequential(layer, ReLU)``. geofm's segmentation head nests its
    ``conv_bias_relu`` blocks the same way; its classification head is flat
    (dropout, linear, activation per hidden layer), so the hidden layers are listed.
    TerraTorch's regression head has conv-BN-ReLU blocks (geofm's flat ones) and no
    block ``Sequential`` without ``channel_list``.
    """
    if task == "segmentation":
        return (KeyRule(r"head\.2\.(\w+)", r"classifier.\1"),
                KeyRule(r"head\.0\.(\d+)\.0\.(\w+)", r"blocks.\1.0.\2"))
    if task == "regression" and not head_kwargs.get("learned_upscale_layers"):
        # Sequential([blocks,] dropout, output); its blocks are conv-BN-ReLU like geofm's.
        # (Its learned upscaling is a pixel shuffle, geofm's a transposed conv: unmapped.)
        pre = 1 if head_kwargs.get("channel_list") else 0
        return (KeyRule(rf"head\.{pre + 1}\.(\w+)", r"output.\1"),
                *_regression_blocks(len(head_kwargs.get("channel_list") or ())))
    if task in ("classification", "multilabel"):
        hidden = len(head_kwargs.get("dim_list") or ())
        return (KeyRule(r"head\.2\.(\w+)", rf"layers.{3 * hidden + 1}.\1"),
                *(KeyRule(rf"head\.0\.{i}\.0\.(\w+)", rf"layers.{3 * i + 1}.\1")
                  for i in range(hidden)))
    return ()


def _regression_blocks(count: int) -> tuple[KeyRule, ...]:
    """TerraTorch's ``head.0.i.{0,1}`` (conv, BN) as geofm's flat ``blocks.{3i,3i+1}``."""
    return tuple(KeyRule(rf"head\.0\.{i}\.{j}\.(\w+)", rf"blocks.{3 * i + j}.\1")
                 for i in range(count) for j in (0, 1))


#: TerraTorch head kwargs per geofm task -> geofm head kwargs. Listed in full rather than
#: read off the head's signature: heads are not named in TerraTorch configs, and reading
#: the signature would import torch for every conversion.
HEAD_ARGS: dict[str, dict[str, str]] = {
    "segmentation": {"channel_list": "channel_list", "dropout": "dropout"},
    "regression": {"channel_list": "channel_list", "dropout": "dropout",
                   "final_act": "final_act", "learned_upscale_layers": "learned_upscale_layers"},
    "classification": {"dim_list": "dim_list", "dropout": "dropout"},
    "multilabel": {"dim_list": "dim_list", "dropout": "dropout"},
}

#: timm backbone keywords TerraTorch and geofm's timm backbone share; the others go to
#: timm.create_model through model_kwargs.
TIMM_ARGS = ("pretrained", "in_chans", "out_indices", "checkpoint_path")

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

_PATHS = ("train_data_root", "val_data_root", "test_data_root", "predict_data_root")
_LABEL_PATHS = ("train_label_data_root", "val_label_data_root", "test_label_data_root")
_COMMON = ("train_split", "val_split", "test_split", "batch_size", "num_workers", "means",
           "stds", "constant_scale", "no_data_replace")
_PIXELWISE = (*_PATHS, *_LABEL_PATHS, *_COMMON, "no_label_replace",
              "expand_temporal_dimension", "rgb_indices", "drop_last", "pin_memory")

#: Datamodule arguments with the same name and meaning in both (per family).
SAME_DATA_ARGS: dict[str, tuple[str, ...]] = {
    "segmentation": (*_PIXELWISE, "num_classes", "reduce_zero_label"),
    "regression": _PIXELWISE,
    "classification": (*_PATHS, *_COMMON, "expand_temporal_dimension", "rgb_indices",
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

#: The band names geofm's dataset_bands takes.
HLS_NAMES = frozenset(band_names())

#: Lightning 2.x ``Trainer`` arguments (other keys are checked against the installed
#: Lightning's signature, and listed when it does not take them either).
TRAINER_ARGS = frozenset((
    "accelerator", "strategy", "devices", "num_nodes", "precision", "logger", "callbacks",
    "fast_dev_run", "max_epochs", "min_epochs", "max_steps", "min_steps", "max_time",
    "limit_train_batches", "limit_val_batches", "limit_test_batches", "limit_predict_batches",
    "overfit_batches", "val_check_interval", "check_val_every_n_epoch", "num_sanity_val_steps",
    "log_every_n_steps", "enable_checkpointing", "enable_progress_bar", "enable_model_summary",
    "accumulate_grad_batches", "gradient_clip_val", "gradient_clip_algorithm", "deterministic",
    "benchmark", "inference_mode", "use_distributed_sampler", "profiler", "detect_anomaly",
    "barebones", "plugins", "sync_batchnorm", "reload_dataloaders_every_n_epochs",
    "default_root_dir",
))

#: TerraTorch's ModelCheckpoint subclass, as configs name it (bare names resolve too).
CHECKPOINT_CALLBACKS = ("StateDictAwareModelCheckpoint",
                        "terratorch.cli_tools.StateDictAwareModelCheckpoint")
LIGHTNING_CHECKPOINT = "lightning.pytorch.callbacks.ModelCheckpoint"
#: TerraTorch's GeoTIFF prediction writer, and geofm's.
WRITER_CALLBACKS = ("CustomWriter", "terratorch.cli_tools.CustomWriter")
GEOFM_WRITER = "geofm_core.inference.writer.GeoTiffPredictionWriter"
#: TerraTorch callbacks configs may name without a ``terratorch.`` path (geofm has none).
TERRATORCH_CALLBACKS = ("StudioDeploySaveConfigCallback", "ProgressiveResizing",
                        "LogMAEReconstruction", "LogIntermediatePredictions",
                        "CheckpointCallback")

#: First parts of TerraTorch's model parameter names -> geofm's (``lr_overrides`` keys).
PARAMETER_PREFIXES: dict[str, str] = {"encoder": "backbone", "neck": "necks"}
