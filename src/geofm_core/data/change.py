"""Change detection from GeoTIFF pairs: an image before, an image after, a change label.

The three files pair by the text the wildcards of ``before_pattern``, ``after_pattern``
and ``label_pattern`` match (``tile3_before.tif``, ``tile3_after.tif`` and
``tile3_label.tif`` share the key ``tile3``). Both dates are read through the one
:class:`~geofm_core.data.preprocessing.Preprocessing` and stacked as ``"image"`` (2, C,
H, W) (before, after: TorchGeo's change-detection layout); the batch augmentations fold
the dates into the channels, so both dates and the mask get the same crop and flip.
The two dates must share CRS, transform and size: an error names both files otherwise.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import rasterio
import torch
from rasterio.errors import RasterioError

from geofm_core.data.datamodules import GeoTiffSegmentationDataModule, Stage
from geofm_core.data.files import find_files
from geofm_core.data.images import GeoTiffImageDataset, Sample, read_error
from geofm_core.data.paired import GeoTiffSegmentationDataset, georef_difference
from geofm_core.errors import ConfigurationError

__all__ = [
    "GeoTiffChangeDetectionDataModule",
    "GeoTiffChangeDetectionDataset",
    "GeoTiffChangePairDataset",
    "check_same_grid",
    "date_difference",
]

_LISTED = 10


def date_difference(before: Any, after: Any) -> str | None:
    """How two open rasters of one place at two dates differ (size, bands, CRS, grid), or None.

    Unlike an image and its label, two dates must both be georeferenced or both not: a
    CRS on one side only is a difference.
    """
    if (before.height, before.width) != (after.height, after.width):
        return (f"size {before.width} x {before.height} vs {after.width} x {after.height} "
                "pixels")
    if before.count != after.count:
        return f"{before.count} vs {after.count} bands"
    if (before.crs is None) != (after.crs is None):
        return f"CRS {before.crs} vs {after.crs}"
    return georef_difference(before, after)


def check_same_grid(before: Any, after: Any) -> None:
    """Refuse two dates that are not co-registered, naming both files and the difference."""
    difference = date_difference(before, after)
    if difference is not None:
        raise ConfigurationError(
            f"the before image {before.name} and the after image {after.name} are not "
            f"co-registered ({difference}); change detection compares them pixel by pixel, "
            "so they must share CRS, transform and size: reproject / resample one onto the "
            "other's grid (e.g. gdalwarp -t_srs/-tr/-te from the before image), or fix the "
            "pairing patterns"
        )


class _TwoDates:
    """Adds the after image of each item (paired by key) to an image dataset's items."""

    items: list[tuple[str, Path, Any]]
    preprocessing: Any
    task: ClassVar[str]

    def __init__(self, data_root: str | Path, *args: Any,
                 after_data_root: str | Path | None = None,
                 after_pattern: str = "*_after.tif", **kwargs: Any) -> None:
        self.after_data_root = Path(data_root if after_data_root is None else after_data_root)
        self.after_pattern = after_pattern
        self._after: dict[str, Path] = {}
        self._dates_checked: set[str] = set()
        before_pattern = kwargs.get("img_pattern", "*.tif")
        if self.after_data_root == Path(data_root) and after_pattern == before_pattern:
            raise ConfigurationError(
                f"before and after images are both found with pattern {after_pattern!r} in "
                f"{str(data_root)!r}; give before_pattern and after_pattern (e.g. "
                "'*_before.tif' and '*_after.tif') or a separate after_data_root"
            )
        super().__init__(data_root, *args, **kwargs)  # type: ignore[call-arg]

    def _collect(self) -> list[tuple[str, Path, Any]]:
        items: list[tuple[str, Path, Any]] = super()._collect()  # type: ignore[misc]
        afters = find_files(self.after_data_root, self.after_pattern,
                            "after_data_root/after_pattern")
        lonely = [path.name for key, path, _ in items if key not in afters]
        if lonely:
            shown = ", ".join(lonely[:_LISTED]) + (
                f" and {len(lonely) - _LISTED} more" if len(lonely) > _LISTED else "")
            raise ConfigurationError(
                f"before images without an after image: {shown} (none matches "
                f"{self.after_pattern!r} in {str(self.after_data_root)!r} with the same key); "
                "before and after images pair by the text the patterns' wildcards match: add "
                "the after images, fix before_pattern / after_pattern, or leave the pairs out "
                "with a split file"
            )
        self._after = {key: afters[key] for key, _, _ in items}
        return items

    @property
    def after_filenames(self) -> list[str]:
        """After-image paths, in item order."""
        return [str(self._after[item[0]]) for item in self.items]

    def load_after(self, index: int) -> np.ndarray:
        """The after image of an item, as the model sees it (checked against the before)."""
        key, before_path, _ = self.items[index]
        path = self._after[key]
        try:
            with rasterio.open(path) as src:
                if key not in self._dates_checked:
                    with rasterio.open(before_path) as before:
                        check_same_grid(before, src)
                    self._dates_checked.add(key)
                values, invalid = self.preprocessing.read(src)
        except RasterioError as exc:
            raise read_error(path, exc) from exc
        if invalid is not None and self.task != "image":
            self.preprocessing.check_trainable(values, invalid, path)
        out: np.ndarray = self.preprocessing.fill_and_normalise(values, invalid)
        return out

    def __getitem__(self, index: int) -> Sample:
        sample: Sample = super().__getitem__(index)  # type: ignore[misc]
        after = torch.from_numpy(self.load_after(index))
        sample["image"] = torch.stack([sample["image"], after])
        return sample

    def plot(self, sample: Sample, suptitle: str | None = None, **kwargs: Any) -> Any:
        """Figure of a sample: the after image, the change mask and prediction when present."""
        image = sample["image"]
        shown = {**sample, "image": image[1] if image.ndim >= 4 else image}
        return super().plot(shown, suptitle, **kwargs)  # type: ignore[misc]


