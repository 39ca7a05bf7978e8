"""TerraTorch's ``ObjectDetectionTask`` and ``ObjectDetectionModelFactory`` -> geofm's tasks.

TerraTorch 1.2's object detection task builds torchvision's Faster R-CNN, RetinaNet,
FCOS or Mask R-CNN on a registry backbone and its necks. geofm's counterparts are
``ObjectDetectionTask`` and, for Mask R-CNN, ``InstanceSegmentationTask``, both on the
``geofm:detection`` factory. Facts of TerraTorch the conversion relies on:

- ``num_classes`` counts the background in both (labels 1..K, 0 the background);
  TerraTorch's examples also list ``Background`` first in ``class_names``, geofm lists
  the object classes only.
- TerraTorch replaces torchvision's transform by one that neither resizes nor
  normalises, so ``framework_min_size`` / ``framework_max_size`` have no effect there;
  geofm's ``min_size`` / ``max_size`` left unset behave the same (no resizing).
- Its task keeps predictions scoring above ``score_threshold`` and applies NMS at
  ``iou_threshold`` (both 0.5) before metrics and predictions: written as torchvision's
  score and NMS thresholds of the framework.
- The last neck is usually ``FeaturePyramidNetworkNeck``; ``geofm:detection`` always
  puts torchvision's FeaturePyramidNetwork after the necks (``fpn_channels``).
  TerraTorch's has no extra levels (``extra_block: none``) and its anchors are fixed
  sizes per level (written out when the config says how many levels there are).
- Its metrics are logged as ``val_map``, ``val_segm_map``..., geofm's as ``val/map``,
  ``val/segm_map``...: checkpoint and early-stopping monitors are renamed.
"""

from __future__ import annotations

import copy
import re
from typing import Any

from geofm_core.convert.book import RuleBook, Signatures
from geofm_core.convert.rules import pop_prefixed
from geofm_core.convert.terratorch.model import ModelConverter
from geofm_core.convert.terratorch.report import Report, class_name, short, strip_source
from geofm_core.convert.terratorch.tables import (
    DETECTION_FRAMEWORKS,
    DETECTION_KWARGS,
    DETECTION_TASK_ONLY,
    DETECTION_TASKS,
)

__all__ = ["DETECTION_FACTORY", "GEOFM_TASKS", "DetectionConverter", "convert_detection",
           "rename_monitors"]

#: TerraTorch's detection model factory.
DETECTION_FACTORY = "ObjectDetectionModelFactory"
#: The geofm tasks the detection conversion produces.
GEOFM_TASKS = ("object_detection", "instance_segmentation")

_BASE = "model.init_args"
_FPN = "FeaturePyramidNetworkNeck"
_DETR = ("detr", "deformable-detr", "rf-detr")
_TORCHVISION = {"faster_rcnn": "FasterRCNN", "mask_rcnn": "MaskRCNN",
                "retinanet": "RetinaNet", "fcos": "FCOS"}
#: Task arguments with the same name and meaning in both.
_SAME = ("lr", "optimizer_hparams", "scheduler_hparams", "freeze_backbone", "freeze_decoder")
#: TerraTorch's batch-key arguments -> (TerraTorch's default, TorchGeo 0.8's key geofm reads).
_FIELDS = {"boxes_field": ("boxes", "bbox_xyxy"), "labels_field": ("labels", "label"),
           "masks_field": ("masks", "mask")}
#: TerraTorch's anchor sizes per level (cut to the number of levels) per framework.
_ANCHORS: dict[str, tuple[tuple[int, ...], ...]] = {
    "faster_rcnn": ((32,), (64,), (128,), (256,), (512,)),
    "mask_rcnn": ((32,), (64,), (128,), (256,), (512,)),
    "fcos": ((8,), (16,), (32,), (64,), (128,), (256,)),
    "retinanet": ((16, 20, 25), (32, 40, 50), (64, 80, 101), (128, 161, 203),
                  (256, 322, 406), (512, 645, 812)),
}
_BACKGROUND = ("background", "bg", "__background__", "_background_")
_WHY_NO_RESIZE = ("TerraTorch's detector transform never resizes (nor normalises); "
                  "geofm:detection's default min_size/max_size null does the same")


