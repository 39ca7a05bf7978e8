"""YAML files geofm reads (configs, statistics files, configs to convert): no key twice.

PyYAML keeps the last of two equal keys in a mapping without a word, so a second ``lr:``
wins and a second ``trainer:`` section replaces the first entirely. Every YAML file
geofm reads goes through :func:`load_yaml`, which names the key, the file and both
lines instead. Merge keys (``<<: *defaults``) may still be overridden, as YAML intends.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import yaml

from geofm_core.errors import ConfigurationError

__all__ = ["check_unique_keys", "load_yaml", "read_yaml"]

_MERGE = "tag:yaml.org,2002:merge"


def _duplicates(node: yaml.Node, path: str, seen: set[int]
                ) -> Iterator[tuple[str, str, int, int]]:
    """(mapping path, key, first line, second line) of each key given twice under ``node``."""
    if id(node) in seen:  # an alias of a node already walked (anchors may even recurse)
        return
    seen.add(id(node))
    if isinstance(node, yaml.MappingNode):
        lines: dict[str, int] = {}
        for key_node, value_node in node.value:
            if not isinstance(key_node, yaml.ScalarNode) or key_node.tag == _MERGE:
                continue
            key, line = key_node.value, key_node.start_mark.line + 1
            if key in lines:
                yield path, key, lines[key], line
            else:
                lines[key] = line
            yield from _duplicates(value_node, f"{path}.{key}" if path else key, seen)
    elif isinstance(node, yaml.SequenceNode):
        for i, item in enumerate(node.value):
            yield from _duplicates(item, f"{path}[{i}]", seen)


def check_unique_keys(text: str, source: str) -> None:
    """Raise when a mapping of the YAML ``text`` (read from ``source``) has a key twice.

    Raises:
        ConfigurationError: Naming the key, where it is, ``source`` and both lines.
        yaml.YAMLError: ``text`` is not YAML.
    """
    for document in yaml.compose_all(text, Loader=yaml.SafeLoader):
        if document is None:
            continue
        for path, key, first, second in _duplicates(document, "", set()):
            where = f"in {path!r}" if path else "at the top level"
            what = "key" if path else "section"
            raise ConfigurationError(
                f"{source}: the {what} {key!r} is given twice {where} (line {first} and "
                f"line {second}); YAML would keep only the second and silently drop the "
                "first. Remove one of them or merge the two"
            )


def load_yaml(text: str, source: str) -> Any:
    """``yaml.safe_load(text)`` after :func:`check_unique_keys` (``source`` names the file)."""
    check_unique_keys(text, source)
    return yaml.safe_load(text)


def read_yaml(path: str | Path) -> Any:
    """Read the YAML file ``path``; a missing file, bad YAML or a doubled key is one error.

    Raises:
        ConfigurationError: The file cannot be read, is not YAML, or has a key twice.
    """
    try:
        text = Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigurationError(f"cannot read {path}: {exc}") from None
    try:
        return load_yaml(text, str(path))
    except yaml.YAMLError as exc:
        reason = " ".join(str(exc).split())
        raise ConfigurationError(
            f"{path} is not valid YAML: {reason}. Fix the YAML syntax there (indentation, "
            "brackets, 'key: value' pairs)"
        ) from None