class GeoTiffChangePairDataset(_TwoDates, GeoTiffImageDataset):
    """Before / after pairs without labels (prediction): items ``{"image": (2, C, H, W)}``.

    Args:
        data_root: folder of the before images (found with ``img_pattern``).
        after_data_root: folder of the after images (default ``data_root``).
        after_pattern: glob selecting the after images.
        **kwargs: the options of :class:`~geofm_core.data.images.GeoTiffImageDataset`.
    """

    task = "change_pairs"


class GeoTiffChangeDetectionDataset(_TwoDates, GeoTiffSegmentationDataset):
    """Before / after pairs with a change label: ``image`` (2, C, H, W), ``mask`` (H, W).

    Args:
        data_root: folder of the before images (found with ``img_pattern``).
        label_data_root: folder of the change labels (default ``data_root``).
        after_data_root: folder of the after images (default ``data_root``).
        after_pattern: glob selecting the after images.
        **kwargs: the label options of
            :class:`~geofm_core.data.paired.GeoTiffSegmentationDataset` and the image options.
    """

    task = "change_detection"


class GeoTiffChangeDetectionDataModule(GeoTiffSegmentationDataModule):
    """Change detection from GeoTIFF pairs (before, after) and change labels, paired by name.

    Example (the ``data:`` section)::

        data:
          class_path: GeoTiffChangeDetectionDataModule
          init_args:
            train_data_root: data/pairs/train
            val_data_root: data/pairs/val
            before_pattern: "*_before.tif"
            after_pattern: "*_after.tif"
            label_pattern: "*_label.tif"      # 0 no change, 1 change
            means: [...]                      # per band, shared by both dates
            stds: [...]
            train_augmentations: [hflip, {random_crop: 64}]

    Args:
        before_pattern: glob selecting the before images (in the stage's data root).
        after_pattern: glob selecting the after images.
        label_pattern: glob selecting the change labels.
        train_after_data_root: folder of the training after images (default the training
            data root); likewise for the other stages.
        val_after_data_root: folder of the validation after images.
        test_after_data_root: folder of the test after images.
        predict_after_data_root: folder of the after images to predict.
        num_classes: change classes (default 2: no change, change).
        class_names: class names (default ``[no_change, change]`` for 2 classes).
        mask_channel: give masks as (B, 1, H, W) (TorchGeo's binary change layout) instead
            of (B, H, W); the augmentations still apply to them.
        **kwargs: the options of
            :class:`~geofm_core.data.datamodules.GeoTiffSegmentationDataModule` (roots,
            splits, loaders, bands, scaling, normalisation, augmentations, ignore_index).
    """

    task = "change_detection"

    def __init__(
        self,
        *,
        before_pattern: str = "*_before.tif",
        after_pattern: str = "*_after.tif",
        label_pattern: str = "*_label.tif",
        train_after_data_root: str | None = None,
        val_after_data_root: str | None = None,
        test_after_data_root: str | None = None,
        predict_after_data_root: str | None = None,
        num_classes: int | None = 2,
        class_names: list[str] | None = None,
        mask_channel: bool = False,
        **kwargs: Any,
    ) -> None:
        if kwargs.get("img_pattern", "*.tif") != "*.tif" or kwargs.get("predict_img_pattern"):
            raise ConfigurationError(
                "GeoTiffChangeDetectionDataModule finds its images with before_pattern and "
                "after_pattern; remove img_pattern / predict_img_pattern"
            )
        if class_names is None and num_classes == 2:
            class_names = ["no_change", "change"]
        kwargs["img_pattern"] = before_pattern
        super().__init__(label_pattern=label_pattern, num_classes=num_classes,
                         class_names=class_names, **kwargs)
        self.before_pattern = before_pattern
        self.after_pattern = after_pattern
        self.mask_channel = mask_channel
        self.after_roots: dict[str, str | None] = {
            "train": train_after_data_root, "val": val_after_data_root,
            "test": test_after_data_root, "predict": predict_after_data_root,
        }

    def after_root(self, stage: Stage) -> str | None:
        """After-image folder of a stage (default: its before-image folder)."""
        return self.after_roots[stage] or self.data_root(stage)

    def build_dataset(self, stage: Stage) -> GeoTiffImageDataset:
        """Build (without caching) the change dataset of a stage."""
        root = self.data_root(stage)
        if root is None:
            raise ConfigurationError(
                f"{stage}_data_root is not set; give the folder of the {stage} before images"
            )
        options: dict[str, Any] = {**self.image_options, "img_pattern": self.before_pattern,
                                   "after_data_root": self.after_root(stage),
                                   "after_pattern": self.after_pattern}
        if stage == "predict":
            return GeoTiffChangePairDataset(root, **options)
        return GeoTiffChangeDetectionDataset(
            root, self.label_root(stage), split=self.splits[stage], **options,
            **self.task_options(),
        )

    def on_after_batch_transfer(self, batch: Any, dataloader_idx: int) -> Any:
        """Augment both dates and the mask alike; then the mask layout asked for."""
        batch = super().on_after_batch_transfer(batch, dataloader_idx)
        mask = batch.get("mask") if isinstance(batch, dict) else None
        if self.mask_channel and isinstance(mask, torch.Tensor) and mask.ndim == 3:
            batch = {**batch, "mask": mask.unsqueeze(1)}
        return batch
