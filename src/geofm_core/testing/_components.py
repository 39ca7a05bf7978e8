"""Contracts for the components of a feature pipeline: backbones, necks and decoders."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, ClassVar

import pytest
import torch
from torch import nn

from geofm_core.registry import get_registry
from geofm_core.testing._base import ComponentContract
from geofm_core.testing._tools import (
    TinyViT,
    assert_grads,
    assert_round_trip,
    backward,
    channels_of,
    make_features,
    train_step,
)

__all__ = ["BackboneContract", "DecoderContract", "NeckContract"]


class BackboneContract(ComponentContract):
    """Contract tests for the backbones of a source.

    Extra class attributes: ``in_chans`` (bands of the test input; make ``kwargs`` build
    the backbones with as many), ``num_frames`` (time steps: a value above 1 gives
    (B, C, T, H, W) inputs, and token outputs are expected to carry ``embed_dim`` with
    ``out_channels = embed_dim * num_frames``).
    """

    kind: ClassVar[str] = "backbone"
    in_chans: ClassVar[int] = 3
    num_frames: ClassVar[int] = 1

    def build(self, name: str) -> nn.Module:
        """Build the backbone ``name`` with its tiny kwargs."""
        module: nn.Module = get_registry().build("backbone", name, **self.component_kwargs(name))
        return module

    def make_input(self, backbone: nn.Module, batch_size: int) -> torch.Tensor:
        """A random input of ``image_size`` rounded up to the backbone's input multiple."""
        multiple = int(getattr(backbone, "input_multiple", 1) or 1)
        height, width = (math.ceil(s / multiple) * multiple for s in self.image_size)
        if self.num_frames > 1:
            return torch.randn(batch_size, self.in_chans, self.num_frames, height, width)
        return torch.randn(batch_size, self.in_chans, height, width)

    def check_outputs(self, backbone: nn.Module, out: Any, batch_size: int) -> None:
        """``out_channels`` is a list of positive ints and the outputs match it."""
        assert isinstance(out, (list, tuple)), f"a backbone returns a list, got {type(out)}"
        declared = getattr(backbone, "out_channels", None)
        assert isinstance(declared, (list, tuple)) and declared, f"out_channels {declared!r}"
        assert all(isinstance(c, int) and c > 0 for c in declared), declared
        assert len(out) == len(declared), (
            f"{len(out)} outputs but out_channels declares {len(declared)}: {declared}"
        )
        for i, (x, c) in enumerate(zip(out, declared, strict=True)):
            assert x.shape[0] == batch_size, f"output {i}: batch {x.shape[0]} != {batch_size}"
            if x.ndim == 3:
                assert x.shape[-1] * self.num_frames == c, (
                    f"output {i}: tokens of width {x.shape[-1]} x {self.num_frames} frames "
                    f"but out_channels declares {c}"
                )
            else:
                assert x.ndim == 4 and x.shape[1] == c, (
                    f"output {i}: shape {tuple(x.shape)} but out_channels declares {c}"
                )

    def test_forward_backward(self, component_name: str) -> None:
        """A non-square batch goes forward and backward; outputs match ``out_channels``."""
        backbone = self.build(component_name).train()
        out = backbone(self.make_input(backbone, self.batch_size))
        self.check_outputs(backbone, out, self.batch_size)
        sum(x.float().mean() for x in out).backward()
        assert_grads(backbone, component_name)

    def test_batch_of_one(self, component_name: str) -> None:
        """One image goes through in eval mode."""
        backbone = self.build(component_name).eval()
        with torch.no_grad():
            out = backbone(self.make_input(backbone, 1))
        self.check_outputs(backbone, out, 1)

    def test_save_load_round_trip(self, component_name: str, tmp_path: Path) -> None:
        """The state dict, saved and loaded strictly into a fresh build, gives the same output."""
        backbone = self.build(component_name)
        x = self.make_input(backbone, self.batch_size)
        assert_round_trip(backbone, lambda: self.build(component_name), lambda m: m(x),
                          tmp_path / "backbone.pt", component_name)


