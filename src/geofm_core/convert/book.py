"""The rule book of one conversion: every installed plugin's rules for a framework, checked.

Rules come from the ``geofm_conversion_rules`` hook, one plugin at a time, so each is
stamped with the plugin's source (as ``register`` stamps components). A plugin whose
rules are malformed is left out with a warning; a foreign name claimed by two plugins
(or twice by one, or by a plugin and the core) is converted by none of them, never by
order, and both claimants are named, as the registry does for sources.

The keywords a component accepts are read off its registered factory's signature here,
importing that component's module only when a conversion needs it.
"""

from __future__ import annotations

import dataclasses
import importlib
import warnings
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from geofm_core.convert.rules import (
    RULE_KINDS,
    BackboneFacts,
    ComponentRule,
    ConversionRules,
    DecoderFacts,
    FactoryRule,
    KeyRule,
)
from geofm_core.errors import GeofmError, InvalidNameError, PluginLoadWarning
from geofm_core.names import parse_name
from geofm_core.registry import Registry, get_registry
from geofm_core.signatures import Accepted, accepted_arguments

__all__ = ["Claim", "RuleBook", "Signatures", "rule_problems"]

#: The source of the core's own rules.
CORE_SOURCE = "geofm"
HOOK = "geofm_conversion_rules"

R = TypeVar("R", ComponentRule, FactoryRule)


@dataclass(frozen=True)
class Claim(Generic[R]):
    """One rule, stamped with the source of the plugin that declared it."""

    source: str
    rule: R

    def describe(self) -> str:
        """``'source' (-> target)`` for messages."""
        return f"{self.source!r} (-> {self.rule.target})"


@dataclass(frozen=True)
class Found(Generic[R]):
    """The outcome of a lookup: one usable claim, or why there is none."""

    claim: Claim[R] | None
    problem: str = ""


def _stamp(target: str, source: str, what: str) -> str:
    parsed = parse_name(target)
    if parsed.source is None:
        return f"{source}:{parsed.name}"
    if parsed.source not in (source, CORE_SOURCE):
        raise InvalidNameError(
            f"{what} targets {target!r}: declare bare names (the source {source!r} is "
            f"added by geofm) or {CORE_SOURCE}: names"
        )
    return target


def _check_keys(keys: Any, what: str) -> None:
    import re

    for key in keys:
        if not isinstance(key, KeyRule):
            raise TypeError(f"{what}: keys must be KeyRule, got {type(key).__name__}")
        try:
            re.compile(key.foreign)
        except re.error as exc:
            raise InvalidNameError(f"{what}: key pattern {key.foreign!r}: {exc}") from exc


def _check_component(rule: Any, source: str) -> ComponentRule:
    if not isinstance(rule, ComponentRule):
        raise TypeError(f"expected a ComponentRule, got {type(rule).__name__}")
    what = f"rule {rule.names!r}"
    if rule.kind not in RULE_KINDS:
        raise InvalidNameError(f"{what}: kind {rule.kind!r} is not one of {', '.join(RULE_KINDS)}")
    if not rule.names or not all(isinstance(n, str) and n for n in rule.names):
        raise InvalidNameError(f"{what}: names must be non-empty strings")
    wanted = {"backbone": BackboneFacts, "decoder": DecoderFacts}.get(rule.kind)
    if rule.facts is not None and (wanted is None or not isinstance(rule.facts, wanted)):
        raise TypeError(f"{what}: {type(rule.facts).__name__} do not apply to a {rule.kind}")
    _check_keys(rule.keys, what)
    return dataclasses.replace(rule, target=_stamp(rule.target, source, what))


def _check_factory(rule: Any, source: str) -> FactoryRule:
    if not isinstance(rule, FactoryRule):
        raise TypeError(f"expected a FactoryRule, got {type(rule).__name__}")
    what = f"factory rule {rule.names!r}"
    if not rule.names or not all(isinstance(n, str) and n for n in rule.names):
        raise InvalidNameError(f"{what}: names must be non-empty strings")
    module, sep, attr = rule.convert.partition(":")
    if rule.convert and not (sep and module and attr):
        raise InvalidNameError(f"{what}: convert {rule.convert!r} is not 'module:attr'")
    _check_keys(rule.keys, what)
    return dataclasses.replace(rule, target=_stamp(rule.target, source, what))


