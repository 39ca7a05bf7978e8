"""``LossContract``: losses called as ``loss(prediction, target)`` on a task's outputs."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any, ClassVar

import pytest
import torch
from torch import nn

from geofm_core.registry import get_registry
from geofm_core.signatures import accepted_arguments
from geofm_core.testing._base import ComponentContract
from geofm_core.testing._tools import assert_grads, assert_same_output, backward, save_and_load

__all__ = ["LossContract"]

Loss = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


class LossContract(ComponentContract):
    """Contract tests for the losses of a source.

    Each loss is tested on the outputs of its tasks (``tasks`` per component name, with
    ``default_tasks``): ``segmentation`` gives logits (B, C, H, W) and class targets
    (B, H, W); ``classification`` logits (B, C) and targets (B,); ``multilabel`` logits
    (B, C) and 0/1 float targets (B, C); ``regression`` predictions and float targets
    (B, H, W). ``C`` is ``num_classes`` and (H, W) ``image_size``. A loss that takes
    ``ignore_index`` is also built with ``ignore_index`` (the class attribute) and must
    leave out the targets equal to it.
    """

    kind: ClassVar[str] = "loss"
    tasks: ClassVar[Mapping[str, Sequence[str]]] = {}
    default_tasks: ClassVar[Sequence[str]] = ("segmentation",)
    num_classes: ClassVar[int] = 3
    ignore_index: ClassVar[int] = 255
    image_size: ClassVar[tuple[int, int]] = (8, 12)

    def tasks_of(self, name: str) -> list[str]:
        """The tasks whose outputs ``name`` is tested on."""
        return list(self._lookup(self.tasks, name) or self.default_tasks)

    def pytest_generate_tests(self, metafunc: pytest.Metafunc) -> None:
        """Parametrize components, with each loss's tasks where a test takes ``task``."""
        if "task" in metafunc.fixturenames:
            self._parametrize_with_tasks(metafunc, self.tasks_of)
        else:
            super().pytest_generate_tests(metafunc)

    def takes_ignore_index(self, name: str) -> bool:
        """Whether the loss ``name`` accepts an ``ignore_index`` keyword."""
        accepted = accepted_arguments(get_registry().get("loss", name).load())
        return accepted is not None and accepted.accepts("ignore_index")

    def build(self, name: str, **extra: Any) -> Loss:
        """Build the loss ``name`` with its kwargs and ``extra``."""
        loss: Loss = get_registry().build("loss", name, **{**self.component_kwargs(name), **extra})
        return loss

    def make_inputs(self, task: str, batch_size: int) -> tuple[torch.Tensor, torch.Tensor]:
        """A random prediction (requiring grad) and target of ``task``."""
        c, (h, w) = self.num_classes, self.image_size
        if task == "segmentation":
            return (torch.randn(batch_size, c, h, w, requires_grad=True),
                    torch.randint(0, c, (batch_size, h, w)))
        if task == "classification":
            return (torch.randn(batch_size, c, requires_grad=True),
                    torch.randint(0, c, (batch_size,)))
        if task == "multilabel":
            return (torch.randn(batch_size, c, requires_grad=True),
                    torch.randint(0, 2, (batch_size, c)).float())
        if task == "regression":
            return torch.randn(batch_size, h, w, requires_grad=True), torch.randn(batch_size, h, w)
        raise ValueError(f"unknown task {task!r}: segmentation, classification, multilabel "
                         "or regression")

    def _value(self, loss: Loss, prediction: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        value = loss(prediction, target)
        assert isinstance(value, torch.Tensor) and value.ndim == 0, (
            f"a loss returns a scalar tensor, got {getattr(value, 'shape', type(value))}"
        )
        assert torch.isfinite(value), f"non-finite loss {value.item()}"
        return value

    def test_finite_loss_and_gradients(self, component_name: str, task: str) -> None:
        """A finite scalar loss whose gradient reaches the prediction (and any parameters)."""
        loss = self.build(component_name)
        prediction, target = self.make_inputs(task, self.batch_size)
        backward(self._value(loss, prediction, target))
        grad = prediction.grad
        assert grad is not None and bool(torch.isfinite(grad).all()), "bad prediction gradient"
        assert bool(grad.abs().sum() > 0), "the loss does not depend on the prediction"
        if isinstance(loss, nn.Module):
            assert_grads(loss, component_name)

    def test_ignore_index(self, component_name: str, task: str) -> None:
        """Targets equal to ``ignore_index`` count for nothing: neither value nor gradient."""
        if not self.takes_ignore_index(component_name):
            pytest.skip(f"{component_name} takes no ignore_index")
        loss = self.build(component_name, ignore_index=self.ignore_index)
        prediction, target = self.make_inputs(task, 2)
        ignored = target.clone()
        ignored[1] = self.ignore_index  # the second sample is ignored throughout
        value = self._value(loss, prediction, ignored)
        alone = self._value(loss, prediction[:1], target[:1])
        torch.testing.assert_close(value, alone, msg=lambda m: (
            f"{component_name}: with the second sample ignored the loss is not the first "
            f"sample's alone: {m}"))
        backward(value)
        assert prediction.grad is not None
        assert not bool(prediction.grad[1].abs().sum() > 0), "ignored targets got a gradient"

    def test_save_load_round_trip(self, component_name: str, tmp_path: Path) -> None:
        """Config and state dict, saved and read back, rebuild a loss with the same value.

        A loss usually has no parameters, so the round trip is on what rebuilds it: its
        keyword arguments (plain data, loadable with ``weights_only=True``) and its state
        dict (buffers, if any).
        """
        config = self.component_kwargs(component_name)
        if self.takes_ignore_index(component_name):
            config["ignore_index"] = self.ignore_index
        loss = self.build(component_name, **config)
        state = loss.state_dict() if isinstance(loss, nn.Module) else {}
        loaded = save_and_load({"config": config, "state_dict": state}, tmp_path / "loss.pt")
        assert loaded["config"] == config, f"config {loaded['config']} != {config}"
        assert_same_output(state, loaded["state_dict"], f"{component_name} state dict")
        fresh = self.build(component_name, **loaded["config"])
        if isinstance(fresh, nn.Module):
            fresh.load_state_dict(loaded["state_dict"], strict=True)
        prediction, target = self.make_inputs(self.tasks_of(component_name)[0], self.batch_size)
        if "ignore_index" in config:
            target[-1] = self.ignore_index
        with torch.no_grad():
            assert_same_output(self._value(loss, prediction, target),
                               self._value(fresh, prediction, target),
                               f"{component_name} after a save/load round trip")
