"""Chip datasets: folders of GeoTIFF chips read with rasterio.

Each item is a dict following the batch contract: ``"image"`` float (C, H, W), or
(C, T, H, W) with ``expand_temporal_dimension``; ``"mask"`` (segmentation: long (H, W);
regression: float (H, W), NaN = ignore); ``"label"`` (classification: long scalar;
multi-label: float (num_classes,)); ``"filename"``: the image path.

Reading one chip: the selected bands are read (only those), cast to float32, multiplied by
``constant_scale``; pixels equal to the file's nodata value or NaN become
``no_data_replace`` (when set); then ``(x - mean) / std`` per band when means/stds are set.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import rasterio
import torch
from rasterio.errors import RasterioError
from torch.utils.data import Dataset

from geofm_core.data.bands import BandSpec, check_dataset_bands, resolve_bands
from geofm_core.data.files import (
    find_files,
    load_band_values,
    pair_by_key,
    read_classification_csv,
    read_split,
    select_split,
)
from geofm_core.errors import ConfigurationError

__all__ = [
    "GeoTiffClassificationDataset",
    "collate_samples",
    "GeoTiffImageDataset",
    "GeoTiffMultiLabelDataset",
    "GeoTiffRegressionDataset",
    "GeoTiffSegmentationDataset",
]

Sample = dict[str, Any]


def collate_samples(samples: Sequence[Sample]) -> dict[str, Any]:
    """Stack samples into a batch: tensors stacked, other values (file names) listed.

    In worker processes this is ``default_collate`` (which stacks into shared memory). In
    the main process tensors are stacked with NumPy: ``torch.stack`` there runs on the
    intra-op thread pool, which on a small, busy CPU is several times slower than one
    thread copying.
    """
    from torch.utils.data import default_collate, get_worker_info

    if get_worker_info() is not None:
        batch: dict[str, Any] = default_collate(list(samples))
        return batch
    out: dict[str, Any] = {}
    for key in samples[0]:
        values = [s[key] for s in samples]
        if isinstance(values[0], torch.Tensor):
            out[key] = torch.from_numpy(np.stack([v.numpy() for v in values]))
        else:
            out[key] = values
    return out


def _read_error(path: Path, exc: Exception) -> ConfigurationError:
    return ConfigurationError(
        f"cannot read {str(path)!r} ({exc}); the file is unreadable or truncated: replace it, "
        "or remove it (and its label) from the folder or split file"
    )


class GeoTiffImageDataset(Dataset[Sample]):
    """Images only: a folder of GeoTIFF chips (used for prediction and statistics).

    Args:
        data_root: folder holding the images.
        img_pattern: glob, relative to ``data_root``, selecting the images.
        split: file listing the ids (file keys or names) to use, one per line.
        dataset_bands: names of the bands stored in each file, in order (per frame with
            ``expand_temporal_dimension``); needed to select bands by name.
        output_bands: bands to read, by name, 0-based index or inclusive range ("0-5" or
            [0, 5]); default all.
        constant_scale: factor applied to the raw values.
        no_data_replace: value given to nodata / NaN pixels of the image; None keeps them.
        expand_temporal_dimension: the file stacks T frames of C bands (frame after frame:
            band c of frame t is file band ``t * C + c``); items become (C, T, H, W).
        num_frames: T; needed with ``expand_temporal_dimension`` when ``dataset_bands`` is
            not given (otherwise T = file bands / len(dataset_bands)).
        means: per selected band, a list or a file (JSON/YAML list or numbers); applied after
            ``constant_scale``.
        stds: per selected band, like ``means``.
        rgb_indices: positions, among the selected bands, of red, green and blue for plots.
    """

    task: ClassVar[str] = "image"

    def __init__(
        self,
        data_root: str | Path,
        *,
        img_pattern: str = "*.tif",
        split: str | Path | None = None,
        dataset_bands: Sequence[str] | None = None,
        output_bands: Sequence[BandSpec] | None = None,
        constant_scale: float = 1.0,
        no_data_replace: float | None = None,
        expand_temporal_dimension: bool = False,
        num_frames: int | None = None,
        means: Sequence[float] | str | None = None,
        stds: Sequence[float] | str | None = None,
        rgb_indices: Sequence[int] | None = None,
    ) -> None:
        self.data_root = Path(data_root)
        self.img_pattern = img_pattern
        self.split = None if split is None else str(split)
        self.dataset_bands = check_dataset_bands(dataset_bands)
        self.band_indices = resolve_bands(output_bands, dataset_bands=self.dataset_bands)
        self.constant_scale = float(constant_scale)
        self.no_data_replace = no_data_replace
        self.expand_temporal_dimension = expand_temporal_dimension
        if num_frames is not None and num_frames < 1:
            raise ConfigurationError(f"num_frames must be >= 1, got {num_frames}")
        self.num_frames = num_frames
        if expand_temporal_dimension and num_frames is None and self.dataset_bands is None:
            raise ConfigurationError(
                "expand_temporal_dimension needs num_frames (the number of frames stacked in "
                "each file) or dataset_bands (the bands of one frame)"
            )
        self.means = load_band_values(means, "means")
        self.stds = load_band_values(stds, "stds")
        if (self.means is None) != (self.stds is None):
            raise ConfigurationError("give both means and stds, or neither")
        if self.means is not None and self.stds is not None:
            if len(self.means) != len(self.stds):
                raise ConfigurationError(
                    f"means has {len(self.means)} values and stds {len(self.stds)}; give one "
                    "of each per selected band"
                )
            if any(s <= 0 for s in self.stds):
                raise ConfigurationError(f"stds must be positive, got {self.stds}")
            if self.band_indices is not None and len(self.means) != len(self.band_indices):
                raise ConfigurationError(
                    f"means/stds have {len(self.means)} values but output_bands selects "
                    f"{len(self.band_indices)} bands; give one value per selected band"
                )
        self._mean = None if self.means is None else np.asarray(self.means, np.float32)
        self._std = None if self.stds is None else np.asarray(self.stds, np.float32)
        self._rgb = None if rgb_indices is None else list(rgb_indices)
        self.items = self._collect()

    # ----------------------------------------------------------------- files
    def _collect(self) -> list[tuple[str, Path, Any]]:
        images = find_files(self.data_root, self.img_pattern, "data_root/img_pattern")
        if self.split is not None:
            images = select_split(images, read_split(self.split, "split"), self.split)
        return [(key, path, None) for key, path in images.items()]

    def __len__(self) -> int:
        return len(self.items)

    @property
    def filenames(self) -> list[str]:
        """Image paths, in item order."""
        return [str(item[1]) for item in self.items]

    # ----------------------------------------------------------------- bands
    @property
    def rgb_indices(self) -> list[int]:
        """Positions of red, green, blue among the selected bands (for plots)."""
        if self._rgb is not None:
            return self._rgb
        names = self.output_band_names
        if names is not None and all(c in names for c in ("RED", "GREEN", "BLUE")):
            return [names.index("RED"), names.index("GREEN"), names.index("BLUE")]
        count = len(self.band_indices) if self.band_indices is not None else 3
        return [0, 1, 2] if count >= 3 else [0]

    @property
    def output_band_names(self) -> list[str] | None:
        """Names of the selected bands when ``dataset_bands`` names them."""
        if self.dataset_bands is None:
            return None
        indices = self.band_indices or range(len(self.dataset_bands))
        return [self.dataset_bands[i] for i in indices]

    def _file_indexes(self, path: Path, count: int) -> tuple[list[int], int, int]:
        """1-based band indexes to read, the number of bands and frames they form."""
        if self.expand_temporal_dimension:
            per_frame = (
                len(self.dataset_bands) if self.dataset_bands is not None
                else count // (self.num_frames or 1)
            )
            frames = count // per_frame if per_frame else 0
            if per_frame == 0 or count % per_frame or (
                self.num_frames is not None and frames != self.num_frames
            ):
                expected = f"{self.num_frames} frames" if self.num_frames else "whole frames"
                raise ConfigurationError(
                    f"{path}: has {count} bands, which is not {expected} of {per_frame} bands; "
                    "fix num_frames / dataset_bands for expand_temporal_dimension"
                )
        else:
            per_frame, frames = count, 1
            if self.dataset_bands is not None and len(self.dataset_bands) != count:
                raise ConfigurationError(
                    f"{path}: has {count} bands but dataset_bands names "
                    f"{len(self.dataset_bands)}; list one name per band stored in the file"
                )
        selected = self.band_indices if self.band_indices is not None else list(range(per_frame))
        bad = [i for i in selected if i >= per_frame]
        if bad:
            raise ConfigurationError(
                f"output_bands: band index {bad[0]} is out of range for {path} which has "
                f"{per_frame} bands{' per frame' if frames > 1 else ''} (valid 0..{per_frame - 1})"
            )
        if self._mean is not None and len(self._mean) != len(selected):
            raise ConfigurationError(
                f"means/stds have {len(self._mean)} values but {len(selected)} bands are read "
                f"from {path}; give one value per selected band"
            )
        indexes = [t * per_frame + c + 1 for c in selected for t in range(frames)]
        return indexes, len(selected), frames

    # ----------------------------------------------------------------- reading
    def _read(self, index: int) -> tuple[np.ndarray, np.ndarray | None]:
        """Selected bands after ``constant_scale`` (float32, writable) and the nodata mask.

        The mask is True at the file's nodata value or NaN, None when no pixel is.
        """
        path = self.items[index][1]
        try:
            with rasterio.open(path) as src:
                indexes, bands, frames = self._file_indexes(path, src.count)
                data = src.read(indexes)
                nodata = src.nodata
        except RasterioError as exc:
            raise _read_error(path, exc) from exc
        invalid: np.ndarray | None = None
        if nodata is not None and not np.isnan(nodata):
            invalid = data == np.asarray(nodata).astype(data.dtype)
        values = data.astype(np.float32)
        if data.dtype.kind == "f":
            nan = np.isnan(values)
            invalid = nan if invalid is None else invalid | nan
        if invalid is not None and not invalid.any():
            invalid = None
        if self.constant_scale != 1.0:
            values *= np.float32(self.constant_scale)
        if self.expand_temporal_dimension:
            shape = (bands, frames, *values.shape[1:])
            values = values.reshape(shape)
            invalid = None if invalid is None else invalid.reshape(shape)
        return values, invalid

    def _check_invalid(self, index: int, values: np.ndarray, invalid: np.ndarray) -> None:
        """Training data must not feed nodata-only chips or NaN to the model (labelled sets).

        A chip with no valid pixel can teach nothing and, left in silently, dilutes the
        batch; a NaN reaching the model turns the loss and then every weight into NaN.
        Both stop the run with the file's name instead of being skipped silently.
        """
        path = self.items[index][1]
        if invalid.all():
            raise ConfigurationError(
                f"{path}: every pixel of this image is nodata/NaN, so it can teach the model "
                "nothing; remove it (and its label) from the folder, or leave it out with a "
                "split file"
            )
        if self.no_data_replace is None and np.isnan(values).any():
            raise ConfigurationError(
                f"{path}: the image has NaN pixels and no_data_replace is not set, so NaN would "
                "reach the model and turn the loss into NaN; set no_data_replace (e.g. 0) in "
                "the data section"
            )

    def read_raw(self, index: int) -> tuple[np.ndarray, np.ndarray]:
        """Selected bands of an image after ``constant_scale``, and its valid-pixel mask.

        Returns:
            ``(values, valid)``: float32 (C, H, W) or (C, T, H, W) and bool of the same shape,
            False where the file's nodata value or NaN was read.
        """
        values, invalid = self._read(index)
        valid = np.ones(values.shape, bool) if invalid is None else ~invalid
        return values, valid

    def load_image(self, index: int) -> np.ndarray:
        """The image as the model sees it (nodata replaced, normalised)."""
        values, invalid = self._read(index)
        if invalid is not None and self.task != "image":
            self._check_invalid(index, values, invalid)
        if self.no_data_replace is not None and invalid is not None:
            values[invalid] = np.float32(self.no_data_replace)
        if self._mean is not None and self._std is not None:
            shape = (-1,) + (1,) * (values.ndim - 1)
            values -= self._mean.reshape(shape)
            values /= self._std.reshape(shape)
        return values

    def __getitem__(self, index: int) -> Sample:
        return {
            "image": torch.from_numpy(self.load_image(index)),
            "filename": str(self.items[index][1]),
        }

    # ----------------------------------------------------------------- plots
    def _rgb_image(self, image: torch.Tensor | np.ndarray) -> np.ndarray:
        arr = np.asarray(image.detach().cpu() if isinstance(image, torch.Tensor) else image)
        if arr.ndim == 4:  # (C, T, H, W): show the first frame
            arr = arr[:, 0]
        if self._mean is not None and self._std is not None:
            shape = (-1, 1, 1)
            arr = arr * self._std.reshape(shape) + self._mean.reshape(shape)
        idx = [i for i in self.rgb_indices if i < arr.shape[0]] or [0]
        rgb = np.nan_to_num(arr[idx].astype(np.float64)).transpose(1, 2, 0)
        low, high = np.percentile(rgb, 2), np.percentile(rgb, 98)
        rgb = np.clip((rgb - low) / (high - low if high > low else 1.0), 0, 1)
        return rgb[..., 0] if rgb.shape[-1] == 1 else rgb

    def plot(self, sample: Sample, suptitle: str | None = None) -> Any:
        """Figure of a sample: RGB of ``rgb_indices``, and mask / prediction when present.

        Args:
            sample: an item (or one element of a batch) with ``"image"`` and optionally
                ``"mask"``, ``"label"``, ``"prediction"``.
            suptitle: title of the figure.

        Returns:
            A ``matplotlib.figure.Figure``.
        """
        from matplotlib.figure import Figure

        panels: list[tuple[str, Any, str | None]] = [
            ("image", self._rgb_image(sample["image"]), None)
        ]
        for key in ("mask", "prediction"):
            value = sample.get(key)
            if isinstance(value, torch.Tensor) and value.ndim >= 2:
                arr = value.detach().cpu().numpy()
                panels.append((key, arr, "viridis"))
        fig = Figure(figsize=(4 * len(panels), 4))
        axes = fig.subplots(1, len(panels), squeeze=False)[0]
        for ax, (title, arr, cmap) in zip(axes, panels, strict=True):
            ax.imshow(arr, cmap=cmap, interpolation="nearest")
            ax.set_title(title)
            ax.axis("off")
        titles = [suptitle] if suptitle else []
        for key in ("label", "prediction"):
            value = sample.get(key)
            if value is not None and not (isinstance(value, torch.Tensor) and value.ndim >= 2):
                titles.append(f"{key}: {self._describe_label(value)}")
        if titles:
            fig.suptitle("\n".join(titles))
        return fig

    def _describe_label(self, value: Any) -> str:
        return str(value.tolist() if isinstance(value, torch.Tensor) else value)


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
                data = src.read(1)
                nodata = src.nodata
        except RasterioError as exc:
            raise _read_error(path, exc) from exc
        valid = np.ones(data.shape, dtype=bool)
        if nodata is not None and not np.isnan(nodata):
            valid &= data != np.asarray(nodata).astype(data.dtype)
        if data.dtype.kind == "f":
            valid &= ~np.isnan(data)
        if not valid.any():
            raise ConfigurationError(
                f"{path}: every pixel of this label is nodata/NaN, so its image "
                f"{self.items[index][1].name} can teach the model nothing; remove both files, "
                "or leave them out with a split file"
            )
        return data, valid

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


def _class_index(value: str, class_names: Sequence[str] | None, where: str) -> int:
    text = value.strip()
    if class_names is not None and text in class_names:
        return list(class_names).index(text)
    try:
        return int(text)
    except ValueError:
        choices = f"; class_names are {', '.join(class_names)}" if class_names else (
            "; give class_names to use names, or integer class indices"
        )
        raise ConfigurationError(f"{where}: unknown class {text!r}{choices}") from None


class _LabelledImages(GeoTiffImageDataset):
    """Image chips with one label per chip, from a CSV or from class folders."""

    def __init__(
        self,
        data_root: str | Path,
        label_data_root: str | Path | None = None,
        *,
        num_classes: int | None = None,
        class_names: Sequence[str] | None = None,
        **kwargs: Any,
    ) -> None:
        self.label_file = None if label_data_root is None else Path(label_data_root)
        self.class_names: list[str] | None = None if class_names is None else list(class_names)
        if num_classes is None and self.class_names is not None:
            num_classes = len(self.class_names)
        if (
            num_classes is not None and self.class_names is not None
            and num_classes != len(self.class_names)
        ):
            raise ConfigurationError(
                f"num_classes is {num_classes} but class_names lists {len(self.class_names)}"
            )
        self.num_classes = num_classes
        super().__init__(data_root, **kwargs)

    def _csv_rows(self) -> tuple[list[str], dict[str, list[str]], dict[str, Path]]:
        assert self.label_file is not None
        if not self.label_file.is_file():
            raise ConfigurationError(
                f"label_data_root: {str(self.label_file)!r} is not a file; for chip labels give "
                "a CSV with a header row and 'file,label' rows"
            )
        header, rows = read_classification_csv(self.label_file, "label_data_root")
        images = find_files(self.data_root, self.img_pattern, "data_root/img_pattern")
        lookup: dict[str, str] = {}
        for key, path in images.items():
            lookup.setdefault(key, key)
            lookup.setdefault(path.name, key)
            lookup.setdefault(path.stem, key)
            lookup.setdefault(path.relative_to(self.data_root).as_posix(), key)
        labelled: dict[str, list[str]] = {}
        unknown: list[str] = []
        for row in rows:
            found = lookup.get(row[0], lookup.get(Path(row[0]).name))
            if found is None:
                unknown.append(row[0])
            else:
                labelled[found] = row[1:]
        if unknown:
            raise ConfigurationError(
                f"{self.label_file}: rows name files not found in {str(self.data_root)!r} with "
                f"img_pattern {self.img_pattern!r}: {', '.join(unknown[:10])}"
            )
        if self.split is not None:
            images = select_split(images, read_split(self.split, "split"), self.split)
        missing = [images[k].name for k in images if k not in labelled]
        if missing:
            raise ConfigurationError(
                f"images without a row in {self.label_file}: {', '.join(missing[:10])}"
                f"{' ...' if len(missing) > 10 else ''}; add them to the CSV, remove them, or "
                "use a split file"
            )
        return header, labelled, images

    def _check_index(self, index: int, where: str) -> int:
        if index < 0 or (self.num_classes is not None and index >= self.num_classes):
            raise ConfigurationError(
                f"{where}: class index {index} is outside 0..{(self.num_classes or 0) - 1} "
                f"(num_classes={self.num_classes}); fix the label or num_classes"
            )
        return index

    def _describe_label(self, value: Any) -> str:
        if isinstance(value, torch.Tensor):
            value = value.tolist()
        if self.class_names is None:
            return str(value)
        if isinstance(value, list):
            return ", ".join(n for n, v in zip(self.class_names, value, strict=False) if v > 0.5)
        return self.class_names[int(value)] if 0 <= int(value) < len(self.class_names) else (
            str(value)
        )


class GeoTiffClassificationDataset(_LabelledImages):
    """Image chips with one class each: from class folders or a CSV.

    Without ``label_data_root`` the images lie in one folder per class,
    ``data_root/<class name>/<img_pattern>``; class names are ``class_names`` or the sorted
    folder names. With ``label_data_root`` pointing at a CSV file (header row, then
    ``file,label`` rows; the label a class index or a name from ``class_names``), images are
    found in ``data_root`` with ``img_pattern`` and matched to rows by key, name or stem.
    """

    task: ClassVar[str] = "classification"

    def _collect(self) -> list[tuple[str, Path, Any]]:
        if self.label_file is not None:
            _, labelled, images = self._csv_rows()
            return [
                (key, path, self._check_index(
                    _class_index(labelled[key][0], self.class_names, f"{self.label_file} "
                                 f"({path.name})"), f"{self.label_file} ({path.name})"))
                for key, path in images.items()
            ]
        root = self.data_root
        if not root.is_dir():
            raise ConfigurationError(
                f"data_root: {str(root)!r} is not a folder of class folders"
            )
        folders = sorted(p.name for p in root.iterdir() if p.is_dir())
        if self.class_names is None:
            self.class_names = folders
            if self.num_classes is None:
                self.num_classes = len(folders)
        unknown = [f for f in folders if f not in self.class_names]
        if unknown:
            raise ConfigurationError(
                f"data_root: folders {', '.join(unknown)} in {str(root)!r} are not in "
                f"class_names ({', '.join(self.class_names)}); add them or move them out"
            )
        items: list[tuple[str, Path, Any]] = []
        for index, name in enumerate(self.class_names):
            if not (root / name).is_dir():
                continue
            files = find_files(root / name, self.img_pattern, f"data_root/{name}")
            items += [(f"{name}/{key}", path, index) for key, path in files.items()]
        if not items:
            raise ConfigurationError(
                f"data_root: no class folder in {str(root)!r} holds files matching "
                f"{self.img_pattern!r}"
            )
        if self.split is not None:
            by_key = {key: (key, path, label) for key, path, label in items}
            ids = read_split(self.split, "split")
            chosen = select_split({k: v[1] for k, v in by_key.items()}, ids, self.split)
            items = [by_key[k] for k in chosen]
        self._check_index(max(i[2] for i in items), str(root))
        return items

    def __getitem__(self, index: int) -> Sample:
        sample = super().__getitem__(index)
        sample["label"] = torch.tensor(self.items[index][2], dtype=torch.long)
        return sample


class GeoTiffMultiLabelDataset(_LabelledImages):
    """Image chips with any number of classes each, from a CSV (``label_data_root``).

    The CSV has a header row and either one 0/1 column per class (``file,cls_a,cls_b,...``;
    class names default to the header) or one column of labels separated by ``;`` or spaces
    (``file,labels`` with rows like ``a.tif,0;3`` or ``a.tif,water;forest``).
    """

    task: ClassVar[str] = "multilabel"

    def _collect(self) -> list[tuple[str, Path, Any]]:
        if self.label_file is None:
            raise ConfigurationError(
                "multi-label data need label_data_root: a CSV with a header and 'file,labels' "
                "rows (labels separated by ';') or one 0/1 column per class"
            )
        header, labelled, images = self._csv_rows()
        one_hot = len(header) > 2
        if one_hot:
            if self.class_names is None:
                self.class_names = header[1:]
            if len(self.class_names) != len(header) - 1:
                raise ConfigurationError(
                    f"{self.label_file}: has {len(header) - 1} class columns but class_names "
                    f"lists {len(self.class_names)}"
                )
            self.num_classes = len(header) - 1
        if self.num_classes is None:
            raise ConfigurationError(
                f"{self.label_file}: a 'file,labels' CSV needs num_classes or class_names"
            )
        items: list[tuple[str, Path, Any]] = []
        for key, path in images.items():
            where = f"{self.label_file} ({path.name})"
            target = np.zeros(self.num_classes, dtype=np.float32)
            if one_hot:
                try:
                    target[:] = [float(v) for v in labelled[key]]
                except ValueError:
                    raise ConfigurationError(
                        f"{where}: class columns must hold 0 or 1, got {labelled[key]}"
                    ) from None
            else:
                for token in labelled[key][0].replace(";", " ").split():
                    target[self._check_index(_class_index(token, self.class_names, where),
                                             where)] = 1.0
            items.append((key, path, target))
        return items

    def __getitem__(self, index: int) -> Sample:
        sample = super().__getitem__(index)
        sample["label"] = torch.from_numpy(self.items[index][2].copy())
        return sample
