"""Object detection and instance segmentation data: GeoTIFF images plus vector labels.

Images (a folder selected with ``img_pattern``, or one file) are cut into chips of
``chip_size`` pixels every ``chip_stride`` (the last row and column of chips end at the
image's edge); labels are polygons in a GeoPackage, GeoJSON or Shapefile in any CRS
(reprojected to each image's), either ONE file for all images of a stage (each chip gets
the geometries that intersect it) or one file per image paired by name
(``label_pattern``, like the label rasters of the segmentation data). Geometries are
clipped to the chip; a box is the clipped geometry's bounds in chip pixels and, for
instance segmentation, a mask is the clipped geometry rasterised. The class of each
object is the ``class_attribute`` column, among ``classes`` (ids 1..K; 0 is the
background, so the tasks' ``num_classes`` is K + 1). Invalid, empty and outside
geometries and empty chips are handled as :mod:`geofm_core.data.vector_labels` and the
options below say, with one warning per label file counting what was skipped.

Batches (TorchGeo 0.8's layout, which TorchGeo's own detection trainers read too):
``image`` (B, C, H, W) normalised; ``bbox_xyxy`` a list of B float (N_i, 4);
``label`` a list of B int64 (N_i,); instance segmentation adds ``mask``, a list of B
uint8 (N_i, H, W); ``filename`` the B source images; ``window`` int64 (B, 4): row_off,
col_off, height, width of each chip in its image. Prediction batches hold images,
filenames and windows only. Needs the ``vector`` extra (``pip install
geofm-core[vector]``).

Example (``geofm fit -c detect.yaml``)::

    model:
      class_path: ObjectDetectionTask
      init_args:
        model_args: {backbone: timm:resnet18, framework: faster_rcnn}
        class_names: [water]
    data:
      class_path: GeoTiffObjectDetectionDataModule
      init_args:
        train_data_root: data/images           # a folder of GeoTIFFs (or one file)
        img_pattern: "*_S2Hand.tif"
        train_label_data_root: data/water.gpkg # one file for all images (any CRS) ...
        # ... or a folder of per-image files:  data/labels + label_pattern: "*_water.gpkg"
        train_split: splits/train.txt
        val_split: splits/val.txt              # val images and labels default to train's
        class_attribute: class
        classes: [water]
        chip_size: 128
        chip_stride: 96
        min_box_size: 2
        invalid_geometries: fix                # or skip, error
        empty_chips: keep                      # or skip
        dataset_bands: [COASTAL_AEROSOL, BLUE, GREEN, RED, RED_EDGE_1, RED_EDGE_2,
                        RED_EDGE_3, NIR_BROAD, NIR_NARROW, WATER_VAPOR, CIRRUS, SWIR_1,
                        SWIR_2]
        output_bands: [BLUE, GREEN, RED, NIR_NARROW, SWIR_1, SWIR_2]
        means: stats.yaml                      # geofm stats -c detect.yaml -o stats.yaml
        stds: stats.yaml
        no_data_replace: 0
        train_augmentations: [hflip, vflip, rot90]
        batch_size: 4
        num_workers: 2
        predict_data_root: data/scenes

Augmentations move the boxes and masks with the pixels; only ``hflip``, ``vflip`` and
``rot90`` (square chips) are offered: crops and resizes would cut and drop objects, so
cut chips with ``chip_size`` / ``chip_stride`` instead.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, ClassVar, Literal

import numpy as np
import torch

from geofm_core.data.augment import AugmentationSpec, augmentation_entry
from geofm_core.data.datamodules import GeoTiffChipDataModule, Stage
from geofm_core.data.detection_chips import GeoTiffDetectionDataset
from geofm_core.data.images import GeoTiffImageDataset, Sample, _check_same_shapes
from geofm_core.errors import ConfigurationError

__all__ = [
    "DetectionAugmentation",
    "GeoTiffDetectionDataset",
    "GeoTiffInstanceSegmentationDataModule",
    "GeoTiffObjectDetectionDataModule",
    "build_detection_augmentation",
    "collate_detection",
]

#: Batch keys that stay lists: each sample has its own number of objects.
_PER_OBJECT = ("bbox_xyxy", "label", "mask")


def collate_detection(samples: Sequence[Sample]) -> dict[str, Any]:
    """Batch detection samples: images and windows stacked, targets and names listed."""
    _check_same_shapes([{"image": s["image"], "filename": s.get("filename")} for s in samples])
    batch: dict[str, Any] = {}
    for key in samples[0]:
        values = [s[key] for s in samples]
        if key not in _PER_OBJECT and isinstance(values[0], torch.Tensor):
            # NumPy copies on one thread: torch.stack in the main process uses the busy
            # intra-op pool (see collate_samples)
            batch[key] = torch.from_numpy(np.stack([v.numpy() for v in values]))
        else:
            batch[key] = values
    return batch


# ---------------------------------------------------------------- augmentation
def _box_hflip(boxes: torch.Tensor, width: int) -> torch.Tensor:
    return torch.stack([width - boxes[:, 2], boxes[:, 1], width - boxes[:, 0], boxes[:, 3]], 1)


def _box_vflip(boxes: torch.Tensor, height: int) -> torch.Tensor:
    return torch.stack([boxes[:, 0], height - boxes[:, 3], boxes[:, 2], height - boxes[:, 1]],
                       1)


def _box_rot90(boxes: torch.Tensor, width: int) -> torch.Tensor:
    # torch.rot90(dims=(-2, -1)) sends pixel (row r, column c) to (width - 1 - c, r): in
    # continuous chip coordinates x' = y and y' = width - x
    return torch.stack([boxes[:, 1], width - boxes[:, 2], boxes[:, 3], width - boxes[:, 0]], 1)


class DetectionAugmentation:
    """Flips and quarter turns of a detection batch, per sample, moving boxes and masks.

    Args:
        ops: ``(name, probability)`` pairs, applied in order; names ``hflip``, ``vflip``,
            ``rot90`` (a random number of quarter turns, 0 to 3).
    """

    def __init__(self, ops: Sequence[tuple[str, float]]) -> None:
        self.ops = list(ops)
        self.names = [name for name, _ in self.ops]

    def __repr__(self) -> str:
        return f"DetectionAugmentation({self.ops})"

    def __call__(self, batch: dict[str, Any]) -> dict[str, Any]:
        """The augmented batch (a new dict); the draws are per sample."""
        image: torch.Tensor = batch["image"]
        height, width = int(image.shape[-2]), int(image.shape[-1])
        if "rot90" in self.names and height != width:
            raise ConfigurationError(
                f"augmentation rot90 needs square chips, got {height}x{width}; set chip_size, "
                "or drop rot90"
            )
        images = list(image.unbind(0))
        boxes = list(batch.get("bbox_xyxy") or [None] * len(images))
        masks = list(batch.get("mask") or [None] * len(images))
        for i in range(len(images)):
            for name, p in self.ops:
                if float(torch.rand(())) >= p:
                    continue
                if name == "hflip":
                    images[i], masks[i] = images[i].flip(-1), _flip(masks[i], -1)
                    boxes[i] = None if boxes[i] is None else _box_hflip(boxes[i], width)
                elif name == "vflip":
                    images[i], masks[i] = images[i].flip(-2), _flip(masks[i], -2)
                    boxes[i] = None if boxes[i] is None else _box_vflip(boxes[i], height)
                else:
                    for _ in range(int(torch.randint(0, 4, ()))):
                        images[i] = images[i].rot90(1, (-2, -1))
                        masks[i] = None if masks[i] is None else masks[i].rot90(1, (-2, -1))
                        boxes[i] = None if boxes[i] is None else _box_rot90(boxes[i], width)
        out = dict(batch)
        out["image"] = torch.stack(images)
        if "bbox_xyxy" in batch:
            out["bbox_xyxy"] = boxes
        if "mask" in batch:
            out["mask"] = masks
        return out


def _flip(mask: torch.Tensor | None, dim: int) -> torch.Tensor | None:
    return None if mask is None else mask.flip(dim)


def build_detection_augmentation(spec: Sequence[AugmentationSpec] | None,
                                 field: str) -> DetectionAugmentation | None:
    """A :class:`DetectionAugmentation` from a YAML list (``hflip``, ``{vflip: 0.2}``, ...).

    Raises:
        ConfigurationError: an entry other than ``hflip``, ``vflip``, ``rot90`` (crops and
            resizes would cut objects), or a bad probability.
    """
    if not spec:
        return None
    ops: list[tuple[str, float]] = []
    for entry in spec:
        name, arg = augmentation_entry(entry, field, "{hflip: 0.5}")
        if name not in ("hflip", "vflip", "rot90"):
            raise ConfigurationError(
                f"{field}: {name!r} is not available for detection data, which offers hflip, "
                "vflip and rot90 (these move the boxes and masks with the pixels); cut chips "
                "with chip_size / chip_stride instead of cropping or resizing"
            )
        if isinstance(arg, dict):
            arg = arg.get("p")
        p = (1.0 if name == "rot90" else 0.5) if arg is None else arg
        if isinstance(p, bool) or not isinstance(p, int | float) or not 0.0 <= float(p) <= 1.0:
            raise ConfigurationError(
                f"{field}: {name} probability must be in [0, 1], got {arg!r}"
            )
        ops.append((name, float(p)))
    return DetectionAugmentation(ops)


# ---------------------------------------------------------------- data modules
class GeoTiffObjectDetectionDataModule(GeoTiffChipDataModule):
    """Object detection from GeoTIFF images and vector labels, cut into chips.

    Label roots (``{stage}_label_data_root``) are one vector file for all images of the
    stage, or a folder of per-image files paired by name (default: the image folder);
    validation and test labels default to the training labels when their images come
    from the training root (a split file). See the module docstring for an example.

    Args:
        label_pattern: glob of per-image label files in a label folder, e.g.
            ``"*_water.gpkg"``; images and label files pair by the text the wildcards of
            ``img_pattern`` and ``label_pattern`` match.
        class_attribute: the label column holding each object's class; None: all
            objects are one class.
        classes: object classes in label order (ids 1..K; background 0 is not listed).
            Needed with ``class_attribute``; default ``["object"]`` without it.
        chip_size: side of the square chips in pixels; None: each image is one chip (all
            images of a batch must then have one size).
        chip_stride: pixels between chip starts (default ``chip_size``).
        min_box_size: boxes narrower or lower than this many pixels (after clipping to
            the chip) are dropped.
        invalid_geometries: ``fix`` (shapely ``make_valid``, polygonal part kept),
            ``skip``, or ``error`` (naming the file and feature).
        empty_chips: ``keep`` chips without objects as negatives, or ``skip`` them.
        **kwargs: the options of :class:`~geofm_core.data.datamodules.GeoTiffChipDataModule`
            (roots, ``img_pattern``, splits, loaders, bands, scaling, normalisation,
            nodata); ``train_augmentations`` / ``val_augmentations`` take ``hflip``,
            ``vflip`` and ``rot90`` only.
    """

    dataset_class: ClassVar[type[GeoTiffImageDataset]] = GeoTiffDetectionDataset
    task = "object_detection"
    collate_fn = staticmethod(collate_detection)
    #: Whether items carry instance masks.
    with_masks: ClassVar[bool] = False

    def __init__(
        self,
        *,
        label_pattern: str = "*.gpkg",
        class_attribute: str | None = None,
        classes: list[str] | None = None,
        chip_size: int | None = None,
        chip_stride: int | None = None,
        min_box_size: float = 1.0,
        invalid_geometries: Literal["fix", "skip", "error"] = "fix",
        empty_chips: Literal["keep", "skip"] = "keep",
        **kwargs: Any,
    ) -> None:
        # Checked before the shared options, whose kornia augmentations would move the
        # pixels and leave the boxes behind.
        train_aug = build_detection_augmentation(kwargs.get("train_augmentations"),
                                                 "train_augmentations")
        val_aug = build_detection_augmentation(kwargs.get("val_augmentations"),
                                               "val_augmentations")
        if class_attribute is None and classes is not None and len(classes) > 1:
            raise ConfigurationError(
                f"classes lists {len(classes)} classes but class_attribute is not set, so "
                "every object would be one class; set class_attribute to the label column "
                "holding the class"
            )
        if class_attribute is not None and not classes:
            raise ConfigurationError(
                f"class_attribute is {class_attribute!r}: list its values in label order as "
                "classes (e.g. classes: [water, building]); they get ids 1..K"
            )
        if chip_stride is not None and chip_size is None:
            raise ConfigurationError("chip_stride needs chip_size; set both, or neither")
        super().__init__(**kwargs)
        self.train_augmentation = train_aug  # type: ignore[assignment]
        self.val_augmentation = val_aug  # type: ignore[assignment]
        self.label_pattern = label_pattern
        self.class_attribute = class_attribute
        self.classes: list[str] = list(classes) if classes else ["object"]
        self.dataset_options: dict[str, Any] = {
            "label_pattern": label_pattern, "class_attribute": class_attribute,
            "classes": self.classes, "chip_size": chip_size, "chip_stride": chip_stride,
            "min_box_size": min_box_size, "invalid_geometries": invalid_geometries,
            "empty_chips": empty_chips, "with_masks": self.with_masks,
        }
        # Checked now (the dataset would only say so once the files are read).
        GeoTiffDetectionDataset._check_options(**{
            k: v for k, v in self.dataset_options.items()
            if k in ("chip_size", "chip_stride", "min_box_size", "empty_chips")})

    @property
    def class_names(self) -> list[str]:
        """The object classes (ids 1..K), without the background."""
        return list(self.classes)

    @property
    def num_classes(self) -> int:
        """K + 1: the object classes and the background, as the detection tasks count."""
        return len(self.classes) + 1

    def plot(self, sample: dict[str, Any], suptitle: str | None = None) -> Any:
        """Figure of one sample: its boxes and any predicted boxes, captioned by class."""
        return self._reference().plot(sample, suptitle, class_names=self.classes)

    def build_dataset(self, stage: Stage) -> GeoTiffImageDataset:
        """Build (without caching) the chips of a stage; prediction chips have no labels."""
        root = self.data_root(stage)
        if root is None:
            raise ConfigurationError(
                f"{stage}_data_root is not set; give the folder (or file) of {stage} images"
            )
        predict = stage == "predict"
        return GeoTiffDetectionDataset(
            root, None if predict else self.label_root(stage), labelled=not predict,
            img_pattern=self.predict_img_pattern if predict else self.img_pattern,
            split=self.splits[stage], **self.dataset_options, **self.image_options)


class GeoTiffInstanceSegmentationDataModule(GeoTiffObjectDetectionDataModule):
    """Instance segmentation: object detection data plus one mask per object.

    Each object's mask (uint8 (H, W) in a sample's ``mask``, (N, H, W) per chip) is its
    clipped geometry rasterised on the chip's pixels (a pixel is in when its centre is).
    Same arguments as :class:`GeoTiffObjectDetectionDataModule`.
    """

    task = "instance_segmentation"
    with_masks = True
