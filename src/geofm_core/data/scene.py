"""Whole scenes plus a label raster: TorchGeo ``RasterDataset``s built at run time.

For data that are not chips: one or more image scenes and a label raster covering them
(any CRS / resolution; TorchGeo warps them onto a common grid). Training chips are drawn
with ``RandomGeoSampler``; validation, test and prediction chips tile the scenes with
``GridGeoSampler`` (its last row / column of chips may run past the scene edge: those
pixels hold the image nodata value and, with ``ignore_index``, are ignored). Batches
follow the chip batch contract (``image``, ``mask``, ``filename``) plus ``bounds``
(B, 4): xmin, ymin, xmax, ymax in the dataset CRS.

Example::

    data:
      class_path: geofm_core.data.GeoTiffSceneDataModule
      init_args:
        train_data_root: scenes/train        # folders or files
        train_label_data_root: labels/train
        img_glob: "*_B*.tif"
        label_glob: "*_landcover.tif"
        output_bands: [0, 1, 2, 3, 4, 5]
        res: 30
        crs: "EPSG:32618"
        patch_size: 224
        train_length: 1000                  # chips per epoch
        num_classes: 7
        ignore_index: 0
"""

from __future__ import annotations

import glob
import os
from pathlib import Path
from typing import Any, Literal

import lightning.pytorch as pl
import numpy as np
import rasterio
import torch
from rasterio.errors import RasterioError
from torch.utils.data import DataLoader

from geofm_core.data.augment import build_augmentation
from geofm_core.data.preprocessing import Preprocessing
from geofm_core.errors import ConfigurationError

__all__ = ["GeoTiffSceneDataModule"]

Stage = Literal["train", "val", "test", "predict"]


def _scene_files(root: str | list[str], pattern: str, field: str) -> list[str]:
    """Files under the roots (folders searched recursively, or files) matching ``pattern``."""
    roots = [root] if isinstance(root, str) else list(root)
    files: set[str] = set()
    for entry in roots:
        path = os.path.expanduser(entry)
        if os.path.isdir(path):
            files |= {
                f for f in glob.iglob(os.path.join(path, "**", pattern), recursive=True)
                if os.path.isfile(f)
            }
        elif os.path.isfile(path):
            files.add(path)
        else:
            raise ConfigurationError(f"{field}: {entry!r} does not exist; give folders or files")
    if not files:
        raise ConfigurationError(
            f"{field}: no file in {', '.join(map(repr, roots))} matches {pattern!r}; fix the "
            "folder or the glob"
        )
    for f in sorted(files):
        try:
            with rasterio.open(f) as src:
                src.read(1, window=((0, 1), (0, 1)))
        except RasterioError as exc:
            raise ConfigurationError(
                f"{field}: cannot read {f!r} ({exc}); replace or remove the file"
            ) from exc
    return sorted(files)


def _scene_raster_class() -> type[Any]:
    """The RasterDataset subclass, defined on first use (torchgeo imports slowly).

    It is a module attribute (see ``__getattr__``) so that pickling works when data
    loader workers are spawned rather than forked.
    """
    cached = globals().get("_CLASS")
    if cached is not None:
        return cached  # type: ignore[no-any-return]
    from torchgeo.datasets import RasterDataset

    class SceneRaster(RasterDataset):  # type: ignore[misc]
        """Files listed in advance, bands and dtype given per instance."""

        filename_glob = "*"

        def __init__(self, files: list[str], *, is_image: bool, all_bands: tuple[str, ...],
                     dtype: torch.dtype, resampling: str = "nearest", **kwargs: Any) -> None:
            from rasterio.enums import Resampling

            self.is_image = is_image
            self.all_bands = all_bands
            self._dtype = dtype
            self._resampling = Resampling[resampling]
            super().__init__(files, **kwargs)

        @property
        def dtype(self) -> torch.dtype:
            return self._dtype

        @property
        def resampling(self) -> Any:
            return self._resampling

    SceneRaster.__module__ = __name__
    SceneRaster.__qualname__ = SceneRaster.__name__ = "_SceneRaster"
    globals()["_CLASS"] = SceneRaster
    return SceneRaster


def __getattr__(name: str) -> Any:
    if name == "_SceneRaster":
        return _scene_raster_class()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