def convert_detection(args: dict[str, Any], report: Report,
                      book: RuleBook) -> tuple[str, str, dict[str, Any]]:
    """Pop an ``ObjectDetectionTask``'s arguments from ``args`` and convert them.

    Optimizer and scheduler names are left in ``args`` (the caller converts them like
    every task's); so are arguments no detection task has, to be reported.

    Returns:
        The geofm task class, the geofm task and the converted init_args.
    """
    factory = args.pop("model_factory", None)
    model_args = dict(args.pop("model_args", None) or {})
    framework = DETECTION_FRAMEWORKS.get(str(model_args.get("framework")))
    task = "instance_segmentation" if framework == "mask_rcnn" else "object_detection"
    geofm_class = DETECTION_TASKS["ObjectDetectionTask"][task]
    thresholds = (args.pop("score_threshold", 0.5), args.pop("iou_threshold", 0.5))
    out: dict[str, Any] = {}
    path = f"{_BASE}.model_args"
    if class_name(factory) != DETECTION_FACTORY:
        report.drop(f"{_BASE}.model_factory", factory, (
            f"TerraTorch's ObjectDetectionTask is converted with its {DETECTION_FACTORY} only; "
            "model_factory and model_args are kept as they are"))
        out["model_factory"] = factory
        out["model_args"] = model_args
    else:
        converter = DetectionConverter(task, report, path, book, Signatures(book.registry))
        out["model_factory"] = "geofm:detection"
        out["model_args"] = converter.convert_detection(model_args, thresholds)
    if task == "instance_segmentation":
        report.note(f"{path}.framework", "mask-rcnn: written as geofm's "
                    "InstanceSegmentationTask (TerraTorch runs Mask R-CNN in its "
                    "ObjectDetectionTask)")
    for key in _SAME:
        if key in args:
            out[key] = args.pop(key)
    names = _class_names(args.pop("class_names", None), out["model_args"], report)
    if names is not None:
        out["class_names"] = names
    _fields(args, report)
    report.drop_foreign_options(args, DETECTION_TASK_ONLY, _BASE)
    return geofm_class, task, out


def _class_names(names: Any, model_args: Any, report: Report) -> list[Any] | None:
    """The object classes of TerraTorch's class_names (a leading background removed)."""
    where = f"{_BASE}.class_names"
    if names is None:
        return None
    if not isinstance(names, list) or not names:
        report.drop(where, names, "expected a list of class names")
        return None
    if str(names[0]).strip().lower() in _BACKGROUND:
        report.note(where, (
            f"{names[0]!r} dropped: TerraTorch's examples list the background first; "
            "geofm's class_names are the object classes (labels 1..K)"))
        names = names[1:]
    count = model_args.get("num_classes") if isinstance(model_args, dict) else None
    if isinstance(count, int) and not isinstance(count, bool) and count != len(names) + 1:
        report.drop(where, names, (
            f"{len(names)} object classes, but num_classes {count} (which counts the "
            f"background) means {count - 1}: geofm requires num_classes = "
            "len(class_names) + 1; num_classes is kept, add the missing names or fix it"))
        return None
    return list(names)


def _fields(args: dict[str, Any], report: Report) -> None:
    """TerraTorch's batch-key arguments: geofm always reads TorchGeo 0.8's keys."""
    for key, (default, ours) in _FIELDS.items():
        if key not in args:
            continue
        value = args.pop(key)
        where = f"{_BASE}.{key}"
        if value in (default, ours):
            report.note(where, (
                f"{value} dropped: geofm's detection tasks read the batch key {ours!r} "
                "(TorchGeo 0.8's layout), which geofm's and TorchGeo's detection "
                "datamodules write"))
        else:
            report.drop(where, value, (
                f"geofm's detection tasks read the batch key {ours!r} (TorchGeo 0.8's "
                "layout); use a datamodule that writes it"))


