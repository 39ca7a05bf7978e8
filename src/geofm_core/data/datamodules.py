"""LightningDataModules over folders of GeoTIFF chips, configured entirely from YAML.

Example (the ``data:`` section of a ``geofm fit`` config)::

    data:
      class_path: geofm_core.data.GeoTiffSegmentationDataModule
      init_args:
        train_data_root: data/sen1floods11
        img_pattern: "*_S2Hand.tif"
        label_pattern: "*_LabelHand.tif"
        train_split: splits/train.txt
        val_split: splits/val.txt      # val_data_root defaults to train_data_root
        output_bands: [1, 2, 3, 8, 11, 12]
        num_classes: 2
        ignore_index: -1
        means: [...]                   # `geofm stats -c config.yaml` prints them
        stds: [...]
        train_augmentations: [hflip, vflip, rot90, {random_crop: 224}]

Stage roots: ``{val,test,predict}_data_root`` default to ``train_data_root`` when the
stage has a split file; a stage's label root defaults to its explicit
``{stage}_label_data_root``, else the training label root when the images come from the
training root, else the stage's image folder. Augmentations run on the batch after it
reaches the device (see :mod:`geofm_core.data.augment`): ``train_augmentations`` while
training, ``val_augmentations`` for validation and test; prediction batches are not
augmented.

The options every chip data module takes are declared once, by
:class:`GeoTiffChipDataModule`; each task's data module declares only its own and passes
the rest on (``**kwargs``). LightningCLI (jsonargparse) follows ``**kwargs`` into the
shared signature and docstring, so ``geofm fit --help`` and ``--print_config`` list every
option with its help, and ``save_hyperparameters`` records them all.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any, ClassVar, Literal

import lightning.pytorch as pl
from torch.utils.data import DataLoader, Dataset

from geofm_core.data.augment import AugmentationSpec, BatchAugmentation, build_augmentation
from geofm_core.data.bands import BandSpec
from geofm_core.data.datasets import (
    GeoTiffClassificationDataset,
    GeoTiffImageDataset,
    GeoTiffMultiLabelDataset,
    GeoTiffRegressionDataset,
    GeoTiffSegmentationDataset,
    collate_samples,
)
from geofm_core.data.preprocessing import Preprocessing
from geofm_core.errors import ConfigurationError, ConfigurationWarning

__all__ = [
    "GeoTiffChipDataModule",
    "GeoTiffClassificationDataModule",
    "GeoTiffMultiLabelDataModule",
    "GeoTiffRegressionDataModule",
    "GeoTiffSegmentationDataModule",
]

Stage = Literal["train", "val", "test", "predict"]


class GeoTiffChipDataModule(pl.LightningDataModule):
    """The options and machinery every chip data module shares (use a task's subclass).

    Roots per stage, datasets, loaders, augmentations, and the image options that make
    the data's :class:`~geofm_core.data.preprocessing.Preprocessing`.

    Args:
        train_data_root: folder of training images (classification: or of class folders).
        val_data_root: folder of validation images (default ``train_data_root`` when
            ``val_split`` is given).
        test_data_root: folder of test images (likewise).
        predict_data_root: folder of images to predict (no labels).
        train_label_data_root: training labels: a folder of label rasters (default: the
            image folder), or for classification a CSV file (default: class folders).
        val_label_data_root: validation labels, likewise.
        test_label_data_root: test labels, likewise.
        img_pattern: glob selecting the images, e.g. ``"*_S2Hand.tif"``.
        predict_img_pattern: glob for prediction images (default ``img_pattern``).
        train_split: file of training ids (file keys or names), one per line.
        val_split: file of validation ids.
        test_split: file of test ids.
        batch_size: training batch size.
        eval_batch_size: batch size of the other stages (default ``batch_size``).
        num_workers: DataLoader worker processes.
        dataset_bands: HLS names of the bands stored in each file, in order.
        output_bands: bands to use: names, 0-based indices, ranges "0-5" or [0, 5].
        constant_scale: factor applied to raw image values.
        no_data_replace: value for image nodata / NaN pixels (None keeps them).
        expand_temporal_dimension: files stack T frames (frame after frame); images become
            (C, T, H, W).
        num_frames: T, when ``dataset_bands`` does not say how many bands a frame has.
        means: per selected band (after ``constant_scale``), or a file holding them.
        stds: per selected band, or a file.
        rgb_indices: positions of red, green, blue among the selected bands.
        train_augmentations: augmentations while training (see ``geofm_core.data.augment``).
        val_augmentations: augmentations for validation and test (e.g. ``[{center_crop: 224}]``).
        drop_last: drop the last incomplete training batch.
        pin_memory: DataLoader pin_memory.
    """

    dataset_class: ClassVar[type[GeoTiffImageDataset]]
    task: ClassVar[str]
    #: Samples -> batch; a module-level function, so that spawned workers can pickle it.
    collate_fn: ClassVar[staticmethod[[Sequence[Any]], dict[str, Any]]] = staticmethod(
        collate_samples)

    def __init__(
        self,
        *,
        train_data_root: str | None = None,
        val_data_root: str | None = None,
        test_data_root: str | None = None,
        predict_data_root: str | None = None,
        train_label_data_root: str | None = None,
        val_label_data_root: str | None = None,
        test_label_data_root: str | None = None,
        img_pattern: str = "*.tif",
        predict_img_pattern: str | None = None,
        train_split: str | None = None,
        val_split: str | None = None,
        test_split: str | None = None,
        batch_size: int = 8,
        eval_batch_size: int | None = None,
        num_workers: int = 0,
        dataset_bands: list[str] | None = None,
        output_bands: list[BandSpec] | None = None,
        constant_scale: float = 1.0,
        no_data_replace: float | None = None,
        expand_temporal_dimension: bool = False,
        num_frames: int | None = None,
        means: list[float] | str | None = None,
        stds: list[float] | str | None = None,
        rgb_indices: list[int] | None = None,
        train_augmentations: list[AugmentationSpec] | None = None,
        val_augmentations: list[AugmentationSpec] | None = None,
        drop_last: bool = True,
        pin_memory: bool = False,
    ) -> None:
        super().__init__()
        if not hasattr(self, "dataset_class"):
            raise ConfigurationError(
                f"{type(self).__name__} holds the options the chip data modules share; use "
                "GeoTiff{Segmentation,Regression,Classification,MultiLabel}DataModule"
            )
        if batch_size < 1:
            raise ConfigurationError(f"batch_size must be >= 1, got {batch_size}")
        if num_workers < 0:
            raise ConfigurationError(f"num_workers must be >= 0, got {num_workers}")
        self.roots: dict[str, str | None] = {
            "train": train_data_root, "val": val_data_root, "test": test_data_root,
            "predict": predict_data_root,
        }
        self.label_roots: dict[str, str | None] = {
            "train": train_label_data_root, "val": val_label_data_root,
            "test": test_label_data_root, "predict": None,
        }
        self.splits: dict[str, str | None] = {
            "train": train_split, "val": val_split, "test": test_split, "predict": None,
        }
        self.img_pattern = img_pattern
        self.predict_img_pattern = predict_img_pattern or img_pattern
        self.batch_size = batch_size
        self.eval_batch_size = eval_batch_size or batch_size
        self.num_workers = num_workers
        self.drop_last = drop_last
        self.pin_memory = pin_memory
        self.image_options: dict[str, Any] = {
            "dataset_bands": dataset_bands,
            "output_bands": output_bands,
            "constant_scale": constant_scale,
            "no_data_replace": no_data_replace,
            "expand_temporal_dimension": expand_temporal_dimension,
            "num_frames": num_frames,
            "means": means,
            "stds": stds,
            "rgb_indices": rgb_indices,
        }
        # Validates the image options now, so a bad config fails before any data is read.
        self.preprocessing = Preprocessing.from_settings(self.image_options)
        self.train_augmentation = build_augmentation(train_augmentations, "train_augmentations")
        self.val_augmentation = build_augmentation(val_augmentations, "val_augmentations")
        self.datasets: dict[str, GeoTiffImageDataset] = {}
        # Here, so that every option is recorded (checkpoints keep the data settings, and
        # inference rebuilds its preprocessing from them): Lightning collects the
        # arguments of this frame and of the subclasses' frames that called it.
        self.save_hyperparameters()
        self.preprocessing.store_values(self.hparams)
        self.preprocessing.store_values(self.image_options)


    # ------------------------------------------------------------------ roots
    def data_root(self, stage: Stage) -> str | None:
        """Image folder of a stage (falls back to the training folder for split stages)."""
        root = self.roots[stage]
        if root is None and stage != "train" and self.splits.get(stage):
            return self.roots["train"]
        return root

    def label_root(self, stage: Stage) -> str | None:
        """Label folder (or CSV) of a stage."""
        explicit = self.label_roots[stage]
        if explicit is not None:
            return explicit
        if stage != "train" and self.roots[stage] is None and self.data_root(stage) is not None:
            return self.label_roots["train"]
        return None

    def is_configured(self, stage: Stage) -> bool:
        """Whether the stage has data."""
        return self.data_root(stage) is not None

    # --------------------------------------------------------------- datasets
    def task_options(self) -> dict[str, Any]:
        """Dataset arguments specific to the task (labels)."""
        return {}

    def build_dataset(self, stage: Stage) -> GeoTiffImageDataset:
        """Build (without caching) the dataset of a stage."""
        root = self.data_root(stage)
        if root is None:
            raise ConfigurationError(
                f"{stage}_data_root is not set; give the folder of {stage} images"
            )
        options = dict(self.image_options)
        if stage == "predict":
            return GeoTiffImageDataset(root, img_pattern=self.predict_img_pattern, **options)
        labelled: Any = self.dataset_class
        dataset: GeoTiffImageDataset = labelled(
            root, self.label_root(stage), img_pattern=self.img_pattern, split=self.splits[stage],
            **options, **self.task_options(),
        )
        return dataset

    def dataset(self, stage: Stage) -> GeoTiffImageDataset:
        """The dataset of a stage, built on first use."""
        if stage not in self.datasets:
            self.datasets[stage] = self.build_dataset(stage)
        return self.datasets[stage]

    def setup(self, stage: str | None = None) -> None:
        """Build the datasets a Lightning stage needs (fit, validate, test, predict)."""
        wanted: dict[str | None, tuple[Stage, ...]] = {
            "fit": ("train", "val"), "validate": ("val",), "test": ("test",),
            "predict": ("predict",), None: ("train", "val", "test", "predict"),
        }
        for name in wanted.get(stage, ()):
            if name == "train" or self.is_configured(name):
                self.dataset(name)
        if stage in ("fit", None) and self.image_options.get("means") is None:
            warnings.warn(
                "training without means/stds: the model sees the raw band values (times "
                "constant_scale), which suits no pretrained backbone and slows training. "
                "Compute them with `geofm stats -c CONFIG -o stats.yaml` and set "
                "data.init_args.means and data.init_args.stds to stats.yaml",
                ConfigurationWarning, stacklevel=2)
        if stage in ("validate", "test", "predict"):
            only = wanted[stage][0]
            if not self.is_configured(only):
                raise ConfigurationError(
                    f"{only}_data_root is not set (nor {only}_split with train_data_root); "
                    f"give the {only} data"
                )

    def _loader(self, stage: Stage, shuffle: bool) -> DataLoader[Any]:
        dataset: Dataset[Any] = self.dataset(stage)
        options: dict[str, Any] = {"shuffle": shuffle}
        loader_class: type[DataLoader[Any]] = DataLoader
        if stage == "train":
            # A run killed mid-epoch resumes with the same batches (geofm_core.data.resumable).
            from geofm_core.data.resumable import EpochSampler, ResumableDataLoader

            options = {"sampler": EpochSampler(len(self.dataset(stage)), shuffle=shuffle)}
            loader_class = ResumableDataLoader
        return loader_class(
            dataset,
            batch_size=self.batch_size if stage == "train" else self.eval_batch_size,
            **options,
            num_workers=self.num_workers,
            drop_last=self.drop_last and stage == "train" and len(self.dataset(stage)) >
            self.batch_size,
            pin_memory=self.pin_memory,
            persistent_workers=self.num_workers > 0,
            collate_fn=type(self).collate_fn,
        )

    def train_dataloader(self) -> DataLoader[Any]:
        """Shuffled training batches."""
        return self._loader("train", shuffle=True)

    def val_dataloader(self) -> DataLoader[Any] | list[Any]:
        """Validation batches (an empty list when no validation data is configured)."""
        if not self.is_configured("val"):
            return []
        return self._loader("val", shuffle=False)

    def test_dataloader(self) -> DataLoader[Any]:
        """Test batches."""
        return self._loader("test", shuffle=False)

    def predict_dataloader(self) -> DataLoader[Any]:
        """Prediction batches: images and filenames, no labels."""
        return self._loader("predict", shuffle=False)

    # ---------------------------------------------------------- augmentations
    def augmentation_for(self, trainer: Any) -> BatchAugmentation | None:
        """The augmentation that applies in the trainer's current state."""
        if trainer is None:
            return None
        if getattr(trainer, "training", False):
            return self.train_augmentation
        if getattr(trainer, "validating", False) or getattr(trainer, "sanity_checking", False) \
                or getattr(trainer, "testing", False):
            return self.val_augmentation
        return None

    def on_after_batch_transfer(self, batch: Any, dataloader_idx: int) -> Any:
        """Apply the stage's augmentations on the device."""
        augmentation = self.augmentation_for(self.trainer)
        if augmentation is not None and isinstance(batch, dict):
            batch = augmentation(batch)
        return batch

    # --------------------------------------------------------------- metadata
    def input_bands(self) -> tuple[int, str] | None:
        """Bands per frame the model gets, and where that comes from (for messages).

        From ``output_bands`` / ``dataset_bands`` when they say, else from the band count
        of the first file of the first configured stage (metadata only).
        """
        if self.preprocessing.channels is not None:
            what = "output_bands" if self.preprocessing.bands is not None else "dataset_bands"
            return self.preprocessing.channels, f"data.init_args.{what}"
        import rasterio
        from rasterio.errors import RasterioError

        dataset = self._reference()
        if not dataset.items:
            return None
        path = dataset.items[0][1]
        try:
            with rasterio.open(path) as src:
                plan = self.preprocessing.plan(path, src.count, src.dtypes)
        except RasterioError:
            return None  # reading the file later names it
        return plan.bands, f"the bands of {Path(path).name}"

    def input_band_names(self) -> tuple[list[str], str] | None:
        """The geofm names of the bands per frame the model gets, in order, and their field.

        Known when ``dataset_bands`` names the file's bands (``output_bands`` then selects
        among them); ``None`` otherwise.
        """
        names = self.preprocessing.dataset_bands
        if names is None:
            return None
        if self.preprocessing.bands is None:
            return list(names), "data.init_args.dataset_bands"
        return [names[i] for i in self.preprocessing.bands], "data.init_args.output_bands"

    def _reference(self) -> GeoTiffImageDataset:
        for stage in ("train", "val", "test", "predict"):
            if stage in self.datasets:
                return self.datasets[stage]
        if self.is_configured("train"):
            return self.dataset("train")
        return self.dataset("predict")

    @property
    def rgb_indices(self) -> list[int]:
        """Positions of red, green, blue among the selected bands (for plots)."""
        if self.image_options["rgb_indices"] is not None:
            return list(self.image_options["rgb_indices"])
        return self._reference().rgb_indices

    def plot(self, sample: dict[str, Any], suptitle: str | None = None) -> Any:
        """Figure of one sample (see :meth:`GeoTiffImageDataset.plot`)."""
        return self._reference().plot(sample, suptitle)


class GeoTiffSegmentationDataModule(GeoTiffChipDataModule):
    """Semantic segmentation from GeoTIFF chips paired by name with label rasters.

    Args:
        label_pattern: glob selecting the labels, e.g. ``"*_LabelHand.tif"``; images and
            labels pair by the text the wildcards match.
        no_label_replace: value for label nodata / NaN pixels (default ``ignore_index``).
        num_classes: number of classes (default ``len(class_names)``).
        class_names: class names, index order.
        ignore_index: label value to ignore in losses and metrics.
        reduce_zero_label: label 0 becomes ``ignore_index``, others shift down by one.
        **kwargs: the options of :class:`GeoTiffChipDataModule` (roots, patterns, splits,
            loaders, bands, scaling, normalisation, augmentations).
    """

    dataset_class = GeoTiffSegmentationDataset
    task = "segmentation"

    def __init__(
        self,
        *,
        label_pattern: str = "*.tif",
        no_label_replace: float | None = None,
        num_classes: int | None = None,
        class_names: list[str] | None = None,
        ignore_index: int | None = None,
        reduce_zero_label: bool = False,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        if num_classes is None and class_names is None:
            raise ConfigurationError(
                "GeoTiffSegmentationDataModule needs num_classes or class_names"
            )
        if class_names is not None and num_classes is not None and \
                num_classes != len(class_names):
            raise ConfigurationError(
                f"num_classes is {num_classes} but class_names lists {len(class_names)}"
            )
        if reduce_zero_label and ignore_index is None:
            raise ConfigurationError(
                "reduce_zero_label turns label 0 into ignore_index; set ignore_index (e.g. -1)"
            )
        self.label_pattern = label_pattern
        self.no_label_replace = no_label_replace
        self.num_classes: int = num_classes if num_classes is not None else len(class_names or [])
        self.class_names: list[str] = (
            list(class_names) if class_names is not None
            else [str(i) for i in range(self.num_classes)]
        )
        self.ignore_index = ignore_index
        self.reduce_zero_label = reduce_zero_label

    def plot(self, sample: dict[str, Any], suptitle: str | None = None) -> Any:
        """Figure of one sample with the class colours, names and ignored pixels."""
        return self._reference().plot(sample, suptitle, class_names=self.class_names,
                                      ignore_index=self.ignore_index)

    def task_options(self) -> dict[str, Any]:
        """Label options of the segmentation dataset."""
        return {
            "label_pattern": self.label_pattern,
            "no_label_replace": self.no_label_replace,
            "num_classes": self.num_classes,
            "ignore_index": self.ignore_index,
            "reduce_zero_label": self.reduce_zero_label,
        }


class GeoTiffRegressionDataModule(GeoTiffChipDataModule):
    """Pixelwise regression from GeoTIFF chips paired by name with target rasters.

    Target nodata / NaN pixels become NaN (ignored) unless ``no_label_replace`` is set.

    Args:
        label_pattern: glob selecting the targets; images and targets pair by the text the
            wildcards match.
        no_label_replace: value for target nodata / NaN pixels (default NaN).
        **kwargs: the options of :class:`GeoTiffChipDataModule` (roots, patterns, splits,
            loaders, bands, scaling, normalisation, augmentations).
    """

    dataset_class = GeoTiffRegressionDataset
    task = "regression"

    def __init__(
        self,
        *,
        label_pattern: str = "*.tif",
        no_label_replace: float | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.label_pattern = label_pattern
        self.no_label_replace = no_label_replace
        self.num_classes = 1
        self.class_names: list[str] = []

    def task_options(self) -> dict[str, Any]:
        """Target options of the regression dataset."""
        return {"label_pattern": self.label_pattern, "no_label_replace": self.no_label_replace}


class GeoTiffClassificationDataModule(GeoTiffChipDataModule):
    """Scene classification: one class per GeoTIFF chip.

    Labels come from class folders (``{stage}_data_root/<class>/<img_pattern>``, when
    ``{stage}_label_data_root`` is not set) or from a CSV given as
    ``{stage}_label_data_root`` (header row, then ``file,label`` rows; label an index or a
    name from ``class_names``).

    Args:
        num_classes: number of classes (default ``len(class_names)``).
        class_names: class names in index order (default: sorted class folder names).
        **kwargs: the options of :class:`GeoTiffChipDataModule` (roots, patterns, splits,
            loaders, bands, scaling, normalisation, augmentations).
    """

    dataset_class: ClassVar[type[GeoTiffImageDataset]] = GeoTiffClassificationDataset
    task = "classification"

    def __init__(
        self,
        *,
        num_classes: int | None = None,
        class_names: list[str] | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        if class_names is not None and num_classes is not None and \
                num_classes != len(class_names):
            raise ConfigurationError(
                f"num_classes is {num_classes} but class_names lists {len(class_names)}"
            )
        self._num_classes = num_classes if num_classes is not None else (
            None if class_names is None else len(class_names)
        )
        self._class_names = None if class_names is None else list(class_names)

    def task_options(self) -> dict[str, Any]:
        """Class options of the dataset."""
        return {"num_classes": self._num_classes, "class_names": self._class_names}

    def _labelled_reference(self) -> Any:
        for stage in ("train", "val", "test"):
            if stage in self.datasets:
                return self.datasets[stage]
        return self.dataset("train")

    @property
    def num_classes(self) -> int:
        """Number of classes (from the config, else from the training data)."""
        if self._num_classes is None:
            found = self._labelled_reference().num_classes
            if found is None:
                raise ConfigurationError("give num_classes or class_names")
            self._num_classes = int(found)
        return self._num_classes

    @property
    def class_names(self) -> list[str]:
        """Class names (from the config, else the training class folders or CSV header)."""
        if self._class_names is None:
            names = self._labelled_reference().class_names
            self._class_names = list(names) if names else [str(i) for i in
                                                           range(self.num_classes)]
        return self._class_names


class GeoTiffMultiLabelDataModule(GeoTiffClassificationDataModule):
    """Multi-label classification: any number of classes per chip, from CSV files.

    Same arguments as :class:`GeoTiffClassificationDataModule`; every labelled stage needs
    ``{stage}_label_data_root``: a CSV with a header and either one 0/1 column per class, or
    a ``file,labels`` layout with labels separated by ``;``.
    """

    dataset_class = GeoTiffMultiLabelDataset
    task = "multilabel"
