"""Every registered Clay backbone passes the core backbone contract (tiny overrides)."""

from __future__ import annotations

from typing import Any, ClassVar

from geofm_core.testing import BackboneContract

#: A tiny encoder: dim - 8 divisible by 4 (Clay's position code), two blocks.
TINY: dict[str, Any] = {"dim": 24, "depth": 2, "heads": 2, "dim_head": 8, "mlp_ratio": 2.0,
                        "bands": ["BLUE", "RED", "B8A", "VV"]}


class TestClayBackbones(BackboneContract):
    source = "clay"
    in_chans = 4
    default_kwargs: ClassVar[dict[str, Any]] = TINY
