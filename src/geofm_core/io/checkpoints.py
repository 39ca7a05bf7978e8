"""Lightning checkpoints: read safely, say which task wrote them, load weights with one message.

Checkpoints and weight files are read with ``torch.load(weights_only=True)``: a file
that would need to execute code to unpickle is refused. Every way reading can fail has
one message here, and so do weights that do not fit the model they are loaded into.
"""

from __future__ import annotations

import pickle
import zipfile
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import torch
from torch import nn

from geofm_core.errors import ConfigurationError, NonFiniteError
from geofm_core.io.atomic import input_problem

__all__ = [
    "PEFT_KEY",
    "TASK_CLASS_KEY",
    "check_finite_state",
    "check_state_dict",
    "checkpoint_error",
    "first_non_finite",
    "load_state_dict_checked",
    "read_checkpoint",
    "read_tensors",
    "task_class_path",
]

#: Where geofm's tasks record their class (``module.Class``) in a checkpoint.
TASK_CLASS_KEY = "geofm_task_class"
#: Where a task with ``peft_config`` records its base weights' source (adapters-only files).
PEFT_KEY = "geofm_peft"

#: What reading a damaged or foreign file raises, besides pickle's refusal.
_READ_ERRORS = (pickle.UnpicklingError, RuntimeError, EOFError, zipfile.BadZipFile, OSError,
                ValueError, KeyError)
_LISTED = 3


def checkpoint_error(path: Any, exc: BaseException) -> ConfigurationError:
    """One clear error for a checkpoint or weights file that could not be read."""
    first = (str(exc).splitlines() or [""])[0][:200]
    if isinstance(exc, FileNotFoundError):
        return ConfigurationError(
            f"checkpoint {path} does not exist; give the .ckpt written by `geofm fit` "
            "(e.g. <default_root_dir>/checkpoints/last.ckpt, or --ckpt_path last to resume "
            "the newest run)"
        )
    if isinstance(exc, pickle.UnpicklingError):
        return ConfigurationError(
            f"refused to load {path}: it contains Python objects that would run code when "
            f"unpickled ({first}). geofm loads checkpoints with weights_only=True (tensors and "
            "plain values only); re-save the weights as a state dict or safetensors"
        )
    return ConfigurationError(
        f"{path} is not a readable checkpoint (truncated or corrupted?): "
        f"{type(exc).__name__}: {first}. Use another checkpoint, e.g. the previous last.ckpt"
    )


def _is_tiff(path: Path) -> bool:
    try:
        with path.open("rb") as f:
            head = f.read(4)
    except OSError:
        return False
    return head[:4] in (b"II*\0", b"MM\0*", b"II+\0", b"MM\0+")  # TIFF and BigTIFF


def read_tensors(path: str | Path, *, mmap: bool = False) -> Any:
    """``torch.load(path, weights_only=True)`` on the CPU, failures as :func:`checkpoint_error`.

    Args:
        path: A ``.ckpt``/``.pt``/``.pth`` file.
        mmap: Map the file instead of reading it (cheap for a check of keys and shapes).
    """
    path = Path(path)
    problem = input_problem(path)
    if problem == "does not exist":
        raise checkpoint_error(path, FileNotFoundError(path))
    if problem is not None:
        raise ConfigurationError(
            f"checkpoint {path} {problem}; give the .ckpt file written by `geofm fit` "
            "(e.g. <default_root_dir>/checkpoints/last.ckpt)"
        )
    if _is_tiff(path):
        raise ConfigurationError(
            f"{path} is a GeoTIFF, not a checkpoint; give the .ckpt written by `geofm fit` "
            "(geofm infer --ckpt CKPT INPUT.tif OUTPUT.tif)"
        )
    # Only torch's zip format can be mapped; anything else is read, so that an unsafe
    # legacy pickle gets pickle's refusal rather than mmap's complaint.
    mmap = mmap and zipfile.is_zipfile(path)
    try:
        return torch.load(path, map_location="cpu", weights_only=True, mmap=mmap)
    except _READ_ERRORS as exc:
        raise checkpoint_error(path, exc) from exc


