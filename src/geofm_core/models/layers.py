"""Transformer layers the ViT-style backbones of several plugins share.

Each plugin writes its attention and embeddings after its reference implementation (their
key names and masking differ); the feed-forward layer and stochastic depth are the same
everywhere, so they live here once. Parameter names (``fc1``, ``fc2``) are those of the
published checkpoints, which all use timm's layout.
"""

from __future__ import annotations

import torch
from torch import nn

__all__ = ["DropPath", "Mlp"]


class DropPath(nn.Module):
    """Stochastic depth: drop a sample's whole residual branch with probability ``p``.

    Kept samples are scaled by ``1/(1-p)`` in training; identity in evaluation.

    Args:
        p: The drop probability.
    """

    def __init__(self, p: float = 0.0) -> None:
        super().__init__()
        self.p = p

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Drop or scale the branch ``x`` per sample (the first axis)."""
        if self.p == 0.0 or not self.training:
            return x
        keep = 1.0 - self.p
        mask = x.new_empty((x.shape[0],) + (1,) * (x.ndim - 1)).bernoulli_(keep)
        return x * mask / keep

    def extra_repr(self) -> str:
        """Show the drop probability in the module's repr."""
        return f"p={self.p}"


class Mlp(nn.Module):
    """The transformer feed-forward layer: ``fc1``, GELU, ``fc2``, then dropout.

    Args:
        dim: Token width (input and output).
        hidden: Hidden width.
        bias: Whether the linear layers have biases.
        drop: Dropout after ``fc2``.
    """

    def __init__(self, dim: int, hidden: int, bias: bool = True, drop: float = 0.0) -> None:
        super().__init__()
        self.fc1 = nn.Linear(dim, hidden, bias=bias)
        self.act = nn.GELU()
        self.fc2 = nn.Linear(hidden, dim, bias=bias)
        self.drop = nn.Dropout(drop)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Apply ``fc1``, GELU, ``fc2`` and dropout to the last axis."""
        out: torch.Tensor = self.drop(self.fc2(self.act(self.fc1(x))))
        return out
