"""Per-band means/stds (and class frequencies) of a training split, for ``geofm stats``.

Statistics stream over the files, one chip (or scene block) at a time, merging per-band
count / mean / sum of squared deviations in float64 (Chan et al.'s parallel update), so
memory stays flat however large the split. Pixels equal to the file's nodata value or NaN
are left out. Values are taken after band selection and ``constant_scale``, which is where
the data modules apply ``means`` / ``stds``.
"""

from __future__ import annotations

import importlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from geofm_core.errors import ConfigurationError

__all__ = ["BandStats", "compute_stats", "datamodule_from_config", "stats_from_dataset"]


@dataclass
class BandStats:
    """Running per-band statistics (float64)."""

    bands: int
    count: np.ndarray = field(init=False)
    mean: np.ndarray = field(init=False)
    m2: np.ndarray = field(init=False)
    minimum: np.ndarray = field(init=False)
    maximum: np.ndarray = field(init=False)
    class_counts: dict[int, int] = field(default_factory=dict)
    files: int = 0

    def __post_init__(self) -> None:
        self.count = np.zeros(self.bands, np.int64)
        self.mean = np.zeros(self.bands, np.float64)
        self.m2 = np.zeros(self.bands, np.float64)
        self.minimum = np.full(self.bands, np.inf)
        self.maximum = np.full(self.bands, -np.inf)

    def update(self, values: np.ndarray, valid: np.ndarray) -> None:
        """Add a block: ``values`` and ``valid`` shaped (bands, ...)."""
        flat = values.reshape(self.bands, -1)
        ok = valid.reshape(self.bands, -1)
        for b in range(self.bands):
            x = flat[b][ok[b]].astype(np.float64)
            n = x.size
            if n == 0:
                continue
            mean = float(x.mean())
            m2 = float(((x - mean) ** 2).sum())
            total = self.count[b] + n
            delta = mean - self.mean[b]
            self.mean[b] += delta * n / total
            self.m2[b] += m2 + delta**2 * self.count[b] * n / total
            self.count[b] = total
            self.minimum[b] = min(self.minimum[b], float(x.min()))
            self.maximum[b] = max(self.maximum[b], float(x.max()))

    def update_classes(self, labels: np.ndarray) -> None:
        """Add label pixels to the class counts."""
        values, counts = np.unique(labels, return_counts=True)
        for v, c in zip(values.tolist(), counts.tolist(), strict=True):
            self.class_counts[int(v)] = self.class_counts.get(int(v), 0) + int(c)

    @property
    def std(self) -> np.ndarray:
        """Population standard deviation per band."""
        with np.errstate(invalid="ignore", divide="ignore"):
            std: np.ndarray = np.sqrt(self.m2 / self.count)
        return std


def stats_from_dataset(dataset: Any, with_labels: bool) -> BandStats:
    """Statistics of every item of a chip dataset (``read_raw``; labels via ``load_mask``)."""
    stats: BandStats | None = None
    for i in range(len(dataset)):
        values, valid = dataset.read_raw(i)
        if stats is None:
            stats = BandStats(values.shape[0])
        stats.update(values, valid)
        stats.files += 1
        if with_labels:
            shape = (int(values.shape[-2]), int(values.shape[-1]))
            stats.update_classes(dataset.load_mask(i, shape).numpy())
    if stats is None:
        raise ConfigurationError("the training split holds no files")
    return stats


def _scene_blocks(path: Path, prep: Any) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """A scene's selected bands block by block, scaled, with their valid-pixel masks."""
    import rasterio
    from rasterio.errors import RasterioError

    try:
        with rasterio.open(path) as src:
            for _, window in src.block_windows(1):
                values, invalid = prep.read(src, window)
                yield values, np.ones(values.shape, bool) if invalid is None else ~invalid
    except RasterioError as exc:
        raise ConfigurationError(f"cannot read {str(path)!r} ({exc})") from exc


def _label_blocks(path: Path) -> Iterator[np.ndarray]:
    """The valid (not nodata / NaN) pixels of a label raster, block by block."""
    import rasterio
    from rasterio.errors import RasterioError

    from geofm_core.data.preprocessing import nodata_mask

    try:
        with rasterio.open(path) as src:
            for _, window in src.block_windows(1):
                data = src.read(1, window=window)
                invalid = nodata_mask(data, src.nodata)
                yield data.ravel() if invalid is None else data[~invalid]
    except RasterioError as exc:
        raise ConfigurationError(f"cannot read {str(path)!r} ({exc})") from exc


def _stats_from_scenes(dm: Any) -> BandStats:
    from geofm_core.data.scene import _scene_files

    files = dm.describe_files("train")
    if not files:
        raise ConfigurationError("train_data_root is not set")
    stats: BandStats | None = None
    for path in files:
        for values, valid in _scene_blocks(path, dm.preprocessing):
            stats = stats or BandStats(values.shape[0])
            stats.update(values, valid)
        assert stats is not None  # a raster has at least one block
        stats.files += 1
    assert stats is not None
    if dm.task == "segmentation" and dm.label_roots["train"] is not None:
        for label in _scene_files(dm.label_roots["train"], dm.label_glob, "label"):
            for values in _label_blocks(Path(label)):
                stats.update_classes(values.astype(np.int64))
    return stats


def _import_datamodule(class_path: str) -> type[Any]:
    if "." not in class_path:
        class_path = f"geofm_core.data.{class_path}"
    module_name, _, attr = class_path.rpartition(".")
    try:
        return getattr(importlib.import_module(module_name), attr)  # type: ignore[no-any-return]
    except (ImportError, AttributeError) as exc:
        raise ConfigurationError(
            f"data.class_path: cannot import {class_path!r} ({exc}); use one of "
            "geofm_core.data.GeoTiff{Segmentation,Regression,Classification,MultiLabel,Scene}"
            "DataModule"
        ) from exc


def datamodule_from_config(path: str | Path) -> Any:
    """Build the data module of a LightningCLI-style YAML (its ``data:`` section)."""
    from geofm_core.io.yaml_files import read_yaml

    config = read_yaml(path)
    if not isinstance(config, dict):
        raise ConfigurationError(f"{path}: expected a mapping with a data: section")
    section = config.get("data", config)
    if not isinstance(section, dict) or "class_path" not in section:
        raise ConfigurationError(
            f"{path}: needs a data: section with class_path and init_args (one of the "
            "geofm_core.data data modules)"
        )
    cls = _import_datamodule(str(section["class_path"]))
    init_args = dict(section.get("init_args") or {})
    # statistics are computed on unnormalised values
    init_args.pop("means", None)
    init_args.pop("stds", None)
    from geofm_core.signatures import check_arguments

    # A chip data module passes its shared options on to its base (**kwargs): check those too.
    check_arguments(cls, init_args, f"data {section['class_path']}", follow_kwargs=True)
    return cls(**init_args)


def compute_stats(datamodule: Any) -> BandStats:
    """Statistics of a data module's training split."""
    if hasattr(datamodule, "describe_files"):
        return _stats_from_scenes(datamodule)
    dataset = datamodule.dataset("train")
    return stats_from_dataset(dataset, with_labels=getattr(datamodule, "task", "") ==
                               "segmentation")
