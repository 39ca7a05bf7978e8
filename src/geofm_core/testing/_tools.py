"""What the contracts share: a tiny ViT, random features, one training step, round trips.

The public names are re-exported by :mod:`geofm_core.testing` for a plugin's own tests.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from geofm_core.models.contracts import ModelOutput

__all__ = [
    "TinyViT",
    "assert_grads",
    "assert_round_trip",
    "assert_same_output",
    "backward",
    "channels_of",
    "check_model_output",
    "make_features",
    "save_and_load",
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

    Checks that the model returns a :class:`~geofm_core.models.contracts.ModelOutput`
    whose output has the shape of ``task`` (``segmentation``, ``regression``,
    ``classification`` or ``multilabel``) and that gradients reach the parameters.
    """
    model.train()
    optimizer = torch.optim.SGD([p for p in model.parameters() if p.requires_grad], lr=1e-3)
    y = check_model_output(model(image), task, image, num_classes)
    batch, height, width = image.shape[0], image.shape[-2], image.shape[-1]
    if task in ("segmentation", "change_detection"):
        loss = F.cross_entropy(y, torch.randint(0, num_classes, (batch, height, width)))
    elif task == "regression":
        loss = F.mse_loss(y, torch.randn(batch, height, width))
    elif task == "classification":
        loss = F.cross_entropy(y, torch.randint(0, num_classes, (batch,)))
    else:
        loss = F.binary_cross_entropy_with_logits(
            y, torch.randint(0, 2, (batch, num_classes)).float()
        )
    optimizer.zero_grad()
    backward(loss)
    assert torch.isfinite(loss), f"non-finite loss {loss.item()}"
    grads = [p.grad for p in model.parameters() if p.requires_grad]
    assert any(g is not None and bool(g.abs().sum() > 0) for g in grads), "no gradient"
    optimizer.step()
    return float(loss.item())


def check_model_output(out: Any, task: str, image: torch.Tensor, num_classes: int) -> torch.Tensor:
    """The main output of a model's ``out`` for ``image``, checked to be ``task``'s shape.

    Segmentation and change detection (``image`` (B, 2, C, H, W)): (B, num_classes, H, W);
    regression: (B, H, W); classification and
    multilabel: (B, num_classes). The model must return a ``ModelOutput``.
    """
    assert isinstance(out, ModelOutput), f"a model returns a ModelOutput, got {type(out)}"
    batch, height, width = image.shape[0], image.shape[-2], image.shape[-1]
    shapes = {
        "segmentation": (batch, num_classes, height, width),
        "change_detection": (batch, num_classes, height, width),
        "regression": (batch, height, width),
        "classification": (batch, num_classes),
        "multilabel": (batch, num_classes),
    }
    if task not in shapes:
        raise ValueError(f"unknown task {task!r}: {', '.join(shapes)}")
    y = out.output
    assert tuple(y.shape) == shapes[task], f"{task} output {tuple(y.shape)}, not {shapes[task]}"
    return y


def backward(value: torch.Tensor) -> None:
    """``value.backward()``, typed: torch leaves ``Tensor.backward`` unannotated."""
    value.backward()  # type: ignore[no-untyped-call]  # unannotated in torch


def assert_grads(module: nn.Module, what: str) -> None:
    """Some trainable parameter of ``module`` got a gradient, and every gradient is finite."""
    params = [p for p in module.parameters() if p.requires_grad]
    if not params:
        return
    assert any(p.grad is not None for p in params), f"{what}: no parameter received a gradient"
    for name, p in module.named_parameters():
        if p.grad is not None:
            assert torch.isfinite(p.grad).all(), f"{what}: non-finite gradient in {name}"


def channels_of(x: torch.Tensor) -> int:
    """The channel count of a feature: dim 1 of a map, the last dim of a token sequence."""
    return int(x.shape[-1] if x.ndim == 3 else x.shape[1])


def save_and_load(obj: Any, path: Path) -> Any:
    """Write ``obj`` to ``path`` with ``torch.save`` and read it back without pickle.

    ``weights_only=True`` is how a careful user loads a checkpoint, so anything that
    only loads with arbitrary unpickling fails here.
    """
    torch.save(obj, path)
    return torch.load(path, weights_only=True)


def assert_same_output(expected: Any, actual: Any, what: str) -> None:
    """Two outputs are the same: tensors, ``ModelOutput``, lists, tuples and dicts of them."""
    if isinstance(expected, torch.Tensor):
        assert isinstance(actual, torch.Tensor), f"{what}: {type(actual)} instead of a tensor"
        torch.testing.assert_close(actual, expected, msg=lambda m: f"{what}: {m}")
    elif isinstance(expected, ModelOutput):
        assert isinstance(actual, ModelOutput), f"{what}: {type(actual)}, not a ModelOutput"
        assert_same_output(expected.output, actual.output, f"{what} output")
        assert_same_output(expected.auxiliary_heads, actual.auxiliary_heads,
                           f"{what} auxiliary_heads")
    elif isinstance(expected, Mapping):
        assert isinstance(actual, Mapping) and set(actual) == set(expected), (
            f"{what}: keys {sorted(actual) if isinstance(actual, Mapping) else actual!r}, "
            f"expected {sorted(expected)}"
        )
        for key in expected:
            assert_same_output(expected[key], actual[key], f"{what}[{key!r}]")
    elif isinstance(expected, (list, tuple)):
        assert isinstance(actual, (list, tuple)) and len(actual) == len(expected), (
            f"{what}: {type(actual).__name__} of {len(actual)}, expected {len(expected)}"
        )
        for i, (e, a) in enumerate(zip(expected, actual, strict=True)):
            assert_same_output(e, a, f"{what}[{i}]")
    else:
        assert actual == expected, f"{what}: {actual!r} != {expected!r}"


def assert_round_trip(
    module: nn.Module,
    rebuild: Callable[[], nn.Module],
    run: Callable[[nn.Module], Any],
    path: Path,
    what: str,
) -> None:
    """Save ``module``'s state dict to ``path``, load it strictly into ``rebuild()``, compare.

    One forward in train mode first (without gradients) moves running statistics such
    as batch norm's away from their initial values, so the round trip covers buffers as
    well as parameters. Both modules then run ``run`` in eval mode on the same input and
    must give the same output.
    """
    module.train()
    with torch.no_grad():
        run(module)
    module.eval()
    saved = module.state_dict()
    state = save_and_load(saved, path)
    assert set(state) == set(saved), f"{what}: the saved state dict lost keys"
    fresh = rebuild()
    fresh.load_state_dict(state, strict=True)
    fresh.eval()
    with torch.no_grad():
        expected, actual = run(module), run(fresh)
    assert_same_output(expected, actual, f"{what} after a save/load round trip")