class DetectionConverter(ModelConverter):
    """Converts one ``ObjectDetectionModelFactory``'s model_args to ``geofm:detection``'s."""

    def convert_detection(self, args: dict[str, Any],
                          thresholds: tuple[Any, Any] = (0.5, 0.5)) -> dict[str, Any]:
        """``geofm:detection`` model_args for TerraTorch's ObjectDetectionModelFactory ones.

        Args:
            args: TerraTorch's model_args.
            thresholds: The task's (score_threshold, iou_threshold).
        """
        args = copy.deepcopy(args)
        out: dict[str, Any] = {}
        framework = self._framework(args.pop("framework", None), out)
        bk = dict(args.pop("backbone_kwargs", None) or {})
        bk.update(pop_prefixed(args, "backbone_"))
        backbone = self._backbone(args.pop("backbone", None), bk, out)
        necks = self._detection_necks(args.pop("necks", None), out)
        rule = backbone.rule
        if rule is not None and rule.backbone.tokens and not any(
                n.get("name") == "geofm:reshape_tokens_to_image" for n in necks):
            self.report.note(f"{self.path}.necks", (
                f"{rule.target} returns tokens: add the necks geofm:select_indices, "
                "geofm:reshape_tokens_to_image and geofm:learned_interpolate_to_pyramidal "
                "(docs/object-detection.md)"))
        if necks:
            out["necks"] = necks
        if "num_classes" in args:
            out["num_classes"] = args.pop("num_classes")
        else:
            self.report.note(f"{self.path}.num_classes", "not given (TerraTorch needs it); "
                             "geofm takes len(class_names) + 1")
        if "in_channels" in args:
            self.report.note(f"{self.path}.in_channels", (
                f"{short(args.pop('in_channels'))} dropped: TerraTorch sizes its identity "
                "image_mean / image_std (0 and 1) by it; geofm:detection's defaults are the "
                "same for any number of channels"))
        kwargs = self._framework_kwargs(pop_prefixed(args, "framework_"), framework, out)
        self._thresholds(kwargs, framework, thresholds)
        self._pyramid(framework, _levels(necks, out), out, kwargs)
        if kwargs:
            out["framework_kwargs"] = kwargs
        self.report.note(self.path, (
            "geofm:detection builds the heads and RoI pooling itself; TerraTorch's fixed "
            "choices (RoI pooling on feat0-feat3, RetinaNet's GroupNorm head, Mask R-CNN's "
            "BatchNorm heads) may differ, so TerraTorch detection checkpoints do not load"))
        for key in list(args):
            self.report.drop(f"{self.path}.{key}", args.pop(key),
                             "no geofm:detection argument of that name (TerraTorch's factory "
                             "ignores it too)")
        return out

    def _framework(self, name: Any, out: dict[str, Any]) -> str:
        where = f"{self.path}.framework"
        if name is None:
            self.report.drop(where, None, "TerraTorch requires a framework; geofm:detection's "
                             "default faster_rcnn is used")
            return "faster_rcnn"
        if name in DETECTION_FRAMEWORKS:
            framework = DETECTION_FRAMEWORKS[name]
            out["framework"] = framework
            return framework
        why = ("TerraTorch's DETR models have no geofm counterpart; " if name in _DETR else "")
        self.report.drop(where, name, (
            f"{why}geofm:detection builds faster_rcnn, retinanet, fcos and mask_rcnn; kept as "
            "is, choose one of them"))
        out["framework"] = name
        return str(name)

    def _detection_necks(self, necks: Any, out: dict[str, Any]) -> list[dict[str, Any]]:
        """TerraTorch's necks without its FeaturePyramidNetworkNeck (geofm's FPN is built in)."""
        where = f"{self.path}.necks"
        if not isinstance(necks, list):
            if necks is not None:
                self.report.drop(where, necks, "necks must be a list of {name: ...}")
            self.report.note(where, "no FeaturePyramidNetworkNeck: geofm:detection always "
                             "puts torchvision's FeaturePyramidNetwork (fpn_channels 256) "
                             "after the backbone's levels")
            return []
        result: list[dict[str, Any]] = []
        names = [strip_source(str(n["name"]), "terratorch")
                 if isinstance(n, dict) and "name" in n else "" for n in necks]
        for i, (neck, name) in enumerate(zip(necks, names, strict=True)):
            at = f"{where}[{i}]"
            if name == _FPN and i == len(necks) - 1:
                self._fpn(neck, at, out)
            elif name == _FPN:
                self.report.drop(at, neck, "geofm:detection puts its FeaturePyramidNetwork "
                                 "after all necks; move it last")
            elif not name or name == "AggregateTokens":
                self.report.drop(at, neck, "a neck is a mapping with a name" if not name else
                                 "geofm pools tokens only in classification models")
            else:
                found = self.book.component("neck", name)
                if found is None or found.claim is None:
                    self.report.drop(at, neck, found.problem if found is not None else (
                        "no geofm neck of that name (`geofm list neck`)"
                        + self.book.missing_hint()))
                    continue
                kwargs = {k: v for k, v in neck.items() if k != "name"}
                result.append(self._neck_entry(found.claim.rule, kwargs, at))
        if _FPN not in names:
            self.report.note(where, "no FeaturePyramidNetworkNeck: TerraTorch hands the "
                             "necks' maps to torchvision as they are, geofm:detection always "
                             "adds torchvision's FeaturePyramidNetwork (fpn_channels 256)")
        return result

    def _fpn(self, neck: dict[str, Any], where: str, out: dict[str, Any]) -> None:
        channels = neck.get("out_channel", 256)
        if channels != 256:
            out["fpn_channels"] = channels
        self.report.note(where, (
            f"FeaturePyramidNetworkNeck written as geofm:detection's own FPN (fpn_channels "
            f"{channels}, after the other necks)"))
        for key, value in neck.items():
            if key in ("name", "out_channel"):
                continue
            if key == "output_ordered_dict":
                self.report.note(f"{where}.{key}", f"{value} dropped (geofm's FPN output "
                                 "goes to torchvision directly)")
            else:
                self.report.drop(f"{where}.{key}", value,
                                 "FeaturePyramidNetworkNeck takes no such argument")

    def _framework_kwargs(self, given: dict[str, Any], framework: str,
                          out: dict[str, Any]) -> dict[str, Any]:
        """TerraTorch's ``framework_*`` arguments, under torchvision's names."""
        known = DETECTION_KWARGS.get(framework)
        kwargs: dict[str, Any] = {}
        for key, value in given.items():
            where = f"{self.path}.framework_{key}"
            if key in ("min_size", "max_size", "size_divisible", "fixed_size"):
                self.report.note(where, f"{short(value)} dropped: {_WHY_NO_RESIZE}")
            elif key in ("image_mean", "image_std"):
                out[key] = value
                self.report.note(where, f"written as {key} (TerraTorch passes its own "
                                 "zeros/ones too, which clash with it)")
            elif known is None or key in known:
                kwargs[key] = value
            else:
                self.report.drop(where, value, (
                    f"not a plain-value argument of torchvision's {_TORCHVISION[framework]} "
                    "that geofm:detection passes on (module-valued parts, the anchor "
                    "generator, heads and RoI poolers, are built by geofm:detection)"))
        return kwargs

    def _pyramid(self, framework: str, levels: int | None, out: dict[str, Any],
                 kwargs: dict[str, Any]) -> None:
        """TerraTorch's pyramid: no extra levels, its anchor sizes per level."""
        if framework not in DETECTION_KWARGS:
            return
        out["extra_block"] = "none"
        self.report.note(f"{self.path}.extra_block", (
            "none written: TerraTorch's FPN adds no extra pyramid level (geofm:detection's "
            f"default for {framework} is {'maxpool' if 'rcnn' in framework else 'p6p7'})"))
        sizes = _ANCHORS[framework]
        where = f"{self.path}.framework_kwargs.anchor_sizes"
        if "anchor_sizes" in kwargs:
            return
        if levels is None or levels > len(sizes):
            self.report.note(where, (
                "not written: the number of levels is not in the config; TerraTorch's "
                f"anchors are {short(sizes)} per level (cut to the levels), geofm fits its "
                "own to each level's stride"))
            return
        kwargs["anchor_sizes"] = [list(s) for s in sizes[:levels]]
        self.report.note(where, f"TerraTorch's anchor sizes for {levels} levels written out "
                         "(geofm would fit its own to each level's stride)")

    def _thresholds(self, kwargs: dict[str, Any], framework: str,
                    thresholds: tuple[Any, Any]) -> None:
        """The task's score / IoU thresholds as the framework's own."""
        known = DETECTION_KWARGS.get(framework)
        if known is None:
            return
        written = []
        for task_key, value, name in zip(("score_threshold", "iou_threshold"), thresholds,
                                          known[:2], strict=True):
            if name in kwargs:
                self.report.note(f"{_BASE}.{task_key}", (
                    f"{short(value)} dropped: framework_{name} {kwargs[name]} given; TerraTorch "
                    "filtered by both"))
            else:
                kwargs[name] = value
                written.append(f"{name}: {short(value)}")
        if written:
            self.report.note(f"{_BASE}.score_threshold", (
                "TerraTorch's task keeps predictions above score_threshold and applies NMS at "
                "iou_threshold (0.5 each unless given) before its metrics and predictions; "
                f"written as framework_kwargs {', '.join(written)} (torchvision's NMS is per "
                "class, TerraTorch's across classes)"))