class GeoTiffSceneDataModule(pl.LightningDataModule):
    """Chips sampled from whole GeoTIFF scenes and a label raster, via TorchGeo.

    Args:
        train_data_root: folder(s) or file(s) of training scenes.
        val_data_root: validation scenes.
        test_data_root: test scenes.
        predict_data_root: scenes to predict (no labels).
        train_label_data_root: folder(s) or file(s) of the training label raster(s).
        val_label_data_root: validation labels (default ``train_label_data_root``).
        test_label_data_root: test labels (default ``train_label_data_root``).
        img_glob: file name glob of the image scenes.
        label_glob: file name glob of the label rasters.
        task: "segmentation" (long masks), "regression" (float masks, NaN = ignore) or
            "image" (no labels: chips of the scenes alone, e.g. for ReconstructionTask).
        dataset_bands: HLS names of the bands stored in each scene, in order.
        output_bands: bands to use: names, 0-based indices, ranges "0-5" or [0, 5].
        res: resolution in CRS units (default: the first scene's).
        crs: CRS such as "EPSG:32618" (default: the first scene's).
        patch_size: chip size in pixels.
        train_length: training chips per epoch (default: enough to cover the scenes once).
        stride: grid stride in pixels for val/test/predict (default ``patch_size``).
        batch_size: chips per batch.
        num_workers: DataLoader worker processes.
        constant_scale: factor applied to raw image values.
        no_data_replace: value for image nodata / NaN pixels (None keeps them).
        means: per selected band (after ``constant_scale``), or a file.
        stds: per selected band, or a file.
        num_classes: number of classes (segmentation).
        class_names: class names, index order.
        ignore_index: label value to ignore; label nodata, and pixels where the image has no
            data (all bands nodata, e.g. past a scene edge), become this value.
        train_augmentations: augmentations while training (see ``geofm_core.data.augment``).
        seed: seed of the random training sampler (None: not reproducible).
        resampling: how image pixels are resampled when a chip's window is off the scene's
            pixel grid or the scenes are warped (labels always use nearest). "nearest" keeps
            image and label pixels aligned on the native grid; "bilinear" / "cubic" are
            smoother when ``res`` / ``crs`` differ from the files'.
    """

    def __init__(
        self,
        train_data_root: str | list[str] | None = None,
        val_data_root: str | list[str] | None = None,
        test_data_root: str | list[str] | None = None,
        predict_data_root: str | list[str] | None = None,
        train_label_data_root: str | list[str] | None = None,
        val_label_data_root: str | list[str] | None = None,
        test_label_data_root: str | list[str] | None = None,
        img_glob: str = "*.tif",
        label_glob: str = "*.tif",
        task: Literal["segmentation", "regression", "image"] = "segmentation",
        dataset_bands: list[str] | None = None,
        output_bands: list[str | int | list[int]] | None = None,
        res: float | None = None,
        crs: str | None = None,
        patch_size: int = 224,
        train_length: int | None = None,
        stride: int | None = None,
        batch_size: int = 8,
        num_workers: int = 0,
        constant_scale: float = 1.0,
        no_data_replace: float | None = None,
        means: list[float] | str | None = None,
        stds: list[float] | str | None = None,
        num_classes: int | None = None,
        class_names: list[str] | None = None,
        ignore_index: int | None = None,
        train_augmentations: list[str | dict[str, Any]] | None = None,
        seed: int | None = None,
        resampling: Literal["nearest", "bilinear", "cubic"] = "nearest",
    ) -> None:
        super().__init__()
        if task == "segmentation" and num_classes is None and class_names is None:
            raise ConfigurationError("GeoTiffSceneDataModule needs num_classes or class_names")
        if patch_size < 1 or batch_size < 1:
            raise ConfigurationError("patch_size and batch_size must be >= 1")
        labels = [n for n, v in (("train_label_data_root", train_label_data_root),
                                 ("val_label_data_root", val_label_data_root),
                                 ("test_label_data_root", test_label_data_root)) if v]
        if task == "image" and labels:
            raise ConfigurationError(
                f"GeoTiffSceneDataModule with task 'image' reads no labels; remove {labels} "
                "or set task to segmentation or regression"
            )
        self.roots: dict[str, str | list[str] | None] = {
            "train": train_data_root, "val": val_data_root, "test": test_data_root,
            "predict": predict_data_root,
        }
        self.label_roots: dict[str, str | list[str] | None] = {
            "train": train_label_data_root,
            "val": val_label_data_root or train_label_data_root,
            "test": test_label_data_root or train_label_data_root,
            "predict": None,
        }
        self.img_glob, self.label_glob = img_glob, label_glob
        self.task = task
        # Batches are preprocessed in collate, as the chip datasets and inference do it.
        self.preprocessing = Preprocessing(
            bands=output_bands, dataset_bands=dataset_bands, constant_scale=constant_scale,
            no_data_replace=no_data_replace, means=means, stds=stds,
        )
        self.dataset_bands = self.preprocessing.dataset_bands
        self.res, self.crs = res, crs
        self.patch_size, self.train_length = patch_size, train_length
        self.stride = stride or patch_size
        self.batch_size, self.num_workers = batch_size, num_workers
        self.num_classes: int = num_classes if num_classes is not None else (
            len(class_names) if class_names is not None else 1
        )
        self.class_names: list[str] = list(class_names) if class_names is not None else [
            str(i) for i in range(self.num_classes)
        ] if task == "segmentation" else []
        self.ignore_index = ignore_index
        self.train_augmentation = build_augmentation(train_augmentations)
        self.seed = seed
        self.resampling = resampling
        self.datasets: dict[str, Any] = {}
        self.band_indices: list[int] = []
        self.image_nodata: float | None = None
        self.label_nodata: float | None = None
        self.save_hyperparameters()
        self.preprocessing.store_values(self.hparams)

    # ------------------------------------------------------------ datasets
    def _image_dataset(self, stage: Stage) -> Any:
        field = f"{stage}_data_root/img_glob"
        root = self.roots[stage]
        if root is None:
            raise ConfigurationError(f"{stage}_data_root is not set; give the {stage} scenes")
        files = _scene_files(root, self.img_glob, field)
        with rasterio.open(files[0]) as src:
            count, self.image_nodata, dtypes = src.count, src.nodata, src.dtypes
        selected = [i - 1 for i in self.preprocessing.plan(files[0], count, dtypes).indexes]
        self.band_indices = selected
        all_bands = tuple(f"band{i}" for i in range(count))
        cls = _scene_raster_class()
        return cls(files, is_image=True, all_bands=all_bands, dtype=torch.float32,
                   resampling=self.resampling, crs=self._crs(), res=self.res,
                   bands=[all_bands[i] for i in selected])

    def _crs(self) -> Any:
        if self.crs is None:
            return None
        from rasterio.crs import CRS

        try:
            return CRS.from_user_input(self.crs)
        except Exception as exc:
            raise ConfigurationError(f"crs: {self.crs!r} is not a CRS ({exc})") from exc

    def _label_dataset(self, stage: Stage, image: Any) -> Any:
        root = self.label_roots[stage]
        if root is None:
            raise ConfigurationError(
                f"{stage}_label_data_root is not set; give the {stage} label raster(s)"
            )
        files = _scene_files(root, self.label_glob, f"{stage}_label_data_root/label_glob")
        with rasterio.open(files[0]) as src:
            self.label_nodata = src.nodata
            if src.count != 1:
                raise ConfigurationError(
                    f"{files[0]}: a label raster has one band, this one has {src.count}"
                )
        dtype = torch.float32 if self.task == "regression" else torch.long
        cls = _scene_raster_class()
        return cls(files, is_image=False, all_bands=(), dtype=dtype, crs=image.crs,
                   res=image.res)

    def build_dataset(self, stage: Stage) -> Any:
        """The TorchGeo dataset of a stage: image scenes, intersected with labels if any."""
        image = self._image_dataset(stage)
        if stage == "predict" or self.task == "image":
            return image
        label = self._label_dataset(stage, image)
        from torchgeo.datasets import IntersectionDataset

        try:
            return IntersectionDataset(image, label)
        except RuntimeError as exc:
            raise ConfigurationError(
                f"{stage}: the image scenes and the label rasters do not overlap ({exc}); check "
                "that they cover the same area (and their CRS)"
            ) from exc

    def setup(self, stage: str | None = None) -> None:
        """Build the datasets a Lightning stage needs."""
        wanted: dict[str | None, tuple[Stage, ...]] = {
            "fit": ("train", "val"), "validate": ("val",), "test": ("test",),
            "predict": ("predict",), None: ("train", "val", "test", "predict"),
        }
        for name in wanted.get(stage, ()):
            if name in self.datasets:
                continue
            if name == "train" or self.roots[name] is not None or stage != "fit":
                self.datasets[name] = self.build_dataset(name)

    # ------------------------------------------------------------ batches
    def collate(self, samples: list[dict[str, Any]]) -> dict[str, Any]:
        """Stack TorchGeo samples into the batch contract, applying nodata/scale/norm.

        TorchGeo has selected the bands; :attr:`preprocessing` does the rest, on the
        whole batch, as the chip datasets and tiled inference do it on one image.
        """
        stacked = torch.stack([s["image"] for s in samples]).float().numpy()
        values, invalid = self.preprocessing.scale(stacked, self.image_nodata, copy=False)
        # pixels with no image data (e.g. grid chips running past the scene edge)
        empty = (np.zeros((values.shape[0], *values.shape[2:]), bool) if invalid is None
                 else invalid.all(axis=1))
        images = torch.from_numpy(self.preprocessing.fill_and_normalise(values, invalid))
        bounds = []
        for s in samples:
            x, y = s["bounds"][0], s["bounds"][1]
            bounds.append([float(x.start), float(y.start), float(x.stop), float(y.stop)])
        batch: dict[str, Any] = {
            "image": images,
            "bounds": torch.tensor(bounds, dtype=torch.float64),
            "filename": [
                f"scene_{b[0]:.6g}_{b[1]:.6g}_{b[2]:.6g}_{b[3]:.6g}" for b in bounds
            ],
        }
        if "mask" in samples[0]:
            batch["mask"] = self._masks([s["mask"] for s in samples], torch.from_numpy(empty))
        return batch

    def _masks(self, masks: list[torch.Tensor], empty: torch.Tensor) -> torch.Tensor:
        stacked = torch.stack(masks)
        nodata = self.label_nodata
        if self.task == "regression":
            out = stacked.float()
            if nodata is not None and not np.isnan(nodata):
                out = torch.where(out == float(nodata), torch.tensor(float("nan")), out)
            return torch.where(empty, torch.tensor(float("nan")), out)
        out = stacked.long()
        if self.ignore_index is not None:
            if nodata is not None and not np.isnan(nodata):
                out = torch.where(out == int(nodata), torch.tensor(self.ignore_index), out)
            out = torch.where(empty, torch.tensor(self.ignore_index), out)
        bad = (out < 0) | (out >= self.num_classes)
        if self.ignore_index is not None:
            bad &= out != self.ignore_index
        if bool(bad.any()):
            values = sorted({int(v) for v in torch.unique(out[bad]).tolist()})
            raise ConfigurationError(
                f"label rasters ({self.label_glob}) hold values {values[:10]} outside "
                f"0..{self.num_classes - 1} (num_classes={self.num_classes}, ignore_index="
                f"{self.ignore_index}); raise num_classes or set ignore_index"
            )
        return out

    def _loader(self, stage: Stage) -> DataLoader[Any]:
        from torchgeo.samplers import GridGeoSampler, RandomGeoSampler

        if stage not in self.datasets:
            self.setup({"train": "fit", "val": "validate"}.get(stage, stage))
        dataset = self.datasets[stage]
        sampler: Any
        if stage == "train":
            generator = None if self.seed is None else torch.Generator().manual_seed(self.seed)
            sampler = RandomGeoSampler(dataset, self.patch_size, self.train_length,
                                       generator=generator)
        else:
            sampler = GridGeoSampler(dataset, self.patch_size, self.stride)
        if len(sampler) == 0:
            raise ConfigurationError(
                f"{stage}: no {self.patch_size}-pixel chip fits in the scenes; lower patch_size"
            )
        return DataLoader(dataset, batch_size=self.batch_size, sampler=sampler,
                          num_workers=self.num_workers, collate_fn=self.collate,
                          persistent_workers=self.num_workers > 0)

    def train_dataloader(self) -> DataLoader[Any]:
        """Random training chips."""
        return self._loader("train")

    def val_dataloader(self) -> DataLoader[Any] | list[Any]:
        """Validation chips on a grid (an empty list when no validation scenes are set)."""
        if self.roots["val"] is None:
            return []
        return self._loader("val")

    def test_dataloader(self) -> DataLoader[Any]:
        """Test chips on a grid."""
        return self._loader("test")

    def predict_dataloader(self) -> DataLoader[Any]:
        """Prediction chips on a grid: images, bounds and names, no labels."""
        return self._loader("predict")

    def on_after_batch_transfer(self, batch: Any, dataloader_idx: int) -> Any:
        """Apply the training augmentations on the device."""
        trainer = self.trainer
        if (
            self.train_augmentation is not None and trainer is not None
            and getattr(trainer, "training", False) and isinstance(batch, dict)
        ):
            batch = self.train_augmentation(batch)
        return batch

    @property
    def rgb_indices(self) -> list[int]:
        """Positions of red, green, blue among the selected bands (for plots)."""
        if self.dataset_bands is not None and self.band_indices:
            names = [self.dataset_bands[i] for i in self.band_indices]
            if all(c in names for c in ("RED", "GREEN", "BLUE")):
                return [names.index("RED"), names.index("GREEN"), names.index("BLUE")]
        return [0, 1, 2] if len(self.band_indices) >= 3 else [0]

    def describe_files(self, stage: Stage) -> list[Path]:
        """The scene files of a stage (for messages and statistics)."""
        root = self.roots[stage]
        if root is None:
            return []
        return [Path(f) for f in _scene_files(root, self.img_glob, f"{stage}_data_root")]
