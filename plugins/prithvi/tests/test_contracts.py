"""Every registered Prithvi backbone passes the core backbone contract (tiny overrides)."""

from __future__ import annotations

from typing import Any, ClassVar

from geofm_prithvi.constants import SWIN_VARIANTS, VARIANTS

from geofm_core.testing import BackboneContract

TINY: dict[str, Any] = {"embed_dim": 32, "depth": 2, "num_heads": 2, "img_size": 64}
TINY_SWIN: dict[str, Any] = {"embed_dim": 8, "depths": [2, 2, 2, 2], "num_heads": [1, 2, 2, 4],
                             "window_size": 4}
_NOT_VIT = {name: "a Swin: TestPrithviSwinBackbones" for name in SWIN_VARIANTS}


class TestPrithviBackbones(BackboneContract):
    source = "prithvi"
    in_chans = 6
    default_kwargs: ClassVar[dict[str, Any]] = TINY
    skip: ClassVar[dict[str, str]] = _NOT_VIT


class TestPrithviSwinBackbones(BackboneContract):
    source = "prithvi"
    in_chans = 6
    default_kwargs: ClassVar[dict[str, Any]] = TINY_SWIN
    skip: ClassVar[dict[str, str]] = {name: "a ViT: TestPrithviBackbones" for name in VARIANTS}


class TestPrithviTimeSeriesBackbones(BackboneContract):
    source = "prithvi"
    in_chans = 4
    num_frames = 3
    skip: ClassVar[dict[str, str]] = {name: "the Swin encoders take single images"
                                      for name in SWIN_VARIANTS}
    default_kwargs: ClassVar[dict[str, Any]] = {
        **TINY, "num_frames": 3, "bands": ["RED", "GREEN", "BLUE", "NIR_NARROW"],
    }