class _FeatureContract(ComponentContract):
    """Shared by necks and decoders: both are built on a channel list and fed features."""

    input_channels: ClassVar[Mapping[str, Sequence[int]]] = {}
    layouts: ClassVar[Mapping[str, str]] = {}
    default_input_channels: ClassVar[Sequence[int]] = (16, 16, 16, 16)
    default_layout: ClassVar[str] = "flat"

    def inputs_for(self, name: str, batch_size: int) -> tuple[list[int], list[torch.Tensor]]:
        """The channel list and random features ``name`` is tested on."""
        channels = list(self._lookup(self.input_channels, name) or self.default_input_channels)
        layout = self._lookup(self.layouts, name) or self.default_layout
        return channels, make_features(channels, layout, batch_size, self.image_size)

    def build(self, name: str, in_channels: list[int]) -> nn.Module:
        """Build the component ``name`` on ``in_channels`` with its tiny kwargs."""
        module: nn.Module = get_registry().build(
            self.kind, name, in_channels=in_channels, **self.component_kwargs(name)
        )
        return module

    def forward(self, module: nn.Module, features: list[torch.Tensor]) -> Any:
        """Run ``module`` on ``features`` (subclasses)."""
        raise NotImplementedError

    def _run(self, name: str, batch_size: int, train: bool) -> None:
        raise NotImplementedError

    def test_forward_backward(self, component_name: str) -> None:
        """Non-square features go forward and backward; outputs match ``out_channels``."""
        self._run(component_name, self.batch_size, train=True)

    def test_batch_of_one(self, component_name: str) -> None:
        """One image's features go through in eval mode."""
        with torch.no_grad():
            self._run(component_name, 1, train=False)

    def test_save_load_round_trip(self, component_name: str, tmp_path: Path) -> None:
        """The state dict, saved and loaded strictly into a fresh build, gives the same output."""
        channels, features = self.inputs_for(component_name, self.batch_size)
        assert_round_trip(
            self.build(component_name, channels), lambda: self.build(component_name, channels),
            lambda m: self.forward(m, features), tmp_path / f"{self.kind}.pt", component_name,
        )


class NeckContract(_FeatureContract):
    """Contract tests for the necks of a source.

    Extra class attributes: ``input_channels`` and ``layouts`` per component name (the
    incoming channel list, and ``pyramid``, ``flat`` or ``tokens``, see
    :func:`make_features`), with ``default_input_channels`` and ``default_layout``.
    """

    kind: ClassVar[str] = "neck"
    input_channels: ClassVar[Mapping[str, Sequence[int]]] = {}
    layouts: ClassVar[Mapping[str, str]] = {}
    default_input_channels: ClassVar[Sequence[int]] = (16, 16, 16, 16)
    default_layout: ClassVar[str] = "flat"

    def _run(self, name: str, batch_size: int, train: bool) -> None:
        channels, features = self.inputs_for(name, batch_size)
        neck = self.build(name, channels).train(train)
        out = self.forward(neck, features)
        declared = list(getattr(neck, "out_channels", None) or [])
        assert isinstance(out, list), f"a neck returns a list, got {type(out)}"
        assert len(out) == len(declared), f"{len(out)} outputs, out_channels {declared}"
        for i, (x, c) in enumerate(zip(out, declared, strict=True)):
            assert x.shape[0] == batch_size
            assert channels_of(x) == c, f"output {i}: {tuple(x.shape)}, declared {c}"
        if train:
            sum(x.float().mean() for x in out).backward()
            assert_grads(neck, name)
            assert any(f.grad is not None for f in features), "no gradient reached the inputs"

    def forward(self, module: nn.Module, features: list[torch.Tensor]) -> Any:
        """Run the neck on ``features``."""
        return module(list(features), image_size=self.image_size)


