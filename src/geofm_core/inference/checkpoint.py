"""Loading a trained task from a Lightning checkpoint, safely and with run settings winning.

Checkpoints are read with ``torch.load(weights_only=True)``: a file that would need to
execute code to unpickle is refused. The task class named in the checkpoint must be a
``GeofmTask`` subclass that is already importable; settings given for this run (tiling,
say) override the saved hyper-parameters instead of being dropped.
"""

from __future__ import annotations

import importlib
import pickle
import zipfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch

from geofm_core.errors import ConfigurationError

__all__ = ["TASK_CLASS_KEY", "load_checkpoint", "load_task"]

#: Where geofm's tasks record their class in a checkpoint.
TASK_CLASS_KEY = "geofm_task_class"


def load_checkpoint(path: str | Path) -> dict[str, Any]:
    """Read a checkpoint with ``weights_only=True``; one clear error for each way it fails."""
    path = Path(path)
    if not path.is_file():
        raise ConfigurationError(
            f"checkpoint {path} does not exist; give the .ckpt written by `geofm fit` "
            "(e.g. <default_root_dir>/checkpoints/last.ckpt)"
        )
    try:
        checkpoint = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        raise ConfigurationError(
            f"refused to load {path}: it contains Python objects that would run code when "
            f"unpickled ({str(exc).splitlines()[0][:160]}). geofm loads only tensors and "
            "plain values; re-save the weights as a state dict or safetensors"
        ) from exc
    except (RuntimeError, EOFError, zipfile.BadZipFile, OSError, ValueError) as exc:
        raise ConfigurationError(
            f"{path} is not a readable checkpoint (truncated or corrupted?): "
            f"{type(exc).__name__}: {str(exc).splitlines()[0][:160]}"
        ) from exc
    if not isinstance(checkpoint, dict) or "state_dict" not in checkpoint:
        raise ConfigurationError(
            f"{path} holds no Lightning checkpoint (no 'state_dict'); give a .ckpt written "
            "by `geofm fit`"
        )
    return checkpoint


def _task_class(checkpoint: Mapping[str, Any], path: Path) -> type[Any]:
    from geofm_core.tasks.base import GeofmTask

    hparams = checkpoint.get("hyper_parameters") or {}
    class_path = checkpoint.get(TASK_CLASS_KEY) or hparams.get("_class_path")
    if not isinstance(class_path, str) or "." not in class_path:
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


def load_task(path: str | Path, overrides: Mapping[str, Any] | None = None) -> Any:
    """Build the task saved in ``path`` and load its weights (strictly).

    Args:
        path: A checkpoint written by ``geofm fit``.
        overrides: Hyper-parameters for this run (e.g. ``tiled_inference``); they win
            over the saved ones.

    Raises:
        ConfigurationError: Missing, corrupted, unsafe or foreign checkpoint, or weights
            that do not fit the model the hyper-parameters describe.
    """
    path = Path(path)
    checkpoint = load_checkpoint(path)
    cls = _task_class(checkpoint, path)
    hparams = {k: v for k, v in (checkpoint.get("hyper_parameters") or {}).items()
               if not k.startswith("_")}
    hparams.update(overrides or {})
    hparams.pop("weights_path", None)  # the weights come from the checkpoint
    # Weights come from the checkpoint: don't fetch pretrained ones again.
    model_args = dict(hparams.get("model_args") or {})
    backbone_kwargs = dict(model_args.get("backbone_kwargs") or {})
    if backbone_kwargs.get("pretrained"):
        backbone_kwargs["pretrained"] = False
        model_args["backbone_kwargs"] = backbone_kwargs
        hparams["model_args"] = model_args
    task = cls(**hparams)
    try:
        task.load_state_dict(checkpoint["state_dict"], strict=True)
    except RuntimeError as exc:
        lines = [ln.strip() for ln in str(exc).splitlines() if ln.strip()][:4]
        raise ConfigurationError(
            f"{path} holds weights of another model than its hyper-parameters describe "
            f"({'; '.join(lines)[:400]}); use the checkpoint written with this config"
        ) from exc
    task.eval()
    return task
