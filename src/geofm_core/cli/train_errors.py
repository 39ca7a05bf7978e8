"""Errors of ``geofm fit|validate|test|predict`` as one paragraph naming the YAML path.

Most configuration mistakes are caught before parsing, from the config files, by
:mod:`geofm_core.cli.train_config`. What is left (settings given on the command line,
sections missing altogether) comes as jsonargparse's nested error text, which
:func:`argument_error` condenses; an error geofm raises while the classes are built
gets the YAML paths of the values it quotes (:func:`with_location`).
"""

from __future__ import annotations

import difflib
import importlib
import re
from collections.abc import Iterator, Sequence
from typing import Any

from geofm_core.cli.train_config import SHORT_NAMES, invalid_configuration, located
from geofm_core.errors import ConfigurationError, GeofmError
from geofm_core.signatures import accepted_arguments

__all__ = ["argument_error", "geofm_error_in_chain", "locate", "with_location"]


def _walk(node: Any, path: str = "") -> Iterator[tuple[str, str, Any]]:
    """Yield (path, key, value) for every entry of a nested config."""
    if isinstance(node, dict):
        for key, value in node.items():
            sub = f"{path}.{key}" if path else str(key)
            yield sub, str(key), value
            yield from _walk(value, sub)
    elif isinstance(node, list):
        for i, value in enumerate(node):
            sub = f"{path}[{i}]"
            yield from _walk(value, sub)


def locate(message: str, config: dict[str, Any] | None) -> list[str]:
    """YAML paths of the config entries that an error message quotes (by value or by key)."""
    if not config:
        return []
    by_value: list[str] = []
    by_key: list[str] = []
    for path, key, value in _walk(config):
        if isinstance(value, str | int | float) and not isinstance(value, bool):
            text = str(value)
            if len(text) > 1 and (f"'{text}'" in message or f'"{text}"' in message):
                by_value.append(path)
        if f"'{key}'" in message and not path.startswith("trainer"):
            by_key.append(path)
    found = by_value or by_key
    return [p for p in found if not any(o != p and o.startswith(p + ".") for o in found)][:3]


def geofm_error_in_chain(exc: BaseException) -> GeofmError | None:
    """The first GeofmError among ``exc``, its causes and contexts (jsonargparse wraps them)."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        if isinstance(current, GeofmError):
            return current
        seen.add(id(current))
        current = current.__cause__ or current.__context__
    return None


def with_location(exc: GeofmError, config: dict[str, Any] | None) -> GeofmError:
    """The same error, its message prefixed with the YAML paths of the values it quotes."""
    paths = locate(str(exc), config)
    if not paths or ".init_args." in str(exc):
        return exc
    return located(exc, " and ".join(paths))


_KEY = re.compile(r'Parser key "([^"]+)"')
_CLASS_PATH = re.compile(r"Problem with given class_path '([^']+)'")
_OPTION = re.compile(r"Option '([^']+)' is not accepted")
_DOT_PATH = re.compile(r"Expected a dot import path string: (\S+)")
_TOP_OPTION = re.compile(r"Subcommand '\w+' does not accept option '([\w.]+)'")
_REQUIRED = re.compile(r"the following arguments are required: \w+\.([\w.]+)")
_NOISE = (
    "Parser key", "Does not validate against any of the Union subtypes", "Subtypes:",
    "Errors:", "- Expected a <class 'NoneType'>", "Given value type:", "Given value:",
    "- Problem with given class_path",
)


def _accepted_options(class_path: str) -> list[str]:
    try:
        module_name, _, name = class_path.rpartition(".")
        cls = getattr(importlib.import_module(module_name), name)
    except Exception:
        return []
    accepted = accepted_arguments(cls, follow_kwargs=True)
    return list(accepted.names) if accepted is not None else []


def argument_error(exc: Exception, args: Sequence[str]) -> ConfigurationError:
    """One readable paragraph, naming the YAML path, out of a (nested) jsonargparse error."""
    message = str(exc)
    keys = _KEY.findall(message)
    class_paths = _CLASS_PATH.findall(message)
    option = _OPTION.search(message)
    if option:
        keys.append(option.group(1))
    path = ".init_args.".join(keys) if class_paths else ".".join(keys)
    reasons = []
    for line in message.splitlines():
        line = line.strip()
        if line and not line.startswith(_NOISE) and line not in reasons:
            reasons.append(line.removeprefix("- "))
    reason = " ".join(reasons) or message.strip()
    reason = re.sub(r"<class '(?:[\w.]+\.)?(\w+)'>", r"\1", reason)
    reason = re.sub(r"Expected a (\w+)\. Got value: (.*?)(?= - |$)", r"expected a \1, got \2",
                    reason)
    hint = ""
    if option and class_paths:
        close = difflib.get_close_matches(option.group(1), _accepted_options(class_paths[-1]),
                                          n=3, cutoff=0.5)
        hint = f" Did you mean {', '.join(repr(c) for c in close)}?" if close else ""
        reason = f"{class_paths[-1].rpartition('.')[2]} has no argument {option.group(1)!r}"
    unknown_class = _DOT_PATH.search(message)
    if unknown_class:
        name = unknown_class.group(1)
        close = difflib.get_close_matches(name, list(SHORT_NAMES), n=2, cutoff=0.6)
        reason = f"unknown class {name!r}"
        path = f"{path}.class_path" if path else "class_path"
        hint = (f" Did you mean {', '.join(close)}?" if close else "") + (
            f" Short names: {', '.join(SHORT_NAMES)}; any other class needs its full "
            "class_path (e.g. torchgeo.trainers.SemanticSegmentationTask)."
        )
    top_option = _TOP_OPTION.search(message)
    if top_option and not path:
        path = top_option.group(1)
        group, _, key = path.rpartition(".")
        reason = f"there is no setting {path!r}"
        if group == "trainer":
            from lightning.pytorch import Trainer

            known = _accepted_options(f"{Trainer.__module__}.{Trainer.__name__}")
            close = difflib.get_close_matches(key, known, n=3, cutoff=0.6)
            hint = f" Did you mean {', '.join(repr(f'trainer.{c}') for c in close)}?" if close \
                else ""
    required = _REQUIRED.search(message)
    if required and not path:
        path = required.group(1)
        reason = f"{path} is required"
        if path in ("model", "data"):
            example = "SemanticSegmentationTask" if path == "model" else \
                "GeoTiffSegmentationDataModule"
            hint = f" Add e.g. `{path}: {{class_path: {example}, init_args: {{...}}}}`."
    command = args[0] if args else "fit"
    return invalid_configuration(path, reason, hint, command)
