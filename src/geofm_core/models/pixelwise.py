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
    "PAD_MODES",
    "check_pad_mode",
    "input_multiple_of",
    "pad_to_multiple",
    "padding_of",
    "run_encoder",
]

PIXEL_TASKS = ("segmentation", "regression")

FeaturePrep = Callable[[list[torch.Tensor]], list[torch.Tensor]]


#: How inputs are padded: ``constant`` (zeros), or edge-aware modes of ``F.pad``.
PAD_MODES = ("constant", "reflect", "replicate")


def padding_of(size: tuple[int, int], multiple: int, centred: bool = False
               ) -> tuple[int, int, int, int]:
    """``(top, bottom, left, right)`` padding that brings ``size`` (H, W) to a multiple.

    At the bottom and right by default; ``centred`` splits it, the smaller half first
    (TerraTorch's layout).
    """
    if multiple <= 1:
        return 0, 0, 0, 0
    pad_h, pad_w = (-size[0]) % multiple, (-size[1]) % multiple
    top, left = (pad_h // 2, pad_w // 2) if centred else (0, 0)
    return top, pad_h - top, left, pad_w - left


def pad_to_multiple(x: torch.Tensor, multiple: int, mode: str = "constant",
                    centred: bool = False) -> torch.Tensor:
    """Pad the last two dimensions (H, W) of ``x`` up to a multiple of ``multiple``.

    Works for (B, C, H, W) and (B, C, T, H, W) inputs. By default zeros go at the
    bottom and right, so that cropping ``[..., :H, :W]`` restores the original grid;
    ``centred`` and ``mode`` (see :data:`PAD_MODES`) change where and with what
    (crop with :func:`padding_of`'s offsets then).
    """
    top, bottom, left, right = padding_of((x.shape[-2], x.shape[-1]), multiple, centred)
    if not (top or bottom or left or right):
        return x
    if mode == "constant":
        return F.pad(x, (left, right, top, bottom))
    # F.pad's edge modes pad the last two dimensions of 3-D/4-D inputs only.
    flat = x.reshape(-1, *x.shape[-3:]) if x.ndim > 4 else x
    out = F.pad(flat, (left, right, top, bottom), mode=mode)
    return out.reshape(*x.shape[:-2], *out.shape[-2:])


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


def check_pad_mode(mode: str) -> None:
    """Refuse a padding mode that is not one of :data:`PAD_MODES`."""
    if mode not in PAD_MODES:
        raise ConfigurationError(
            f"pad_mode must be one of {', '.join(PAD_MODES)}, got {mode!r}"
        )


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
    cropped back, so any size works, square or not (``pad_mode`` and ``pad_centred``
    change the padding).

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
        pad_mode: What padding is filled with: ``constant`` (zeros), ``reflect`` or
            ``replicate``.
        pad_centred: Split the padding between both sides (the smaller half at the top
            and left) instead of padding the bottom and right.
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
        pad_mode: str = "constant",
        pad_centred: bool = False,
    ) -> None:
        super().__init__()
        check_pad_mode(pad_mode)
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
        self.pad_mode = pad_mode
        self.pad_centred = pad_centred

    def _finish(
        self, y: torch.Tensor, padded: tuple[int, int], size: tuple[int, int]
    ) -> torch.Tensor:
        if self.rescale and tuple(y.shape[-2:]) != padded:
            y = F.interpolate(y, size=padded, mode="bilinear", align_corners=False)
        if tuple(y.shape[-2:]) == padded:
            top, _, left, _ = padding_of(size, self.input_multiple, self.pad_centred)
            y = y[..., top: top + size[0], left: left + size[1]]
        if self.task == "regression" and y.shape[1] == 1:
            y = y.squeeze(1)
        return y

    def forward(self, x: torch.Tensor, **metadata: Any) -> ModelOutput:
        """Predict per pixel; ``metadata`` (e.g. ``temporal_coords``) goes to the backbone."""
        size = (x.shape[-2], x.shape[-1])
        x = pad_to_multiple(x, self.input_multiple, self.pad_mode, self.pad_centred)
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
