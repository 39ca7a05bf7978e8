"""Shared fixtures: small real distributions on sys.path, and a fresh registry over them."""

from __future__ import annotations

import importlib
import sys
import textwrap
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path

import pytest

from geofm_core.plugins import load_plugins, new_plugin_manager
from geofm_core.registry import Registry, reset_registry

MakeDist = Callable[..., Path]


@pytest.fixture
def fake_dist(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[MakeDist]:
    """Write installed-looking distributions (``*.dist-info`` + modules) onto ``sys.path``.

    Each is a real distribution to ``importlib.metadata``: it has METADATA and an
    ``entry_points.txt`` in the ``geofm.plugins`` group.
    """
    site = tmp_path / "site"
    site.mkdir()
    monkeypatch.syspath_prepend(str(site))
    written: list[str] = []

    def make(
        dist: str, entry_points: Mapping[str, str], modules: Mapping[str, str],
        version: str = "1.0",
    ) -> Path:
        info = site / f"{dist.replace('-', '_')}-{version}.dist-info"
        info.mkdir()
        (info / "METADATA").write_text(
            f"Metadata-Version: 2.1\nName: {dist}\nVersion: {version}\n"
        )
        lines = "".join(f"{k} = {v}\n" for k, v in entry_points.items())
        (info / "entry_points.txt").write_text(f"[geofm.plugins]\n{lines}")
        for module, code in modules.items():
            path = site / (module.replace(".", "/") + ".py")
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(textwrap.dedent(code))
            written.append(module)
        importlib.invalidate_caches()
        return site

    yield make
    for module in written:
        sys.modules.pop(module, None)
    reset_registry()


@pytest.fixture
def fresh_registry() -> Callable[..., Registry]:
    """Build a new registry from what is installed now, with an optional environment."""

    def build(environ: Mapping[str, str] | None = None) -> Registry:
        pm = new_plugin_manager(environ or {})
        return Registry.from_plugin_manager(pm, load_plugins(pm, environ=environ or {}))

    return build
