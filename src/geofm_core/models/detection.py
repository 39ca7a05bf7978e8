"""Object detection and instance segmentation models (``geofm:detection``) on registry backbones.

Any registry backbone (``timm:resnet18``, ``prithvi:...``) and its necks give a list of
feature maps; torchvision's ``FeaturePyramidNetwork`` (``fpn_channels``) turns them
into a pyramid, optionally extended by a max-pooled level (Faster / Mask R-CNN) or P6
and P7 (RetinaNet, FCOS), and one of torchvision's detectors (``FasterRCNN``,
``RetinaNet``, ``FCOS``, ``MaskRCNN``) runs its heads on it. The anchor generator and
the RoI poolers are set to the levels actually produced (torchvision's defaults assume
five), and the default anchor sizes follow each level's stride, measured on the first
batch (chips of 128 px and 1024 px get the same anchors per level).

Labels follow torchvision / TorchGeo: 0 is background, objects are 1..K and
``num_classes`` = K + 1. Chips are not resized inside the model (``min_size`` and
``max_size`` None) and not normalised again (geofm's data modules normalise them).
"""

from __future__ import annotations

import inspect
import math
from collections import OrderedDict
from collections.abc import Sequence
from typing import Any, Literal

import torch
from torch import nn
from torchvision.models.detection import FCOS, FasterRCNN, MaskRCNN, RetinaNet
from torchvision.models.detection.anchor_utils import AnchorGenerator
from torchvision.models.detection.transform import GeneralizedRCNNTransform
from torchvision.ops import FeaturePyramidNetwork, MultiScaleRoIAlign
from torchvision.ops.feature_pyramid_network import LastLevelMaxPool, LastLevelP6P7

from geofm_core.errors import ConfigurationError
from geofm_core.models.factory import EncoderPlan, NeckSpec, validated_arguments
from geofm_core.models.pixelwise import run_encoder
from geofm_core.signatures import check_arguments

__all__ = ["DETECTION_TASKS", "FRAMEWORKS", "DetectionFactory", "DetectionModel"]

NAME = "geofm:detection"
#: The tasks this factory builds models for.
DETECTION_TASKS = ("object_detection", "instance_segmentation")
#: torchvision detector per framework name.
FRAMEWORKS: dict[str, type[nn.Module]] = {
    "faster_rcnn": FasterRCNN, "retinanet": RetinaNet, "fcos": FCOS, "mask_rcnn": MaskRCNN,
}
_DEFAULT_FRAMEWORK = {"object_detection": "faster_rcnn", "instance_segmentation": "mask_rcnn"}
#: The pyramid's extra levels per framework (torchvision's choices).
_DEFAULT_EXTRA = {"faster_rcnn": "maxpool", "mask_rcnn": "maxpool", "retinanet": "p6p7",
                  "fcos": "p6p7"}
ExtraBlock = Literal["maxpool", "p6p7", "none"]
#: Arguments of the torchvision classes that this factory sets itself.
_SET_BY_FACTORY = ("backbone", "num_classes", "min_size", "max_size", "image_mean",
                   "image_std")
#: geofm's own YAML-friendly keys of ``framework_kwargs`` (anchors are objects in torchvision).
_ANCHOR_KEYS = ("anchor_sizes", "aspect_ratios")
#: Default anchor size per unit of a level's stride: torchvision's 32 px at stride 4
#: (R-CNN), 32 px at stride 8 (RetinaNet), the stride itself (FCOS).
_ANCHOR_PER_STRIDE = {"faster_rcnn": 8.0, "mask_rcnn": 8.0, "retinanet": 4.0, "fcos": 1.0}


