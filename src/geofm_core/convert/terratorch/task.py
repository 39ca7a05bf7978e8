"""TerraTorch task sections -> geofm task sections (model factory, loss, optimisation, tiling)."""

from __future__ import annotations

import copy
from typing import Any

from geofm_core.convert.book import RuleBook, Signatures
from geofm_core.convert.terratorch.detection import convert_detection
from geofm_core.convert.terratorch.factories import convert_factory
from geofm_core.convert.terratorch.report import Report, class_name, is_terratorch_path
from geofm_core.convert.terratorch.tables import (
    DETECTION_TASKS,
    LOSSES,
    PARAMETER_PREFIXES,
    SAME_TASK_ARGS,
    TASK_ONLY_ARGS,
    TASKS,
)

__all__ = ["convert_model"]

_BASE = "model.init_args"


def convert_model(model: dict[str, Any], report: Report, book: RuleBook,
                  cli_optimizer: bool = False) -> tuple[dict[str, Any], str | None]:
    """The geofm ``model`` section of a TerraTorch one, and its geofm task (None if unknown)."""
    class_path = model.get("class_path")
    name = class_name(class_path)
    ours = is_terratorch_path(class_path) or class_path == name
    if name in DETECTION_TASKS and ours:
        return _convert_detection_task(model, report, book, cli_optimizer)
    if name not in TASKS or not ours:
        report.drop("model.class_path", class_path,
                    "not a TerraTorch task geofm has; the model section is kept as is")
        return copy.deepcopy(model), None
    geofm_class, task = TASKS[name]
    for key in model:
        if key not in ("class_path", "init_args"):
            report.drop(f"model.{key}", model[key], f"{geofm_class} takes its arguments as "
                        "init_args; move them there if they are TerraTorch task arguments")
    args = dict(model.get("init_args") or {})
    out = convert_factory(args, task, report, _BASE, book, Signatures(book.registry))
    if "loss" in args:
        loss = _convert_loss(args.pop("loss"), task, report, f"{_BASE}.loss")
        if loss is not None:
            out["loss"] = loss
    elif task == "multilabel":
        report.note(f"{_BASE}.loss", "not given: TerraTorch's MultiLabelClassificationTask "
                    "defaults to 'ce', geofm's to 'bce'")
    for key in SAME_TASK_ARGS:
        if key in args:
            out[key] = args.pop(key)
    if isinstance(out.get("lr_overrides"), dict):
        out["lr_overrides"] = _lr_overrides(out["lr_overrides"], report)
    if task == "regression":
        for key in ("class_weights", "class_names"):
            if key in out:
                report.drop(f"{_BASE}.{key}", out.pop(key), "does not apply to regression")
    _optimisation(args, out, report, cli_optimizer)
    _extras(args, out, task, report)
    for key in list(args):
        report.drop(f"{_BASE}.{key}", args.pop(key), f"{geofm_class} has no such argument")
    return {"class_path": geofm_class, "init_args": out}, task


def _convert_detection_task(model: dict[str, Any], report: Report, book: RuleBook,
                            cli_optimizer: bool) -> tuple[dict[str, Any], str]:
    """TerraTorch's ObjectDetectionTask: geofm's ObjectDetectionTask or InstanceSegmentationTask."""
    args = dict(model.get("init_args") or {})
    geofm_class, task, out = convert_detection(args, report, book)
    for key in model:
        if key not in ("class_path", "init_args"):
            report.drop(f"model.{key}", model[key], f"{geofm_class} takes its arguments as "
                        "init_args; move them there if they are TerraTorch task arguments")
    _optimisation(args, out, report, cli_optimizer)
    for key in list(args):
        report.drop(f"{_BASE}.{key}", args.pop(key), f"{geofm_class} has no such argument")
    return {"class_path": geofm_class, "init_args": out}, task


def _optimisation(args: dict[str, Any], out: dict[str, Any], report: Report,
                  cli_optimizer: bool) -> None:
    """Optimizer and scheduler names (TerraTorch's defaults written out) and their hparams."""
    optimizer = args.pop("optimizer", None)
    scheduler = args.pop("scheduler", None)
    if cli_optimizer:
        # Lightning's top-level optimizer / lr_scheduler replace the task's settings, in
        # TerraTorch and in geofm alike; only explicit task values are carried over.
        if optimizer:
            out["optimizer"] = class_name(optimizer)
        if scheduler:
            out["scheduler"] = class_name(scheduler)
    else:
        out["optimizer"] = class_name(optimizer) if optimizer else "Adam"
        if optimizer is None:
            report.note(f"{_BASE}.optimizer", "not given: TerraTorch uses Adam (geofm's "
                        "default is AdamW), written as Adam")
        out["scheduler"] = class_name(scheduler) if scheduler else None
        if scheduler is None:
            report.note(f"{_BASE}.scheduler", "not given: TerraTorch uses no scheduler "
                        "(geofm's default is ReduceLROnPlateau), written as null")
    hparams = out.get("scheduler_hparams")
    if isinstance(hparams, dict) and "interval" in hparams:
        hparams = dict(hparams)
        interval = hparams.pop("interval")
        out["scheduler_hparams"] = hparams
        if interval == "epoch":
            report.note(f"{_BASE}.scheduler_hparams.interval", "epoch dropped (geofm steps "
                        "schedulers every epoch)")
        else:
            report.drop(f"{_BASE}.scheduler_hparams.interval", interval,
                        "geofm steps schedulers every epoch")


