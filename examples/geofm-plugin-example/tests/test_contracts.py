"""geofm's contract tests, run on every backbone the ``example`` source registers.

Subclassing :class:`geofm_core.testing.BackboneContract` is all a plugin needs: the
tests are parametrized over ``geofm list backbone 'example:*'``, so a new backbone is
tested as soon as ``_plugin.py`` registers it.
"""

from __future__ import annotations

from typing import Any, ClassVar

from geofm_core.testing import BackboneContract


class TestExampleBackbones(BackboneContract):
    source = "example"
    in_chans = 4
    default_kwargs: ClassVar[dict[str, Any]] = {"in_chans": 4, "widths": (8, 8, 16, 16)}