class ChipTransform(GeneralizedRCNNTransform):  # type: ignore[misc]  # torchvision: untyped
    """torchvision's batching transform, with resizing and normalising optional.

    Args:
        min_size: Resize so the shorter side is this (torchvision); None: no resizing.
        max_size: Upper bound of the longer side when resizing.
        image_mean: Subtracted per band; None: nothing (geofm's data are normalised).
        image_std: Divided per band; None: nothing.
        size_divisible: The batch is padded (bottom / right) to a multiple of this.
    """

    def __init__(self, min_size: int | None, max_size: int | None,
                 image_mean: Sequence[float] | None, image_std: Sequence[float] | None,
                 size_divisible: int = 32) -> None:
        super().__init__(min_size or 1, max_size or 1, list(image_mean or [0.0]),
                         list(image_std or [1.0]), size_divisible=size_divisible)
        self.resizes = min_size is not None
        self.normalises = image_mean is not None or image_std is not None

    def normalize(self, image: torch.Tensor) -> torch.Tensor:
        """Normalise with ``image_mean`` / ``image_std`` when given, else unchanged."""
        if not image.is_floating_point():
            raise ConfigurationError(
                f"{NAME}: images must be float tensors (normalised by the data module), got "
                f"{image.dtype}"
            )
        return super().normalize(image) if self.normalises else image

    def resize(self, image: torch.Tensor, target: dict[str, torch.Tensor] | None = None
               ) -> tuple[torch.Tensor, dict[str, torch.Tensor] | None]:
        """Resize as torchvision does when ``min_size`` was given, else keep the chip as it is."""
        if not self.resizes:
            return image, target
        resized: tuple[torch.Tensor, dict[str, torch.Tensor] | None] = super().resize(image,
                                                                                      target)
        return resized

    def __repr__(self) -> str:
        resize = (f"Resize(min_size={self.min_size}, max_size={self.max_size})"
                  if self.resizes else "no resize")
        norm = (f"Normalize(mean={self.image_mean}, std={self.image_std})"
                if self.normalises else "no normalisation")
        return f"{type(self).__name__}({norm}, {resize}, size_divisible={self.size_divisible})"


class _PyramidFeatures:
    """What torchvision's detector calls as its backbone: backbone, necks, FPN.

    Deliberately not an ``nn.Module``: the modules it calls are registered once, on the
    :class:`DetectionModel` (``backbone.*``, ``necks.*``, ``fpn.*`` in the state dict),
    not a second time under the detector.
    """

    def __init__(self, owner: DetectionModel, out_channels: int) -> None:
        self.owner = owner
        #: Channels of every pyramid level (torchvision reads it when building heads).
        self.out_channels = out_channels

    def __call__(self, x: torch.Tensor) -> OrderedDict[str, torch.Tensor]:
        return self.owner.pyramid(x)