def _lr_overrides(overrides: dict[str, Any], report: Report) -> dict[str, Any]:
    """Parameter-name substrings renamed where TerraTorch's model names a part differently."""
    out: dict[str, Any] = {}
    where = f"{_BASE}.lr_overrides"
    for key, lr in overrides.items():
        parts = str(key).split(".")
        at = 1 if parts[0] == "model" and len(parts) > 1 else 0
        new = parts[at] in PARAMETER_PREFIXES
        if new:
            parts[at] = PARAMETER_PREFIXES[parts[at]]
        renamed = ".".join(parts)
        if renamed in out:
            report.drop(f"{where}.{key}", lr, f"the same geofm parameters as {renamed}")
            continue
        out[renamed] = lr
        inner = len(parts) > at + 1
        if new:
            old = str(key).split(".")[at]
            report.note(f"{where}.{key}", (
                f"written as {renamed} (TerraTorch's model.{old} is geofm's model.{parts[at]})"
                + ("; the names inside it may differ too" if inner else "")))
        elif inner:
            report.note(f"{where}.{key}", "kept; parameter names inside a component may differ "
                        "in geofm (`geofm fit` stops when an override matches no parameter)")
    return out


def _extras(args: dict[str, Any], out: dict[str, Any], task: str, report: Report) -> None:
    """Validation plots, tiled inference and TerraTorch-only options."""
    if "plot_on_val" in args:
        plot = args.pop("plot_on_val")
        out["plot_on_val"] = 10 if plot else 0
        if plot:
            report.note(f"{_BASE}.plot_on_val", (
                f"{plot}: TerraTorch plots the first 10 validation batches every {int(plot)} "
                "epoch(s); geofm plots the first plot_on_val batches every validation epoch, "
                "written as 10"))
    if "tiled_inference_parameters" in args:
        tiled = args.pop("tiled_inference_parameters")
        where = f"{_BASE}.tiled_inference_parameters"
        if task in ("segmentation", "regression") and isinstance(tiled, dict):
            out["tiled_inference"] = _convert_tiling(tiled, report, where)
        elif tiled is not None:
            report.drop(where, tiled, "geofm tiles pixel-wise tasks only")
    report.drop_foreign_options(args, TASK_ONLY_ARGS, _BASE)


def _convert_loss(loss: Any, task: str, report: Report, where: str) -> Any:
    table = LOSSES[task]
    if isinstance(loss, str):
        if loss in table:
            return table[loss]
        report.drop(where, loss, f"no geofm {task} loss of that name; geofm's default is used")
        return None
    if isinstance(loss, list | dict):
        weights = {n: 1.0 for n in loss} if isinstance(loss, list) else dict(loss)
        out = {}
        for name, weight in weights.items():
            if name in table:
                out[table[name]] = weight
            else:
                report.drop(f"{where}.{name}", weight, f"no geofm {task} loss of that name")
        return out or None
    report.drop(where, loss, "expected a loss name, list or mapping")
    return None


def _convert_tiling(tiled: dict[str, Any], report: Report, where: str) -> dict[str, Any]:
    tiled = dict(tiled)
    crop = tiled.pop("crop", 224)
    stride = tiled.pop("stride", 192)
    h_crop, w_crop = tiled.pop("h_crop", None), tiled.pop("w_crop", None)
    h_stride, w_stride = tiled.pop("h_stride", None), tiled.pop("w_stride", None)
    if h_crop is not None or w_crop is not None:
        crop = h_crop if h_crop is not None else w_crop
        if None not in (h_crop, w_crop) and h_crop != w_crop:
            report.drop(f"{where}.w_crop", w_crop, f"geofm tiles are square; crop {crop} used")
    if h_stride is not None or w_stride is not None:
        stride = h_stride if h_stride is not None else w_stride
        if None not in (h_stride, w_stride) and h_stride != w_stride:
            report.drop(f"{where}.w_stride", w_stride,
                        f"geofm strides are equal in both directions; stride {stride} used")
    out: dict[str, Any] = {"crop": crop, "stride": stride}
    if "batch_size" in tiled:
        out["batch_size"] = tiled.pop("batch_size")
    blend = tiled.pop("blend_overlaps", True)
    average = tiled.pop("average_patches", True)
    out["blend"] = "ramp" if blend else "average"
    if not blend and not average:
        report.note(f"{where}.average_patches", "false: geofm always merges overlaps; "
                    "written as blend: average")
    for key in list(tiled):
        value = tiled.pop(key)
        if key == "verbose":
            report.note(f"{where}.verbose", f"{value} dropped (progress only)")
        else:
            report.drop(f"{where}.{key}", value, "geofm's tiled inference has no such option")
    report.note(where, "geofm tiles test and predict batches; TerraTorch tiles predict (and "
                "test only with tiled_inference_on_testing)")
    return out
