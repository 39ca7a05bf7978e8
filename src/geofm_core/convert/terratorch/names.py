"""TerraTorch component names -> geofm registry names, through the plugins' rules."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from geofm_core.convert.book import RuleBook
from geofm_core.convert.rules import ComponentRule
from geofm_core.convert.terratorch.report import strip_source
from geofm_core.convert.terratorch.tables import CORE_RULES, FRAMEWORK, TERRATORCH_ONLY_BACKBONES
from geofm_core.registry import Registry

__all__ = ["BackboneMatch", "map_backbone", "map_decoder", "rule_book"]

_TIMM_NAME = re.compile(r"[a-z0-9_.\-]+")


def rule_book(registry: Registry | None = None) -> RuleBook:
    """The core's and every loaded plugin's TerraTorch rules (default: installed plugins)."""
    return RuleBook.collect(FRAMEWORK, CORE_RULES, registry)


@dataclass
class BackboneMatch:
    """What a TerraTorch backbone name becomes.

    Attributes:
        name: The geofm name (the TerraTorch name when unknown).
        family: The declaring plugin's source for a rule, ``timm`` (a ``timm_`` name),
            ``timm_bare`` (an unknown name tried as a timm model) or ``unknown``.
        rule: The rule that converts it, if any.
        overrides: Architecture arguments written for a substitute variant.
        problem: Why a declared rule cannot be used (a conflict, a missing component).
    """

    name: str
    family: str
    rule: ComponentRule | None = None
    overrides: dict[str, Any] = field(default_factory=dict)
    problem: str = ""


def match_backbone(name: str, book: RuleBook) -> BackboneMatch:
    """Resolve a TerraTorch backbone name: plugins' rules first, then timm, else unknown."""
    bare = strip_source(name, "terratorch")
    found = book.component("backbone", bare)
    if found is not None:
        if found.claim is None:
            return BackboneMatch(name, "unknown", problem=found.problem)
        rule = found.claim.rule
        return BackboneMatch(rule.target, found.claim.source, rule, dict(rule.overrides))
    if name.startswith("timm_"):
        return BackboneMatch(f"timm:{name[5:]}", "timm")
    if name.startswith("terratorch_") or bare.lower().startswith(TERRATORCH_ONLY_BACKBONES) \
            or book.unconvertible("backbone", bare):
        return BackboneMatch(name, "unknown")
    if _TIMM_NAME.fullmatch(name):
        return BackboneMatch(f"timm:{name}", "timm_bare")
    return BackboneMatch(name, "unknown")


def map_backbone(name: str, book: RuleBook | None = None) -> tuple[str, str, dict[str, Any]]:
    """Map a TerraTorch backbone name to ``(geofm name, family, architecture overrides)``.

    ``family`` is the source of the plugin whose rule converts it, ``timm``,
    ``timm_bare`` or ``unknown`` (then the name is returned unchanged).
    """
    match = match_backbone(name, book or rule_book())
    return match.name, match.family, match.overrides


def map_decoder(name: str, book: RuleBook | None = None) -> str | None:
    """The geofm decoder name of a TerraTorch decoder name, or None."""
    found = (book or rule_book()).component("decoder", strip_source(name, "terratorch"))
    return found.claim.rule.target if found is not None and found.claim is not None else None