def _levels(necks: list[dict[str, Any]], out: dict[str, Any]) -> int | None:
    """The pyramid's levels, when the config says: selected blocks or backbone out_indices."""
    for neck in reversed(necks):
        indices = neck.get("indices")
        if neck.get("name") == "geofm:select_indices" and isinstance(indices, list):
            return len(indices)
    indices = (out.get("backbone_kwargs") or {}).get("out_indices")
    return len(indices) if isinstance(indices, list) else None


_MONITOR = re.compile(r"^(train|val|test)_(.+)$")


def rename_monitors(config: dict[str, Any], task: str | None, report: Report) -> None:
    """TerraTorch's detection metric names (``val_map``) in monitors as geofm's (``val/map``)."""
    if task not in GEOFM_TASKS:
        return
    trainer = config.get("trainer")
    callbacks = trainer.get("callbacks") if isinstance(trainer, dict) else None
    places: list[tuple[str, dict[str, Any]]] = []
    for i, cb in enumerate(callbacks if isinstance(callbacks, list) else []):
        if isinstance(cb, dict) and isinstance(cb.get("init_args"), dict):
            places.append((f"trainer.callbacks[{i}].init_args", cb["init_args"]))
    scheduler = config.get("lr_scheduler")
    if isinstance(scheduler, dict) and isinstance(scheduler.get("init_args"), dict):
        places.append(("lr_scheduler.init_args", scheduler["init_args"]))
    for where, args in places:
        monitor = args.get("monitor")
        match = _MONITOR.match(monitor) if isinstance(monitor, str) else None
        if match is None:
            continue
        stage, metric = match.groups()
        extra = ""
        if task == "instance_segmentation" and not metric.startswith(("bbox_", "segm_")):
            metric = f"segm_{metric}"
            extra = (f"; TerraTorch logs no {monitor} for Mask R-CNN (its metrics are "
                     f"{stage}_bbox_* and {stage}_segm_*), so the mask mAP is monitored")
        args["monitor"] = f"{stage}/{metric}"
        report.note(f"{where}.monitor", f"{monitor} written as {args['monitor']} (geofm's "
                    f"metric name{extra})")
