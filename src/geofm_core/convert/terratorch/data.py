"""TerraTorch's generic datamodules -> geofm's GeoTIFF datamodules (bands and transforms too)."""

from __future__ import annotations

import copy
from collections.abc import Sequence
from typing import Any

from geofm_core.convert.terratorch.datasets import advice, rewrite_specialised
from geofm_core.convert.terratorch.report import Report, class_name, is_terratorch_path, short
from geofm_core.convert.terratorch.tables import (
    DATA_ONLY_ARGS,
    DATAMODULES,
    HLS_NAMES,
    SAME_DATA_ARGS,
)
from geofm_core.convert.terratorch.transforms import convert_transforms

__all__ = ["convert_data"]

_BASE = "data.init_args"


def convert_data(data: dict[str, Any], task: str | None, task_args: dict[str, Any],
                 report: Report) -> dict[str, Any]:
    """The geofm ``data`` section of a TerraTorch one (kept as is when not a generic one).

    Args:
        data: TerraTorch's data section.
        task: The converted model's geofm task, if known.
        task_args: The converted task's init_args (its ``ignore_index``).
        report: Where to report.
    """
    class_path = data.get("class_path")
    name = class_name(class_path)
    ours = is_terratorch_path(class_path) or class_path == name
    rewritten = rewrite_specialised(data, report) if ours else None
    if rewritten is not None:
        if class_name(rewritten.get("class_path")) not in DATAMODULES:
            return rewritten  # a TorchGeo datamodule, final
        extra = {k: v for k, v in data.items() if k not in ("class_path", "init_args")}
        data, class_path, name = {**extra, **rewritten}, rewritten["class_path"], \
            rewritten["class_path"]
    if isinstance(class_path, str) and class_path.startswith("torchgeo."):
        report.note("data.class_path", f"{class_path} kept: geofm runs TorchGeo datamodules "
                    "by class path")
        return copy.deepcopy(data)
    if name not in DATAMODULES or not ours:
        instead = advice(name) if ours else None
        report.drop("data.class_path", class_path, (
            f"not converted: {instead}; the data section is kept as is" if instead else
            "not a TerraTorch datamodule geofm can replace; the data section is kept as is"))
        return copy.deepcopy(data)
    geofm_class, family = DATAMODULES[name]
    if task == "multilabel" and family == "classification":
        geofm_class = "GeoTiffMultiLabelDataModule"
        report.note("data.class_path", "multi-label task: written as GeoTiffMultiLabelDataModule"
                    " (it reads labels from CSV files given as {stage}_label_data_root)")
    for key in data:
        if key not in ("class_path", "init_args"):
            report.drop(f"data.{key}", data[key], f"{geofm_class} takes its arguments as "
                        "init_args; move them there if they are TerraTorch datamodule arguments")
    args = dict(data.get("init_args") or {})
    out: dict[str, Any] = {}
    for key in SAME_DATA_ARGS[family]:
        if key in args:
            out[key] = args.pop(key)
    _patterns(args, out, family, report)
    _convert_bands(args, out, report)
    _labels(args, out, family, task_args, report)
    _augmentations(args, out, report)
    report.drop_foreign_options(args, DATA_ONLY_ARGS, _BASE)
    for key in list(args):
        report.drop(f"{_BASE}.{key}", args.pop(key), f"{geofm_class} has no such argument")
    return {"class_path": geofm_class, "init_args": out}


def _patterns(args: dict[str, Any], out: dict[str, Any], family: str, report: Report) -> None:
    """File globs (TerraTorch's default '*', geofm's '*.tif'); classification's nodata default."""
    if "img_grep" in args:
        out["img_pattern"] = args.pop("img_grep")
    else:
        report.note(f"{_BASE}.img_grep", "not given: TerraTorch globs '*', geofm's img_pattern "
                    "defaults to '*.tif'")
    if family != "classification":
        if "label_grep" in args:
            out["label_pattern"] = args.pop("label_grep")
        else:
            report.note(f"{_BASE}.label_grep", "not given: TerraTorch globs '*', geofm's "
                        "label_pattern defaults to '*.tif'")
    elif "no_data_replace" not in out:
        out["no_data_replace"] = 0
        report.note(f"{_BASE}.no_data_replace", "not given: TerraTorch's classification "
                    "datamodule replaces nodata with 0, written as 0")