class DetectionModel(nn.Module):
    """A registry backbone and necks, an FPN and a torchvision detector (geofm ``Model``).

    ``forward(images, targets)``: in training mode with targets (one dict per image:
    ``boxes`` (N, 4) float xyxy pixels, ``labels`` (N,) int64 in 1..K, for Mask R-CNN
    ``masks`` (N, H, W) uint8) returns torchvision's loss dict; in eval mode a list of
    one dict per image: ``boxes``, ``labels``, ``scores`` and for Mask R-CNN ``masks``
    (N, 1, H, W) probabilities. Build it with :class:`DetectionFactory`.

    Args:
        task: ``object_detection`` or ``instance_segmentation``.
        framework: ``faster_rcnn``, ``retinanet``, ``fcos`` or ``mask_rcnn``.
        backbone: The geofm backbone.
        necks: Necks turning its features into feature maps.
        fpn: The feature pyramid on all levels of the necks' output.
        num_classes: Object classes + 1 (background).
        level_names: Names of the FPN's input levels (``"0"``, ``"1"``, ...).
    """

    def __init__(self, task: str, framework: str, backbone: nn.Module,
                 necks: Sequence[nn.Module], fpn: FeaturePyramidNetwork, num_classes: int,
                 level_names: Sequence[str]) -> None:
        super().__init__()
        self.task = task
        self.framework = framework
        self.num_classes = num_classes
        self.backbone = backbone
        self.necks = nn.ModuleList(necks)
        self.fpn = fpn
        self.level_names = list(level_names)
        #: Anchor sizes per unit of stride, applied on the first batch (None: as given).
        self.anchor_per_stride: float | None = None
        self.detector: nn.Module = nn.Identity()  # set by attach()

    def attach(self, detector: nn.Module, anchor_per_stride: float | None) -> None:
        """Install the torchvision detector built on :meth:`features_for_detector`."""
        self.detector = detector
        self.anchor_per_stride = anchor_per_stride

    def features_for_detector(self, out_channels: int) -> _PyramidFeatures:
        """The callable the torchvision detector uses as its backbone."""
        return _PyramidFeatures(self, out_channels)

    def pyramid(self, x: torch.Tensor) -> OrderedDict[str, torch.Tensor]:
        """Backbone, necks and FPN on the (padded) image batch: named pyramid levels."""
        features = run_encoder(self.backbone, self.necks, x, {}, None)
        for i, feature in enumerate(features):
            if feature.ndim != 4:
                raise ConfigurationError(
                    f"{NAME}: feature {i} of the backbone/necks has shape "
                    f"{tuple(feature.shape)}, not (B, C, h, w) feature maps; a ViT's token "
                    "sequences need necks, e.g. necks: [{name: geofm:select_indices, indices: "
                    "[2, 5, 8, 11]}, {name: geofm:reshape_tokens_to_image}, "
                    "{name: geofm:learned_interpolate_to_pyramidal}]"
                )
        if len(features) != len(self.level_names):
            raise ConfigurationError(
                f"{NAME}: the backbone/necks returned {len(features)} features but declare "
                f"{len(self.level_names)} (out_channels); fix the neck's out_channels"
            )
        levels: OrderedDict[str, torch.Tensor] = self.fpn(
            OrderedDict(zip(self.level_names, features, strict=True)))
        if self.anchor_per_stride is not None:
            self._fit_anchors(levels, x)
        return levels

    def _fit_anchors(self, levels: OrderedDict[str, torch.Tensor], x: torch.Tensor) -> None:
        """Set the default anchor sizes from the measured stride of each level, once."""
        generator = anchor_generator_of(self.detector)
        per_stride = self.anchor_per_stride
        self.anchor_per_stride = None
        if generator is None or per_stride is None:
            return
        # Powers of two, as torchvision's RoI pooler infers scales: a level of 3 x 3 for a
        # 70 px input is stride 32, not 23. The extra levels (max-pool, P6, P7) halve the
        # previous one by construction; measuring them on 1 x 1 maps would not tell.
        strides: list[int] = []
        for name, level in levels.items():
            if name in self.level_names:
                ratio = max(x.shape[-1] / level.shape[-1], 1.0)
                strides.append(2 ** round(math.log2(ratio)))
            else:
                strides.append(2 * strides[-1])
        sizes = []
        for stride, old in zip(strides, generator.sizes, strict=True):
            base = per_stride * stride
            # Keep each level's number of sizes (the heads' anchor count depends on it),
            # in the same ratios as the defaults (RetinaNet's 2^(k/3) octave steps).
            sizes.append(tuple(max(1, round(base * s / old[0])) for s in old))
        generator.sizes = tuple(sizes)
        generator.cell_anchors = [generator.generate_anchors(s, a) for s, a in
                                  zip(generator.sizes, generator.aspect_ratios, strict=True)]

    def forward(self, images: torch.Tensor, targets: list[dict[str, torch.Tensor]] | None = None
                ) -> Any:
        """Losses (training, with targets) or detections (eval) for ``images`` (B, C, H, W)."""
        if images.ndim != 4:
            raise ConfigurationError(
                f"{NAME}: a detection model takes images (B, C, H, W), got shape "
                f"{tuple(images.shape)}"
            )
        if self.training and targets is None:
            raise ConfigurationError(
                f"{NAME}: in training mode the model needs targets (one dict of boxes and "
                "labels per image); call model.eval() to predict"
            )
        return self.detector(list(images.unbind(0)), targets)

    def freeze_encoder(self) -> None:
        """Stop gradients to the backbone."""
        self.backbone.requires_grad_(False)

    def freeze_decoder(self) -> None:
        """Stop gradients to the necks and the feature pyramid (heads stay trainable)."""
        self.necks.requires_grad_(False)
        self.fpn.requires_grad_(False)

    def freeze_head(self) -> None:
        """Stop gradients to the detector's heads (RPN and RoI heads, or the dense head)."""
        self.detector.requires_grad_(False)


def anchor_generator_of(detector: nn.Module) -> AnchorGenerator | None:
    """The anchor generator of a torchvision detector (R-CNNs keep it in the RPN)."""
    rpn = getattr(detector, "rpn", None)
    generator = getattr(rpn, "anchor_generator", None) or getattr(detector, "anchor_generator",
                                                                   None)
    return generator if isinstance(generator, AnchorGenerator) else None


