"""The detection chip dataset: GeoTIFF images cut into chips, objects from vector labels.

Items follow the batch contract of the detection tasks (TorchGeo 0.8's layout):
``image`` float (C, H, W) through the data's
:class:`~geofm_core.data.preprocessing.Preprocessing`; ``bbox_xyxy`` float32 (N, 4) in
the chip's pixels; ``label`` int64 (N,) in 1..K; with masks, ``mask`` uint8 (N, H, W);
``filename`` (the source image) and ``window`` int64 (4,): row_off, col_off, height,
width of the chip in its image. Unlabelled (prediction) items have no targets.

Chips and their objects are worked out when the dataset is built (geometry, plus one
band per chip of images with a nodata value): that is when label files are checked,
when chips without objects are left out (``empty_chips="skip"``), when labelled chips
that are nodata throughout are left out (a scene's margins), and when each label file's
repairs and skips are reported (see :mod:`geofm_core.data.vector_labels`). Masks are
rasterised per item.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar, Literal

import numpy as np
import rasterio
import torch
from rasterio.errors import RasterioError
from rasterio.windows import Window

from geofm_core.data.files import find_files, pair_by_key, read_split, select_split
from geofm_core.data.images import GeoTiffImageDataset, Sample, read_error
from geofm_core.data.preprocessing import nodata_mask
from geofm_core.data.vector_labels import (
    VECTOR_SUFFIXES,
    ChipTargets,
    LabelCounts,
    LabelWarning,
    VectorLabels,
    chip_targets,
    import_vector_readers,
    read_vector_labels,
)
from geofm_core.errors import ConfigurationError
from geofm_core.inference.tiling import tile_starts

__all__ = ["GeoTiffDetectionDataset", "chip_windows"]

EmptyChips = Literal["keep", "skip"]


@dataclass
class _Chip:
    """One item: a window of an image and, when labelled, its objects."""

    window: tuple[int, int, int, int]
    targets: ChipTargets | None


def chip_windows(height: int, width: int, chip_size: int | None, chip_stride: int | None,
                 path: Path) -> list[tuple[int, int, int, int]]:
    """``(row_off, col_off, height, width)`` of the chips of an image, row by row.

    Chips start every ``chip_stride`` pixels; the last row and column are moved back to
    end at the image's edge, so every chip has the full size and every pixel is covered
    (when ``chip_stride <= chip_size``). ``chip_size`` None: the whole image is one chip.

    Raises:
        ConfigurationError: the image is smaller than a chip (naming it).
    """
    if chip_size is None:
        return [(0, 0, height, width)]
    if height < chip_size or width < chip_size:
        raise ConfigurationError(
            f"{path}: the image is {height}x{width} pixels, smaller than chip_size "
            f"{chip_size}; lower chip_size (or set it to null for whole images)"
        )
    stride = chip_stride or chip_size
    return [(r, c, chip_size, chip_size) for r in tile_starts(height, chip_size, stride)
            for c in tile_starts(width, chip_size, stride)]


def find_images(root: str | Path, pattern: str, field: str) -> dict[str, Path]:
    """Images under a folder (by ``pattern``, keyed like :func:`find_files`) or one file."""
    path = Path(root).expanduser()
    if path.is_file():
        return {path.stem: path}
    return find_files(path, pattern, field)


class GeoTiffDetectionDataset(GeoTiffImageDataset):
    """GeoTIFF images cut into chips, with boxes (and masks) from vector labels.

    Args:
        data_root: a folder of images (selected with ``img_pattern``) or one image.
        label_data_root: one vector file holding the labels of every image (each image,
            and each chip, gets the geometries that intersect it), or a folder of per-image
            vector files paired with the images by name (``label_pattern``); default: the
            image folder.
        label_pattern: glob of the per-image label files, e.g. ``"*_water.gpkg"``.
        class_attribute: the label column holding each object's class; None: one class.
        classes: the object classes in label order (class id = position + 1).
        chip_size: side of the square chips in pixels; None: each image is one chip.
        chip_stride: pixels between chip starts (default ``chip_size``: no overlap).
        min_box_size: boxes narrower or lower than this many pixels are dropped.
        invalid_geometries: ``"fix"`` (shapely ``make_valid``), ``"skip"`` or ``"error"``.
        empty_chips: ``"keep"`` chips without objects (negatives) or ``"skip"`` them.
        with_masks: add ``mask`` (instance segmentation).
        labelled: read labels (False for prediction: images and windows only).
        **kwargs: the image options of :class:`GeoTiffImageDataset` (``img_pattern``,
            ``split``, bands, scaling, normalisation).
    """

    task: ClassVar[str] = "object_detection"

    def __init__(
        self,
        data_root: str | Path,
        label_data_root: str | Path | None = None,
        *,
        label_pattern: str = "*.gpkg",
        class_attribute: str | None = None,
        classes: Sequence[str] = ("object",),
        chip_size: int | None = None,
        chip_stride: int | None = None,
        min_box_size: float = 1.0,
        invalid_geometries: Literal["fix", "skip", "error"] = "fix",
        empty_chips: EmptyChips = "keep",
        with_masks: bool = False,
        labelled: bool = True,
        **kwargs: Any,
    ) -> None:
        self._check_options(chip_size=chip_size, chip_stride=chip_stride,
                            min_box_size=min_box_size, empty_chips=empty_chips)
        if not classes:
            raise ConfigurationError("classes is empty; list the object classes")
        self.label_data_root = None if label_data_root is None else Path(label_data_root)
        self.label_pattern = label_pattern
        self.class_attribute = class_attribute
        self.classes = [str(c) for c in classes]
        self.chip_size = chip_size
        self.chip_stride = chip_stride
        self.min_box_size = float(min_box_size)
        self.invalid_geometries = invalid_geometries
        self.empty_chips = empty_chips
        self.with_masks = with_masks
        self.labelled = labelled
        #: What was repaired or skipped, per label file.
        self.label_counts: dict[Path, LabelCounts] = {}
        #: Chips left out for having no object (``empty_chips="skip"``).
        self.skipped_chips = 0
        #: Labelled chips left out for being nodata throughout.
        self.nodata_chips = 0
        super().__init__(data_root, **kwargs)

    @staticmethod
    def _check_options(*, chip_size: int | None, chip_stride: int | None,
                       min_box_size: float, empty_chips: str) -> None:
        if chip_size is not None and chip_size < 1:
            raise ConfigurationError(f"chip_size must be >= 1 (or null), got {chip_size}")
        if chip_stride is not None and chip_stride < 1:
            raise ConfigurationError(f"chip_stride must be >= 1 (or null), got {chip_stride}")
        if empty_chips not in ("keep", "skip"):
            raise ConfigurationError(f"empty_chips must be 'keep' or 'skip', got {empty_chips!r}")
        if min_box_size < 0:
            raise ConfigurationError(f"min_box_size must be >= 0, got {min_box_size}")

    # ------------------------------------------------------------------ items
    def _collect(self) -> list[tuple[str, Path, Any]]:
        images = find_images(self.data_root, self.img_pattern, "data_root/img_pattern")
        if self.split is not None:
            images = select_split(images, read_split(self.split, "split"), self.split)
        grids = {key: self._grid(path) for key, path in images.items()}
        if not self.labelled:
            return [(key, path, _Chip(window, None)) for key, path in images.items()
                    for window in self._windows(grids[key], path)]
        root = self.label_data_root or (
            self.data_root.parent if self.data_root.is_file() else self.data_root)
        if root.is_file() or (not root.exists() and root.suffix.lower() in VECTOR_SUFFIXES):
            items = self._from_shared_file(root, images, grids)
        elif root.is_dir():
            items = self._from_paired_files(root, images, grids)
        else:
            raise ConfigurationError(
                f"label_data_root: {str(root)!r} does not exist; give one vector file for all "
                "images or a folder of per-image label files"
            )
        if self.nodata_chips:
            warnings.warn(
                f"{self.nodata_chips} chips of {self.data_root} are nodata throughout (in "
                "their first band) and were skipped", LabelWarning, stacklevel=3)
        if self.skipped_chips:
            warnings.warn(
                f"{self.skipped_chips} of {self.skipped_chips + len(items)} chips of "
                f"{self.data_root} hold no object and were skipped (empty_chips='skip')",
                LabelWarning, stacklevel=3)
        if not items:
            raise ConfigurationError(
                f"no chip of {self.data_root} holds an object of its labels "
                f"{self.label_data_root or root}, and empty_chips is 'skip'; check that the "
                "labels cover the images (CRS, extent), or keep empty chips"
            )
        return items

    def _grid(self, path: Path) -> tuple[int, int, Any, Any]:
        try:
            with rasterio.open(path) as src:
                return src.height, src.width, src.crs, src.transform
        except RasterioError as exc:
            raise read_error(path, exc) from exc

    def _windows(self, grid: tuple[int, int, Any, Any], path: Path
                 ) -> list[tuple[int, int, int, int]]:
        return chip_windows(grid[0], grid[1], self.chip_size, self.chip_stride, path)

    def _read_labels(self, path: Path) -> VectorLabels:
        labels = read_vector_labels(
            path, class_attribute=self.class_attribute, classes=self.classes,
            invalid_geometries=self.invalid_geometries)
        self.label_counts[path] = labels.counts
        return labels

    def _chips(self, key: str, path: Path, grid: tuple[int, int, Any, Any], pixels: Any,
               classes: Any, counts: LabelCounts) -> list[tuple[str, Path, Any]]:
        _, shapely = import_vector_readers()
        tree = shapely.STRtree(pixels)
        items: list[tuple[str, Path, Any]] = []
        windows = self._windows(grid, path)
        blank = self._blank_chips(path, windows) if len(windows) > 1 else set()
        for window in windows:
            if window in blank:
                self.nodata_chips += 1
                continue
            targets = chip_targets(pixels, classes, window, min_box_size=self.min_box_size,
                                   tree=tree, counts=counts)
            if not len(targets) and self.empty_chips == "skip":
                self.skipped_chips += 1
                continue
            items.append((key, path, _Chip(window, targets)))
        return items

    def _blank_chips(self, path: Path, windows: list[tuple[int, int, int, int]]
                     ) -> set[tuple[int, int, int, int]]:
        """Chips of a scene whose first selected band is nodata throughout.

        A scene's nodata margins (a rotated footprint, a swath edge) would otherwise stop
        training with "every pixel of this image is nodata"; a whole image of nodata
        (``chip_size`` None) still does, naming the file. One band per chip is read.
        """
        try:
            with rasterio.open(path) as src:
                band = self.preprocessing.plan(path, src.count, src.dtypes).indexes[0]
                if src.nodata is None and np.dtype(src.dtypes[band - 1]).kind != "f":
                    return set()
                blank = set()
                for window in windows:
                    row, col, height, width = window
                    data = src.read(band, window=Window(col, row, width, height))
                    invalid = nodata_mask(data, src.nodata)
                    if invalid is not None and invalid.all():
                        blank.add(window)
                return blank
        except RasterioError as exc:
            raise read_error(path, exc) from exc

    def _from_shared_file(self, file: Path, images: dict[str, Path],
                          grids: dict[str, tuple[int, int, Any, Any]]
                          ) -> list[tuple[str, Path, Any]]:
        labels = self._read_labels(file)
        touched = np.zeros(len(labels.classes), dtype=bool)
        items: list[tuple[str, Path, Any]] = []
        for key, path in images.items():
            grid = grids[key]
            near, pixels = labels.in_pixels(grid[2], grid[3], grid[0], grid[1], path)
            touched[near] = True
            items += self._chips(key, path, grid, pixels, labels.classes[near], labels.counts)
        labels.counts.outside = int((~touched).sum())
        self._report(file, labels.counts, len(images))
        return items

    def _from_paired_files(self, root: Path, images: dict[str, Path],
                           grids: dict[str, tuple[int, int, Any, Any]]
                           ) -> list[tuple[str, Path, Any]]:
        try:
            files = find_files(root, self.label_pattern, "label_data_root/label_pattern")
        except ConfigurationError as exc:
            if self.label_data_root is not None:
                raise
            raise ConfigurationError(
                f"no label file given for the images of {str(self.data_root)!r}, and none "
                f"beside them matches label_pattern {self.label_pattern!r}; set the stage's "
                "label root (train_label_data_root, val_label_data_root, ...) to one vector "
                "file for all its images or to a folder of per-image files"
            ) from exc
        pairs = pair_by_key(images, files, labels_may_exceed=self.split is not None)
        items: list[tuple[str, Path, Any]] = []
        for key, path, file in pairs:
            labels = self._read_labels(file)
            grid = grids[key]
            near, pixels = labels.in_pixels(grid[2], grid[3], grid[0], grid[1], path)
            labels.counts.outside = len(labels.classes) - len(near)
            items += self._chips(key, path, grid, pixels, labels.classes[near], labels.counts)
            self._report(file, labels.counts, None)
        return items

    def _report(self, file: Path, counts: LabelCounts, shared_by: int | None) -> None:
        message = counts.message(file, shared_by)
        if message is not None:
            warnings.warn(message, LabelWarning, stacklevel=4)

    # ------------------------------------------------------------------ reading
    def window(self, index: int) -> tuple[int, int, int, int]:
        """``(row_off, col_off, height, width)`` of item ``index`` in its image."""
        chip: _Chip = self.items[index][2]
        return chip.window

    def targets(self, index: int) -> ChipTargets | None:
        """The objects of item ``index`` (None when unlabelled)."""
        chip: _Chip = self.items[index][2]
        return chip.targets

    def _read(self, index: int) -> tuple[np.ndarray, np.ndarray | None]:
        """The chip's window of the selected bands (see :meth:`GeoTiffImageDataset._read`)."""
        path = self.items[index][1]
        row, col, height, width = self.window(index)
        try:
            with rasterio.open(path) as src:
                return self.preprocessing.read(src, Window(col, row, width, height))
        except RasterioError as exc:
            raise read_error(path, exc) from exc

    def load_image(self, index: int) -> np.ndarray:
        """The chip as the model sees it; training chips must hold valid pixels."""
        values, invalid = self._read(index)
        if invalid is not None and self.labelled:
            row, col = self.window(index)[:2]
            where = f"{self.items[index][1]} (chip at row {row}, column {col})"
            self.preprocessing.check_trainable(values, invalid, where)
        return self.preprocessing.fill_and_normalise(values, invalid)

    def __getitem__(self, index: int) -> Sample:
        sample = super().__getitem__(index)
        sample["window"] = torch.tensor(self.window(index), dtype=torch.int64)
        targets = self.targets(index)
        if targets is None:
            return sample
        sample["bbox_xyxy"] = torch.from_numpy(np.ascontiguousarray(targets.boxes))
        sample["label"] = torch.from_numpy(np.ascontiguousarray(targets.labels))
        if self.with_masks:
            height, width = (int(n) for n in sample["image"].shape[-2:])
            sample["mask"] = torch.from_numpy(targets.masks(height, width))
        return sample

    def plot(self, sample: Sample, suptitle: str | None = None, *,
             class_names: Sequence[str] | None = None,
             ignore_index: int | None = None) -> Any:
        """Figure of a sample: RGB with its boxes (green) and predicted boxes (orange).

        Args:
            sample: an item, or one sample of a batch, with ``image`` and optionally
                ``bbox_xyxy`` / ``label`` and ``prediction_bbox_xyxy`` /
                ``prediction_label`` / ``prediction_score``.
            suptitle: title of the figure.
            class_names: the object classes (ids 1..K), for the box captions.
            ignore_index: unused (detection has no ignored pixels).

        Returns:
            A ``matplotlib.figure.Figure``.
        """
        from matplotlib.figure import Figure
        from matplotlib.patches import Rectangle

        names = list(class_names) if class_names is not None else self.classes
        fig = Figure(figsize=(5, 5))
        ax = fig.subplots()
        ax.imshow(self._rgb_image(sample["image"]), interpolation="nearest")
        for prefix, color in (("", "lime"), ("prediction_", "orange")):
            boxes = sample.get(f"{prefix}bbox_xyxy")
            if boxes is None:
                continue
            labels = sample.get(f"{prefix}label")
            scores = sample.get(f"{prefix}score") if prefix else None
            for i, (x0, y0, x1, y1) in enumerate(torch.as_tensor(boxes).tolist()):
                ax.add_patch(Rectangle((x0 - 0.5, y0 - 0.5), x1 - x0, y1 - y0, fill=False,
                                       edgecolor=color, linewidth=1))
                caption = _caption(labels, scores, i, names)
                if caption:
                    ax.text(x0 - 0.5, y0 - 0.5, caption, color=color, fontsize="x-small",
                            va="bottom")
        ax.axis("off")
        if suptitle:
            fig.suptitle(suptitle)
        return fig

    def _describe_label(self, value: Any) -> str:
        ids = value.tolist() if isinstance(value, torch.Tensor) else list(value)
        return f"{len(ids)} objects"


def _caption(labels: Any, scores: Any, i: int, names: Sequence[str]) -> str:
    """``class`` or ``class 0.87`` of box ``i`` (class ids 1..K index ``names`` from 1)."""
    if labels is None:
        return ""
    label = int(torch.as_tensor(labels)[i])
    text = names[label - 1] if 1 <= label <= len(names) else str(label)
    if scores is not None:
        text += f" {float(torch.as_tensor(scores)[i]):.2f}"
    return text
