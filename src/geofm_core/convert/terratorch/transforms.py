"""albumentations transform lists -> geofm augmentation entries."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from geofm_core.convert.terratorch.report import Report, class_name

__all__ = ["NO_OP_TRANSFORMS", "TRANSFORMS", "convert_transforms"]


def _size(args: dict[str, Any]) -> int | list[int] | None:
    size = args.pop("size", None)
    height, width = args.pop("height", None), args.pop("width", None)
    if size is not None:
        if isinstance(size, int):
            return size
        height, width = size[0], size[1]
    if height is None or width is None:
        return None
    return int(height) if height == width else [int(height), int(width)]


def _prob(args: dict[str, Any], default: float = 0.5) -> float:
    return float(args.pop("p", default))


def _flip(name: str) -> Callable[[dict[str, Any]], list[Any]]:
    def convert(args: dict[str, Any]) -> list[Any]:
        p = _prob(args)
        return [name if p == 0.5 else {name: p}]
    return convert


def _rot90(args: dict[str, Any]) -> list[Any]:
    p = _prob(args)
    return ["rot90" if p == 1.0 else {"rot90": p}]


def _flip_any(args: dict[str, Any]) -> list[Any]:
    p = _prob(args)
    return ["hflip", "vflip"] if p == 0.5 else [{"hflip": p}, {"vflip": p}]


def _d4(args: dict[str, Any]) -> list[Any]:
    p = _prob(args, 1.0)
    if p != 1.0:
        raise ValueError("p below 1")
    return ["hflip", "rot90"]


def _sized(name: str) -> Callable[[dict[str, Any]], list[Any]]:
    def convert(args: dict[str, Any]) -> list[Any]:
        size = _size(args)
        if size is None:
            raise ValueError("needs height and width (or size)")
        p = _prob(args, 1.0)
        if p != 1.0:
            raise ValueError("p below 1")
        return [{name: size}]
    return convert


def _random_resized_crop(args: dict[str, Any]) -> list[Any]:
    size = _size(args)
    if size is None:
        raise ValueError("needs size")
    spec: dict[str, Any] = {"size": size}
    for key in ("scale", "ratio"):
        if key in args:
            spec[key] = list(args.pop(key))
    _prob(args, 1.0)
    return [{"random_resized_crop": spec}]


#: albumentations transform names -> converters to geofm augmentation entries.
TRANSFORMS: dict[str, Callable[[dict[str, Any]], list[Any]]] = {
    "HorizontalFlip": _flip("hflip"),
    "VerticalFlip": _flip("vflip"),
    "RandomRotate90": _rot90,
    "D4": _d4,
    "Flip": _flip_any,
    "RandomCrop": _sized("random_crop"),
    "CenterCrop": _sized("center_crop"),
    "Resize": _sized("resize"),
    "RandomResizedCrop": _random_resized_crop,
}
#: Transforms that geofm's batch pipeline makes unnecessary.
NO_OP_TRANSFORMS = ("ToTensorV2", "FlattenTemporalIntoChannels", "UnflattenTemporalFromChannels")



def convert_transforms(transforms: Any, report: Report, where: str) -> list[Any]:
    """A TerraTorch transform list as geofm augmentations; what cannot be converted is reported."""
    if transforms is None:
        return []
    if not isinstance(transforms, list):
        report.drop(where, transforms, "expected a list of albumentations transforms")
        return []
    out: list[Any] = []
    for i, item in enumerate(transforms):
        spot = f"{where}[{i}]"
        class_path = item.get("class_path") if isinstance(item, dict) else item
        name = class_name(class_path)
        args = dict((item.get("init_args") or {}) if isinstance(item, dict) else {})
        if name in NO_OP_TRANSFORMS:
            report.note(spot, f"{name} dropped (geofm batches are tensors already; frames "
                        "are folded for augmentation automatically)")
            continue
        converter = TRANSFORMS.get(name)
        if converter is None:
            report.drop(spot, item, "no geofm augmentation for it (geofm has hflip, vflip, "
                        "rot90, random_crop, random_resized_crop, resize, center_crop)")
            continue
        args.pop("always_apply", None)
        try:
            entries = converter(args)
        except (ValueError, TypeError, IndexError) as exc:
            report.drop(spot, item, f"cannot be converted: {exc}")
            continue
        if args:
            report.drop(spot, args, f"arguments of {name} geofm's augmentation does not take")
        if name == "D4":
            report.note(spot, "D4 written as hflip + rot90 (together the same 8 symmetries)")
        elif name == "Flip":
            report.note(spot, "Flip (a random horizontal, vertical or double flip) written "
                        "as independent hflip and vflip")
        out.extend(entries)
    if out:
        report.note(where, "geofm applies augmentations to whole batches on the device "
                    "(kornia), after normalisation")
    return out
