"""The component name grammar: ``source:name`` or a bare ``name``, and the kinds."""

from __future__ import annotations

import re
from enum import Enum
from typing import NamedTuple

from geofm_core.errors import InvalidNameError

__all__ = ["KINDS", "ComponentName", "Kind", "check_kind", "check_source", "parse_name"]


class Kind(str, Enum):
    """The kinds of component a plugin can register; each compares equal to its text."""

    BACKBONE = "backbone"
    NECK = "neck"
    DECODER = "decoder"
    HEAD = "head"
    LOSS = "loss"
    MODEL_FACTORY = "model_factory"
    MAE_DECODER = "mae_decoder"

    def __str__(self) -> str:
        return self.value


#: Every kind, as text, in listing order.
KINDS: tuple[str, ...] = tuple(k.value for k in Kind)

SOURCE_PATTERN = r"[a-z][a-z0-9_-]*"
NAME_PATTERN = r"[a-z0-9_.-]+"
_SOURCE_RE = re.compile(SOURCE_PATTERN)
_NAME_RE = re.compile(NAME_PATTERN)
# timm names keep their own spelling (e.g. "vit_base_patch16_224.augreg_in21k"), which
# the lowercase grammar already covers; a few hub names carry upper case, allowed there.
_DYNAMIC_NAME_RE = re.compile(r"[A-Za-z0-9_.\-/]+")

_GRAMMAR = (
    "names are 'source:name' or a bare 'name', with source matching "
    f"{SOURCE_PATTERN!r} and name matching {NAME_PATTERN!r} (e.g. 'timm:resnet18', 'geofm:fcn')"
)


class ComponentName(NamedTuple):
    """A parsed component name; ``source`` is ``None`` for a bare name."""

    source: str | None
    name: str

    def __str__(self) -> str:
        return self.name if self.source is None else f"{self.source}:{self.name}"

    @property
    def strict(self) -> bool:
        """Whether the name part follows the strict grammar (dynamic sources allow more)."""
        return _NAME_RE.fullmatch(self.name) is not None

    def require_strict(self) -> ComponentName:
        """Return self, or raise :class:`InvalidNameError` if only the loose grammar fits."""
        if not self.strict:
            raise InvalidNameError(f"invalid component name {str(self)!r}; {_GRAMMAR}")
        return self


def parse_name(text: str, *, loose: bool = False) -> ComponentName:
    """Parse ``source:name`` or a bare ``name``.

    Args:
        text: The name as written in a config or on the command line.
        loose: Accept the wider spelling of dynamic sources (timm) for the name part.

    Raises:
        InvalidNameError: The text does not follow the grammar; the message explains it.
    """
    if not isinstance(text, str):
        raise InvalidNameError(f"component name must be a string, got {text!r}; {_GRAMMAR}")
    source, sep, name = text.partition(":")
    if not sep:
        source, name = "", text
    name_re = _DYNAMIC_NAME_RE if loose else _NAME_RE
    if sep and not _SOURCE_RE.fullmatch(source):
        raise InvalidNameError(f"invalid source {source!r} in component name {text!r}; {_GRAMMAR}")
    if not name_re.fullmatch(name):
        raise InvalidNameError(f"invalid component name {text!r}; {_GRAMMAR}")
    return ComponentName(source or None, name)


def check_kind(kind: str) -> Kind:
    """Return ``kind`` as a :class:`Kind`, or raise :class:`InvalidNameError` naming the kinds."""
    try:
        return Kind(kind)
    except ValueError:
        raise InvalidNameError(f"unknown kind {kind!r}; kinds are: {', '.join(KINDS)}") from None


def check_source(source: str) -> str:
    """Return ``source`` if it follows the source grammar, else raise :class:`InvalidNameError`."""
    if not _SOURCE_RE.fullmatch(source):
        raise InvalidNameError(
            f"invalid plugin source {source!r}: a source matches {SOURCE_PATTERN!r}"
        )
    return source