def _accepted(framework: str) -> list[str]:
    """The keywords of a torchvision detector that ``framework_kwargs`` may set."""
    classes = [FRAMEWORKS[framework]] + ([FasterRCNN] if framework == "mask_rcnn" else [])
    names: list[str] = []
    for cls in classes:
        for name, param in inspect.signature(cls.__init__).parameters.items():
            if param.kind in (param.POSITIONAL_OR_KEYWORD, param.KEYWORD_ONLY) and \
                    name != "self" and name not in names:
                names.append(name)
    # GeneralizedRCNNTransform's own keyword, passed on through **kwargs.
    return [n for n in names if n not in _SET_BY_FACTORY] + ["size_divisible", *_ANCHOR_KEYS]


def check_framework_kwargs(framework: str, kwargs: dict[str, Any]) -> None:
    """Refuse a keyword the framework's torchvision class does not take (with close matches)."""
    params = [inspect.Parameter(n, inspect.Parameter.KEYWORD_ONLY, default=None)
              for n in _accepted(framework)]

    def accepts(**_: Any) -> None:
        """Stand-in with the accepted keywords as its signature."""

    accepts.__signature__ = inspect.Signature(params)  # type: ignore[attr-defined]
    set_here = [k for k in kwargs if k in _SET_BY_FACTORY]
    if set_here:
        raise ConfigurationError(
            f"{NAME}: framework_kwargs must not set {set_here}; give backbone / num_classes "
            "/ min_size / max_size / image_mean / image_std as model_args keys"
        )
    check_arguments(accepts, kwargs, f"{NAME} framework_kwargs of torchvision "
                                     f"{FRAMEWORKS[framework].__name__} ({framework})")


def _anchor_generator(framework: str, levels: int, kwargs: dict[str, Any]
                      ) -> tuple[AnchorGenerator, float | None]:
    """The anchors of ``levels`` levels, and the size per stride to fit them with (or None)."""
    sizes = kwargs.pop("anchor_sizes", None)
    ratios = kwargs.pop("aspect_ratios", None)
    if framework == "fcos":
        base: list[tuple[float, ...]] = [(8.0 * 2**i,) for i in range(levels)]
        default_ratios: tuple[float, ...] = (1.0,)
    elif framework == "retinanet":
        base = [tuple(32.0 * 2**i * 2 ** (k / 3) for k in range(3)) for i in range(levels)]
        default_ratios = (0.5, 1.0, 2.0)
    else:
        base = [(32.0 * 2**i,) for i in range(levels)]
        default_ratios = (0.5, 1.0, 2.0)
    fitted: float | None = _ANCHOR_PER_STRIDE[framework]
    if sizes is not None:
        fitted = None
        sizes = [list(s) if isinstance(s, Sequence) else [s] for s in sizes]
        if len(sizes) == 1:
            sizes = sizes * levels
        if len(sizes) != levels:
            raise ConfigurationError(
                f"{NAME}: framework_kwargs.anchor_sizes has {len(sizes)} entries but the "
                f"pyramid has {levels} levels; give one list of sizes per level (or one "
                "list for all)"
            )
        base = [tuple(float(v) for v in s) for s in sizes]
        if framework == "fcos" and any(len(s) != 1 for s in base):
            raise ConfigurationError(f"{NAME}: FCOS takes one anchor size per level")
    if ratios is not None:
        default_ratios = tuple(float(r) for r in ratios)
        if framework == "fcos" and len(default_ratios) != 1:
            raise ConfigurationError(f"{NAME}: FCOS takes one aspect ratio")
    rounded = tuple(tuple(max(1, round(v)) for v in s) for s in base)
    return AnchorGenerator(rounded, (default_ratios,) * levels), fitted


