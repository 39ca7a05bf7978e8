"""``PixelWiseModel``: backbone, necks, decoder and head for per-pixel outputs."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from geofm_core.errors import ConfigurationError
from geofm_core.models.contracts import ModelOutput

__all__ = [
    "AuxiliaryHead",
    "EncoderDecoderFreezing",
    "PixelWiseModel",
    "input_multiple_of",
    "pad_to_multiple",
    "run_encoder",
]

PIXEL_TASKS = ("segmentation", "regression")

FeaturePrep = Callable[[list[torch.Tensor]], list[torch.Tensor]]


def pad_to_multiple(x: torch.Tensor, multiple: int) -> torch.Tensor:
    """Zero-pad the last two dimensions (H, W) of ``x`` up to a multiple of ``multiple``.

    Works for (B, C, H, W) and (B, C, T, H, W) inputs; padding goes at the bottom and
    right so that cropping ``[..., :H, :W]`` restores the original grid.
    """
    if multiple <= 1:
        return x
    height, width = x.shape[-2:]
    pad_h, pad_w = (-height) % multiple, (-width) % multiple
    if not pad_h and not pad_w:
        return x
    return F.pad(x, (0, pad_w, 0, pad_h))


class AuxiliaryHead(nn.Module):
    """An auxiliary decoder and its head, fed the same (necked) features as the main one.

    Args:
        decoder: The auxiliary decoder.
        head: Its head.
    """

    def __init__(self, decoder: nn.Module, head: nn.Module) -> None:
        super().__init__()
        self.decoder = decoder
        self.head = head

    def forward(self, features: list[torch.Tensor]) -> torch.Tensor:
        """Decode the features and apply the head."""
        return self.head(self.decoder(features))  # type: ignore[no-any-return]


def _metadata(metadata: Mapping[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in metadata.items() if v is not None}


def run_encoder(
    backbone: nn.Module,
    necks: nn.ModuleList,
    x: torch.Tensor,
    metadata: Mapping[str, Any],
    prepare: FeaturePrep | None,
) -> list[torch.Tensor]:
    """Backbone (given the metadata), feature preparation and necks on a padded input."""
    raw = backbone(x, **_metadata(metadata))
    features: list[torch.Tensor] = [raw] if isinstance(raw, torch.Tensor) else list(raw)
    prep = prepare or getattr(backbone, "prepare_features_for_image_model", None)
    if prep is not None:
        features = list(prep(features))
    # Kept symbolic (no int()) so ONNX/torch.export keep the spatial size dynamic.
    image_size = (x.shape[-2], x.shape[-1])
    for neck in necks:
        features = neck(features, image_size=image_size)
    return features


def input_multiple_of(backbone: nn.Module, given: int | None) -> int:
    """The multiple inputs are padded to: ``given``, else the backbone's ``input_multiple``."""
    multiple = given if given is not None else getattr(backbone, "input_multiple", 1)
    return max(int(multiple or 1), 1)


class EncoderDecoderFreezing:
    """Freezing for models made of a backbone, necks, a decoder and auxiliary heads.

    Expects the attributes ``backbone``, ``necks``, ``decoder`` and ``aux_heads`` (each
    auxiliary head with a ``decoder``).
    """

    backbone: nn.Module
    necks: nn.ModuleList
    decoder: nn.Module
    aux_heads: nn.ModuleDict

    def freeze_encoder(self) -> None:
        """Stop gradients to the backbone."""
        self.backbone.requires_grad_(False)

    def freeze_decoder(self) -> None:
        """Stop gradients to the necks and decoders (heads stay trainable)."""
        self.necks.requires_grad_(False)
        self.decoder.requires_grad_(False)
        for aux in self.aux_heads.values():
            aux.decoder.requires_grad_(False)


class PixelWiseModel(EncoderDecoderFreezing, nn.Module):
    """Backbone → necks → decoder → head, rescaled to the input size (geofm ``Model``).

    Inputs whose height or width is not a multiple of the backbone's ``input_multiple``
    (its patch size or total stride) are zero-padded at the bottom/right and the output
    cropped back, so any size works, square or not.

    Args:
        task: ``"segmentation"`` (output (B, num_classes, H, W)) or ``"regression"``
            (output (B, H, W)).
        backbone: A geofm backbone (``forward(x, **metadata) -> list``).
        decoder: A geofm decoder (feature list → (B, C, h, w)).
        head: Maps the decoder's output to the task's channels.
        necks: Necks applied in order between backbone and decoder.
        auxiliary_heads: Named auxiliary decoder+head pairs; their outputs go to
            ``ModelOutput.auxiliary_heads``.
        rescale: Bilinearly resize the output to the input size.
        input_multiple: Pad inputs to a multiple of this (default: the backbone's
            ``input_multiple``, else 1).
        prepare_features_for_image_model: Applied to the backbone's features before the
            necks (default: the backbone's own method of that name, if any).
    """

    def __init__(
        self,
        task: str,
        backbone: nn.Module,
        decoder: nn.Module,
        head: nn.Module,
        necks: Sequence[nn.Module] = (),
        auxiliary_heads: Mapping[str, AuxiliaryHead] | None = None,
        rescale: bool = True,
        input_multiple: int | None = None,
        prepare_features_for_image_model: FeaturePrep | None = None,
    ) -> None:
        super().__init__()
        if task not in PIXEL_TASKS:
            raise ConfigurationError(
                f"PixelWiseModel task must be one of {', '.join(PIXEL_TASKS)}, got {task!r}"
            )
        self.task = task
        self.backbone = backbone
        self.necks = nn.ModuleList(necks)
        self.decoder = decoder
        self.head = head
        self.aux_heads = nn.ModuleDict(dict(auxiliary_heads or {}))
        self.rescale = rescale
        self.input_multiple = input_multiple_of(backbone, input_multiple)
        self.prepare_features_for_image_model = prepare_features_for_image_model

    def _finish(
        self, y: torch.Tensor, padded: tuple[int, int], size: tuple[int, int]
    ) -> torch.Tensor:
        if self.rescale and tuple(y.shape[-2:]) != padded:
            y = F.interpolate(y, size=padded, mode="bilinear", align_corners=False)
        if tuple(y.shape[-2:]) == padded:
            y = y[..., : size[0], : size[1]]
        if self.task == "regression" and y.shape[1] == 1:
            y = y.squeeze(1)
        return y

    def forward(self, x: torch.Tensor, **metadata: Any) -> ModelOutput:
        """Predict per pixel; ``metadata`` (e.g. ``temporal_coords``) goes to the backbone."""
        size = (x.shape[-2], x.shape[-1])
        x = pad_to_multiple(x, self.input_multiple)
        padded = (x.shape[-2], x.shape[-1])
        features = run_encoder(
            self.backbone, self.necks, x, metadata, self.prepare_features_for_image_model
        )
        output = self._finish(self.head(self.decoder(list(features))), padded, size)
        aux = {
            name: self._finish(module(list(features)), padded, size)
            for name, module in self.aux_heads.items()
        }
        return ModelOutput(output, aux)
