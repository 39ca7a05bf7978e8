"""Checks a task runs while training: input bands against the data, finite loss and weights.

A model built for 6 bands fed 4 fails deep inside its first layer; six bands in another
order than the weights' train on silently; a loss or a weight
that becomes NaN or inf trains on silently and ends in a checkpoint that predicts one
class everywhere. Each stops the run with one message naming the numbers, the step and
the batch's files.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from torch import nn

from geofm_core.errors import ConfigurationError, NonFiniteError
from geofm_core.io.checkpoints import first_non_finite
from geofm_core.tasks.band_check import check_band_names

__all__ = ["check_band_names", "check_finite_loss", "check_finite_weights",
           "check_input_bands", "model_input_bands"]

_ADVICE = ("lower the learning rate (model.init_args.lr), clip gradients "
           "(trainer.gradient_clip_val) or check the data (means/stds, extreme values); "
           "resume from an earlier checkpoint with --ckpt_path")


def model_input_bands(model: nn.Module) -> tuple[int, str] | None:
    """Input bands a model was built for, and where that was read, when it says.

    Taken from its backbone (or encoder): an ``in_chans`` / ``in_channels`` attribute, else
    the first layer with weights when that is a convolution (timm, patch embeddings).
    """
    part = next((m for a in ("backbone", "encoder")
                 if isinstance(m := getattr(model, a, None), nn.Module)), model)
    for attr in ("in_chans", "in_channels"):
        value = getattr(part, attr, None)
        if isinstance(value, int) and not isinstance(value, bool):
            return value, f"{type(part).__name__}.{attr}"
    for name, module in part.named_modules():
        if next(module.children(), None) is None and \
                next(module.parameters(recurse=False), None) is not None:
            if isinstance(module, nn.Conv2d | nn.Conv3d):
                return int(module.in_channels), f"the first layer {name or type(module).__name__}"
            return None
    return None


def check_input_bands(model: nn.Module, datamodule: Any) -> None:
    """Refuse a model whose input bands differ from the bands its data module gives.

    First the number of bands, then their names against the weights' bands
    (:func:`~geofm_core.tasks.band_check.check_band_names`).

    Raises:
        ConfigurationError: naming both numbers and where each comes from.
    """
    getter = getattr(datamodule, "input_bands", None)
    built = model_input_bands(model)
    if built is None or not callable(getter):
        check_band_names(model, datamodule)
        return
    given = getter()
    if given is None or given[0] == built[0]:
        check_band_names(model, datamodule)
        return
    raise ConfigurationError(
        f"the model takes {built[0]} input bands ({built[1]}) but the data give {given[0]} "
        f"({given[1]}); make them equal: build the backbone for {given[0]} bands (e.g. "
        f"model.init_args.model_args.backbone_kwargs.in_chans: {given[0]}, or its bands "
        f"list) or select {built[0]} bands with data.init_args.output_bands"
    )


def _files(batch: Any) -> str:
    names = batch.get("filename") if isinstance(batch, Mapping) else None
    if not names:
        return ""
    listed = [Path(str(n)).name for n in names]
    more = f" and {len(listed) - 5} more" if len(listed) > 5 else ""
    return f" (batch of {', '.join(listed[:5])}{more})"


def check_finite_loss(loss: torch.Tensor, step: int, epoch: int, batch: Any) -> None:
    """Stop before a NaN / inf loss reaches the weights.

    Raises:
        NonFiniteError: naming the step, the epoch and the batch's files.
    """
    if bool(torch.isfinite(loss.detach()).all()):
        return
    raise NonFiniteError(
        f"the training loss became {loss.detach().float().mean().item()} at step {step} "
        f"(epoch {epoch}){_files(batch)}; training stopped and no checkpoint of this step "
        f"was written. Check those files for extreme values, or {_ADVICE}"
    )


def check_finite_weights(module: nn.Module, step: int, epoch: int, batch: Any) -> None:
    """Stop when an optimizer step left a trainable weight NaN or inf.

    Raises:
        NonFiniteError: naming the weight, the step and the batch's files.
    """
    name = first_non_finite((n, p) for n, p in module.named_parameters() if p.requires_grad)
    if name is None:
        return
    raise NonFiniteError(
        f"the weight {name} became NaN/inf at step {step} (epoch {epoch}){_files(batch)}; "
        "training stopped and no checkpoint with these weights was written. To fix it, "
        f"{_ADVICE}"
    )