class DetectionFactory:
    """Builds detectors on any registry backbone (``geofm:detection``).

    Arguments of ``build_model`` (an ``ObjectDetectionTask``'s ``model_args``)::

        backbone: timm:resnet50               # any registry backbone, or a ViT + necks
        backbone_kwargs: {in_chans: 6}
        necks: [{name: geofm:select_indices, indices: [1, 2, 3, 4]}]
        framework: faster_rcnn                # retinanet, fcos; mask_rcnn (instances)
        fpn_channels: 256
        framework_kwargs: {box_score_thresh: 0.05, anchor_sizes: [[16], [32], [64], [128], [256]]}
        backbone_weights: runs/mae/last.ckpt  # optional: an MAE-pretrained encoder

    For a ViT (token sequences)::

        necks:
          - {name: geofm:select_indices, indices: [2, 5, 8, 11]}
          - {name: geofm:reshape_tokens_to_image}
          - {name: geofm:learned_interpolate_to_pyramidal}
    """

    #: The tasks this factory builds models for.
    tasks = DETECTION_TASKS

    @validated_arguments(NAME)
    def build_model(
        self,
        task: str,
        backbone: str | nn.Module,
        framework: str | None = None,
        num_classes: int | None = None,
        backbone_kwargs: dict[str, Any] | None = None,
        necks: list[NeckSpec] | None = None,
        fpn_channels: int = 256,
        min_size: int | None = None,
        max_size: int | None = None,
        image_mean: list[float] | None = None,
        image_std: list[float] | None = None,
        framework_kwargs: dict[str, Any] | None = None,
        backbone_weights: str | None = None,
        extra_block: ExtraBlock | None = None,
    ) -> DetectionModel:
        """Build a :class:`DetectionModel`.

        Args:
            task: ``object_detection`` or ``instance_segmentation`` (the task passes it).
            backbone: A backbone name (``timm:resnet18``, ``prithvi:...``) or a ready module.
            framework: ``faster_rcnn`` (default for object detection), ``retinanet``,
                ``fcos``, or ``mask_rcnn`` (default and only choice for instances).
            num_classes: Object classes + 1 (label 0 is the background).
            backbone_kwargs: Keyword arguments of the backbone.
            necks: Necks in order, each ``{"name": ..., **kwargs}``, giving feature maps.
            fpn_channels: Channels of every pyramid level.
            min_size: None: chips go in as they are; an int: torchvision's resize.
            max_size: Longest side when resizing (default ``max(1333, min_size)``).
            image_mean: Per-band mean subtracted in the model (None: the data are normalised).
            image_std: Per-band std divided by in the model.
            framework_kwargs: Other keywords of torchvision's class (``box_score_thresh``,
                ``box_nms_thresh``, ``box_detections_per_img``, ``score_thresh``, ...),
                plus ``anchor_sizes`` (one list per level, or one for all) and
                ``aspect_ratios`` (one list for all levels).
            backbone_weights: A geofm checkpoint whose encoder is loaded into the
                backbone (see :func:`geofm_core.io.weights.load_backbone_weights`).
            extra_block: Pyramid levels added after the last one: ``maxpool`` (R-CNN
                default), ``p6p7`` (RetinaNet / FCOS default) or ``none``.

        Raises:
            ConfigurationError: A wrong task, framework, argument or keyword.
            ComponentArgumentError: Components that do not fit together.
        """
        framework = _check_task_and_framework(task, framework)
        if num_classes is None or num_classes < 2:
            raise ConfigurationError(
                f"{NAME}: num_classes must count the background too (K object classes -> "
                f"K + 1, at least 2), got {num_classes}"
            )
        if fpn_channels < 1:
            raise ConfigurationError(f"{NAME}: fpn_channels must be positive, got {fpn_channels}")
        if max_size is not None and min_size is None:
            raise ConfigurationError(
                f"{NAME}: max_size needs min_size (both None: no resizing)"
            )
        extra_kwargs = dict(framework_kwargs or {})
        check_framework_kwargs(framework, extra_kwargs)
        built_backbone, necks_built, channels = _build_encoder(backbone, backbone_kwargs or {},
                                                               necks or [])
        if backbone_weights is not None:
            from geofm_core.io.weights import load_backbone_weights

            load_backbone_weights(built_backbone, backbone_weights, f"{NAME} backbone_weights")
        extra = extra_block or _DEFAULT_EXTRA[framework]
        blocks = {"maxpool": LastLevelMaxPool(), "none": None,
                  "p6p7": LastLevelP6P7(fpn_channels, fpn_channels)}
        fpn = FeaturePyramidNetwork(channels, fpn_channels, extra_blocks=blocks[extra])
        names = [str(i) for i in range(len(channels))]
        model = DetectionModel(task, framework, built_backbone, necks_built, fpn, num_classes,
                               names)
        levels = len(names) + {"maxpool": 1, "p6p7": 2, "none": 0}[extra]
        generator, per_stride = _anchor_generator(framework, levels, extra_kwargs)
        multiple = math.lcm(32, int(getattr(built_backbone, "input_multiple", 1) or 1))
        size_divisible = int(extra_kwargs.pop("size_divisible", multiple))
        detector = _detector(framework, model.features_for_detector(fpn_channels), num_classes,
                             names, generator, extra_kwargs)
        detector.transform = ChipTransform(
            min_size, max_size if max_size is not None or min_size is None
            else max(1333, min_size), image_mean, image_std, size_divisible)
        if anchor_generator_of(detector) is not generator:
            per_stride = None  # the user's own generator object: its sizes are kept
        model.attach(detector, per_stride)
        return model


