"""Loading a trained task from a Lightning checkpoint, with the settings of this run winning.

The file is read by :mod:`geofm_core.io.checkpoints` (``weights_only=True``). The task
class named in the checkpoint must be a ``GeofmTask`` subclass that is already
importable; settings given for this run (tiling, say) override the saved
hyper-parameters instead of being dropped.
"""

from __future__ import annotations

import importlib
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from geofm_core.errors import ConfigurationError
from geofm_core.io.checkpoints import (
    check_finite_state,
    load_state_dict_checked,
    read_checkpoint,
    task_class_path,
)

__all__ = ["load_task", "task_class"]


def task_class(checkpoint: Mapping[str, Any], path: Path) -> type[Any]:
    """The ``GeofmTask`` subclass that wrote ``checkpoint`` (read from ``path``), imported.

    Raises:
        ConfigurationError: The checkpoint names no task, one that cannot be imported or
            a class that is no geofm task.
    """
    from geofm_core.tasks.base import GeofmTask

    class_path = task_class_path(checkpoint)
    if class_path is None:
        raise ConfigurationError(
            f"{path} does not say which task wrote it; it was not written by a geofm task"
        )
    module_name, _, name = class_path.rpartition(".")
    try:
        cls = getattr(importlib.import_module(module_name), name)
    except (ImportError, AttributeError) as exc:
        raise ConfigurationError(
            f"{path} was written by the task {class_path}, which cannot be imported here; "
            "install the package that provides it"
        ) from exc
    if not (isinstance(cls, type) and issubclass(cls, GeofmTask)):
        raise ConfigurationError(
            f"{path} names {class_path}, which is not a geofm task; refusing to build it"
        )
    return cls


def load_task(path: str | Path, overrides: Mapping[str, Any] | None = None, *,
              checkpoint: Mapping[str, Any] | None = None, merge: bool = True) -> Any:
    """Build the task saved in ``path`` and load its weights (strictly).

    Works for checkpoints of ``geofm fit`` and of a task trained from Python
    (``Trainer.fit(task)``): the task records its class in the checkpoint.

    Args:
        path: A Lightning checkpoint written by a geofm task.
        overrides: Hyper-parameters for this run (e.g. ``tiled_inference``); they win
            over the saved ones.
        checkpoint: The checkpoint already read from ``path`` (it is not read again).
        merge: Fold LoRA adapters (``peft_config``) into the base weights, so the model
            holds no peft modules (for export and inference). An adapters-only checkpoint
            rebuilds its base from the recorded source first.

    Raises:
        ConfigurationError: Missing, corrupted, unsafe or foreign checkpoint, or weights
            that do not fit the model the hyper-parameters describe.
        NonFiniteError: Weights holding NaN or inf (naming the first such tensor).
    """
    from geofm_core.models.adapters import merge_adapters
    from geofm_core.tasks.adapter_checkpoints import complete_state, is_slim

    path = Path(path)
    if checkpoint is None:
        checkpoint = read_checkpoint(path)
    cls = task_class(checkpoint, path)
    check_finite_state(checkpoint["state_dict"], path)
    hparams = {k: v for k, v in (checkpoint.get("hyper_parameters") or {}).items()
               if not k.startswith("_")}
    hparams.update(overrides or {})
    if not is_slim(checkpoint):  # an adapters-only file needs its base weights' source
        _no_weight_sources(hparams)
    task = cls(**hparams)
    load_state_dict_checked(task, complete_state(task, checkpoint, path), path,
                            fix="use the checkpoint written with this config")
    if merge:
        merge_adapters(task.model)
    task.eval()
    return task


def _no_weight_sources(hparams: dict[str, Any]) -> None:
    """The weights come from the checkpoint: don't read or fetch pretrained ones again."""
    hparams.pop("weights_path", None)
    model_args = dict(hparams.get("model_args") or {})
    backbone_kwargs = dict(model_args.get("backbone_kwargs") or {})
    if backbone_kwargs.get("pretrained"):
        backbone_kwargs["pretrained"] = False
        model_args["backbone_kwargs"] = backbone_kwargs
        hparams["model_args"] = model_args