def _labels(args: dict[str, Any], out: dict[str, Any], family: str,
            task_args: dict[str, Any], report: Report) -> None:
    """Ignored labels: the task's ignore_index, reduce_zero_label and no_label_replace."""
    if family == "segmentation":
        ignore = task_args.get("ignore_index")
        if ignore is not None:
            out["ignore_index"] = ignore
        elif out.get("reduce_zero_label"):
            out["ignore_index"] = -1
            report.note(f"{_BASE}.reduce_zero_label", "TerraTorch turns label 0 into -1; "
                        "written with ignore_index: -1")
    elif args.get("reduce_zero_label"):
        report.drop(f"{_BASE}.reduce_zero_label", args.pop("reduce_zero_label"),
                    f"geofm's {family} datamodule has no such option")
    else:
        args.pop("reduce_zero_label", None)
    if "no_label_replace" in out and family == "segmentation" and \
            out.get("ignore_index") is None and out["no_label_replace"] is not None:
        report.note(f"{_BASE}.no_label_replace", (
            f"{out['no_label_replace']}: labels of that value are only ignored where the "
            "task sets ignore_index to it"))


def _augmentations(args: dict[str, Any], out: dict[str, Any], report: Report) -> None:
    """train/val/test transforms; test must match val (geofm applies one to both)."""
    train_aug = convert_transforms(args.pop("train_transform", None), report,
                                   f"{_BASE}.train_transform")
    if train_aug:
        out["train_augmentations"] = train_aug
    val_tf = args.pop("val_transform", None)
    test_tf = args.pop("test_transform", None)
    val_aug = convert_transforms(val_tf, report, f"{_BASE}.val_transform")
    if val_aug:
        out["val_augmentations"] = val_aug
    test_report = Report()
    test_aug = convert_transforms(test_tf, test_report, f"{_BASE}.test_transform")
    if test_aug != val_aug:
        report.drop(f"{_BASE}.test_transform", test_tf, "geofm applies val_augmentations to "
                    "validation and test alike")
    else:
        report.unmapped.extend(test_report.unmapped)


def _convert_bands(args: dict[str, Any], out: dict[str, Any], report: Report) -> None:
    dataset = args.pop("dataset_bands", None)
    output = args.pop("output_bands", None)
    if dataset is None:
        if output is not None:
            out["output_bands"] = output
        return
    names_ok = all(isinstance(b, str) and b.upper() in HLS_NAMES for b in dataset)
    if names_ok and (output is None or all(isinstance(b, str) for b in output)):
        out["dataset_bands"] = dataset
        if output is not None:
            out["output_bands"] = output
        return
    # TerraTorch matches output bands by value in dataset_bands (ints, [a, b] ranges and
    # custom names included); geofm's dataset_bands takes HLS names only, so write positions.
    dataset = _expand_bands(dataset)
    wanted = _expand_bands(output) if output is not None else list(dataset)
    positions = []
    for band in wanted:
        if band in dataset:
            positions.append(dataset.index(band))
        else:
            report.drop(f"{_BASE}.output_bands", band, "not in dataset_bands")
    out["output_bands"] = positions
    report.note(f"{_BASE}.dataset_bands", (
        f"{short(dataset)} holds entries geofm's dataset_bands does not take (HLS names "
        f"only); output_bands written as 0-based positions {positions}"))


def _expand_bands(bands: Sequence[Any]) -> list[Any]:
    out: list[Any] = []
    for band in bands:
        if isinstance(band, list | tuple) and len(band) == 2 and all(
                isinstance(v, int) for v in band):
            out.extend(range(band[0], band[1] + 1))
        else:
            out.append(band)
    return out
