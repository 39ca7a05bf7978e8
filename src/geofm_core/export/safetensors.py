"""Model weights as safetensors: no pickle, so loading a file can never run code.

``geofm export safetensors --ckpt CKPT --output model.safetensors`` writes the weights
of the checkpoint's model (the task's ``model``, keys without the ``model.`` prefix)
plus, as safetensors metadata, the task class and the hyper-parameters of model and
data, so the file describes the model it holds. A task loads such a file with its
``weights_path`` argument (any geofm task, e.g. ``model.init_args.weights_path`` in a
config); :func:`load_weights` does the same for any ``nn.Module``.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from torch import nn

from geofm_core.errors import ConfigurationError

__all__ = [
    "export_safetensors",
    "load_weights",
    "read_state_dict",
    "save_weights",
]

#: Prefix of the model's parameters in a task's (Lightning) state dict.
MODEL_PREFIX = "model."


def save_weights(state_dict: Mapping[str, torch.Tensor], path: str | Path, *,
                 metadata: Mapping[str, str] | None = None, overwrite: bool = False) -> Path:
    """Write tensors to ``path`` as safetensors, atomically (temporary file, then rename).

    Raises:
        ConfigurationError: ``path`` exists and ``overwrite`` is False, or its folder is
            missing.
    """
    from safetensors.torch import save_file

    path = Path(path)
    if path.exists() and not overwrite:
        raise ConfigurationError(f"{path} exists; pass --overwrite to replace it")
    if not path.parent.is_dir():
        raise ConfigurationError(f"output folder {path.parent} does not exist; create it")
    # safetensors refuses shared or non-contiguous storage: give each tensor its own copy.
    tensors = {k: v.detach().cpu().contiguous().clone() for k, v in state_dict.items()
               if isinstance(v, torch.Tensor)}
    temp = path.with_name(f".{path.name}.{os.getpid()}.partial")
    try:
        save_file(tensors, str(temp), metadata=dict(metadata or {}))
        os.replace(temp, path)
    finally:
        temp.unlink(missing_ok=True)
    return path


def read_state_dict(path: str | Path) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    """Tensors and metadata of a ``.safetensors`` file, or tensors of a ``.pt``/``.ckpt`` file.

    ``.pt``/``.pth``/``.ckpt`` files are read with ``torch.load(weights_only=True)``; a
    Lightning checkpoint gives its ``state_dict``.

    Raises:
        ConfigurationError: The file is missing, unreadable, or holds no tensors.
    """
    path = Path(path)
    if not path.is_file():
        raise ConfigurationError(f"weights file {path} does not exist")
    if path.suffix == ".safetensors":
        from safetensors import safe_open
        from safetensors.torch import load_file

        try:
            with safe_open(str(path), framework="pt") as handle:
                metadata = dict(handle.metadata() or {})
            return load_file(str(path)), metadata
        except Exception as exc:  # safetensors raises its own SafetensorError
            raise ConfigurationError(
                f"{path} is not a readable safetensors file ({exc}); re-export it with "
                "`geofm export safetensors`"
            ) from exc
    from geofm_core.cli.run_checks import checkpoint_error

    try:
        loaded = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:
        raise checkpoint_error(path, exc) from exc
    if isinstance(loaded, dict) and isinstance(loaded.get("state_dict"), dict):
        loaded = loaded["state_dict"]
    if not isinstance(loaded, dict) or not all(isinstance(v, torch.Tensor)
                                               for v in loaded.values()):
        raise ConfigurationError(f"{path} holds no state dict of tensors")
    return dict(loaded), {}


def load_weights(module: nn.Module, path: str | Path, *, strict: bool = True) -> nn.Module:
    """Load weights saved by :func:`save_weights` (or a state dict file) into ``module``.

    Keys with the task prefix ``model.`` are accepted for a bare model.

    Raises:
        ConfigurationError: Unreadable file, or (``strict``) keys or shapes that do not
            match the module.
    """
    state, _ = read_state_dict(path)
    own = module.state_dict()
    if not set(state) & set(own) and all(k.startswith(MODEL_PREFIX) for k in state):
        state = {k.removeprefix(MODEL_PREFIX): v for k, v in state.items()}
    wrong = [k for k, v in state.items() if k in own and own[k].shape != v.shape]
    if wrong:
        k = wrong[0]
        raise ConfigurationError(
            f"{path} holds weights of another model: {k} has shape {tuple(state[k].shape)} "
            f"here but {tuple(own[k].shape)} in the model ({len(wrong)} mismatched); build "
            "the model with the settings the weights were trained with"
        )
    result = module.load_state_dict(state, strict=False)
    if strict and (result.missing_keys or result.unexpected_keys):
        raise ConfigurationError(
            f"{path} holds weights of another model: missing {result.missing_keys[:3]}, "
            f"unexpected {result.unexpected_keys[:3]}; build the model with the settings the "
            "weights were trained with"
        )
    return module


def _json(value: Any) -> str:
    return json.dumps(value, default=str, sort_keys=True)


def export_safetensors(ckpt: str | Path, output: str | Path, *,
                       overwrite: bool = False) -> Path:
    """Write the model weights of a ``geofm fit`` checkpoint as safetensors with metadata."""
    from geofm_core.inference.checkpoint import TASK_CLASS_KEY, load_checkpoint

    output = Path(output)
    if output.exists() and not overwrite:
        raise ConfigurationError(f"{output} exists; pass --overwrite to replace it")
    checkpoint = load_checkpoint(ckpt)
    state = {k.removeprefix(MODEL_PREFIX): v for k, v in checkpoint["state_dict"].items()
             if k.startswith(MODEL_PREFIX) and isinstance(v, torch.Tensor)}
    if not state:
        raise ConfigurationError(f"{ckpt} holds no model weights (no 'model.' keys)")
    hparams = checkpoint.get("hyper_parameters") or {}
    metadata = {
        "format": "pt",
        "geofm_task_class": str(checkpoint.get(TASK_CLASS_KEY) or hparams.get("_class_path")
                                or ""),
        "hyper_parameters": _json({k: v for k, v in hparams.items() if not k.startswith("_")}),
        "datamodule_hyper_parameters": _json(checkpoint.get("datamodule_hyper_parameters")
                                             or {}),
    }
    return save_weights(state, output, metadata=metadata, overwrite=overwrite)
