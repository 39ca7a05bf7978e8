"""Every registered TerraMind backbone passes the core backbone contract (tiny overrides)."""

from __future__ import annotations

from typing import Any, ClassVar

from geofm_core.testing import BackboneContract

TINY: dict[str, Any] = {"embed_dim": 32, "depth": 2, "num_heads": 2, "img_size": 32}


class TestTerraMindBackbones(BackboneContract):
    source = "terramind"
    in_chans = 15
    default_kwargs: ClassVar[dict[str, Any]] = {**TINY, "modalities": ["S2L1C", "S1GRD"]}


class TestTerraMindConcatBackbones(BackboneContract):
    source = "terramind"
    in_chans = 4
    default_kwargs: ClassVar[dict[str, Any]] = {
        **TINY, "modalities": ["RGB", "DEM"], "merge_method": "concat", "out_indices": [-1]}
