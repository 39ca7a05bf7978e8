"""geofm's contract tests, run on every backbone and model factory the ``example`` source registers.

Subclassing the contracts of :mod:`geofm_core.testing` is all a plugin needs: the tests
are parametrized over ``geofm list 'example:*'``, so a new component is tested as soon
as ``_plugin.py`` registers it.
"""

from __future__ import annotations

from typing import Any, ClassVar

from geofm_core.testing import BackboneContract, ModelFactoryContract

TINY: dict[str, Any] = {"in_chans": 4, "widths": (8, 8, 16, 16)}


class TestExampleBackbones(BackboneContract):
    source = "example"
    in_chans = 4
    default_kwargs: ClassVar[dict[str, Any]] = TINY


class TestExampleModelFactories(ModelFactoryContract):
    """Builds each task ``TinySegmenterFactory.tasks`` declares (segmentation, regression)."""

    source = "example"
    in_chans = 4
    model_kwargs: ClassVar[dict[str, Any]] = {"tiny_segmenter": TINY}