def read_checkpoint(path: str | Path, *, mmap: bool = False) -> dict[str, Any]:
    """Read a Lightning checkpoint (a mapping with a ``state_dict``).

    Raises:
        ConfigurationError: Missing, unreadable or unsafe file, or no ``state_dict`` in it.
    """
    checkpoint = read_tensors(path, mmap=mmap)
    if not isinstance(checkpoint, dict) or not isinstance(checkpoint.get("state_dict"), dict):
        raise ConfigurationError(
            f"{path} holds no Lightning checkpoint (no 'state_dict'); give a .ckpt written "
            "by `geofm fit`"
        )
    return checkpoint


def task_class_path(checkpoint: Mapping[str, Any]) -> str | None:
    """The ``module.Class`` of the task that wrote ``checkpoint``, if it says."""
    hparams = checkpoint.get("hyper_parameters") or {}
    found = checkpoint.get(TASK_CLASS_KEY) or hparams.get("_class_path")
    return found if isinstance(found, str) and "." in found else None


def _listing(keys: list[str]) -> str:
    more = f" (+{len(keys) - _LISTED} more)" if len(keys) > _LISTED else ""
    return ", ".join(keys[:_LISTED]) + more


def check_state_dict(
    own: Mapping[str, Any], given: Mapping[str, Any], source: Any, *,
    strict: bool = True, fix: str = "build the model with the settings the weights were "
    "trained with",
) -> None:
    """Raise one error when the tensors in ``given`` do not fit a module whose state is ``own``.

    Args:
        own: The module's ``state_dict()`` (shapes are compared).
        given: The tensors to load.
        source: The file they come from (named in the message).
        strict: Missing and unexpected keys are errors too (shapes always are).
        fix: What the user should do, ending the message.

    Raises:
        ConfigurationError: ``{source} holds weights of another model: ...`` listing the
            missing and unexpected keys and the first shape mismatches.
    """
    problems = []
    if strict:
        missing = [k for k in own if k not in given]
        unexpected = [k for k in given if k not in own]
        if missing:
            problems.append(f"missing key(s) in state_dict: {_listing(missing)}")
        if unexpected:
            problems.append(f"unexpected key(s) in state_dict: {_listing(unexpected)}")
    wrong = [k for k, v in given.items() if k in own and hasattr(v, "shape")
             and tuple(own[k].shape) != tuple(v.shape)]
    if wrong:
        k = wrong[0]
        problems.append(
            f"size mismatch for {k}: {tuple(given[k].shape)} in the file, "
            f"{tuple(own[k].shape)} in the model ({len(wrong)} mismatched)"
        )
    if problems:
        raise ConfigurationError(
            f"{source} holds weights of another model ({'; '.join(problems)}); {fix}"
        )


def load_state_dict_checked(
    module: nn.Module, state: Mapping[str, torch.Tensor], source: Any, *, strict: bool = True,
    fix: str = "build the model with the settings the weights were trained with",
) -> None:
    """Load ``state`` into ``module`` after :func:`check_state_dict` (same arguments)."""
    check_state_dict(module.state_dict(), state, source, strict=strict, fix=fix)
    module.load_state_dict(state, strict=strict)


def first_non_finite(named: Iterable[tuple[str, Any]]) -> str | None:
    """Name of the first floating-point tensor holding NaN or inf, if any (one device sync)."""
    tensors = [(n, t) for n, t in named
               if isinstance(t, torch.Tensor) and (t.is_floating_point() or t.is_complex())]
    if not tensors:
        return None
    flags = torch.stack([torch.isfinite(t.detach()).all() for _, t in tensors]).cpu()
    bad = (~flags).nonzero()
    return tensors[int(bad[0])][0] if len(bad) else None


def check_finite_state(state: Mapping[str, Any], source: Any) -> None:
    """Refuse weights holding NaN or inf: a model with them predicts one class everywhere.

    Raises:
        NonFiniteError: naming ``source`` and the first offending tensor.
    """
    name = first_non_finite(state.items())
    if name is not None:
        raise NonFiniteError(
            f"{source} holds non-finite weights (NaN/inf, first in {name}): the training that "
            "wrote it diverged, and the model would predict nonsense. Use an earlier "
            "checkpoint, or retrain with a lower learning rate or gradient clipping"
        )
