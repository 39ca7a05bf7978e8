"""Image chips paired by name with label rasters: segmentation and pixelwise regression.

Items add ``"mask"`` to the image item: segmentation long (H, W), regression float (H, W)
with NaN where the target is missing. Images and labels pair by the text the wildcards
of ``img_pattern`` and ``label_pattern`` match.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import rasterio
import torch
from rasterio.errors import RasterioError

from geofm_core.data.files import find_files, pair_by_key, read_split, select_split
from geofm_core.data.images import GeoTiffImageDataset, Sample, read_error
from geofm_core.data.preprocessing import nodata_mask
from geofm_core.errors import ConfigurationError

__all__ = ["GeoTiffRegressionDataset", "GeoTiffSegmentationDataset"]


def _georeferenced(src: Any) -> bool:
    return src.crs is not None or not src.transform.is_identity


def georef_difference(image: Any, label: Any) -> str | None:
    """How the grids of two open rasters differ (CRS, pixel size, origin), or ``None``.

    A raster without georeferencing (no CRS, identity transform) matches any grid of its
    size: label masks are often written without one, and they still pair by name. The
    origin may differ by 1% of a pixel (rounding by other tools); pixel sizes relatively
    by 1e-6.
    """
    if not (_georeferenced(image) and _georeferenced(label)):
        return None
    if image.crs != label.crs:
        return f"CRS {image.crs} vs {label.crs}"
    a, b = image.transform, label.transform
    size = max(abs(a.a), abs(a.e), abs(a.b), abs(a.d))
    if any(abs(x - y) > 1e-6 * size for x, y in zip(a[:2] + a[3:5], b[:2] + b[3:5],
                                                     strict=True)):
        return (f"pixel size {abs(a.a):g} x {abs(a.e):g} vs {abs(b.a):g} x {abs(b.e):g} "
                f"(transforms {tuple(a)[:6]} vs {tuple(b)[:6]})")
    # + 0.0: no "-0" in the message
    dx, dy = (b.c - a.c) / (a.a or 1.0) + 0.0, (b.f - a.f) / (a.e or 1.0) + 0.0
    if max(abs(dx), abs(dy)) > 0.01:
        return (f"origin shifted by ({dx:.4g}, {dy:.4g}) pixels: ({a.c:.12g}, {a.f:.12g}) vs "
                f"({b.c:.12g}, {b.f:.12g})")
    return None


class _PairedDataset(GeoTiffImageDataset):
    """Images paired by name with single-band label rasters of the same size."""

    def __init__(
        self,
        data_root: str | Path,
        label_data_root: str | Path | None = None,
        *,
        label_pattern: str = "*.tif",
        no_label_replace: float | None = None,
        **kwargs: Any,
    ) -> None:
        self.label_data_root = Path(data_root if label_data_root is None else label_data_root)
        self.label_pattern = label_pattern
        self.no_label_replace = no_label_replace
        # Pairs whose grids were compared (once per pair and worker: metadata only).
        self._grids_checked: set[int] = set()
        img_pattern = kwargs.get("img_pattern", "*.tif")
        if self.label_data_root == Path(data_root) and label_pattern == img_pattern:
            raise ConfigurationError(
                f"images and labels are both found with pattern {label_pattern!r} in "
                f"{str(data_root)!r}; give label_pattern (e.g. '*_label.tif') or a separate "
                "label_data_root"
            )
        super().__init__(data_root, **kwargs)

    def _collect(self) -> list[tuple[str, Path, Any]]:
        images = find_files(self.data_root, self.img_pattern, "data_root/img_pattern")
        labels = find_files(
            self.label_data_root, self.label_pattern, "label_data_root/label_pattern"
        )
        if self.split is not None:
            images = select_split(images, read_split(self.split, "split"), self.split)
        pairs = pair_by_key(images, labels, labels_may_exceed=self.split is not None)
        return [(key, img, lab) for key, img, lab in pairs]

    @property
    def label_filenames(self) -> list[str]:
        """Label paths, in item order."""
        return [str(item[2]) for item in self.items]

    def read_label(self, index: int, shape: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
        """Band 1 of the label file and its valid mask (False at nodata / NaN)."""
        path: Path = self.items[index][2]
        try:
            with rasterio.open(path) as src:
                if src.count != 1:
                    raise ConfigurationError(
                        f"{path}: a label raster has one band, this one has {src.count}; "
                        "check label_pattern"
                    )
                if (src.height, src.width) != shape:
                    raise ConfigurationError(
                        f"{path}: label is {src.height}x{src.width} but its image "
                        f"{self.items[index][1].name} is {shape[0]}x{shape[1]}; labels must "
                        "have the size of their image (check the pairing patterns or the files)"
                    )
                if index not in self._grids_checked:
                    self._check_grid(index, src)
                data = src.read(1)
                nodata = src.nodata
        except RasterioError as exc:
            raise read_error(path, exc) from exc
        invalid = nodata_mask(data, nodata)
        valid = np.ones(data.shape, dtype=bool) if invalid is None else ~invalid
        if not valid.any():
            raise ConfigurationError(
                f"{path}: every pixel of this label is nodata/NaN, so its image "
                f"{self.items[index][1].name} can teach the model nothing; remove both files, "
                "or leave them out with a split file"
            )
        return data, valid

    def _check_grid(self, index: int, label: Any) -> None:
        """Image and label must lie on one grid: pairing by name alone would misalign them."""
        image_path: Path = self.items[index][1]
        with rasterio.open(image_path) as image:
            difference = georef_difference(image, label)
        if difference is not None:
            raise ConfigurationError(
                f"{image_path.name} and its label {Path(label.name).name} are not on the same "
                f"grid ({difference}), so their pixels would be paired wrongly; reproject or "
                "resample the label onto the image's grid (e.g. gdalwarp -te/-tr/-t_srs from "
                "the image), or fix the pairing patterns"
            )
        self._grids_checked.add(index)

    def __getitem__(self, index: int) -> Sample:
        sample = super().__getitem__(index)
        shape = (int(sample["image"].shape[-2]), int(sample["image"].shape[-1]))
        sample["mask"] = self.load_mask(index, shape)
        return sample

    def load_mask(self, index: int, shape: tuple[int, int]) -> torch.Tensor:
        """The processed label of an item."""
        raise NotImplementedError


class GeoTiffSegmentationDataset(_PairedDataset):
    """Image chips paired by name with class-index label rasters.

    Args:
        data_root: folder holding the images.
        label_data_root: folder holding the labels (default ``data_root``).
        label_pattern: glob selecting the labels; images and labels pair by the part of
            their names the patterns' wildcards match.
        num_classes: classes 0..num_classes-1; other label values are an error (except
            ``ignore_index``).
        ignore_index: label value that marks pixels to ignore.
        no_label_replace: value given to the label file's nodata / NaN pixels (default
            ``ignore_index``).
        reduce_zero_label: label 0 becomes ``ignore_index`` and the other labels shift down
            by one.
        **kwargs: the image options of :class:`GeoTiffImageDataset`.
    """

    task: ClassVar[str] = "segmentation"

    def __init__(
        self,
        data_root: str | Path,
        label_data_root: str | Path | None = None,
        *,
        num_classes: int | None = None,
        ignore_index: int | None = None,
        reduce_zero_label: bool = False,
        **kwargs: Any,
    ) -> None:
        if reduce_zero_label and ignore_index is None:
            raise ConfigurationError(
                "reduce_zero_label turns label 0 into ignore_index; set ignore_index (e.g. -1)"
            )
        if num_classes is not None and num_classes < 1:
            raise ConfigurationError(f"num_classes must be >= 1, got {num_classes}")
        self.num_classes = num_classes
        self.ignore_index = ignore_index
        self.reduce_zero_label = reduce_zero_label
        super().__init__(data_root, label_data_root, **kwargs)

    def load_mask(self, index: int, shape: tuple[int, int]) -> torch.Tensor:
        """The label as long (H, W), nodata replaced and values checked."""
        data, valid = self.read_label(index, shape)
        path = self.items[index][2]
        fill = self.no_label_replace if self.no_label_replace is not None else self.ignore_index
        if data.dtype.kind == "f":
            finite = np.where(valid, data, 0)
            if not np.array_equal(finite, np.round(finite)):
                raise ConfigurationError(
                    f"{path}: segmentation labels must be whole class indices, found fractions; "
                    "use GeoTiffRegressionDataModule for continuous targets"
                )
            data = finite
        mask = data.astype(np.int64)
        if not valid.all():
            if fill is None:
                raise ConfigurationError(
                    f"{path}: label has nodata/NaN pixels; set ignore_index (or "
                    "no_label_replace) so they are ignored"
                )
            mask[~valid] = int(fill)
        if self.reduce_zero_label and self.ignore_index is not None:
            ignored = mask == self.ignore_index
            mask = np.where(mask == 0, self.ignore_index, mask - 1)
            mask[ignored] = self.ignore_index
        self._check_values(mask, path)
        return torch.from_numpy(mask)

    def _check_values(self, mask: np.ndarray, path: Path) -> None:
        upper = self.num_classes if self.num_classes is not None else None
        low, high = int(mask.min()), int(mask.max())
        ok_low = low >= 0 or (self.ignore_index is not None and low == self.ignore_index)
        ok_high = upper is None or high < upper or high == self.ignore_index
        if ok_low and ok_high:
            return
        values = np.unique(mask)
        bad = [
            int(v) for v in values
            if v != self.ignore_index and (v < 0 or (upper is not None and v >= upper))
        ]
        if not bad:
            return
        raise ConfigurationError(
            f"{path}: label values {bad[:10]} are outside 0..{(upper or 0) - 1} "
            f"(num_classes={upper}, ignore_index={self.ignore_index}); raise num_classes, set "
            "ignore_index to the value to ignore, or use reduce_zero_label / no_label_replace"
        )


class GeoTiffRegressionDataset(_PairedDataset):
    """Image chips paired by name with continuous target rasters (pixelwise regression).

    The mask is float (H, W); nodata / NaN target pixels become NaN (ignored by the loss)
    unless ``no_label_replace`` is set.
    """

    task: ClassVar[str] = "regression"

    def load_mask(self, index: int, shape: tuple[int, int]) -> torch.Tensor:
        """The target as float32 (H, W) with NaN where it is missing."""
        data, valid = self.read_label(index, shape)
        target = data.astype(np.float32)
        fill = np.nan if self.no_label_replace is None else self.no_label_replace
        if not valid.all():
            target = np.where(valid, target, np.float32(fill))
        return torch.from_numpy(np.ascontiguousarray(target, dtype=np.float32))
