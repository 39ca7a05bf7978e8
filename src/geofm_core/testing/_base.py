"""``ComponentContract``: parametrization over a source's listing, per-component settings."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any, ClassVar

import pytest

from geofm_core.registry import get_registry

__all__ = ["ComponentContract"]


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

    def _marks(self, name: str) -> list[pytest.MarkDecorator]:
        reason = self._lookup(self.skip, name)
        return [pytest.mark.skip(reason=reason)] if reason else []

    def pytest_generate_tests(self, metafunc: pytest.Metafunc) -> None:
        """Parametrize ``component_name`` over the source's components (pytest hook)."""
        if "component_name" not in metafunc.fixturenames:
            return
        params = [pytest.param(name, id=name, marks=self._marks(name))
                  for name in self.component_names()]
        metafunc.parametrize("component_name", params)

    def _parametrize_with_tasks(
        self, metafunc: pytest.Metafunc, tasks_of: Callable[[str], Sequence[str]]
    ) -> None:
        """Parametrize ``component_name`` and ``task`` together: each component's own tasks."""
        params = [
            pytest.param(name, task, id=f"{name}-{task}", marks=self._marks(name))
            for name in self.component_names() for task in tasks_of(name)
        ]
        metafunc.parametrize(("component_name", "task"), params)

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
