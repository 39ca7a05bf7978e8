"""Model weights as safetensors (no pickle, so loading a file can never run code).

:func:`save_weights` writes tensors and string metadata atomically;
:func:`read_state_dict` reads a ``.safetensors`` file or a state dict / Lightning
checkpoint (``torch.load(weights_only=True)``); :func:`load_weights` loads either into a
module, strictly, with one message for weights of another model.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import torch
from torch import nn

from geofm_core.errors import ConfigurationError
from geofm_core.io.atomic import atomic_output
from geofm_core.io.checkpoints import load_state_dict_checked, read_tensors

__all__ = [
    "BACKBONE_PREFIXES",
    "MODEL_PREFIX",
    "load_backbone_weights",
    "load_weights",
    "read_state_dict",
    "save_weights",
]

#: Prefix of the model's parameters in a task's (Lightning) state dict.
MODEL_PREFIX = "model."
#: Where a backbone's weights sit in a task checkpoint: a ``ReconstructionTask`` run
#: (``model.encoder.``), a fine-tuned task (``model.backbone.``), bare models after them.
BACKBONE_PREFIXES = ("model.encoder.", "model.backbone.", "encoder.", "backbone.")


def _verify_safetensors(temp: Path, final: Path) -> None:
    from safetensors import safe_open

    from geofm_core.errors import OutputWriteError

    try:
        with safe_open(str(temp), framework="pt") as handle:
            list(handle.keys())
    except Exception as exc:  # safetensors raises its own SafetensorError
        raise OutputWriteError(f"writing {final} failed ({exc}); the disk may be full") from exc


def save_weights(state_dict: Mapping[str, torch.Tensor], path: str | Path, *,
                 metadata: Mapping[str, str] | None = None, overwrite: bool = False) -> Path:
    """Write tensors to ``path`` as safetensors, atomically (temporary file, then rename).

    Raises:
        OutputExistsError: ``path`` exists and ``overwrite`` is False.
        ConfigurationError: Its folder is missing or not writable.
    """
    from safetensors.torch import save_file

    path = Path(path)
    # safetensors refuses shared or non-contiguous storage: give each tensor its own copy.
    tensors = {k: v.detach().cpu().contiguous().clone() for k, v in state_dict.items()
               if isinstance(v, torch.Tensor)}
    with atomic_output(path, overwrite=overwrite, verify=_verify_safetensors) as temp:
        save_file(tensors, str(temp), metadata=dict(metadata or {}))
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
    loaded = read_tensors(path)
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
        ConfigurationError: Unreadable file, or keys (``strict``) or shapes that do not
            match the module.
    """
    state, _ = read_state_dict(path)
    own = module.state_dict()
    if not set(state) & set(own) and all(k.startswith(MODEL_PREFIX) for k in state):
        state = {k.removeprefix(MODEL_PREFIX): v for k, v in state.items()}
    load_state_dict_checked(module, state, path, strict=strict)
    return module


def load_backbone_weights(backbone: nn.Module, path: str | Path, what: str = "backbone") -> None:
    """Load the encoder of a trained run (a ``ReconstructionTask`` checkpoint) into ``backbone``.

    The tensors under the first of :data:`BACKBONE_PREFIXES` that the file holds are
    loaded strictly: every key of the backbone must be there with its shape, and no other.

    Raises:
        ConfigurationError: The file holds no backbone weights, or they do not fit (the
            message names the keys and the settings to check).
    """
    state, _ = read_state_dict(path)
    prefix = next((p for p in BACKBONE_PREFIXES if any(k.startswith(p) for k in state)), None)
    if prefix is None:
        found = sorted({k.split(".")[0] + "." + k.split(".")[1] if k.count(".") else k
                        for k in state})[:8]
        raise ConfigurationError(
            f"{what}: {path} holds no backbone weights (keys under {list(BACKBONE_PREFIXES)}); "
            f"its keys start with {found}. Give the .ckpt of a geofm run (ReconstructionTask "
            "or a fine-tuned task), or the backbone's own weights through backbone_kwargs"
        )
    weights = {k[len(prefix):]: v for k, v in state.items() if k.startswith(prefix)}
    load_state_dict_checked(
        backbone, weights, f"{path} ({prefix}*)",
        fix="build the backbone with the settings of the pre-training run (variant, bands, "
            "num_frames, embed_dim/depth overrides)",
    )
