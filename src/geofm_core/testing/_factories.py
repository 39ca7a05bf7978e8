"""``ModelFactoryContract``: factories whose ``build_model(task, ...)`` gives a trainable model."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, ClassVar

import pytest
import torch
from torch import nn

from geofm_core.models.contracts import Model
from geofm_core.models.factory import TASKS
from geofm_core.registry import get_registry
from geofm_core.testing._base import ComponentContract
from geofm_core.testing._tools import assert_round_trip, check_model_output, train_step

__all__ = ["ModelFactoryContract"]


class ModelFactoryContract(ComponentContract):
    """Contract tests for the model factories of a source.

    Each factory builds a model for each of its tasks: ``tasks`` per component name if
    set, else the ``tasks`` the factory class declares, else all four (segmentation,
    regression, classification, multilabel). ``model_kwargs`` per name are passed to
    ``build_model`` (with ``num_classes``, except for regression), ``task_kwargs`` per
    name and task add to them; ``kwargs`` build the factory itself. Inputs have
    ``in_chans`` bands and ``image_size`` pixels.
    """

    kind: ClassVar[str] = "model_factory"
    tasks: ClassVar[Mapping[str, Sequence[str]]] = {}
    model_kwargs: ClassVar[Mapping[str, Mapping[str, Any]]] = {}
    task_kwargs: ClassVar[Mapping[str, Mapping[str, Mapping[str, Any]]]] = {}
    in_chans: ClassVar[int] = 3
    num_classes: ClassVar[int] = 3

    def tasks_of(self, name: str) -> list[str]:
        """The tasks ``name`` is tested on (see the class docstring)."""
        tasks = self._lookup(self.tasks, name)
        if tasks is None:
            tasks = getattr(get_registry().get("model_factory", name).load(), "tasks", TASKS)
        return list(tasks)

    def pytest_generate_tests(self, metafunc: pytest.Metafunc) -> None:
        """Parametrize components, with each factory's tasks where a test takes ``task``."""
        if "task" in metafunc.fixturenames:
            self._parametrize_with_tasks(metafunc, self.tasks_of)
        else:
            super().pytest_generate_tests(metafunc)

    def build_model(self, name: str, task: str) -> nn.Module:
        """Build the factory ``name`` and its model for ``task``."""
        factory = get_registry().build("model_factory", name, **self.component_kwargs(name))
        kwargs = {**(self._lookup(self.model_kwargs, name) or {}),
                  **((self._lookup(self.task_kwargs, name) or {}).get(task) or {})}
        if task != "regression":
            kwargs.setdefault("num_classes", self.num_classes)
        model = factory.build_model(task, **kwargs)
        assert isinstance(model, nn.Module), f"build_model returns an nn.Module, got {type(model)}"
        assert isinstance(model, Model), "the model lacks freeze_encoder/freeze_decoder"
        return model

    def make_input(self, batch_size: int, task: str | None = None) -> torch.Tensor:
        """A random image batch of ``in_chans`` bands (two dates for change detection)."""
        if task == "change_detection":
            return torch.randn(batch_size, 2, self.in_chans, *self.image_size)
        return torch.randn(batch_size, self.in_chans, *self.image_size)

    def test_builds_and_trains(self, component_name: str, task: str) -> None:
        """The model trains one step: a ``ModelOutput`` of the task's shape, gradients."""
        model = self.build_model(component_name, task)
        train_step(model, task, self.make_input(self.batch_size, task), self.num_classes)

    def test_batch_of_one(self, component_name: str, task: str) -> None:
        """One image goes through in eval mode; the output has the task's shape."""
        model = self.build_model(component_name, task).eval()
        image = self.make_input(1, task)
        with torch.no_grad():
            check_model_output(model(image), task, image, self.num_classes)

    def test_save_load_round_trip(self, component_name: str, task: str, tmp_path: Path) -> None:
        """The state dict, saved and loaded strictly into a fresh build, gives the same output."""
        x = self.make_input(self.batch_size, task)
        assert_round_trip(
            self.build_model(component_name, task), lambda: self.build_model(component_name, task),
            lambda m: m(x), tmp_path / "model.pt", f"{component_name} ({task})",
        )
