"""Batch augmentations from a YAML list, built on ``kornia.augmentation``.

Kornia works on batched tensors of any band count, applies one random draw jointly to an
image and its mask (``data_keys=["input", "mask"]``, masks resampled with nearest
neighbour) and runs on the GPU after the batch is transferred.

A list entry is a name, or a one-key mapping from the name to its argument::

    train_augmentations:
      - hflip                      # p = 0.5
      - {vflip: 0.2}               # p = 0.2
      - rot90                      # 0, 90, 180 or 270 degrees (square chips)
      - {random_crop: 64}          # or [h, w]
      - {random_resized_crop: {size: 64, scale: [0.5, 1.0]}}
      - {resize: 128}
      - {center_crop: 64}
      - {normalize: {mean: [...], std: [...]}}   # usually means/stds of the data module

Images (B, C, T, H, W) are augmented with their frames folded into the channels, so every
frame gets the same geometry.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import torch

from geofm_core.errors import ConfigurationError

__all__ = ["AUGMENTATIONS", "BatchAugmentation", "AugmentationSpec", "build_augmentation"]

AugmentationSpec = str | dict[str, Any]
#: Augmentations that cut a window out of the chip (they cannot be larger than it).
_CROPS = ("random_crop", "center_crop")


def _size(value: Any, name: str) -> tuple[int, int]:
    if isinstance(value, int) and not isinstance(value, bool) and value > 0:
        return (value, value)
    if (
        isinstance(value, list | tuple) and len(value) == 2
        and all(isinstance(v, int) and v > 0 for v in value)
    ):
        return (int(value[0]), int(value[1]))
    raise ConfigurationError(f"augmentation {name}: size must be an int or [height, width], "
                             f"got {value!r}")


def _prob(value: Any, name: str) -> float:
    if value is None:
        return 0.5
    if isinstance(value, dict):
        value = value.get("p", 0.5)
    if isinstance(value, int | float) and 0.0 <= float(value) <= 1.0:
        return float(value)
    raise ConfigurationError(f"augmentation {name}: probability must be in [0, 1], got {value!r}")


def _hflip(arg: Any) -> Any:
    import kornia.augmentation as K

    return K.RandomHorizontalFlip(p=_prob(arg, "hflip"))


def _vflip(arg: Any) -> Any:
    import kornia.augmentation as K

    return K.RandomVerticalFlip(p=_prob(arg, "vflip"))


def _rot90(arg: Any) -> Any:
    import kornia.augmentation as K

    # nearest keeps the rotated values exact (bilinear adds rounding noise)
    return K.RandomRotation90(times=(0, 3), p=_prob(arg, "rot90") if arg is not None else 1.0,
                              resample="nearest")


def _random_crop(arg: Any) -> Any:
    import kornia.augmentation as K

    return K.RandomCrop(_size(arg, "random_crop"))


def _random_resized_crop(arg: Any) -> Any:
    import kornia.augmentation as K

    opts = dict(arg) if isinstance(arg, dict) else {"size": arg}
    size = _size(opts.pop("size", None), "random_resized_crop")
    scale = tuple(opts.pop("scale", (0.5, 1.0)))
    ratio = tuple(opts.pop("ratio", (0.75, 4 / 3)))
    if opts:
        raise ConfigurationError(
            f"augmentation random_resized_crop: unknown options {sorted(opts)}; it takes size, "
            "scale, ratio"
        )
    return K.RandomResizedCrop(size, scale=scale, ratio=ratio)


def _resize(arg: Any) -> Any:
    import kornia.augmentation as K

    return K.Resize(_size(arg, "resize"))


def _center_crop(arg: Any) -> Any:
    import kornia.augmentation as K

    return K.CenterCrop(_size(arg, "center_crop"))


def _normalize(arg: Any) -> Any:
    import kornia.augmentation as K

    if not isinstance(arg, dict) or "mean" not in arg or "std" not in arg:
        raise ConfigurationError("augmentation normalize needs {mean: [...], std: [...]}")
    return K.Normalize(mean=torch.tensor(arg["mean"], dtype=torch.float32),
                       std=torch.tensor(arg["std"], dtype=torch.float32))


#: Augmentation names -> builders taking the entry's argument (None for a bare name).
AUGMENTATIONS: dict[str, Callable[[Any], Any]] = {
    "hflip": _hflip,
    "vflip": _vflip,
    "rot90": _rot90,
    "random_crop": _random_crop,
    "random_resized_crop": _random_resized_crop,
    "resize": _resize,
    "center_crop": _center_crop,
    "normalize": _normalize,
}


class BatchAugmentation:
    """Applies a kornia pipeline to a batch dict, jointly to ``image`` and ``mask``."""

    def __init__(self, ops: Sequence[Any], names: Sequence[str],
                 sizes: Sequence[tuple[int, int] | None] | None = None) -> None:
        import kornia.augmentation as K

        self.names = list(names)
        # Output size of each op that sets one (crops, resizes), to check crops fit.
        self.sizes = list(sizes) if sizes is not None else [None] * len(self.names)
        self._with_mask = K.AugmentationSequential(*ops, data_keys=["input", "mask"])
        self._image_only = K.AugmentationSequential(*ops, data_keys=["input"])
        self._normalize_channels = [
            op for op in ops if isinstance(op, K.Normalize)
        ]

    def __repr__(self) -> str:
        return f"BatchAugmentation({self.names})"

    def check_sizes(self, batch: dict[str, Any]) -> None:
        """A crop larger than the chip (at its place in the list) is an error naming both.

        Kornia would otherwise resample image and mask up to the crop size silently.
        """
        height, width = (int(n) for n in batch["image"].shape[-2:])
        for name, size in zip(self.names, self.sizes, strict=True):
            if size is None:
                continue
            if name in _CROPS and (size[0] > height or size[1] > width):
                files = batch.get("filename") or ["?"]
                raise ConfigurationError(
                    f"augmentation {name}: the crop {size[0]}x{size[1]} is larger than the "
                    f"chip {height}x{width} ({Path(str(files[0])).name}); use a crop of at most "
                    f"{height}x{width}, or larger chips"
                )
            height, width = size

    def __call__(self, batch: dict[str, Any]) -> dict[str, Any]:
        """Augment ``batch["image"]`` (and ``batch["mask"]``) in a new dict."""
        image: torch.Tensor = batch["image"]
        self.check_sizes(batch)
        if "rot90" in self.names and image.shape[-1] != image.shape[-2]:
            raise ConfigurationError(
                f"augmentation rot90 needs square chips, got {tuple(image.shape[-2:])}; add a "
                "random_crop or center_crop before it, or drop rot90"
            )
        frames = image.shape[2] if image.ndim == 5 else None
        flat = image.flatten(1, 2) if frames is not None else image
        if frames is not None and self._normalize_channels:
            raise ConfigurationError(
                "augmentation normalize does not support (B, C, T, H, W) images; use the data "
                "module's means/stds"
            )
        out = dict(batch)
        mask = batch.get("mask")
        if isinstance(mask, torch.Tensor) and mask.ndim == 3:
            new_image, new_mask = self._with_mask(flat, mask.unsqueeze(1))
            out["mask"] = new_mask.squeeze(1).to(mask.dtype)
        else:
            new_image = self._image_only(flat)
        if frames is not None:
            new_image = new_image.unflatten(1, (image.shape[1], frames))
        out["image"] = new_image
        return out


def augmentation_entry(entry: Any, field: str, example: str) -> tuple[str, Any]:
    """The name and argument of one YAML augmentation entry: ``name`` or ``{name: arg}``.

    Args:
        entry: The list item as YAML gave it.
        field: The option, as messages name it (``train_augmentations``).
        example: A one-key mapping shown in the message of a malformed entry.
    """
    if isinstance(entry, str):
        return entry, None
    if isinstance(entry, dict) and len(entry) == 1:
        name, arg = next(iter(entry.items()))
        return str(name), arg
    raise ConfigurationError(
        f"{field}: each entry is a name or a one-key mapping such as {example}; got {entry!r}"
    )


def build_augmentation(
    spec: Sequence[AugmentationSpec] | None, field: str = "train_augmentations"
) -> BatchAugmentation | None:
    """Build a :class:`BatchAugmentation` from a YAML list (None or empty: no augmentation).

    Raises:
        ConfigurationError: an unknown name or a bad argument.
    """
    if not spec:
        return None
    ops, names = [], []
    sizes: list[tuple[int, int] | None] = []
    for entry in spec:
        name, arg = augmentation_entry(entry, field, "{random_crop: 64}")
        if name not in AUGMENTATIONS:
            raise ConfigurationError(
                f"{field}: unknown augmentation {name!r}; choose from {', '.join(AUGMENTATIONS)}"
            )
        ops.append(AUGMENTATIONS[name](arg))
        names.append(name)
        sizes.append(_output_size(name, arg))
    return BatchAugmentation(ops, names, sizes)


def _output_size(name: str, arg: Any) -> tuple[int, int] | None:
    """The (height, width) an augmentation outputs, when it sets one."""
    if name in _CROPS or name == "resize":
        return _size(arg, name)
    if name == "random_resized_crop":
        return _size(arg.get("size") if isinstance(arg, dict) else arg, name)
    return None