class RuleBook:
    """The rules of every loaded plugin (and the core) for one framework, by foreign name."""

    def __init__(self, registry: Registry, framework: str) -> None:
        self.registry = registry
        self.framework = framework
        self._components: dict[tuple[str, str], list[Claim[ComponentRule]]] = {}
        self._factories: dict[str, list[Claim[FactoryRule]]] = {}
        self._unconvertible: dict[str, list[str]] = {}
        self._published: dict[str, list[tuple[str, tuple[str, str]]]] = {}
        #: Plugins whose rules could not be read: ``"source (why)"``.
        self.unavailable: list[str] = [
            f"{p.source!r} ({p.status})" for p in registry.plugins if p.status != "loaded"
        ]

    @classmethod
    def collect(cls, framework: str, core: ConversionRules | None = None,
                registry: Registry | None = None) -> RuleBook:
        """Ask every loaded plugin of ``registry`` (the process-wide one by default) for its rules.

        ``core`` holds the converter's own rules (source ``geofm``), which take part in
        the duplicate check like any plugin's.
        """
        book = cls(registry or get_registry(), framework)
        if core is not None:
            book.add(CORE_SOURCE, core)
        failed: list[str] = []
        for info, rules in book.registry.call_each(HOOK, failed, framework=framework):
            book.add(info.source, rules)
        book.unavailable += [f"{source!r} (its {HOOK} failed)" for source in failed]
        book._warn_conflicts()
        return book

    def add(self, source: str, rules: Any) -> None:
        """Check and add one plugin's rules; malformed rules leave the plugin out entirely."""
        try:
            if not isinstance(rules, ConversionRules):
                raise TypeError(f"expected ConversionRules, got {type(rules).__name__}")
            components = [_check_component(r, source) for r in rules.components]
            factories = [_check_factory(r, source) for r in rules.factories]
            for item in rules.unconvertible:
                if item.kind not in RULE_KINDS:
                    raise InvalidNameError(f"unconvertible kind {item.kind!r}")
            for repo, files in rules.published.items():
                if not (isinstance(repo, str) and isinstance(files, tuple) and len(files) == 2
                        and all(isinstance(f, str) and f for f in files)):
                    raise TypeError(f"published {repo!r}: expected (config, checkpoint) names")
        except (TypeError, ValueError, GeofmError) as exc:
            self.unavailable.append(f"{source!r} (invalid rules)")
            warnings.warn(
                f"geofm plugin {source!r} declares invalid {self.framework} conversion rules "
                f"({type(exc).__name__}: {exc}); its components are not converted. Fix the "
                "plugin's geofm_conversion_rules", PluginLoadWarning, stacklevel=3,
            )
            return
        for rule in components:
            for name in dict.fromkeys(rule.names):
                self._components.setdefault((rule.kind, name), []).append(Claim(source, rule))
        for factory in factories:
            for name in dict.fromkeys(factory.names):
                self._factories.setdefault(name, []).append(Claim(source, factory))
        for item in rules.unconvertible:
            self._unconvertible.setdefault(item.kind, []).extend(p.lower() for p in item.prefixes)
        for repo, files in rules.published.items():
            self._published.setdefault(repo, []).append((source, files))

    def _warn_conflicts(self) -> None:
        for what, claims in self._conflicts():
            warnings.warn(f"{self.framework} {what} {_conflict_text(claims)}",
                          PluginLoadWarning, stacklevel=3)

    def _conflicts(self) -> Iterable[tuple[str, list[Any]]]:
        for (kind, name), claims in self._components.items():
            if len(claims) > 1:
                yield f"{kind} {name!r}", claims
        for name, factory_claims in self._factories.items():
            if len(factory_claims) > 1:
                yield f"model factory {name!r}", factory_claims

    # -- lookup -------------------------------------------------------------------

    def component(self, kind: str, name: str) -> Found[ComponentRule] | None:
        """The rule converting the foreign ``kind`` ``name``; ``None`` when nobody declares it.

        A conflict, or a target that is not registered, is a :class:`Found` without a
        claim and with the reason.
        """
        claims = self._components.get((kind, name))
        if not claims:
            return None
        if len(claims) > 1:
            return Found(None, _conflict_text(claims))
        return self._usable(kind, claims[0])

    def factory(self, name: str) -> Found[FactoryRule] | None:
        """The rule converting the foreign model factory ``name``; ``None`` when undeclared."""
        claims = self._factories.get(name)
        if not claims:
            return None
        if len(claims) > 1:
            return Found(None, _conflict_text(claims))
        return self._usable("model_factory", claims[0])

    def _usable(self, kind: str, claim: Claim[R]) -> Found[R]:
        try:
            self.registry.get(kind, claim.rule.target)
        except Exception as exc:  # a dynamic source's resolver may fail in any way
            return Found(None, (
                f"plugin {claim.source!r} converts it to the {kind} {claim.rule.target}, which "
                f"is not available ({type(exc).__name__}); kept as is, see `geofm list {kind}` "
                "and `geofm plugins`"))
        return Found(claim)

    def factory_names(self) -> list[str]:
        """Every foreign model factory name some plugin declares."""
        return sorted(self._factories)

    def factory_claims(self) -> list[Claim[FactoryRule]]:
        """One claim per declared factory rule, by its first name."""
        seen: dict[int, Claim[FactoryRule]] = {}
        for claims in self._factories.values():
            for claim in claims:
                seen.setdefault(id(claim.rule), claim)
        return sorted(seen.values(), key=lambda c: c.rule.names[0])

    def component_claims(self) -> list[Claim[ComponentRule]]:
        """One claim per declared component rule."""
        seen: dict[int, Claim[ComponentRule]] = {}
        for claims in self._components.values():
            for claim in claims:
                seen.setdefault(id(claim.rule), claim)
        return list(seen.values())

    def unconvertible(self, kind: str, name: str) -> bool:
        """Whether a plugin declares ``name`` a component of its family geofm does not convert."""
        return name.lower().startswith(tuple(self._unconvertible.get(kind, ())))

    def published(self) -> dict[str, tuple[str, str]]:
        """Published models -> (config, checkpoint) files; one claimed twice is left out."""
        return {repo: claims[0][1] for repo, claims in self._published.items()
                if len(claims) == 1}

    def missing_hint(self) -> str:
        """A message tail naming the plugins whose rules could not be asked, or ``""``."""
        if not self.unavailable:
            return ""
        return (f"; no loaded plugin declares it (not asked: {', '.join(self.unavailable)}; "
                "`geofm plugins` shows why)")


