"""segmentation_models_pytorch decoders as geofm decoders (``smp:<decoder>``).

smp decoders expect an smp encoder's feature list ``[input, 1/2, 1/4, 1/8, 1/16, 1/32]``
(level 0 is the input image itself, and some encoders give a 0-channel 1/2 level).
A geofm backbone gives any list of levels, finest first. The mapping, for every decoder
here: **geofm level i is smp level i + 1**, after a zero-channel placeholder standing
for smp's level 0 (the input) at twice the finest level's resolution (smp decoders use
level 0 only for its size, never its values). So:

* a 5-level list at strides 2..32 (``timm:resnet18``, ``smp:resnet34``) is exactly what
  smp expects;
* a 4-level pyramid at strides 4..32 (a CNN through ``geofm:select_indices``, or a ViT
  through ``geofm:reshape_tokens_to_image`` and
  ``geofm:learned_interpolate_to_pyramidal``) works too: the decoders that upsample
  step by step (unet, unetplusplus, linknet, manet) then stop at stride 2, the others
  at stride 4, and the geofm model resizes the output to the input.

The decoders that skip smp's levels 0 and 1 (upernet, segformer, pan) get
placeholders for both, so they see the geofm list as their 1/4 ... levels. Decoders
that add upsampled maps to skip connections (unetplusplus, fpn, linknet, manet)
need exact 2x steps between levels; a level that is off (e.g. a pyramid of an odd
grid) is resized to twice the next coarser one first. Each class keeps the keyword
arguments of the smp decoder it wraps (``decoder_channels``, ``use_norm``, ...) with
smp's model defaults; the channel lists smp would derive from an encoder come from
``in_channels``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, ClassVar

import torch
import torch.nn.functional as F
from segmentation_models_pytorch.decoders.deeplabv3.decoder import (
    DeepLabV3Decoder,
    DeepLabV3PlusDecoder,
)
from segmentation_models_pytorch.decoders.dpt.decoder import DPTDecoder
from segmentation_models_pytorch.decoders.fpn.decoder import FPNDecoder
from segmentation_models_pytorch.decoders.linknet.decoder import LinknetDecoder
from segmentation_models_pytorch.decoders.manet.decoder import MAnetDecoder
from segmentation_models_pytorch.decoders.pan.decoder import PANDecoder
from segmentation_models_pytorch.decoders.pspnet.decoder import PSPDecoder
from segmentation_models_pytorch.decoders.segformer.decoder import SegformerDecoder
from segmentation_models_pytorch.decoders.unet.decoder import UnetDecoder
from segmentation_models_pytorch.decoders.unetplusplus.decoder import UnetPlusPlusDecoder
from segmentation_models_pytorch.decoders.upernet.decoder import UPerNetDecoder
from torch import nn

from geofm_core import ComponentArgumentError

__all__ = [
    "SmpDPT",
    "SmpDecoder",
    "SmpDeepLabV3",
    "SmpDeepLabV3Plus",
    "SmpFPN",
    "SmpLinknet",
    "SmpMAnet",
    "SmpPAN",
    "SmpPSPNet",
    "SmpSegformer",
    "SmpUPerNet",
    "SmpUnet",
    "SmpUnetPlusPlus",
    "regular_pyramid",
]

Norm = bool | str | dict[str, Any]


def regular_pyramid(features: Sequence[torch.Tensor]) -> list[torch.Tensor]:
    """Resize levels so that each is exactly twice the next coarser one (finest first).

    Levels already in step are returned as they are, so a regular pyramid costs nothing.
    """
    out = list(features)
    for i in range(len(out) - 2, -1, -1):
        expected = (2 * out[i + 1].shape[-2], 2 * out[i + 1].shape[-1])
        if tuple(out[i].shape[-2:]) != expected:
            out[i] = F.interpolate(out[i], size=expected, mode="bilinear", align_corners=False)
    return out


def _placeholder(reference: torch.Tensor, scale: int) -> torch.Tensor:
    """A zero-channel map at ``scale`` times the resolution of ``reference``."""
    return reference.new_zeros(
        reference.shape[0], 0, reference.shape[-2] * scale, reference.shape[-1] * scale
    )


def _default_widths(count: int) -> list[int]:
    """The default ``decoder_channels`` of smp (256, 128, 64, 32, 16), widest first."""
    widths = [256, 128, 64, 32, 16]
    return widths[:count] if count <= 5 else widths + [16] * (count - 5)


class SmpDecoder(nn.Module):
    """Base of the smp decoder adapters: checks the channel list, holds the smp module.

    Subclasses set ``smp_name`` and ``min_levels``, build ``self.decoder`` and
    ``self.out_channels`` and map the geofm feature list in ``forward``.
    """

    smp_name: ClassVar[str] = ""
    min_levels: ClassVar[int] = 1

    def __init__(self, in_channels: Sequence[int]) -> None:
        super().__init__()
        if isinstance(in_channels, int) or len(in_channels) < self.min_levels:
            raise ComponentArgumentError(
                f"smp:{self.smp_name} needs at least {self.min_levels} feature levels, got "
                f"{in_channels!r}"
            )
        if any(int(c) < 1 for c in in_channels):
            raise ComponentArgumentError(
                f"smp:{self.smp_name}: every level needs channels, got {list(in_channels)}"
            )
        self.in_channels = [int(c) for c in in_channels]
        self.decoder: nn.Module = nn.Identity()
        self.out_channels: int = 0

    def _widths(self, decoder_channels: Sequence[int] | None) -> list[int]:
        widths = list(decoder_channels or _default_widths(len(self.in_channels)))
        if len(widths) != len(self.in_channels):
            raise ComponentArgumentError(
                f"smp:{self.smp_name}: decoder_channels needs one width per input level "
                f"({len(self.in_channels)} levels: {self.in_channels}), got {widths}"
            )
        return widths

    def _run(self, features: list[torch.Tensor]) -> torch.Tensor:
        out: torch.Tensor = self.decoder(features)
        return out


class SmpUnet(SmpDecoder):
    """smp's U-Net decoder: one upsampling block per level, skips from the finer levels.

    The output is at twice the finest level's resolution; with ``upsample_last=False``
    the last block keeps the finest level's resolution (TerraTorch's ``UNetDecoder``,
    whose model then resizes the output to the input).

    Args:
        in_channels: Channels of each level, finest first.
        decoder_channels: Width of each block, deepest first (default: smp's
            256, 128, 64, 32, 16 cut to the number of levels).
        use_norm: Normalization of the blocks (``batchnorm``, ``identity``, ...).
        attention_type: ``None`` or ``scse``.
        add_center_block: Add a center block on the deepest level.
        interpolation_mode: Upsampling mode.
        upsample_last: The last block upsamples 2x (smp's U-Net on a 5-level encoder);
            ``False`` runs it at the finest level's resolution.
    """

    smp_name = "unet"
    min_levels = 1

    def __init__(
        self,
        in_channels: Sequence[int],
        decoder_channels: Sequence[int] | None = None,
        use_norm: Norm = "batchnorm",
        attention_type: str | None = None,
        add_center_block: bool = False,
        interpolation_mode: str = "nearest",
        upsample_last: bool = True,
    ) -> None:
        super().__init__(in_channels)
        widths = self._widths(decoder_channels)
        # smp's last block resizes to the placeholder level's size (see the module doc).
        self.placeholder_scale = 2 if upsample_last else 1
        self.decoder = UnetDecoder(
            encoder_channels=[0, *self.in_channels], decoder_channels=widths,
            n_blocks=len(widths), use_norm=use_norm, attention_type=attention_type,
            add_center_block=add_center_block, interpolation_mode=interpolation_mode,
        )
        self.out_channels = widths[-1]

    def forward(self, features: list[torch.Tensor]) -> torch.Tensor:
        """Decode the levels."""
        return self._run([_placeholder(features[0], self.placeholder_scale), *features])


class SmpUnetPlusPlus(SmpDecoder):
    """smp's U-Net++ decoder (nested dense skip connections); output at 2x the finest level.

    Args:
        in_channels: Channels of each level, finest first (at least 2).
        decoder_channels: Width of each block, deepest first (default: smp's, cut).
        use_norm: Normalization of the blocks.
        attention_type: ``None`` or ``scse``.
        interpolation_mode: Upsampling mode.
        center: Add a center block on the deepest level.
    """

    smp_name = "unetplusplus"
    min_levels = 2

    def __init__(
        self,
        in_channels: Sequence[int],
        decoder_channels: Sequence[int] | None = None,
        use_norm: Norm = "batchnorm",
        attention_type: str | None = None,
        interpolation_mode: str = "nearest",
        center: bool = False,
    ) -> None:
        super().__init__(in_channels)
        widths = self._widths(decoder_channels)
        self.decoder = UnetPlusPlusDecoder(
            encoder_channels=[0, *self.in_channels], decoder_channels=widths,
            n_blocks=len(widths), use_norm=use_norm, attention_type=attention_type,
            interpolation_mode=interpolation_mode, center=center,
        )
        self.out_channels = widths[-1]

    def forward(self, features: list[torch.Tensor]) -> torch.Tensor:
        """Decode the levels."""
        levels = regular_pyramid(features)
        return self._run([_placeholder(levels[0], 2), *levels])


class SmpFPN(SmpDecoder):
    """smp's FPN decoder on the last 4 levels; output at the 4th-last level's resolution.

    Args:
        in_channels: Channels of each level, finest first (at least 4; the last 4 used).
        pyramid_channels: Width of the FPN.
        segmentation_channels: Width of each level's segmentation block.
        dropout: Spatial dropout of the merged output.
        merge_policy: ``add`` (output ``segmentation_channels``) or ``cat`` (4 times).
        interpolation_mode: Upsampling mode.
    """

    smp_name = "fpn"
    min_levels = 4

    def __init__(
        self,
        in_channels: Sequence[int],
        pyramid_channels: int = 256,
        segmentation_channels: int = 128,
        dropout: float = 0.2,
        merge_policy: str = "add",
        interpolation_mode: str = "nearest",
    ) -> None:
        super().__init__(in_channels)
        if merge_policy not in ("add", "cat"):
            raise ComponentArgumentError(
                f"smp:fpn: merge_policy must be 'add' or 'cat', got {merge_policy!r}"
            )
        decoder = FPNDecoder(
            encoder_channels=self.in_channels, encoder_depth=len(self.in_channels) - 1,
            pyramid_channels=pyramid_channels, segmentation_channels=segmentation_channels,
            dropout=dropout, merge_policy=merge_policy,
            interpolation_mode=interpolation_mode,
        )
        self.decoder = decoder
        # read from smp's decoder (which knows what ``cat`` does), not from the nn.Module
        # attribute, which mypy can only type as Tensor | Module
        self.out_channels = int(decoder.out_channels)

    def forward(self, features: list[torch.Tensor]) -> torch.Tensor:
        """Decode the last 4 levels."""
        return self._run(regular_pyramid(features[-4:]))


class SmpPSPNet(SmpDecoder):
    """smp's PSPNet decoder: pyramid pooling (1, 2, 3, 6) on the last level.

    Args:
        in_channels: Channels of each level (the last one is decoded).
        use_norm: Normalization of the blocks.
        out_channels: Output channels.
        dropout: Spatial dropout of the output.
    """

    smp_name = "pspnet"

    def __init__(
        self,
        in_channels: Sequence[int],
        use_norm: Norm = "batchnorm",
        out_channels: int = 512,
        dropout: float = 0.2,
    ) -> None:
        super().__init__(in_channels)
        self.decoder = PSPDecoder(
            encoder_channels=self.in_channels, use_norm=use_norm,
            out_channels=out_channels, dropout=dropout,
        )
        self.out_channels = out_channels

    def forward(self, features: list[torch.Tensor]) -> torch.Tensor:
        """Decode the last level."""
        return self._run(list(features))


class SmpDeepLabV3(SmpDecoder):
    """smp's DeepLabV3 decoder: ASPP on the last level.

    Args:
        in_channels: Channels of each level (the last one is decoded).
        out_channels: Output channels (smp's ``decoder_channels``).
        atrous_rates: Dilation rates of the ASPP branches.
        aspp_separable: Use depth-wise separable ASPP convolutions.
        aspp_dropout: Dropout of the ASPP projection.
    """

    smp_name = "deeplabv3"

    def __init__(
        self,
        in_channels: Sequence[int],
        out_channels: int = 256,
        atrous_rates: Sequence[int] = (12, 24, 36),
        aspp_separable: bool = False,
        aspp_dropout: float = 0.5,
    ) -> None:
        super().__init__(in_channels)
        self.decoder = DeepLabV3Decoder(
            in_channels=self.in_channels[-1], out_channels=out_channels,
            atrous_rates=tuple(atrous_rates), aspp_separable=aspp_separable,
            aspp_dropout=aspp_dropout,
        )
        self.out_channels = out_channels

    def forward(self, features: list[torch.Tensor]) -> torch.Tensor:
        """Decode the last level."""
        return self._run(list(features))


class SmpDeepLabV3Plus(SmpDecoder):
    """smp's DeepLabV3+ decoder: ASPP on the last level fused with a high-resolution level.

    The ASPP output is resized to the high-resolution level (smp upsamples it by a fixed
    factor, which assumes a dilated encoder); the output is at that level's resolution.

    Args:
        in_channels: Channels of each level, finest first (at least 2).
        out_channels: Output channels (smp's ``decoder_channels``).
        atrous_rates: Dilation rates of the ASPP branches.
        aspp_separable: Use depth-wise separable ASPP convolutions.
        aspp_dropout: Dropout of the ASPP projection.
        highres_index: The high-resolution level (default: the stride-4 level of a
            pyramid ending at stride 32, i.e. the 4th from last; the first level when
            there are fewer than 4).
    """

    smp_name = "deeplabv3plus"
    min_levels = 2

    def __init__(
        self,
        in_channels: Sequence[int],
        out_channels: int = 256,
        atrous_rates: Sequence[int] = (12, 24, 36),
        aspp_separable: bool = True,
        aspp_dropout: float = 0.5,
        highres_index: int | None = None,
    ) -> None:
        super().__init__(in_channels)
        n = len(self.in_channels)
        index = (-4 if n >= 4 else 0) if highres_index is None else highres_index
        if not -n <= index < n or index % n == n - 1:
            raise ComponentArgumentError(
                f"smp:deeplabv3plus: highres_index {highres_index} must select a level "
                f"before the last of {n}"
            )
        self.highres_index = index
        self.decoder = DeepLabV3PlusDecoder(
            encoder_channels=[0, 0, self.in_channels[index], self.in_channels[-1]],
            encoder_depth=3, out_channels=out_channels, atrous_rates=tuple(atrous_rates),
            output_stride=16, aspp_separable=aspp_separable, aspp_dropout=aspp_dropout,
        )
        self.out_channels = out_channels

    def forward(self, features: list[torch.Tensor]) -> torch.Tensor:
        """Fuse the ASPP of the last level with the high-resolution level."""
        dec: Any = self.decoder
        high = features[self.highres_index]
        aspp = F.interpolate(dec.aspp(features[-1]), size=high.shape[-2:], mode="bilinear",
                             align_corners=True)
        fused: torch.Tensor = dec.block2(torch.cat([aspp, dec.block1(high)], dim=1))
        return fused


class SmpLinknet(SmpDecoder):
    """smp's LinkNet decoder (transposed-conv blocks added to skips); output at 2x finest.

    Args:
        in_channels: Channels of each level, finest first.
        prefinal_channels: Output channels.
        use_norm: Normalization of the blocks.
    """

    smp_name = "linknet"

    def __init__(
        self,
        in_channels: Sequence[int],
        prefinal_channels: int = 32,
        use_norm: Norm = "batchnorm",
    ) -> None:
        super().__init__(in_channels)
        self.decoder = LinknetDecoder(
            encoder_channels=[0, *self.in_channels], prefinal_channels=prefinal_channels,
            n_blocks=len(self.in_channels), use_norm=use_norm,
        )
        self.out_channels = prefinal_channels

    def forward(self, features: list[torch.Tensor]) -> torch.Tensor:
        """Decode the levels."""
        levels = regular_pyramid(features)
        return self._run([_placeholder(levels[0], 2), *levels])


class SmpMAnet(SmpDecoder):
    """smp's MA-Net decoder (position and multi-scale attention); output at 2x finest.

    Args:
        in_channels: Channels of each level, finest first.
        decoder_channels: Width of each block, deepest first (default: smp's, cut).
        reduction: Channel reduction of the attention blocks.
        use_norm: Normalization of the blocks.
        pab_channels: Width of the position attention block.
        interpolation_mode: Upsampling mode.
    """

    smp_name = "manet"

    def __init__(
        self,
        in_channels: Sequence[int],
        decoder_channels: Sequence[int] | None = None,
        reduction: int = 16,
        use_norm: Norm = "batchnorm",
        pab_channels: int = 64,
        interpolation_mode: str = "nearest",
    ) -> None:
        super().__init__(in_channels)
        widths = self._widths(decoder_channels)
        self.decoder = MAnetDecoder(
            encoder_channels=[0, *self.in_channels], decoder_channels=widths,
            n_blocks=len(widths), reduction=reduction, use_norm=use_norm,
            pab_channels=pab_channels, interpolation_mode=interpolation_mode,
        )
        self.out_channels = widths[-1]

    def forward(self, features: list[torch.Tensor]) -> torch.Tensor:
        """Decode the levels."""
        levels = regular_pyramid(features)
        return self._run([_placeholder(levels[0], 2), *levels])


class SmpPAN(SmpDecoder):
    """smp's PAN decoder: pyramid attention on the last level, attention upsampling after.

    Global attention upsampling goes through up to 3 finer levels; the output is at the
    finest level used.

    smp's pyramid attention pools its input three times, so a last level smaller than
    8 x 8 pixels is resized to 8 x 8 first (small inputs work; large ones are unchanged).

    Args:
        in_channels: Channels of each level, finest first (at least 2; last 4 used).
        decoder_channels: Width of the decoder and of the output.
        interpolation_mode: Upsampling mode of the attention blocks.
    """

    smp_name = "pan"
    min_levels = 2
    min_size: ClassVar[int] = 8

    def __init__(
        self,
        in_channels: Sequence[int],
        decoder_channels: int = 32,
        interpolation_mode: str = "bilinear",
    ) -> None:
        super().__init__(in_channels)
        used = self.in_channels[-4:]
        self.decoder = PANDecoder(
            encoder_channels=[0, 0, *used], encoder_depth=len(used) + 1,
            decoder_channels=decoder_channels, interpolation_mode=interpolation_mode,
        )
        self.out_channels = decoder_channels

    def forward(self, features: list[torch.Tensor]) -> torch.Tensor:
        """Decode the last (up to) 4 levels."""
        levels = list(features[-4:])
        last = levels[-1]
        if min(last.shape[-2:]) < self.min_size:
            size = (max(last.shape[-2], self.min_size), max(last.shape[-1], self.min_size))
            levels[-1] = F.interpolate(last, size=size, mode="bilinear", align_corners=False)
        return self._run([_placeholder(levels[0], 4), _placeholder(levels[0], 2), *levels])


class SmpUPerNet(SmpDecoder):
    """smp's UPerNet decoder (layer norm on each level, PSP, FPN); output at the finest level.

    Args:
        in_channels: Channels of each level, finest first (at least 2).
        decoder_channels: Width of the decoder and of the output.
        use_norm: Normalization of the blocks.
    """

    smp_name = "upernet"
    min_levels = 2

    def __init__(
        self,
        in_channels: Sequence[int],
        decoder_channels: int = 256,
        use_norm: Norm = "batchnorm",
    ) -> None:
        super().__init__(in_channels)
        self.decoder = UPerNetDecoder(
            encoder_channels=[0, 0, *self.in_channels], encoder_depth=len(self.in_channels) + 1,
            decoder_channels=decoder_channels, use_norm=use_norm,
        )
        self.out_channels = decoder_channels

    def forward(self, features: list[torch.Tensor]) -> torch.Tensor:
        """Decode the levels."""
        ref = features[0]
        return self._run([_placeholder(ref, 4), _placeholder(ref, 2), *features])


class SmpSegformer(SmpDecoder):
    """smp's SegFormer decoder (per-level MLPs, resized and fused); output at the finest level.

    Args:
        in_channels: Channels of each level, finest first (at least 2).
        segmentation_channels: Width of the MLPs and of the output.
    """

    smp_name = "segformer"
    min_levels = 2

    def __init__(self, in_channels: Sequence[int], segmentation_channels: int = 256) -> None:
        super().__init__(in_channels)
        self.decoder = SegformerDecoder(
            encoder_channels=[0, 0, *self.in_channels], encoder_depth=len(self.in_channels) + 1,
            segmentation_channels=segmentation_channels,
        )
        self.out_channels = segmentation_channels

    def forward(self, features: list[torch.Tensor]) -> torch.Tensor:
        """Decode the levels."""
        ref = features[0]
        # smp resizes everything to a quarter of its level 0, i.e. to the finest level here
        return self._run([_placeholder(ref, 4), _placeholder(ref, 2), *features])


class SmpDPT(SmpDecoder):
    """smp's DPT decoder: reassemble each level to strides 4..32, fuse coarse to fine.

    Meant for ViT features reshaped to maps (``geofm:reshape_tokens_to_image``), all at
    the patch stride; give ``encoder_output_strides`` for other layouts (e.g. 4, 8, 16,
    32 for a pyramid). CLS tokens are dropped by the neck, so the readout has no prefix
    tokens: ``cat`` becomes a per-pixel projection, ``add`` and ``ignore`` a no-op.
    Output at stride 2 (for 4 levels).

    Args:
        in_channels: Channels of each level.
        encoder_output_strides: Stride of each level relative to the input (default 16
            for every level, a ViT with 16-pixel patches).
        readout: ``ignore``, ``add`` or ``cat``.
        intermediate_channels: Width of each reassemble block (default: smp's 256, 512,
            1024, 1024 for 4 levels).
        fusion_channels: Width of the fusion blocks and of the output.
    """

    smp_name = "dpt"

    def __init__(
        self,
        in_channels: Sequence[int],
        encoder_output_strides: Sequence[int] | None = None,
        readout: str = "ignore",
        intermediate_channels: Sequence[int] | None = None,
        fusion_channels: int = 256,
    ) -> None:
        super().__init__(in_channels)
        n = len(self.in_channels)
        strides = list(encoder_output_strides or [16] * n)
        widths = list(intermediate_channels or [256 * 2 ** min(i, 2) for i in range(n)])
        if len(strides) != n or len(widths) != n:
            raise ComponentArgumentError(
                f"smp:dpt: encoder_output_strides ({strides}) and intermediate_channels "
                f"({widths}) need one entry per input level ({n})"
            )
        if readout not in ("ignore", "add", "cat"):
            raise ComponentArgumentError(
                f"smp:dpt: readout must be 'ignore', 'add' or 'cat', got {readout!r}"
            )
        self.decoder = DPTDecoder(
            encoder_out_channels=self.in_channels, encoder_output_strides=strides,
            encoder_has_prefix_tokens=False, readout=readout,
            intermediate_channels=widths, fusion_channels=fusion_channels,
        )
        self.out_channels = fusion_channels

    def forward(self, features: list[torch.Tensor]) -> torch.Tensor:
        """Reassemble and fuse the levels."""
        dec: Any = self.decoder
        processed = [
            reassemble(project(x, None))
            for x, project, reassemble in zip(
                features, dec.projection_blocks, dec.reassemble_blocks, strict=True
            )
        ]
        # smp's fusion loop, except that the coarser feature is resized to the finer one
        # when an odd grid makes them differ by a pixel
        fused: torch.Tensor | None = None
        for block, x in zip(dec.fusion_blocks, processed[::-1], strict=False):
            x = block.residual_conv_block1(x)
            if fused is not None:
                if fused.shape[-2:] != x.shape[-2:]:
                    fused = F.interpolate(fused, size=x.shape[-2:], mode="bilinear",
                                          align_corners=True)
                x = x + fused
            x = block.residual_conv_block2(x)
            x = F.interpolate(x, scale_factor=2, mode="bilinear", align_corners=True)
            fused = block.project(x)
        assert fused is not None
        return fused
