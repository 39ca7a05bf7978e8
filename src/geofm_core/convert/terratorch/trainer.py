"""The ``trainer`` section: Lightning's arguments checked, TerraTorch callbacks converted."""

from __future__ import annotations

import copy
import importlib.util
from typing import Any

from geofm_core.convert.terratorch.report import Report, class_name, is_terratorch_path, short
from geofm_core.convert.terratorch.tables import (
    CHECKPOINT_CALLBACKS,
    GEOFM_WRITER,
    LIGHTNING_CHECKPOINT,
    TERRATORCH_CALLBACKS,
    TRAINER_ARGS,
    WRITER_CALLBACKS,
)

__all__ = ["convert_trainer"]


def _package_available(name: str) -> bool:
    return importlib.util.find_spec(name) is not None


def _trainer_accepts(key: str) -> bool:
    """Whether Lightning's Trainer takes ``key`` (its signature is read only for unknown keys)."""
    if key in TRAINER_ARGS:
        return True
    try:
        import inspect

        from lightning.pytorch import Trainer
    except Exception:  # no lightning where the converter runs: the table is all we know
        return False
    return key in inspect.signature(Trainer.__init__).parameters


def convert_trainer(trainer: Any, report: Report, predict_output_dir: Any = None) -> Any:
    """The trainer section for geofm: callbacks converted or listed, stray keys listed.

    Args:
        trainer: TerraTorch's trainer section.
        report: Where to report.
        predict_output_dir: TerraTorch's top-level setting, where its ``CustomWriter``
            writes when given no ``output_dir``.
    """
    if not isinstance(trainer, dict):
        return copy.deepcopy(trainer)
    out = copy.deepcopy(trainer)
    for key in list(out):
        if not _trainer_accepts(key):
            report.drop(f"trainer.{key}", out.pop(key), "not an argument of Lightning's Trainer")
    callbacks = out.get("callbacks")
    if isinstance(callbacks, dict):
        callbacks = [callbacks]
    if isinstance(callbacks, list):
        kept = _callbacks(callbacks, report, predict_output_dir)
        if kept:
            out["callbacks"] = kept
        else:
            out.pop("callbacks", None)
    if out.get("enable_checkpointing", True) is not False and not any(
            class_name(c.get("class_path")) == "ModelCheckpoint"
            for c in out.get("callbacks", []) if isinstance(c, dict)):
        report.note("trainer.callbacks", (
            "no checkpoint callback: TerraTorch adds two StateDictAwareModelCheckpoint "
            "(monitor val/loss; filenames {epoch} and {epoch}_state_dict, weights only), geofm "
            "adds one ModelCheckpoint (the task's monitor, best-{epoch}-{step} and last)"))
    logger = out.get("logger")
    if isinstance(logger, dict) and class_name(logger.get("class_path")) == "TensorBoardLogger" \
            and not (_package_available("tensorboard") or _package_available("tensorboardX")):
        init = dict(logger.get("init_args") or {})
        csv_args = {k: init[k] for k in ("save_dir", "name", "version", "prefix") if k in init}
        out["logger"] = {"class_path": "lightning.pytorch.loggers.CSVLogger",
                         "init_args": csv_args}
        report.note("trainer.logger", "TensorBoardLogger needs tensorboard, which is not "
                    "installed here: written as CSVLogger with the same save_dir and name "
                    "(Lightning's own fallback)")
    return out


