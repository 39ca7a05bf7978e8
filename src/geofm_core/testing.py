"""Contract tests for plugin components: subclass them and every registered component is tested.

A plugin's test module subclasses :class:`BackboneContract`, :class:`NeckContract` or
:class:`DecoderContract`, sets ``source`` to its plugin source and gives tiny keyword
arguments where the defaults would be slow. The contract parametrizes its tests over
``get_registry().list(kind, f"{source}:*")``, so a component is tested by being
registered, without editing the tests::

    # plugins/acme/tests/test_contracts.py
    from typing import ClassVar

    from geofm_core.testing import BackboneContract, DecoderContract

    class TestAcmeBackbones(BackboneContract):
        source = "acme"
        in_chans = 4                                     # bands of the test input
        default_kwargs: ClassVar[dict] = {"in_chans": 4}  # for every backbone
        kwargs: ClassVar[dict] = {"acme:big_vit": {"in_chans": 4, "depth": 1}}

    class TestAcmeDecoders(DecoderContract):
        source = "acme"
        kwargs: ClassVar[dict] = {"fancy": {"channels": 16}}   # bare or qualified names
        skip: ClassVar[dict] = {"acme:needs_gpu": "needs CUDA"}  # shown as skips

What the contracts check, at a tiny size (64 x 96 pixels: non-square on purpose):
forward and backward run and gradients reach the parameters; the declared channels
(``out_channels``) match the real outputs; a batch of one works (in eval mode, since
batch norm cannot train on one value per channel); and :class:`DecoderContract` trains
one step of a whole model (segmentation and regression) on a CNN and a ViT-style
backbone built by ``geofm:encoder_decoder``.

This module imports pytest and torch; it is meant for test suites only.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any, ClassVar

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from geofm_core.registry import get_registry

__all__ = [
    "BackboneContract",
    "ComponentContract",
    "DecoderContract",
    "NeckContract",
    "TinyViT",
    "make_features",
    "train_step",
]


class TinyViT(nn.Module):
    """A very small ViT-style backbone for tests: token sequences with a CLS token.

    Returns the tokens (B, 1 + h*w, embed_dim) after each block listed in
    ``out_indices``; ``out_channels`` is ``embed_dim`` per output and ``input_multiple``
    the patch size, like a real ViT backbone (e.g. Prithvi) under the geofm contract.

    Args:
        in_chans: Number of input bands.
        embed_dim: Token width.
        depth: Number of transformer blocks.
        num_heads: Attention heads per block.
        patch_size: Patch size in pixels.
        out_indices: Which blocks' outputs to return (default: every block).
    """

    def __init__(
        self,
        in_chans: int = 6,
        embed_dim: int = 32,
        depth: int = 4,
        num_heads: int = 2,
        patch_size: int = 16,
        out_indices: Sequence[int] | None = None,
    ) -> None:
        super().__init__()
        self.patch_embed = nn.Conv2d(in_chans, embed_dim, patch_size, stride=patch_size)
        self.cls_token = nn.Parameter(torch.zeros(1, 1, embed_dim))
        self.blocks = nn.ModuleList(
            nn.TransformerEncoderLayer(embed_dim, num_heads, dim_feedforward=2 * embed_dim,
                                       dropout=0.0, batch_first=True, norm_first=True)
            for _ in range(depth)
        )
        self.out_indices = list(range(depth)) if out_indices is None else list(out_indices)
        #: geofm backbone contract: channels of each output once reshaped to an image.
        self.out_channels = [embed_dim] * len(self.out_indices)
        #: geofm backbone contract: inputs are padded to a multiple of the patch size.
        self.input_multiple = patch_size

    def forward(self, x: torch.Tensor, **metadata: Any) -> list[torch.Tensor]:
        """Token sequences with a leading CLS token; metadata is ignored."""
        tokens = self.patch_embed(x).flatten(2).transpose(1, 2)
        tokens = torch.cat([self.cls_token.expand(tokens.shape[0], -1, -1), tokens], dim=1)
        out = []
        for i, block in enumerate(self.blocks):
            tokens = block(tokens)
            if i in self.out_indices:
                out.append(tokens)
        return out


def make_features(
    channels: Sequence[int],
    layout: str,
    batch_size: int,
    image_size: tuple[int, int],
) -> list[torch.Tensor]:
    """Random features like a backbone's, requiring grad.

    Layouts: ``pyramid`` (maps at strides 4, 8, 16, 32, ... like a CNN), ``flat`` (all
    maps at stride 16, like a ViT reshaped), ``tokens`` (ViT token sequences at stride
    16 with a CLS token: (B, 1 + h*w, C)).
    """
    height, width = image_size
    features = []
    for i, c in enumerate(channels):
        if layout == "pyramid":
            stride = 4 * 2**i
            shape: tuple[int, ...] = (batch_size, c, math.ceil(height / stride),
                                      math.ceil(width / stride))
        elif layout == "flat":
            shape = (batch_size, c, height // 16, width // 16)
        elif layout == "tokens":
            shape = (batch_size, 1 + (height // 16) * (width // 16), c)
        else:
            raise ValueError(f"unknown feature layout {layout!r}: pyramid, flat or tokens")
        features.append(torch.randn(*shape, requires_grad=True))
    return features


def train_step(model: nn.Module, task: str, image: torch.Tensor, num_classes: int) -> float:
    """One optimisation step of ``model`` (forward, loss, backward, SGD step); the loss.

    Checks the output shape of ``task`` and that gradients reach the parameters.
    """
    model.train()
    optimizer = torch.optim.SGD([p for p in model.parameters() if p.requires_grad], lr=1e-3)
    out = model(image)
    batch, height, width = image.shape[0], image.shape[-2], image.shape[-1]
    y = out.output
    if task == "segmentation":
        assert tuple(y.shape) == (batch, num_classes, height, width), tuple(y.shape)
        target = torch.randint(0, num_classes, (batch, height, width))
        loss = F.cross_entropy(y, target)
    elif task == "regression":
        assert tuple(y.shape) == (batch, height, width), tuple(y.shape)
        loss = F.mse_loss(y, torch.randn(batch, height, width))
    elif task == "classification":
        assert tuple(y.shape) == (batch, num_classes), tuple(y.shape)
        loss = F.cross_entropy(y, torch.randint(0, num_classes, (batch,)))
    elif task == "multilabel":
        assert tuple(y.shape) == (batch, num_classes), tuple(y.shape)
        loss = F.binary_cross_entropy_with_logits(
            y, torch.randint(0, 2, (batch, num_classes)).float()
        )
    else:
        raise ValueError(f"unknown task {task!r}")
    optimizer.zero_grad()
    loss.backward()  # type: ignore[no-untyped-call]
    assert torch.isfinite(loss), f"non-finite loss {loss.item()}"
    grads = [p.grad for p in model.parameters() if p.requires_grad]
    assert any(g is not None and bool(g.abs().sum() > 0) for g in grads), "no gradient"
    optimizer.step()
    return float(loss.item())


def _assert_grads(module: nn.Module, what: str) -> None:
    params = [p for p in module.parameters() if p.requires_grad]
    if not params:
        return
    assert any(p.grad is not None for p in params), f"{what}: no parameter received a gradient"
    for name, p in module.named_parameters():
        if p.grad is not None:
            assert torch.isfinite(p.grad).all(), f"{what}: non-finite gradient in {name}"


def _channels_of(x: torch.Tensor) -> int:
    """The channel count of a feature: dim 1 of a map, the last dim of a token sequence."""
    return int(x.shape[-1] if x.ndim == 3 else x.shape[1])


class ComponentContract:
    """What the contracts share: parametrization over a source's listing, per-name kwargs.

    Class attributes a subclass sets:

    * ``source``: the plugin source whose components are tested (required).
    * ``kwargs``: tiny keyword arguments per component, keyed by bare or qualified name.
    * ``default_kwargs``: keyword arguments for every component (``kwargs`` wins).
    * ``skip``: components to skip, name → reason (reported as pytest skips).
    * ``image_size``: the (padded) input size the features correspond to.
    """

    kind: ClassVar[str] = ""
    source: ClassVar[str] = ""
    kwargs: ClassVar[Mapping[str, Mapping[str, Any]]] = {}
    default_kwargs: ClassVar[Mapping[str, Any]] = {}
    skip: ClassVar[Mapping[str, str]] = {}
    image_size: ClassVar[tuple[int, int]] = (64, 96)
    batch_size: ClassVar[int] = 2

    @classmethod
    def component_names(cls) -> list[str]:
        """Qualified names of every component of ``kind`` the source registers."""
        if not cls.source:
            raise TypeError(f"{cls.__name__} must set `source` to the plugin source to test")
        return [s.qualified_name for s in get_registry().list(cls.kind, f"{cls.source}:*")]

    def pytest_generate_tests(self, metafunc: pytest.Metafunc) -> None:
        """Parametrize ``component_name`` over the source's components (pytest hook)."""
        if "component_name" not in metafunc.fixturenames:
            return
        params = []
        for name in self.component_names():
            reason = self._lookup(self.skip, name)
            marks = [pytest.mark.skip(reason=reason)] if reason else []
            params.append(pytest.param(name, id=name, marks=marks))
        metafunc.parametrize("component_name", params)

    @staticmethod
    def _lookup(table: Mapping[str, Any], name: str) -> Any:
        if name in table:
            return table[name]
        return table.get(name.partition(":")[2])

    def component_kwargs(self, name: str) -> dict[str, Any]:
        """The keyword arguments used to build ``name``."""
        return {**self.default_kwargs, **(self._lookup(self.kwargs, name) or {})}

    def test_source_registers_components(self) -> None:
        """The source registers at least one component of this kind."""
        assert self.component_names(), (
            f"source {self.source!r} registers no {self.kind}; is the plugin installed?"
        )


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
        _assert_grads(backbone, component_name)

    def test_batch_of_one(self, component_name: str) -> None:
        """One image goes through in eval mode."""
        backbone = self.build(component_name).eval()
        with torch.no_grad():
            out = backbone(self.make_input(backbone, 1))
        self.check_outputs(backbone, out, 1)


