"""A task's ``peft_config``: adapters on its backbone, and checkpoints that hold only them.

A LoRA checkpoint leaves out the backbone's frozen base weights when they can be had
again from where they came from (``weights_path``, or the backbone's ``pretrained`` /
``checkpoint_path`` weights): it records that source and a fingerprint of those weights
under :data:`~geofm_core.io.checkpoints.PEFT_KEY`. Loading rebuilds the task (the base
from its source, then the adapters), checks the fingerprint and fills the base weights
back in before the strict load. A base that cannot be had again (random initialisation)
is kept in the checkpoint.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from geofm_core.errors import ConfigurationError
from geofm_core.io.checkpoints import PEFT_KEY
from geofm_core.io.weights import MODEL_PREFIX

__all__ = [
    "AdapterCheckpoints",
    "PeftState",
    "complete_state",
    "is_slim",
    "setup_peft",
]

#: backbone_kwargs that load the base weights from a fixed source.
_WEIGHT_SOURCES = ("pretrained", "checkpoint_path", "ckpt_path", "pretrained_path")


@dataclass
class PeftState:
    """What a task with adapters knows about its base weights.

    Attributes:
        base_keys: State-dict keys (``model.backbone....``) of the frozen base parameters.
        source: Where the base weights come from (recorded in checkpoints), or None when
            they cannot be had again (then checkpoints keep them).
        fingerprint: Sum of the absolute values of the base weights (float64).
    """

    base_keys: list[str]
    source: dict[str, Any] | None
    fingerprint: float


def _base_source(hparams: Mapping[str, Any]) -> dict[str, Any] | None:
    model_args = dict(hparams.get("model_args") or {})
    backbone_kwargs = dict(model_args.get("backbone_kwargs") or {})
    record: dict[str, Any] = {"model_factory": hparams.get("model_factory"),
                              "backbone": model_args.get("backbone"),
                              "backbone_kwargs": backbone_kwargs}
    if hparams.get("weights_path"):
        return {**record, "weights_path": str(hparams["weights_path"])}
    if any(backbone_kwargs.get(k) for k in _WEIGHT_SOURCES):
        return record
    return None


def _fingerprint(params: list[nn.Parameter]) -> float:
    with torch.no_grad():
        return float(sum(float(p.detach().double().abs().sum()) for p in params))


def setup_peft(task: Any) -> PeftState | None:
    """Apply the task's ``peft_config`` (if any) to its model; None without one.

    Raises:
        ConfigurationError: ``freeze_backbone`` given as well, a ready ``model``
            without a backbone, or an invalid ``peft_config``
            (:func:`geofm_core.models.adapters.apply_peft`).
    """
    config = task.hparams.get("peft_config")
    if not config:
        return None
    from geofm_core.models.adapters import apply_peft

    if task.hparams.get("freeze_backbone"):
        raise ConfigurationError(
            "peft_config freezes the backbone's base weights itself and trains its adapters; "
            "remove freeze_backbone"
        )
    names = apply_peft(task.model, config)
    params = dict(task.model.named_parameters())
    source = _base_source(task.hparams)
    if source is None:
        warnings.warn(
            "peft_config: the backbone's base weights are not pretrained (no pretrained, "
            "checkpoint_path or weights_path), so checkpoints keep the whole model",
            stacklevel=3,
        )
    return PeftState([MODEL_PREFIX + n for n in names], source,
                     _fingerprint([params[n] for n in names]))


def is_slim(checkpoint: Mapping[str, Any]) -> bool:
    """Whether ``checkpoint`` holds adapters without the base weights."""
    record = checkpoint.get(PEFT_KEY)
    return isinstance(record, Mapping) and bool(record.get("slim"))


def slim_checkpoint(task: Any, checkpoint: dict[str, Any]) -> None:
    """Drop the frozen base weights from ``checkpoint`` and record their source."""
    peft: PeftState | None = getattr(task, "_peft", None)
    if peft is None:
        return
    record: dict[str, Any] = {"slim": peft.source is not None, "base": peft.source,
                              "fingerprint": peft.fingerprint}
    if peft.source is not None:
        state = checkpoint["state_dict"]
        for key in peft.base_keys:
            state.pop(key, None)
        record["dropped"] = len(peft.base_keys)
    checkpoint[PEFT_KEY] = record


def complete_state(task: Any, checkpoint: Mapping[str, Any],
                   path: str | Path) -> dict[str, Any]:
    """The checkpoint's state dict with the base weights of ``task``'s backbone filled in.

    Raises:
        ConfigurationError: A slim checkpoint for a task without ``peft_config``, or base
            weights that differ from those the adapters were trained on.
    """
    state = dict(checkpoint["state_dict"])
    if not is_slim(checkpoint):
        return state
    record = checkpoint[PEFT_KEY]
    peft: PeftState | None = getattr(task, "_peft", None)
    if peft is None:
        raise ConfigurationError(
            f"{path} holds LoRA adapters without the base weights, but the model has no "
            "peft_config; use the config the checkpoint was trained with (it sets peft_config)"
        )
    saved = float(record.get("fingerprint", math.nan))
    if not math.isclose(saved, peft.fingerprint, rel_tol=1e-6):
        base = record.get("base") or {}
        where = base.get("weights_path") or base.get("backbone")
        raise ConfigurationError(
            f"{path} holds LoRA adapters trained on other base weights than those of "
            f"{where} (fingerprint {peft.fingerprint:.6g}, trained on {saved:.6g}); give "
            "the base weights the adapters were trained on"
        )
    own = task.state_dict()
    for key in peft.base_keys:
        state.setdefault(key, own[key])
    return state


class AdapterCheckpoints:
    """Task mixin: checkpoints of a task with adapters leave the base weights out."""

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        """Fill a slim checkpoint's base weights in from this task's rebuilt base."""
        checkpoint["state_dict"] = complete_state(self, checkpoint, "the checkpoint")