def _conflict_text(claims: list[Any]) -> str:
    return (
        f"is claimed by {len(claims)} conversion rules "
        f"({', '.join(c.describe() for c in claims)}); "
        "geofm will not pick one. Uninstall or disable all but one "
        "(GEOFM_DISABLE_PLUGINS=<source>), or fix the plugin that declares it twice"
    )


def load_function(path: str) -> Callable[..., Any]:
    """Import the ``"module:attr"`` function of a :attr:`FactoryRule.convert`."""
    module_name, _, attr = path.partition(":")
    obj: Any = importlib.import_module(module_name)
    for part in attr.split("."):
        obj = getattr(obj, part)
    if not callable(obj):
        raise TypeError(f"{path} is not callable")
    return obj  # type: ignore[no-any-return]


class Signatures:
    """The keywords registered components accept, read off their factories once each."""

    def __init__(self, registry: Registry) -> None:
        self._registry = registry
        self._cache: dict[tuple[str, str], Accepted | str] = {}

    def accepted(self, kind: str, name: str) -> Accepted | str:
        """The accepted keywords of ``kind`` ``name``, or why they cannot be read.

        Imports that component's module (the first time only).
        """
        key = (kind, name)
        if key not in self._cache:
            try:
                found = accepted_arguments(self._registry.get(kind, name).load())
            except Exception as exc:  # a plugin's unimportable component must not stop a conversion
                self._cache[key] = f"{type(exc).__name__}: {exc}"
            else:
                self._cache[key] = found if found is not None else "no readable signature"
        return self._cache[key]


def rule_problems(framework: str, source: str | None = None,
                  registry: Registry | None = None,
                  core: ConversionRules | None = None) -> list[str]:
    """Check declared rules against the real components; one line per problem.

    For plugin tests: every rule's target must be registered and every keyword the rule
    may write (renames, defaults, overrides, values, facts) must be accepted by the
    target's signature; a factory rule's ``backbone_args`` by every backbone the same
    plugin declares. Imports the components' modules.

    Args:
        framework: The framework whose rules to check (``"terratorch"``).
        source: Only this plugin's rules (default: every plugin's and ``core``'s).
        registry: The registry to check against (default: the process-wide one).
        core: The converter's own rules, checked too.
    """
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        book = RuleBook.collect(framework, core, registry)
    problems = [str(w.message) for w in caught if issubclass(w.category, PluginLoadWarning)]
    signatures = Signatures(book.registry)
    claims = [c for c in book.component_claims() if source in (None, c.source)]
    for claim in claims:
        rule = claim.rule
        accepted = signatures.accepted(rule.kind, rule.target)
        if isinstance(accepted, str):
            problems.append(f"{claim.source}: {rule.kind} {rule.target}: {accepted}")
            continue
        bad = sorted(k for k in rule.declared_keywords() if not accepted.accepts(k))
        if bad:
            problems.append(f"{claim.source}: {rule.kind} {rule.target} ({rule.names[0]}) "
                            f"takes no {bad}")
        for flag, neck in rule.neck_flags.items():
            if isinstance(signatures.accepted("neck", neck), str):
                problems.append(f"{claim.source}: {rule.names[0]}.{flag} adds {neck}, not found")
    for factory in book.factory_claims():
        if source not in (None, factory.source):
            continue
        if isinstance(signatures.accepted("model_factory", factory.rule.target), str):
            problems.append(f"{factory.source}: model factory {factory.rule.target} not found")
        for claim in claims:
            if claim.source != factory.source or claim.rule.kind != "backbone":
                continue
            accepted = signatures.accepted("backbone", claim.rule.target)
            bad = [] if isinstance(accepted, str) else [
                k for k in factory.rule.backbone_args if not accepted.accepts(k)]
            if bad:
                problems.append(f"{factory.source}: {factory.rule.names[0]} moves {bad} to "
                                f"{claim.rule.target}, which takes no such argument")
        if factory.rule.convert:
            try:
                load_function(factory.rule.convert)
            except Exception as exc:
                problems.append(f"{factory.source}: {factory.rule.convert}: {exc}")
    return problems