class NeckContract(ComponentContract):
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

    def inputs_for(self, name: str, batch_size: int) -> tuple[list[int], list[torch.Tensor]]:
        """The channel list and random features ``name`` is tested on."""
        channels = list(self._lookup(self.input_channels, name) or self.default_input_channels)
        layout = self._lookup(self.layouts, name) or self.default_layout
        return channels, make_features(channels, layout, batch_size, self.image_size)

    def build(self, name: str, in_channels: list[int]) -> nn.Module:
        """Build the neck ``name`` on ``in_channels`` with its tiny kwargs."""
        module: nn.Module = get_registry().build(
            "neck", name, in_channels=in_channels, **self.component_kwargs(name)
        )
        return module

    def _run(self, name: str, batch_size: int, train: bool) -> None:
        channels, features = self.inputs_for(name, batch_size)
        neck = self.build(name, channels).train(train)
        out = neck(list(features), image_size=self.image_size)
        declared = list(getattr(neck, "out_channels", None) or [])
        assert isinstance(out, list), f"a neck returns a list, got {type(out)}"
        assert len(out) == len(declared), f"{len(out)} outputs, out_channels {declared}"
        for i, (x, c) in enumerate(zip(out, declared, strict=True)):
            assert x.shape[0] == batch_size
            assert _channels_of(x) == c, f"output {i}: {tuple(x.shape)}, declared {c}"
        if train:
            sum(x.float().mean() for x in out).backward()
            _assert_grads(neck, name)
            assert any(f.grad is not None for f in features), "no gradient reached the inputs"

    def test_forward_backward(self, component_name: str) -> None:
        """Features go forward and backward; outputs match ``out_channels``."""
        self._run(component_name, self.batch_size, train=True)

    def test_batch_of_one(self, component_name: str) -> None:
        """One image's features go through in eval mode."""
        with torch.no_grad():
            self._run(component_name, 1, train=False)


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


