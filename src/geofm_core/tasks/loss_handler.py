"""The loss handler: a main loss (one or several weighted losses) plus weighted auxiliary losses.

Losses are looked up by registry name (kind ``loss``). The main criterion is applied to
the model's main output and, scaled by each head's weight, to every auxiliary head's
output. Every part is returned separately so that the task can log it.
"""

from __future__ import annotations

import inspect
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import torch
from torch import nn

from geofm_core.errors import ConfigurationError
from geofm_core.models.contracts import ModelOutput
from geofm_core.registry import get_registry
from geofm_core.signatures import check_arguments

__all__ = ["LossHandler", "build_loss", "normalize_loss_spec"]

LossSpec = str | Mapping[str, float]


def normalize_loss_spec(loss: LossSpec) -> dict[str, float]:
    """Turn ``"ce"`` or ``{"ce": 1.0, "dice": 0.5}`` into a name -> weight dict."""
    if isinstance(loss, str):
        return {loss: 1.0}
    if isinstance(loss, Mapping) and loss:
        out = {}
        for name, weight in loss.items():
            if not isinstance(name, str) or isinstance(weight, bool) or not isinstance(
                weight, int | float
            ):
                raise ConfigurationError(
                    f"loss must map loss names to numeric weights, got {name!r}: {weight!r}; "
                    "e.g. loss: {ce: 1.0, dice: 0.5}"
                )
            out[name] = float(weight)
        return out
    raise ConfigurationError(
        f"loss must be a loss name (e.g. 'ce') or a mapping of names to weights, got {loss!r}"
    )


def _accepts(factory: Any, name: str) -> bool:
    try:
        params = inspect.signature(factory).parameters
    except (TypeError, ValueError):
        return False
    return name in params or any(p.kind is p.VAR_KEYWORD for p in params.values())


def build_loss(
    name: str,
    *,
    ignore_index: int | None = None,
    class_weights: Sequence[float] | None = None,
    kwargs: Mapping[str, Any] | None = None,
) -> nn.Module:
    """Build the loss ``name``, passing ``ignore_index``/``class_weights`` when it takes them.

    Raises:
        ConfigurationError: ``class_weights`` or ``ignore_index`` were given but the loss
            does not take them.
        ComponentArgumentError: ``kwargs`` do not fit the loss's signature.
        UnknownComponentError: No installed plugin provides ``name``.
    """
    spec = get_registry().get("loss", name)
    factory = spec.load()
    args = dict(kwargs or {})
    if ignore_index is not None:
        if not _accepts(factory, "ignore_index"):
            raise ConfigurationError(
                f"ignore_index is {ignore_index} but loss {spec.qualified_name!r} cannot leave "
                "pixels out, so it would train on them; pick a loss that takes ignore_index or "
                "remove ignore_index"
            )
        args.setdefault("ignore_index", ignore_index)
    if class_weights is not None:
        if not _accepts(factory, "class_weights"):
            raise ConfigurationError(
                f"class_weights were given but loss {spec.qualified_name!r} does not take "
                "class weights; remove class_weights or pick a class loss (ce, focal, dice, ...)"
            )
        args.setdefault("class_weights", list(class_weights))
    check_arguments(factory, args, f"loss {spec.qualified_name!r}")
    module = factory(**args)
    if not isinstance(module, nn.Module) and not callable(module):
        raise ConfigurationError(f"loss {spec.qualified_name!r} did not build a callable module")
    return module if isinstance(module, nn.Module) else _Wrapped(module)


