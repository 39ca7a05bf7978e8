"""The layout rules of the source tree, read off the code: no import cycles, short modules.

Read with ``ast`` (nothing is imported), so a cycle held apart only by function-level
imports is found too. Package ``__init__`` files are left out of the graph: their lazy
re-exports name their children by string, and importing a child always imports them.
"""

from __future__ import annotations

import ast
import importlib.metadata
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SOURCE_ROOTS = [ROOT / "src", *sorted((ROOT / "plugins").glob("*/src")),
                *sorted((ROOT / "examples").glob("*/src"))]
MAX_LINES = 650


def _modules(base: Path) -> dict[str, Path]:
    return {".".join(p.relative_to(base).with_suffix("").parts): p
            for p in base.rglob("*.py") if p.name != "__init__.py"}


def _imports(module: str, path: Path, known: dict[str, Path]) -> set[str]:
    """Modules of ``known`` that ``module`` imports anywhere in its body."""
    package = module.rsplit(".", 1)[0]
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        targets: list[str] = []
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parts = package.split(".")
                base = ".".join(parts[: len(parts) - node.level + 1] + ([base] if base else []))
            targets = [base, *(f"{base}.{alias.name}" for alias in node.names)]
        found.update(t for t in targets if t in known and t != module)
    return found


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (iterative Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []
    for start in graph:
        if start in index:
            continue
        work = [(start, iter(sorted(graph[start])))]
        index[start] = low[start] = len(index)
        stack.append(start)
        on_stack.add(start)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = len(index)
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(graph[child]))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                component = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.append(member)
                    if member == node:
                        break
                if len(component) > 1:
                    found.append(sorted(component))
    return found


def test_the_cycle_finder_finds_a_cycle() -> None:
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}
    assert _cycles(graph) == [["a", "b", "c"]]
    assert _cycles({"a": {"b"}, "b": set()}) == []


@pytest.mark.parametrize("base", SOURCE_ROOTS, ids=lambda p: str(p.relative_to(ROOT)))
def test_no_import_cycles(base: Path) -> None:
    modules = _modules(base)
    graph = {name: _imports(name, path, modules) for name, path in modules.items()}
    assert _cycles(graph) == []


def test_no_source_file_is_too_long() -> None:
    long = [f"{p.relative_to(ROOT)}: {n} lines" for base in SOURCE_ROOTS
            for p in base.rglob("*.py") if (n := len(p.read_text().splitlines())) > MAX_LINES]
    assert long == []


def _plugin_mentions(path: Path, words: tuple[str, ...]) -> list[str]:
    """Names and strings (docstrings left out) of ``path`` that mention one of ``words``."""
    tree = ast.parse(path.read_text(), str(path))
    docstrings = {
        id(node.body[0].value) for node in ast.walk(tree)
        if isinstance(node, ast.Module | ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef)
        and node.body and isinstance(node.body[0], ast.Expr)
        and isinstance(node.body[0].value, ast.Constant)
    }
    found = []
    for node in ast.walk(tree):
        text = None
        if isinstance(node, ast.Constant) and isinstance(node.value, str) \
                and id(node) not in docstrings:
            text = node.value
        elif isinstance(node, ast.Name):
            text = node.id
        elif isinstance(node, ast.Attribute):
            text = node.attr
        if text and any(word in text.lower() for word in words):
            found.append(f"{path.relative_to(ROOT)}:{getattr(node, 'lineno', '?')}: {text!r}")
    return found


def test_the_core_names_no_plugin() -> None:
    """Plugins declare their facts (names, variants, conversions); the core's code never does.

    Docstrings and comments may give a plugin's component as an example; code and messages
    may not.
    """
    # A plugin named after a library the core itself depends on (torchgeo: TorchGeo's
    # tasks and datamodules run through the CLI) cannot be told from that library by name.
    core = importlib.metadata.requires("geofm-core") or []
    libraries = {re.split(r"[^A-Za-z0-9_-]", d, maxsplit=1)[0].lower() for d in core}
    words = tuple(w for p in (ROOT / "plugins").iterdir() if (p / "pyproject.toml").is_file()
                  if (w := p.name.split("_")[0]) not in libraries)
    assert "prithvi" in words and "upernet" in words and "smp" in words
    found = [hit for p in sorted((ROOT / "src" / "geofm_core").rglob("*.py"))
             for hit in _plugin_mentions(p, words)]
    assert found == []
