"""Every registered Prithvi backbone passes the core backbone contract (tiny overrides)."""

from __future__ import annotations

from typing import Any, ClassVar

from geofm_core.testing import BackboneContract

TINY: dict[str, Any] = {"embed_dim": 32, "depth": 2, "num_heads": 2, "img_size": 64}


class TestPrithviBackbones(BackboneContract):
    source = "prithvi"
    in_chans = 6
    default_kwargs: ClassVar[dict[str, Any]] = TINY


class TestPrithviTimeSeriesBackbones(BackboneContract):
    source = "prithvi"
    in_chans = 4
    num_frames = 3
    default_kwargs: ClassVar[dict[str, Any]] = {
        **TINY, "num_frames": 3, "bands": ["RED", "GREEN", "BLUE", "NIR_NARROW"],
    }
