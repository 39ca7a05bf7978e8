"""Images without labels: a chip data module for masked-autoencoding pre-training.

Every stage reads images only (``image`` and ``filename`` per sample), with the options
of :class:`~geofm_core.data.datamodules.GeoTiffChipDataModule` (bands, scaling,
normalisation, multi-temporal stacks, splits, augmentations). Large chips or whole
scenes are cut on the device by a crop augmentation::

    data:
      class_path: GeoTiffImageDataModule
      init_args:
        train_data_root: data/sen1floods11
        img_pattern: "*_S2Hand.tif"
        output_bands: [1, 2, 3, 8, 11, 12]
        train_augmentations: [hflip, {random_crop: 224}]
        val_augmentations: [{center_crop: 224}]
"""

from __future__ import annotations

from typing import Any, ClassVar

from geofm_core.data.datamodules import GeoTiffChipDataModule, Stage
from geofm_core.data.images import GeoTiffImageDataset
from geofm_core.errors import ConfigurationError

__all__ = ["GeoTiffImageDataModule"]


class GeoTiffImageDataModule(GeoTiffChipDataModule):
    """GeoTIFF chips (or scenes, cropped by augmentations) without labels, for pre-training.

    Validation runs when ``val_data_root`` or ``val_split`` is given.

    Args:
        **kwargs: the options of :class:`GeoTiffChipDataModule` (roots, patterns, splits,
            loaders, bands, scaling, normalisation, augmentations); label roots do not
            apply.
    """

    dataset_class: ClassVar[type[GeoTiffImageDataset]] = GeoTiffImageDataset
    task = "image"

    def __init__(self, **kwargs: Any) -> None:
        labels = sorted(k for k, v in kwargs.items() if k.endswith("label_data_root") and v)
        if labels:
            raise ConfigurationError(
                f"GeoTiffImageDataModule reads images only; remove {labels} (or use the "
                "data module of a labelled task)"
            )
        super().__init__(**kwargs)

    def build_dataset(self, stage: Stage) -> GeoTiffImageDataset:
        """The images of a stage (no labels)."""
        root = self.data_root(stage)
        if root is None:
            raise ConfigurationError(
                f"{stage}_data_root is not set; give the folder of {stage} images"
            )
        pattern = self.predict_img_pattern if stage == "predict" else self.img_pattern
        return GeoTiffImageDataset(root, img_pattern=pattern, split=self.splits[stage],
                                   **self.image_options)
