"""What a conversion returns, and the report every converter writes to."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import yaml

__all__ = [
    "Conversion", "Report", "Scoped", "class_name", "is_terratorch_path", "short", "strip_source",
]


@dataclass
class Conversion:
    """The converted config and what could not be mapped, or was mapped with a difference.

    Attributes:
        config: The geofm config (a plain dict, ready for ``yaml.safe_dump``).
        unmapped: One line per TerraTorch key or value with no geofm equivalent (not in
            ``config``).
        notes: One line per mapping that changes behaviour or fills in a TerraTorch
            default.
        source: Where the TerraTorch config came from (for messages).
    """

    config: dict[str, Any]
    unmapped: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    source: str = "<config>"


class Report:
    """Collects the unmapped settings and the notes of one conversion, by full key path."""

    def __init__(self) -> None:
        self.unmapped: list[str] = []
        self.notes: list[str] = []

    def drop(self, path: str, value: Any, why: str) -> None:
        """Record ``path`` (and its value) as not converted, with the reason."""
        self.unmapped.append(f"{path}: {short(value)} ({why})")

    def drop_foreign_options(self, args: dict[str, Any], defaults: Mapping[str, Any],
                             base: str) -> None:
        """Pop the options of ``args`` geofm has no counterpart for (``defaults``: theirs).

        An option at the other framework's default is a note (nothing is lost); any
        other value is reported as not converted.
        """
        for key, default in defaults.items():
            if key not in args:
                continue
            value = args.pop(key)
            if value == default:
                self.note(f"{base}.{key}", f"{short(value)} dropped (the TerraTorch default; "
                          "geofm has no such option)")
            else:
                self.drop(f"{base}.{key}", value, "geofm has no such option")

    def note(self, path: str, text: str) -> None:
        """Record a conversion with a difference at ``path``."""
        self.notes.append(f"{path}: {text}")


class Scoped:
    """A :class:`Report` seen from one section: keys relative to ``base``, and the task.

    This is what plugins' conversion functions get (the
    :class:`geofm_core.convert.rules.Report` protocol).
    """

    def __init__(self, report: Report, base: str, task: str) -> None:
        self._report = report
        self._base = base
        self._task = task

    @property
    def task(self) -> str:
        """The geofm task the section is converted for."""
        return self._task

    def drop(self, key: str, value: Any, why: str) -> None:
        """Record ``key`` of the section (``""``: the section) as not converted."""
        self._report.drop(f"{self._base}.{key}" if key else self._base, value, why)

    def note(self, key: str, text: str) -> None:
        """Record ``key`` of the section (``""``: the section) as converted with a difference."""
        self._report.note(f"{self._base}.{key}" if key else self._base, text)


def short(value: Any) -> str:
    """``value`` as one line of flow YAML, cut to 120 characters."""
    text = str(yaml.safe_dump(value, default_flow_style=True, width=10_000)).strip()
    text = text.removesuffix("...").strip()
    return text if len(text) <= 120 else text[:117] + "..."


def class_name(class_path: Any) -> str:
    """The last dotted part of a class path (``""`` for none)."""
    return str(class_path).rpartition(".")[2] if class_path else ""


def is_terratorch_path(class_path: Any) -> bool:
    """Whether ``class_path`` is a ``terratorch.*`` path."""
    return isinstance(class_path, str) and class_path.startswith("terratorch.")


def strip_source(name: str, source: str) -> str:
    """``name`` without a leading ``<source>_`` (TerraTorch's registry prefixes)."""
    return name[len(source) + 1:] if name.startswith(source + "_") else name
