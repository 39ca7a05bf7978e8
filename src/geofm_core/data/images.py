"""The image dataset: a folder of GeoTIFF chips, read through :class:`Preprocessing`.

:class:`GeoTiffImageDataset` finds the files, reads each through the data settings' one
:class:`~geofm_core.data.preprocessing.Preprocessing` (the same object tiled inference
rebuilds from a checkpoint) and plots samples; the labelled datasets
(:mod:`geofm_core.data.paired`, :mod:`geofm_core.data.labelled`) extend it.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import rasterio
import torch
from rasterio.errors import RasterioError
from torch.utils.data import Dataset

from geofm_core.data.bands import BandSpec
from geofm_core.data.files import find_files, read_split, select_split
from geofm_core.data.preprocessing import Preprocessing
from geofm_core.errors import ConfigurationError

__all__ = ["GeoTiffImageDataset", "Sample", "collate_samples", "read_error"]

Sample = dict[str, Any]

def collate_samples(samples: Sequence[Sample]) -> dict[str, Any]:
    """Stack samples into a batch: tensors stacked, other values (file names) listed.

    In worker processes this is ``default_collate`` (which stacks into shared memory). In
    the main process tensors are stacked with NumPy: ``torch.stack`` there runs on the
    intra-op thread pool, which on a small, busy CPU is several times slower than one
    thread copying.
    """
    from torch.utils.data import default_collate, get_worker_info

    _check_same_shapes(samples)
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

def _check_same_shapes(samples: Sequence[Sample]) -> None:
    """Items batched together must have one shape; otherwise name two files that differ."""
    for key, first in samples[0].items():
        if not isinstance(first, torch.Tensor):
            continue
        other = next((s for s in samples[1:] if s[key].shape != first.shape), None)
        if other is None:
            continue
        names = [Path(str(s.get("filename"))).name for s in (samples[0], other)]
        sizes = ["x".join(str(n) for n in s[key].shape) for s in (samples[0], other)]
        raise ConfigurationError(
            f"chips of different sizes in one batch: {names[0]} has {key} {sizes[0]} but "
            f"{names[1]} has {sizes[1]}; the chips of a folder must all have one size (and "
            "one band count): re-tile the odd files, or move them out or leave them out with "
            "a split file"
        )


def read_error(path: Path, exc: Exception) -> ConfigurationError:
    """The error for a file rasterio cannot read: names it and says what to do."""
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
        self.preprocessing = Preprocessing(
            bands=output_bands, dataset_bands=dataset_bands, constant_scale=constant_scale,
            no_data_replace=no_data_replace, expand_temporal_dimension=expand_temporal_dimension,
            num_frames=num_frames, means=means, stds=stds,
        )
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

    def exclude(self, filenames: Iterable[str]) -> int:
        """Drop the items whose image path is in ``filenames``; returns how many went.

        The prediction writer calls it before the predict loop for inputs whose outputs
        are complete (``skip_existing``), so the model never runs on them.
        """
        drop = {str(f) for f in filenames}
        kept = [item for item in self.items if str(item[1]) not in drop]
        removed, self.items = len(self.items) - len(kept), kept
        return removed

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

    @property
    def dataset_bands(self) -> list[str] | None:
        """Names of the bands stored in each file (per frame), when given."""
        return self.preprocessing.dataset_bands

    @property
    def band_indices(self) -> list[int] | None:
        """0-based indices of the selected bands (per frame); ``None`` for all."""
        return self.preprocessing.bands

    # ----------------------------------------------------------------- reading
    def _read(self, index: int) -> tuple[np.ndarray, np.ndarray | None]:
        """Selected bands after ``constant_scale`` (float32, writable) and the nodata mask.

        The mask is True at the file's nodata value or NaN, None when no pixel is.
        """
        path = self.items[index][1]
        try:
            with rasterio.open(path) as src:
                return self.preprocessing.read(src)
        except RasterioError as exc:
            raise read_error(path, exc) from exc

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
            self.preprocessing.check_trainable(values, invalid, self.items[index][1])
        return self.preprocessing.fill_and_normalise(values, invalid)

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
        arr = self.preprocessing.denormalise(arr)
        idx = [i for i in self.rgb_indices if i < arr.shape[0]] or [0]
        rgb = np.nan_to_num(arr[idx].astype(np.float64)).transpose(1, 2, 0)
        low, high = np.percentile(rgb, 2), np.percentile(rgb, 98)
        rgb = np.clip((rgb - low) / (high - low if high > low else 1.0), 0, 1)
        return rgb[..., 0] if rgb.shape[-1] == 1 else rgb

    def plot(self, sample: Sample, suptitle: str | None = None, *,
             class_names: Sequence[str] | None = None,
             ignore_index: int | None = None) -> Any:
        """Figure of a sample: RGB of ``rgb_indices``, and mask / prediction when present.

        Class maps use one fixed colour per class (:func:`~geofm_core.data.palette.
        class_colors`, the colours of ``geofm infer``'s colour table) with a legend of the
        class names; ``ignore_index`` pixels are left blank.

        Args:
            sample: an item (or one element of a batch) with ``"image"`` and optionally
                ``"mask"``, ``"label"``, ``"prediction"``.
            suptitle: title of the figure.
            class_names: names of the classes, index order (for the legend).
            ignore_index: label value drawn as no class.

        Returns:
            A ``matplotlib.figure.Figure``.
        """
        from matplotlib.colors import ListedColormap
        from matplotlib.figure import Figure
        from matplotlib.patches import Patch

        from geofm_core.data.palette import class_colors

        maps = {key: sample[key].detach().cpu().numpy() for key in ("mask", "prediction")
                if isinstance(sample.get(key), torch.Tensor) and sample[key].ndim >= 2}
        fig = Figure(figsize=(4 * (1 + len(maps)) + (2 if maps else 0), 4))
        axes = fig.subplots(1, 1 + len(maps), squeeze=False)[0]
        axes[0].imshow(self._rgb_image(sample["image"]), interpolation="nearest")
        axes[0].set_title("image")
        if self.task == "regression":  # continuous targets: one shared colour scale
            finite = [a[np.isfinite(a)] for a in maps.values()]
            values = np.concatenate(finite) if finite else np.zeros(1)
            low, high = (float(values.min()), float(values.max())) if values.size else (0, 1)
            for ax, (key, arr) in zip(axes[1:], maps.items(), strict=True):
                image = ax.imshow(arr, cmap="viridis", vmin=low, vmax=high,
                                  interpolation="nearest")
                ax.set_title(key)
                fig.colorbar(image, ax=ax, fraction=0.046)
            maps = {}
        count = len(class_names) if class_names else 1 + max(
            [int(a[a != ignore_index].max(initial=0)) for a in maps.values()] or [0])
        colors = [(r / 255, g / 255, b / 255) for r, g, b in class_colors(count)]
        for ax, (key, arr) in zip(axes[1 : 1 + len(maps)], maps.items(), strict=True):
            shown = np.ma.masked_where(arr == ignore_index, arr) if ignore_index is not None \
                else arr
            ax.imshow(shown, cmap=ListedColormap(colors), vmin=-0.5, vmax=count - 0.5,
                      interpolation="nearest")
            ax.set_title(key)
        for ax in axes:
            ax.axis("off")
        if maps:
            names = list(class_names) if class_names else [str(i) for i in range(count)]
            fig.legend(handles=[Patch(color=c, label=n) for c, n in zip(colors, names,
                                                                       strict=True)],
                       loc="center right", fontsize="small", frameon=False)
            fig.subplots_adjust(right=1 - 2 / fig.get_figwidth())
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

