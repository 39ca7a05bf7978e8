"""Lazy re-exports for package ``__init__`` files: names load their module on first access.

So that ``import geofm_core`` (and ``geofm list``) never imports torch, a package lists
``name -> module`` and gets a module ``__getattr__`` and ``__dir__`` from
:func:`lazy_exports`.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Iterable, Mapping
from typing import Any

__all__ = ["lazy_exports"]


def lazy_exports(
    package: str, modules: Mapping[str, str], eager: Iterable[str] = (),
) -> tuple[Callable[[str], Any], Callable[[], list[str]]]:
    """The ``__getattr__`` and ``__dir__`` of package ``package``.

    Args:
        package: The package's ``__name__`` (for the error message).
        modules: Exported name -> the module that defines it, imported on first access.
        eager: Names the package defines itself (listed by ``dir()`` as well).
    """

    def __getattr__(name: str) -> Any:
        if name in modules:
            return getattr(importlib.import_module(modules[name]), name)
        raise AttributeError(f"module {package!r} has no attribute {name!r}")

    def __dir__() -> list[str]:
        return sorted({*modules, *eager})

    return __getattr__, __dir__
