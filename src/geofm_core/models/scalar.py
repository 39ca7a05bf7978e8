"""``ScalarOutputModel``: backbone, necks, decoder, pooling and head for one output per image."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import torch
from torch import nn

from geofm_core.errors import ConfigurationError
from geofm_core.models.contracts import ModelOutput
from geofm_core.models.pixelwise import (
    AuxiliaryHead,
    EncoderDecoderFreezing,
    FeaturePrep,
    check_pad_mode,
    input_multiple_of,
    pad_to_multiple,
    run_encoder,
)

__all__ = ["ScalarOutputModel", "head_then_avg", "pool_features"]

SCALAR_TASKS = ("classification", "multilabel")
POOLINGS = ("avg", "max", "cls", "head_then_avg")


def pool_features(x: torch.Tensor, pooling: str = "avg") -> torch.Tensor:
    """Pool a feature map (B, C, H, W) or a token sequence (B, N, C) into (B, C).

    ``avg`` and ``max`` pool over all positions; ``cls`` takes the first token of a
    token sequence (maps fall back to ``avg``). A (B, C) tensor is returned unchanged.
    ``head_then_avg`` pools like ``avg`` here (see :func:`head_then_avg`).
    """
    if x.ndim == 2:
        return x
    if x.ndim == 3:
        if pooling == "cls":
            return x[:, 0]
        return x.amax(dim=1) if pooling == "max" else x.mean(dim=1)
    flat = x.flatten(2)
    return flat.amax(dim=2) if pooling == "max" else flat.mean(dim=2)


def head_then_avg(head: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """Apply ``head`` at every position of a map (B, C, H, W) or sequence (B, N, C), then average.

    TerraTorch's scalar head does this; for a linear head it equals pooling first.
    """
    if x.ndim == 2:
        return head(x)  # type: ignore[no-any-return]
    positions = x.flatten(2).transpose(1, 2) if x.ndim == 4 else x
    out: torch.Tensor = head(positions).mean(dim=1)
    return out


def _pool_and_head(head: nn.Module, x: torch.Tensor, pooling: str) -> torch.Tensor:
    if pooling == "head_then_avg":
        return head_then_avg(head, x)
    return head(pool_features(x, pooling))  # type: ignore[no-any-return]


class _PooledHead(nn.Module):
    def __init__(self, decoder: nn.Module, head: nn.Module, pooling: str) -> None:
        super().__init__()
        self.decoder = decoder
        self.head = head
        self.pooling = pooling

    def forward(self, features: list[torch.Tensor]) -> torch.Tensor:
        return _pool_and_head(self.head, self.decoder(features), self.pooling)


class ScalarOutputModel(EncoderDecoderFreezing, nn.Module):
    """Backbone → necks → decoder → pooling → head: logits per image (geofm ``Model``).

    Args:
        task: ``"classification"`` or ``"multilabel"``; output (B, num_classes) logits.
        backbone: A geofm backbone.
        decoder: A geofm decoder (``geofm:identity`` passes the last feature through).
        head: Maps the pooled vector (B, C) to logits.
        necks: Necks applied in order between backbone and decoder.
        auxiliary_heads: Named auxiliary decoder+head pairs, pooled the same way.
        pooling: ``avg``, ``max`` or ``cls`` (first token of a token sequence), or
            ``head_then_avg``: the head at every position, then the average (TerraTorch's).
        input_multiple: Pad inputs to a multiple of this (default: the backbone's).
        prepare_features_for_image_model: Applied to the backbone's features before the
            necks (default: the backbone's own method of that name, if any).
        pad_mode: What padding is filled with (see ``PixelWiseModel``).
        pad_centred: Split the padding between both sides (see ``PixelWiseModel``).
    """

    def __init__(
        self,
        task: str,
        backbone: nn.Module,
        decoder: nn.Module,
        head: nn.Module,
        necks: Sequence[nn.Module] = (),
        auxiliary_heads: Mapping[str, AuxiliaryHead] | None = None,
        pooling: str = "avg",
        input_multiple: int | None = None,
        prepare_features_for_image_model: FeaturePrep | None = None,
        pad_mode: str = "constant",
        pad_centred: bool = False,
    ) -> None:
        super().__init__()
        check_pad_mode(pad_mode)
        if task not in SCALAR_TASKS:
            raise ConfigurationError(
                f"ScalarOutputModel task must be one of {', '.join(SCALAR_TASKS)}, got {task!r}"
            )
        if pooling not in POOLINGS:
            raise ConfigurationError(
                f"ScalarOutputModel pooling must be one of {', '.join(POOLINGS)}, got {pooling!r}"
            )
        self.task = task
        self.backbone = backbone
        self.necks = nn.ModuleList(necks)
        self.decoder = decoder
        self.head = head
        self.pooling = pooling
        self.aux_heads = nn.ModuleDict({
            name: _PooledHead(aux.decoder, aux.head, pooling)
            for name, aux in (auxiliary_heads or {}).items()
        })
        self.input_multiple = input_multiple_of(backbone, input_multiple)
        self.prepare_features_for_image_model = prepare_features_for_image_model
        self.pad_mode = pad_mode
        self.pad_centred = pad_centred

    def forward(self, x: torch.Tensor, **metadata: Any) -> ModelOutput:
        """Logits (B, num_classes); ``metadata`` goes to the backbone."""
        x = pad_to_multiple(x, self.input_multiple, self.pad_mode, self.pad_centred)
        features = run_encoder(
            self.backbone, self.necks, x, metadata, self.prepare_features_for_image_model
        )
        output = _pool_and_head(self.head, self.decoder(list(features)), self.pooling)
        aux = {name: module(list(features)) for name, module in self.aux_heads.items()}
        return ModelOutput(output, aux)
