"""Siamese change-detection models (``geofm:change_detection``): one encoder, two dates.

The backbone and necks are applied, with shared weights, to the image before and the
image after (both dates in one forward: the dates are folded into the batch); their
features are fused level by level, then one decoder and a segmentation head predict the
change classes per pixel. Input ``(B, 2, C, H, W)``: the time axis second, as TorchGeo's
``ChangeDetectionTask`` takes it.

Fusions:

* ``diff``: ``|after - before|`` (symmetric: which date is first does not matter);
* ``signed_diff``: ``after - before`` (keeps the direction of change);
* ``concat``: ``[before, after]`` along the channels, so the decoder gets twice the
  channels of each level.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Literal

import torch
import torch.nn.functional as F
from torch import nn

from geofm_core.errors import ConfigurationError
from geofm_core.models.contracts import ModelOutput
from geofm_core.models.factory import (
    EncoderPlan,
    NeckSpec,
    Positive,
    _decoder_channels,
    _Planned,
    validated_arguments,
)
from geofm_core.models.pixelwise import (
    EncoderDecoderFreezing,
    check_pad_mode,
    input_multiple_of,
    pad_to_multiple,
    padding_of,
    run_encoder,
)

__all__ = ["FUSIONS", "ChangeDetectionFactory", "ChangeDetectionModel", "fuse_features"]

#: The ways the two dates' features are combined (see the module docstring).
FUSIONS = ("diff", "signed_diff", "concat")
Fusion = Literal["diff", "signed_diff", "concat"]
#: The ``task`` value tasks pass to this factory.
CHANGE_TASK = "change_detection"

def fuse_features(before: torch.Tensor, after: torch.Tensor, fusion: str) -> torch.Tensor:
    """Combine one level's features of two dates.

    Feature maps (B, C, h, w) concatenate along dim 1, token sequences (B, N, C) along
    the last dim.
    """
    if fusion == "diff":
        return (after - before).abs()
    if fusion == "signed_diff":
        return after - before
    if fusion == "concat":
        return torch.cat([before, after], dim=1 if before.ndim == 4 else -1)
    raise ConfigurationError(f"unknown fusion {fusion!r}; choose one of {', '.join(FUSIONS)}")


def fused_channels(channels: Sequence[int], fusion: str) -> list[int]:
    """The channel list the decoder gets after fusing features of ``channels``."""
    return [2 * c if fusion == "concat" else int(c) for c in channels]


class ChangeDetectionModel(EncoderDecoderFreezing, nn.Module):
    """Shared backbone and necks on two dates, fused features, decoder and head.

    Args:
        backbone: A geofm backbone, applied to both dates (shared weights).
        decoder: A geofm decoder built on the fused channels.
        head: The segmentation head (decoder channels → change classes).
        necks: Necks applied to each date's features before the fusion.
        fusion: ``diff``, ``signed_diff`` or ``concat``.
        rescale: Bilinearly resize the output to the input size.
        input_multiple: Pad inputs to a multiple of this (default: the backbone's).
        pad_mode: ``constant``, ``reflect`` or ``replicate``.
        pad_centred: Split the padding between both sides.
    """

    def __init__(
        self,
        backbone: nn.Module,
        decoder: nn.Module,
        head: nn.Module,
        necks: Sequence[nn.Module] = (),
        fusion: str = "diff",
        rescale: bool = True,
        input_multiple: int | None = None,
        pad_mode: str = "constant",
        pad_centred: bool = False,
    ) -> None:
        super().__init__()
        check_pad_mode(pad_mode)
        if fusion not in FUSIONS:
            raise ConfigurationError(
                f"unknown fusion {fusion!r}; choose one of {', '.join(FUSIONS)}"
            )
        self.task = CHANGE_TASK
        self.backbone = backbone
        self.necks = nn.ModuleList(necks)
        self.decoder = decoder
        self.head = head
        self.aux_heads = nn.ModuleDict()
        self.fusion = fusion
        self.rescale = rescale
        self.input_multiple = input_multiple_of(backbone, input_multiple)
        self.pad_mode = pad_mode
        self.pad_centred = pad_centred

    def forward(self, x: torch.Tensor, **metadata: Any) -> ModelOutput:
        """Change logits (B, num_classes, H, W) from ``x`` (B, 2, C, H, W): before, after."""
        if x.ndim < 5 or x.shape[1] != 2:
            raise ConfigurationError(
                f"a change-detection model takes (batch, 2 dates, bands, height, width), got "
                f"shape {tuple(x.shape)}; use GeoTiffChangeDetectionDataModule (before and "
                "after images stacked on dim 1)"
            )
        batch = x.shape[0]
        size = (x.shape[-2], x.shape[-1])
        # Both dates in one pass: the same weights, and batch statistics over both.
        flat = pad_to_multiple(x.flatten(0, 1), self.input_multiple, self.pad_mode,
                               self.pad_centred)
        padded = (flat.shape[-2], flat.shape[-1])
        meta = {k: v.repeat_interleave(2, dim=0) if isinstance(v, torch.Tensor) else v
                for k, v in metadata.items() if v is not None}
        features = run_encoder(self.backbone, self.necks, flat, meta, None)
        fused = []
        for feature in features:
            pair = feature.reshape(batch, 2, *feature.shape[1:])
            fused.append(fuse_features(pair[:, 0], pair[:, 1], self.fusion))
        y = self.head(self.decoder(fused))
        if self.rescale and tuple(y.shape[-2:]) != padded:
            y = F.interpolate(y, size=padded, mode="bilinear", align_corners=False)
        if tuple(y.shape[-2:]) == padded:
            top, _, left, _ = padding_of(size, self.input_multiple, self.pad_centred)
            y = y[..., top: top + size[0], left: left + size[1]]
        return ModelOutput(y)


class ChangeDetectionFactory:
    """Builds siamese change-detection models from component names (``geofm:change_detection``).

    Arguments of ``build_model`` (a ``ChangeDetectionTask``'s ``model_args``)::

        backbone: timm:resnet18              # any registry backbone, shared by both dates
        backbone_kwargs: {in_chans: 3, pretrained: false}
        necks: [{name: geofm:select_indices, indices: [-1]}]
        fusion: diff                         # |after - before|; signed_diff; concat
        decoder: geofm:fcn                   # any registry decoder
        decoder_kwargs: {channels: 64}
        head_kwargs: {dropout: 0.1}
        num_classes: 2                       # no change, change
    """

    #: The tasks this factory builds models for.
    tasks = (CHANGE_TASK,)

    @validated_arguments("geofm:change_detection")
    def build_model(
        self,
        task: str,
        backbone: str | nn.Module,
        decoder: str,
        num_classes: Positive = 2,
        backbone_kwargs: dict[str, Any] | None = None,
        necks: list[NeckSpec] | None = None,
        decoder_kwargs: dict[str, Any] | None = None,
        head_kwargs: dict[str, Any] | None = None,
        fusion: Fusion = "diff",
        rescale: bool = True,
        input_multiple: Positive | None = None,
        pad_mode: Literal["constant", "reflect", "replicate"] = "constant",
        pad_centred: bool = False,
    ) -> nn.Module:
        """Build a :class:`ChangeDetectionModel`.

        Args:
            task: ``change_detection`` (the task passes it).
            backbone: A backbone name (``timm:resnet18``, ``prithvi:...``) or a ready module.
            decoder: A decoder name (``geofm:fcn``, ``upernet:upernet``, ...).
            num_classes: Change classes (2: no change, change).
            backbone_kwargs: Keyword arguments of the backbone.
            necks: Necks in order, each ``{"name": ..., **kwargs}``, applied per date.
            decoder_kwargs: Keyword arguments of the decoder.
            head_kwargs: Keyword arguments of the ``geofm:segmentation`` head.
            fusion: ``diff`` (``|after - before|``), ``signed_diff`` or ``concat``.
            rescale: Resize the output to the input size.
            input_multiple: Pad inputs to a multiple of this (default: the backbone's).
            pad_mode: What the padding is filled with.
            pad_centred: Split the padding between both sides.

        Raises:
            ConfigurationError: A wrong task or argument.
            ComponentArgumentError: Components that do not fit together (naming both).
        """
        if task != CHANGE_TASK:
            raise ConfigurationError(
                f"geofm:change_detection builds change-detection models (task "
                f"{CHANGE_TASK!r}), not {task!r}; use geofm:encoder_decoder for {task}"
            )
        encoder = EncoderPlan.resolve("geofm:change_detection", backbone, backbone_kwargs,
                                      necks)
        decoder_plan = _Planned("decoder", decoder, decoder_kwargs or {})
        decoder_plan.check({"in_channels": [1]})
        head_plan = _Planned("head", "geofm:segmentation", head_kwargs or {})
        head_plan.check({"in_channels": 1, "num_classes": 1})

        built_backbone, built_necks, channels, producer = encoder.build()
        built_decoder = decoder_plan.build_on(f"{producer} fused by {fusion}",
                                              fused_channels(channels, fusion))
        head = head_plan.factory(in_channels=_decoder_channels(built_decoder, decoder_plan.what),
                                 num_classes=num_classes, **head_plan.kwargs)
        return ChangeDetectionModel(built_backbone, built_decoder, head, built_necks,
                                    fusion=fusion, rescale=rescale,
                                    input_multiple=input_multiple, pad_mode=pad_mode,
                                    pad_centred=pad_centred)
