"""geofm's backbone contract on every registered Galileo variant (small test sizes)."""

from __future__ import annotations

from typing import ClassVar

from geofm_core.testing import BackboneContract

_SMALL = {"bands": ["BLUE", "GREEN", "RED"], "patch_size": 8, "depth": 2}


class TestGalileoBackbones(BackboneContract):
    source = "galileo"
    in_chans = 3
    kwargs: ClassVar = {
        "galileo_nano": _SMALL,
        "galileo_tiny": _SMALL,
        "galileo_base": {**_SMALL, "embedding_size": 64, "num_heads": 4},
    }


class TestGalileoMultiTemporal(BackboneContract):
    source = "galileo"
    in_chans = 4
    num_frames = 3
    kwargs: ClassVar = {name: {**args, "bands": ["VV", "VH", "B8", "B8A"]}
                        for name, args in TestGalileoBackbones.kwargs.items()}
