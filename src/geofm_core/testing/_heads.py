"""``HeadContract``: heads built as ``head(in_channels, num_classes, **kwargs)``."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import ClassVar

import torch
from torch import nn

from geofm_core.registry import get_registry
from geofm_core.testing._base import ComponentContract
from geofm_core.testing._tools import assert_grads, assert_round_trip, backward

__all__ = ["HeadContract"]

_LAYOUTS = ("map", "vector")


class HeadContract(ComponentContract):
    """Contract tests for the heads of a source.

    A head is built as ``head(in_channels, num_classes, **kwargs)`` and maps a decoder's
    map (B, C, h, w) to (B, num_classes, h', w') (layout ``map``), or a pooled vector
    (B, C) to (B, num_classes) (layout ``vector``). Extra class attributes:
    ``in_channels`` and ``num_classes`` of every build, ``layouts`` per component name
    (with ``default_layout``), ``output_scales`` per name for ``map`` heads whose output
    is larger than their input (h' = h * scale; default 1), and ``feature_size`` (h, w)
    of the input maps.
    """

    kind: ClassVar[str] = "head"
    in_channels: ClassVar[int] = 16
    num_classes: ClassVar[int] = 3
    layouts: ClassVar[Mapping[str, str]] = {}
    default_layout: ClassVar[str] = "map"
    output_scales: ClassVar[Mapping[str, int]] = {}
    feature_size: ClassVar[tuple[int, int]] = (8, 12)

    def build(self, name: str) -> nn.Module:
        """Build the head ``name`` on ``in_channels`` for ``num_classes``."""
        module: nn.Module = get_registry().build(
            "head", name, in_channels=self.in_channels, num_classes=self.num_classes,
            **self.component_kwargs(name),
        )
        return module

    def layout_of(self, name: str) -> str:
        """``map`` or ``vector``: the input ``name`` takes."""
        layout = str(self._lookup(self.layouts, name) or self.default_layout)
        if layout not in _LAYOUTS:
            raise ValueError(f"head layout {layout!r} of {name}: choose map or vector")
        return layout

    def make_input(self, name: str, batch_size: int) -> torch.Tensor:
        """A random input of ``name``'s layout, requiring grad."""
        if self.layout_of(name) == "vector":
            return torch.randn(batch_size, self.in_channels, requires_grad=True)
        return torch.randn(batch_size, self.in_channels, *self.feature_size, requires_grad=True)

    def check_output(self, name: str, out: object, batch_size: int) -> None:
        """The output is (B, num_classes), or (B, num_classes, h * scale, w * scale)."""
        assert isinstance(out, torch.Tensor), f"a head returns a tensor, got {type(out)}"
        expected: tuple[int, ...] = (batch_size, self.num_classes)
        if self.layout_of(name) == "map":
            scale = int(self._lookup(self.output_scales, name) or 1)
            expected += tuple(s * scale for s in self.feature_size)
        assert tuple(out.shape) == expected, f"{name}: output {tuple(out.shape)}, not {expected}"

    def test_forward_backward(self, component_name: str) -> None:
        """A batch goes forward and backward; gradients reach the parameters and the input."""
        head = self.build(component_name).train()
        x = self.make_input(component_name, self.batch_size)
        out = head(x)
        self.check_output(component_name, out, self.batch_size)
        backward(out.float().mean())
        assert_grads(head, component_name)
        assert x.grad is not None and bool(x.grad.abs().sum() > 0), "no gradient reached the input"

    def test_batch_of_one(self, component_name: str) -> None:
        """One input goes through in eval mode."""
        head = self.build(component_name).eval()
        with torch.no_grad():
            out = head(self.make_input(component_name, 1))
        self.check_output(component_name, out, 1)

    def test_save_load_round_trip(self, component_name: str, tmp_path: Path) -> None:
        """The state dict, saved and loaded strictly into a fresh build, gives the same output."""
        x = self.make_input(component_name, self.batch_size).detach()
        assert_round_trip(self.build(component_name), lambda: self.build(component_name),
                          lambda m: m(x), tmp_path / "head.pt", component_name)
