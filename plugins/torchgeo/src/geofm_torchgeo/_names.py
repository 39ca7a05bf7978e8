"""How component names are spelt from model and weight-set names (plain text, no torch)."""

from __future__ import annotations

__all__ = ["weighted_name"]


def weighted_name(model: str, weights: str) -> str:
    """The component name of ``model`` with the weight set ``weights`` bound."""
    return f"{model}_{weights.lower()}"
