"""The ``trainer`` section: copied, with TerraTorch callbacks and unavailable extras handled."""

from __future__ import annotations

import copy
import importlib.util
from typing import Any

from geofm_core.convert.terratorch.report import Report, class_name, is_terratorch_path

__all__ = ["convert_trainer"]


def _package_available(name: str) -> bool:
    return importlib.util.find_spec(name) is not None


def convert_trainer(trainer: Any, report: Report) -> Any:
    """The trainer section for geofm: TerraTorch callbacks dropped, missing extras replaced."""
    if not isinstance(trainer, dict):
        return copy.deepcopy(trainer)
    out = copy.deepcopy(trainer)
    callbacks = out.get("callbacks")
    if isinstance(callbacks, dict):
        callbacks = [callbacks]
    if isinstance(callbacks, list):
        kept = []
        for i, cb in enumerate(callbacks):
            class_path = cb.get("class_path") if isinstance(cb, dict) else None
            name = class_name(class_path)
            where = f"trainer.callbacks[{i}]"
            if is_terratorch_path(class_path):
                report.drop(where, cb, "a TerraTorch callback geofm has no counterpart for")
            elif name.startswith("Rich") and not _package_available("rich"):
                report.drop(where, cb, "needs the rich package, which is not installed here; "
                            "Lightning's default progress bar is used (pip install rich and "
                            "add it back)")
            else:
                kept.append(cb)
        if kept:
            out["callbacks"] = kept
        else:
            out.pop("callbacks", None)
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