def _default_setups() -> dict[str, dict[str, Any]]:
    return {
        "cnn": {
            # timm's tiny test ResNet (5 levels at strides 2..32); timm:resnet18 works the
            # same way, about 30 times the parameters
            "backbone": "timm:test_resnet",
            "backbone_kwargs": {"in_chans": 6},
            "necks": [{"name": "geofm:select_indices", "indices": [1, 2, 3, 4]}],
        },
        "vit": {
            "backbone": lambda: TinyViT(in_chans=6, embed_dim=32, depth=4),
            "necks": [
                {"name": "geofm:reshape_tokens_to_image"},
                {"name": "geofm:learned_interpolate_to_pyramidal"},
            ],
        },
    }


class DecoderContract(_FeatureContract):
    """Contract tests for the decoders of a source.

    Decoders get a 4-level pyramid at strides 4, 8, 16, 32 (``default_input_channels``)
    unless ``input_channels`` / ``layouts`` say otherwise for a component. The
    whole-model test trains one step of every decoder for each task in ``tasks`` on each
    backbone set-up in ``setups`` (``timm:test_resnet`` with 6 bands and a ``TinyViT`` with
    necks, both giving that 4-level pyramid; a set-up is a dict of
    ``geofm:encoder_decoder`` arguments, with ``backbone`` a name or a callable
    returning a module; inputs have ``model_in_chans`` bands). ``model_kwargs`` adds
    factory arguments per decoder.
    """

    kind: ClassVar[str] = "decoder"
    input_channels: ClassVar[Mapping[str, Sequence[int]]] = {}
    layouts: ClassVar[Mapping[str, str]] = {}
    default_input_channels: ClassVar[Sequence[int]] = (8, 16, 24, 32)
    default_layout: ClassVar[str] = "pyramid"
    tasks: ClassVar[Sequence[str]] = ("segmentation", "regression")
    setups: ClassVar[Mapping[str, Mapping[str, Any]]] = _default_setups()
    model_kwargs: ClassVar[Mapping[str, Mapping[str, Any]]] = {}
    model_image_size: ClassVar[tuple[int, int]] = (64, 64)
    model_in_chans: ClassVar[int] = 6
    num_classes: ClassVar[int] = 3

    def pytest_generate_tests(self, metafunc: pytest.Metafunc) -> None:
        """Parametrize components, and set-ups x tasks for the whole-model test."""
        super().pytest_generate_tests(metafunc)
        if "setup_name" in metafunc.fixturenames:
            metafunc.parametrize("setup_name", list(self.setups))
        if "task" in metafunc.fixturenames:
            metafunc.parametrize("task", list(self.tasks))

    def _run(self, name: str, batch_size: int, train: bool) -> None:
        channels, features = self.inputs_for(name, batch_size)
        decoder = self.build(name, channels).train(train)
        declared = decoder.out_channels
        assert isinstance(declared, int) and declared > 0, f"out_channels {declared!r}"
        out = self.forward(decoder, features)
        assert isinstance(out, torch.Tensor) and out.ndim == 4, "a decoder returns (B, C, h, w)"
        assert out.shape[0] == batch_size and out.shape[1] == declared, (
            f"output {tuple(out.shape)} but out_channels declares {declared}"
        )
        if train:
            backward(out.float().mean())
            assert_grads(decoder, name)

    def forward(self, module: nn.Module, features: list[torch.Tensor]) -> Any:
        """Run the decoder on ``features``."""
        return module(list(features))

    def test_trains_in_model(self, component_name: str, setup_name: str, task: str) -> None:
        """A whole model with this decoder trains one step (forward, loss, backward)."""
        setup = dict(self.setups[setup_name])
        if callable(setup["backbone"]):
            setup["backbone"] = setup["backbone"]()
        factory = get_registry().build("model_factory", "geofm:encoder_decoder")
        model = factory.build_model(
            task, decoder=component_name,
            num_classes=self.num_classes if task != "regression" else None,
            decoder_kwargs=self.component_kwargs(component_name),
            **setup, **(self._lookup(self.model_kwargs, component_name) or {}),
        )
        image = torch.randn(2, self.model_in_chans, *self.model_image_size)
        train_step(model, task, image, self.num_classes)