def _callbacks(callbacks: list[Any], report: Report, predict_output_dir: Any) -> list[Any]:
    kept: list[Any] = []
    checkpoint_keys: dict[tuple[Any, ...], int] = {}
    for i, cb in enumerate(callbacks):
        class_path = cb.get("class_path") if isinstance(cb, dict) else None
        name = class_name(class_path)
        where = f"trainer.callbacks[{i}]"
        if name == "ModelCheckpoint" or class_path in CHECKPOINT_CALLBACKS:
            key = _state_key(cb.get("init_args") or {})
            if key in checkpoint_keys:
                # Checked on TerraTorch's arguments, before any conversion note is written.
                weights_only = (cb.get("init_args") or {}).get("save_weights_only")
                report.drop(where, cb, (
                    f"checkpoints on the same schedule and monitor as trainer.callbacks"
                    f"[{checkpoint_keys[key]}]: Lightning refuses two such ModelCheckpoint "
                    "callbacks. " + (
                        "A weights-only copy is not needed: geofm reads its weights from the "
                        "full checkpoint (`geofm export safetensors` writes them alone)"
                        if weights_only else "Give it another monitor, mode or schedule")))
                continue
            checkpoint_keys[key] = i
            if class_path in CHECKPOINT_CALLBACKS:
                cb = _checkpoint(cb, where, report)
        elif class_path in WRITER_CALLBACKS:
            cb = _writer(cb, where, report, predict_output_dir)
            if cb is None:
                continue
        elif is_terratorch_path(class_path) or class_path in TERRATORCH_CALLBACKS:
            report.drop(where, cb, "a TerraTorch callback geofm has no counterpart for")
            continue
        elif name.startswith("Rich") and not _package_available("rich"):
            report.drop(where, cb, "needs the rich package, which is not installed here; "
                        "Lightning's default progress bar is used (pip install rich and "
                        "add it back)")
            continue
        kept.append(cb)
    return kept


def _checkpoint(cb: dict[str, Any], where: str, report: Report) -> dict[str, Any]:
    """TerraTorch's StateDictAwareModelCheckpoint: Lightning's ModelCheckpoint, save_best_only."""
    args = dict(cb.get("init_args") or {})
    best = args.pop("save_best_only", None)
    if best:
        args["save_top_k"] = 1
        report.note(f"{where}.init_args.save_best_only", "true written as save_top_k: 1 "
                    "(what TerraTorch does with it)")
    elif best is not None:
        report.note(f"{where}.init_args.save_best_only", "false dropped (the default)")
    report.note(where, f"{cb['class_path']} written as Lightning's ModelCheckpoint (the same "
                "arguments; TerraTorch's subclass only lets a weights-only copy sit beside it)")
    out: dict[str, Any] = {"class_path": LIGHTNING_CHECKPOINT}
    if args:
        out["init_args"] = args
    return out


def _writer(cb: dict[str, Any], where: str, report: Report,
            predict_output_dir: Any) -> dict[str, Any] | None:
    """TerraTorch's CustomWriter: geofm's GeoTIFF prediction writer (same output folder)."""
    args = dict(cb.get("init_args") or {})
    output_dir = args.pop("output_dir", None)
    if output_dir is None and predict_output_dir is not None:
        output_dir = predict_output_dir
        report.note("predict_output_dir", f"{short(output_dir)} written as the output_dir of "
                    f"the prediction writer ({where}), where TerraTorch's CustomWriter writes")
    interval = args.pop("write_interval", None)
    for key, value in args.items():
        report.drop(f"{where}.init_args.{key}", value, "CustomWriter takes no such argument")
    if interval not in (None, "batch", "epoch"):
        report.drop(f"{where}.init_args.write_interval", interval, "geofm writes every batch")
    if output_dir is None:
        report.note(where, f"{short(cb)} dropped: without output_dir TerraTorch writes to "
                    "predict_output_dir; `geofm predict` adds its GeoTIFF writer (to "
                    "default_root_dir/predictions; set its output_dir with a "
                    f"{GEOFM_WRITER} callback)")
        return None
    report.note(where, (
        f"{cb['class_path']} written as geofm's GeoTiffPredictionWriter (output_dir "
        f"{output_dir}): georeferenced <name>_pred.tif files, written batch by batch, "
        "refusing to replace existing ones (its overwrite: false)"))
    return {"class_path": GEOFM_WRITER, "init_args": {"output_dir": output_dir}}


def _state_key(args: dict[str, Any]) -> tuple[Any, ...]:
    """What Lightning's ModelCheckpoint.state_key is made of, with its defaults filled in."""
    steps = args.get("every_n_train_steps") or 0
    interval = args.get("train_time_interval")
    epochs = args.get("every_n_epochs")
    if epochs is None:
        epochs = 1 if not steps and interval is None else 0
    return (args.get("monitor"), args.get("mode", "min"), steps, epochs, short(interval))