class DecoderContract(ComponentContract):
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

    def inputs_for(self, name: str, batch_size: int) -> tuple[list[int], list[torch.Tensor]]:
        """The channel list and random features ``name`` is tested on."""
        channels = list(self._lookup(self.input_channels, name) or self.default_input_channels)
        layout = self._lookup(self.layouts, name) or self.default_layout
        return channels, make_features(channels, layout, batch_size, self.image_size)

    def build(self, name: str, in_channels: list[int]) -> nn.Module:
        """Build the decoder ``name`` on ``in_channels`` with its tiny kwargs."""
        module: nn.Module = get_registry().build(
            "decoder", name, in_channels=in_channels, **self.component_kwargs(name)
        )
        return module

    def _run(self, name: str, batch_size: int, train: bool) -> None:
        channels, features = self.inputs_for(name, batch_size)
        decoder = self.build(name, channels).train(train)
        declared = decoder.out_channels
        assert isinstance(declared, int) and declared > 0, f"out_channels {declared!r}"
        out = decoder(list(features))
        assert isinstance(out, torch.Tensor) and out.ndim == 4, "a decoder returns (B, C, h, w)"
        assert out.shape[0] == batch_size and out.shape[1] == declared, (
            f"output {tuple(out.shape)} but out_channels declares {declared}"
        )
        if train:
            out.float().mean().backward()  # type: ignore[no-untyped-call]
            _assert_grads(decoder, name)

    def test_forward_backward(self, component_name: str) -> None:
        """Non-square features go forward and backward; the output matches ``out_channels``."""
        self._run(component_name, self.batch_size, train=True)

    def test_batch_of_one(self, component_name: str) -> None:
        """One image's features go through in eval mode."""
        with torch.no_grad():
            self._run(component_name, 1, train=False)

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