class _Wrapped(nn.Module):
    def __init__(self, fn: Any) -> None:
        super().__init__()
        self.fn = fn

    def forward(self, prediction: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return self.fn(prediction, target)  # type: ignore[no-any-return]


class LossHandler(nn.Module):
    """Main loss (weighted sum of named losses) plus weighted auxiliary-head losses.

    Args:
        losses: Loss name -> built loss module.
        weights: Loss name -> weight in the main criterion.
        aux_weights: Auxiliary head name -> weight of that head's loss.
    """

    def __init__(
        self,
        losses: Mapping[str, nn.Module],
        weights: Mapping[str, float],
        aux_weights: Mapping[str, float] | None = None,
    ) -> None:
        super().__init__()
        self.names = list(losses)
        self.losses = nn.ModuleList(losses[n] for n in self.names)
        self.weights = [float(weights[n]) for n in self.names]
        self.aux_weights = {k: float(v) for k, v in (aux_weights or {}).items()}
        self._checked = False

    @classmethod
    def from_config(
        cls,
        loss: LossSpec,
        *,
        aux_loss: Mapping[str, float] | None = None,
        ignore_index: int | None = None,
        class_weights: Sequence[float] | None = None,
        loss_args: Mapping[str, Mapping[str, Any]] | None = None,
    ) -> LossHandler:
        """Build the handler from a task's ``loss``, ``aux_loss`` and ``loss_args`` settings."""
        weights = normalize_loss_spec(loss)
        extra = set(loss_args or {}) - set(weights)
        if extra:
            raise ConfigurationError(
                f"loss_args has settings for {sorted(extra)} which are not in loss "
                f"({sorted(weights)}); add them to loss or remove them from loss_args"
            )
        losses = {
            name: build_loss(
                name, ignore_index=ignore_index, class_weights=class_weights,
                kwargs=(loss_args or {}).get(name),
            )
            for name in weights
        }
        for head, weight in (aux_loss or {}).items():
            if isinstance(weight, bool) or not isinstance(weight, int | float):
                raise ConfigurationError(
                    f"aux_loss must map auxiliary head names to numeric weights, got "
                    f"{head!r}: {weight!r}"
                )
        return cls(losses, weights, aux_loss)

    def check_heads(self, head_names: Iterable[str]) -> None:
        """Raise unless the auxiliary loss names and the model's auxiliary heads match exactly.

        Raises:
            ConfigurationError: Naming both sides.
        """
        heads = sorted(head_names)
        weighted = sorted(self.aux_weights)
        no_head = [n for n in weighted if n not in heads]
        no_weight = [n for n in heads if n not in weighted]
        if no_head or no_weight:
            parts = []
            if no_head:
                parts.append(f"aux_loss names {no_head} match no auxiliary head of the model")
            if no_weight:
                parts.append(f"auxiliary heads {no_weight} have no weight in aux_loss")
            raise ConfigurationError(
                f"{'; '.join(parts)}. The model's auxiliary heads are {heads or 'none'}, "
                f"aux_loss has {weighted or 'none'}; give aux_loss exactly one weight per "
                "auxiliary head (head name -> weight)"
            )
        self._checked = True

    def main_loss(self, prediction: torch.Tensor, target: torch.Tensor) -> dict[str, torch.Tensor]:
        """The weighted main criterion as ``{"loss": total, name: part...}``."""
        parts = {
            n: loss(prediction, target) for n, loss in zip(self.names, self.losses, strict=True)
        }
        total = sum((w * parts[n] for n, w in zip(self.names, self.weights, strict=True)),
                    start=torch.zeros((), device=prediction.device))
        return {"loss": total, **parts} if len(parts) > 1 else {"loss": total}

    def forward(
        self, output: ModelOutput, target: torch.Tensor
    ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """Total loss and its parts: ``loss`` (main), ``loss_<name>``, ``aux_<head>_loss``."""
        if not self._checked:
            self.check_heads(output.auxiliary_heads)
        main = self.main_loss(output.output, target)
        logged = {("loss_main" if k == "loss" else f"loss_{k}"): v for k, v in main.items()}
        total = main["loss"]
        for head, weight in self.aux_weights.items():
            aux = self.main_loss(output.auxiliary_heads[head], target)["loss"]
            logged[f"aux_{head}_loss"] = aux
            total = total + weight * aux
        if not self.aux_weights and len(main) == 1:
            logged.pop("loss_main")
        logged["loss"] = total
        return total, logged