def _check_task_and_framework(task: str, framework: str | None) -> str:
    import difflib

    if task not in DETECTION_TASKS:
        raise ConfigurationError(
            f"{NAME} builds {' and '.join(DETECTION_TASKS)} models, not {task!r}; use "
            "geofm:encoder_decoder for segmentation, regression and classification"
        )
    framework = framework or _DEFAULT_FRAMEWORK[task]
    if framework not in FRAMEWORKS:
        close = difflib.get_close_matches(framework, list(FRAMEWORKS), n=2, cutoff=0.5)
        hint = f" (did you mean {', '.join(repr(c) for c in close)}?)" if close else ""
        raise ConfigurationError(
            f"{NAME}: unknown framework {framework!r}{hint}; choose one of "
            f"{', '.join(FRAMEWORKS)}"
        )
    if task == "object_detection" and framework == "mask_rcnn":
        raise ConfigurationError(
            f"{NAME}: framework mask_rcnn predicts instance masks; use "
            "InstanceSegmentationTask for it (ObjectDetectionTask takes faster_rcnn, "
            "retinanet or fcos)"
        )
    if task == "instance_segmentation" and framework != "mask_rcnn":
        raise ConfigurationError(
            f"{NAME}: instance segmentation needs framework mask_rcnn, not {framework!r}; "
            "use ObjectDetectionTask for boxes only"
        )
    return framework


def _build_encoder(backbone: str | nn.Module, backbone_kwargs: dict[str, Any],
                   necks: list[NeckSpec]) -> tuple[nn.Module, list[nn.Module], list[int]]:
    """Build the backbone and necks (all checked first); the channels of the last output."""
    built, built_necks, channels, producer = EncoderPlan.resolve(
        NAME, backbone, backbone_kwargs, necks).build()
    if len(channels) < 1:
        raise ConfigurationError(
            f"{NAME}: {producer} gives no feature level; the pyramid needs at least one"
        )
    return built, built_necks, channels


def _detector(framework: str, features: _PyramidFeatures, num_classes: int,
              names: list[str], generator: AnchorGenerator, kwargs: dict[str, Any]
              ) -> nn.Module:
    """The torchvision detector on ``features``, its anchors and poolers on ``names``."""
    cls: Any = FRAMEWORKS[framework]
    if framework in ("faster_rcnn", "mask_rcnn"):
        kwargs.setdefault("rpn_anchor_generator", generator)
        kwargs.setdefault("box_roi_pool", MultiScaleRoIAlign(names, output_size=7,
                                                             sampling_ratio=2))
        if framework == "mask_rcnn":
            kwargs.setdefault("mask_roi_pool", MultiScaleRoIAlign(names, output_size=14,
                                                                  sampling_ratio=2))
    else:
        kwargs.setdefault("anchor_generator", generator)
    try:
        detector: nn.Module = cls(features, num_classes=num_classes, **kwargs)
    except (TypeError, ValueError) as exc:
        raise ConfigurationError(
            f"{NAME}: torchvision {cls.__name__} refused framework_kwargs {sorted(kwargs)}: "
            f"{exc}"
        ) from exc
    return detector
