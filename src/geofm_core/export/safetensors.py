"""``geofm export safetensors``: a checkpoint's model weights with their settings, no pickle.

``geofm export safetensors --ckpt CKPT --output model.safetensors`` writes the weights
of the checkpoint's model (the task's ``model``, keys without the ``model.`` prefix)
plus, as safetensors metadata, the task class and the hyper-parameters of model and
data, so the file describes the model it holds. A task loads such a file with its
``weights_path`` argument (any geofm task, e.g. ``model.init_args.weights_path`` in a
config); :func:`geofm_core.io.weights.load_weights` does the same for any ``nn.Module``.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch

from geofm_core.errors import ConfigurationError
from geofm_core.io.atomic import check_output
from geofm_core.io.checkpoints import (
    PEFT_KEY,
    TASK_CLASS_KEY,
    check_finite_state,
    read_checkpoint,
    task_class_path,
)
from geofm_core.io.weights import MODEL_PREFIX, save_weights

__all__ = ["export_safetensors"]


def _json(value: Any) -> str:
    return json.dumps(value, default=str, sort_keys=True)


def export_safetensors(ckpt: str | Path, output: str | Path, *,
                       overwrite: bool = False) -> Path:
    """Write the model weights of a ``geofm fit`` checkpoint as safetensors with metadata.

    Raises:
        OutputExistsError: ``output`` exists and ``overwrite`` is False.
        ConfigurationError: The checkpoint is unreadable or holds no model weights.
    """
    output = Path(output)
    check_output(output, overwrite=overwrite)  # before reading a large checkpoint
    checkpoint = read_checkpoint(ckpt)
    if (checkpoint.get(PEFT_KEY) or {}).get("slim"):
        raise ConfigurationError(
            f"{ckpt} holds LoRA adapters without their base weights; export it with "
            "`geofm export onnx` (adapters merged), or use the checkpoint with `geofm infer`"
        )
    state = {k.removeprefix(MODEL_PREFIX): v for k, v in checkpoint["state_dict"].items()
             if k.startswith(MODEL_PREFIX) and isinstance(v, torch.Tensor)}
    if not state:
        raise ConfigurationError(f"{ckpt} holds no model weights (no 'model.' keys)")
    check_finite_state(checkpoint["state_dict"], ckpt)
    hparams = checkpoint.get("hyper_parameters") or {}
    metadata = {
        "format": "pt",
        TASK_CLASS_KEY: task_class_path(checkpoint) or "",
        "hyper_parameters": _json({k: v for k, v in hparams.items() if not k.startswith("_")}),
        "datamodule_hyper_parameters": _json(checkpoint.get("datamodule_hyper_parameters")
                                             or {}),
    }
    return save_weights(state, output, metadata=metadata, overwrite=overwrite)
