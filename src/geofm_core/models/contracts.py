"""The model contracts every geofm task relies on, and plugins may implement.

* A **backbone** is an ``nn.Module`` whose ``forward(x, **metadata)`` returns a list of
  feature maps (B, C, H, W) or token sequences (B, N, C), and which declares
  ``out_channels: list[int]`` (one entry per returned item). It may declare
  ``input_multiple: int`` (inputs are padded to a multiple of it) and
  ``prepare_features_for_image_model(features)``.
* A **neck** is built as ``neck(in_channels: list[int], **kwargs)``, maps a feature list
  to a feature list in ``forward(features, *, image_size)`` (``image_size``: the padded
  input's H, W) and declares ``out_channels: list[int]``.
* A **decoder** is built as ``decoder(in_channels: list[int], **kwargs)``, maps a
  feature list to one feature map and declares ``out_channels: int``.
* A neck or decoder that needs an exact number of input levels may declare the class
  attribute ``required_levels: int``; factories check it at build time and name both
  components when it does not fit. Other misfits are raised from the constructor as
  ``ComponentArgumentError`` (or ``ValueError``), which the factory re-raises naming the
  component before it.
* A **head** is built as ``head(in_channels: int, num_classes: int, **kwargs)``.
* A **model factory** has ``build_model(task, **kwargs)`` returning a :class:`Model`; it
  may declare ``tasks: tuple[str, ...]``, the tasks it builds (the contract tests of
  :mod:`geofm_core.testing` build each).

:class:`Backbone`, :class:`Neck`, :class:`Decoder` and :class:`Head` spell these out as
typing Protocols (runtime-checkable); the model factory checks built components with
them, so a module missing ``out_channels`` is named at build time, not at the first batch.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

import torch

__all__ = ["Backbone", "Decoder", "Head", "Model", "ModelFactory", "ModelOutput", "Neck"]


@dataclass
class ModelOutput:
    """What a model returns: the main output and the outputs of its auxiliary heads."""

    output: torch.Tensor
    auxiliary_heads: dict[str, torch.Tensor] = field(default_factory=dict)


@runtime_checkable
class Model(Protocol):
    """A model a geofm task can train: any ``nn.Module`` honouring this protocol."""

    def freeze_encoder(self) -> None:
        """Stop gradients to the backbone."""

    def freeze_decoder(self) -> None:
        """Stop gradients to the necks and decoder."""

    def forward(self, x: torch.Tensor, **metadata: Any) -> ModelOutput:
        """Run the model; metadata (``temporal_coords``, ``location_coords``) is optional."""


@runtime_checkable
class ModelFactory(Protocol):
    """Builds a :class:`Model` for a task from component names and their arguments."""

    def build_model(self, task: str, **kwargs: Any) -> Model:
        """Build the model for ``task`` (segmentation, regression, classification, ...)."""


@runtime_checkable
class Backbone(Protocol):
    """What a backbone module provides (checked when a model is built)."""

    #: Channels of each returned feature, in order.
    out_channels: Sequence[int]

    def forward(self, x: torch.Tensor, **metadata: Any) -> list[torch.Tensor]:
        """Feature maps (B, C, H, W) or token sequences (B, N, C) of the input."""


@runtime_checkable
class Neck(Protocol):
    """What a neck module provides, once built as ``neck(in_channels, **kwargs)``."""

    #: Channels of each returned feature, in order.
    out_channels: Sequence[int]

    def forward(self, features: list[torch.Tensor], *,
                image_size: tuple[int, int]) -> list[torch.Tensor]:
        """Transform the feature list; ``image_size`` is the padded input's (H, W)."""


@runtime_checkable
class Decoder(Protocol):
    """What a decoder module provides, once built as ``decoder(in_channels, **kwargs)``."""

    #: Channels of the one feature map it returns.
    out_channels: int

    def forward(self, features: list[torch.Tensor]) -> torch.Tensor:
        """Decode the feature list into one feature map (B, out_channels, H, W)."""


@runtime_checkable
class Head(Protocol):
    """What a head module provides, once built as ``head(in_channels, num_classes, **kwargs)``."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Class scores or values from the decoder's output."""
