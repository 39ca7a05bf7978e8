"""The component registry: every backbone, neck, decoder, head, loss and model factory by name.

Components are registered by plugins (see :mod:`geofm_core.hookspecs`) as
``"module:attr"`` targets and imported only when first built, so listing them is
cheap. Names follow :mod:`geofm_core.names`; every failed lookup says what was asked,
what exists and what to do.
"""

from __future__ import annotations

import builtins
import difflib
import fnmatch
import importlib
import inspect
import threading
import warnings
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

import pluggy

from geofm_core.errors import (
    AmbiguousComponentError,
    ComponentImportError,
    DuplicateComponentError,
    InvalidNameError,
    PluginConflictError,
    PluginLoadError,
    PluginLoadWarning,
    UnknownComponentError,
)
from geofm_core.metadata import ComponentMetadata, parse_metadata
from geofm_core.names import KINDS, ComponentName, check_kind, parse_name
from geofm_core.plugins import CONFLICT, DISABLED, FAILED, PluginInfo
from geofm_core.signatures import check_arguments, signature_text

__all__ = ["ComponentSpec", "Registry", "get_registry", "reset_registry"]

Target = str | Callable[..., Any]
_DYNAMIC_HOOKS = ("geofm_resolve_component", "geofm_list_components")


@dataclass(frozen=True)
class ComponentSpec:
    """One registered component, stamped with the plugin that provides it."""

    kind: str
    source: str
    name: str
    target: Target | None
    description: str = ""
    distribution: str = ""
    version: str = ""
    #: Capability facts (bands, modalities, weight sets) the plugin declared, if any.
    metadata: ComponentMetadata | None = None

    @property
    def qualified_name(self) -> str:
        """The unambiguous ``source:name`` form."""
        return f"{self.source}:{self.name}"

    @property
    def target_path(self) -> str:
        """The target as ``module:attr`` text (resolved names of dynamic sources included)."""
        target = self.target
        if target is None or isinstance(target, str):
            return target or "<resolved on use>"
        func = getattr(target, "func", target)  # functools.partial
        return f"{func.__module__}:{func.__qualname__}"

    def load(self) -> Callable[..., Any]:
        """Import and return the component's factory (a class or a function)."""
        if self.target is None:
            raise ComponentImportError(f"{self.kind} {self.qualified_name!r} has no target")
        if not isinstance(self.target, str):
            return self.target
        try:
            return _import_target(self.target)
        except Exception as exc:
            raise ComponentImportError(
                f"cannot import {self.kind} {self.qualified_name!r} from {self.target!r} "
                f"(distribution {self.distribution} {self.version}): "
                f"{type(exc).__name__}: {exc}. Reinstall the plugin or report it to its authors"
            ) from exc

    def as_dict(self) -> dict[str, Any]:
        """A JSON-friendly view, as printed by ``geofm list --json``."""
        view: dict[str, Any] = {
            "kind": self.kind,
            "name": self.qualified_name,
            "source": self.source,
            "description": self.description,
            "distribution": self.distribution,
            "version": self.version,
            "target": self.target_path,
        }
        if self.metadata is not None:
            view["metadata"] = self.metadata.as_dict()
        return view


_import_lock = threading.Lock()
_import_cache: dict[str, Callable[..., Any]] = {}


def _import_target(target: str) -> Callable[..., Any]:
    with _import_lock:
        if target not in _import_cache:
            module_name, sep, attr = target.partition(":")
            if not sep or not module_name or not attr:
                raise ValueError(f"target {target!r} is not of the form 'module:attr'")
            obj: Any = importlib.import_module(module_name)
            for part in attr.split("."):
                obj = getattr(obj, part)
            _import_cache[target] = obj
        return _import_cache[target]


def _factory_doc(factory: Callable[..., Any]) -> str | None:
    """The docstring of a factory; a ``functools.partial`` shows its function's.

    A docstring set on the object itself wins (a plugin documenting each partial of
    one builder, such as one per model variant): a partial's own class docstring says
    nothing about the component.
    """
    own = getattr(factory, "__dict__", {}).get("__doc__")
    if own:
        return str(own)
    return getattr(factory, "func", factory).__doc__


def _first_line(doc: str | None) -> str:
    return inspect.cleandoc(doc).splitlines()[0] if doc else ""


class Registry:
    """Components by kind and ``source:name``, plus the plugins that provide them."""

    def __init__(
        self, plugin_manager: pluggy.PluginManager | None = None,
        plugins: Iterable[PluginInfo] = (),
    ) -> None:
        self._pm = plugin_manager
        self._plugins: list[PluginInfo] = list(plugins)
        self._specs: dict[tuple[str, str, str], ComponentSpec] = {}
        self._duplicates: dict[tuple[str, str, str], list[str]] = {}

    # -- construction -------------------------------------------------------------

    @classmethod
    def from_plugin_manager(
        cls, pm: pluggy.PluginManager, plugins: Iterable[PluginInfo]
    ) -> Registry:
        """Collect the components of every loaded plugin through the register hook."""
        registry = cls(pm, plugins)
        by_source = {p.source: p for p in registry._plugins if p.status not in (CONFLICT, DISABLED)}
        for impl in pm.hook.geofm_register_components.get_hookimpls():
            info = by_source.get(impl.plugin_name)
            if info is None or info.status == FAILED:
                continue
            # Called through pluggy, one plugin at a time, so that each register
            # callback knows its caller and GEOFM_TRACE_PLUGINS traces the call.
            registry._collect(
                info, registry._hook_for_source("geofm_register_components", info.source)
            )
        return registry

    def _collect(self, info: PluginInfo, hook: Callable[..., Any]) -> None:
        staged: list[ComponentSpec] = []

        def register(
            kind: str, name: str, target: Target, *, description: str = "",
            metadata: ComponentMetadata | dict[str, Any] | None = None,
        ) -> None:
            kind = check_kind(kind).value
            parsed = parse_name(name)
            if parsed.source is not None and parsed.source != info.source:
                raise InvalidNameError(
                    f"plugin {info.source!r} registered {kind} {name!r}: register bare names; "
                    f"the source {info.source!r} is added by geofm"
                )
            if isinstance(target, str) and ":" not in target:
                raise InvalidNameError(
                    f"plugin {info.source!r} registered {kind} {name!r} with target "
                    f"{target!r}; a target is a 'module:attr' string"
                )
            try:
                facts = parse_metadata(metadata, f"metadata of {kind} {parsed.name!r}")
            except ValueError as exc:
                raise InvalidNameError(f"plugin {info.source!r} registered {exc}") from exc
            staged.append(
                ComponentSpec(kind, info.source, parsed.name, target, description,
                              info.distribution, info.version, facts)
            )

        try:
            hook(register=register)
        except Exception as exc:  # nothing of a failing plugin is half-registered
            info.status, info.exception = FAILED, exc
            info.error = f"{type(exc).__name__}: {exc}"
            warnings.warn(
                f"geofm plugin {info.source!r} from {info.distribution} failed to register "
                f"its components ({info.error}); the other plugins keep working",
                PluginLoadWarning, stacklevel=3,
            )
            return
        for spec in staged:
            self.add(spec)

    def add(self, spec: ComponentSpec) -> None:
        """Add one component; a second registration of the same name makes it unusable."""
        key = (spec.kind, spec.source, spec.name)
        if key in self._specs or key in self._duplicates:
            first = self._specs.pop(key, None)
            targets = self._duplicates.setdefault(key, [first.target_path] if first else [])
            targets.append(spec.target_path)
            warnings.warn(
                f"plugin {spec.source!r} ({spec.distribution}) registers {spec.kind} "
                f"{spec.qualified_name!r} more than once ({', '.join(targets)}); "
                "it cannot be used until the plugin registers it once",
                PluginLoadWarning, stacklevel=3,
            )
            return
        self._specs[key] = spec

    # -- plugins ------------------------------------------------------------------

    @property
    def plugins(self) -> list[PluginInfo]:
        """Every plugin source found, loaded or not."""
        return list(self._plugins)

    def call_each(
        self, hook_name: str, failed: builtins.list[str] | None = None, **kwargs: Any
    ) -> builtins.list[tuple[PluginInfo, Any]]:
        """Call the hook ``hook_name`` on each loaded plugin on its own, in source order.

        For hooks whose answers must be stamped with the plugin that gave them (as
        ``geofm_conversion_rules``). Returns ``(plugin, answer)`` pairs for the answers
        that are not ``None``. A plugin whose hook raises is left out with a
        :class:`PluginLoadWarning` (and its source appended to ``failed``); the others
        answer.
        """
        if self._pm is None:
            return []
        implementers = {impl.plugin_name for impl in
                        getattr(self._pm.hook, hook_name).get_hookimpls()}
        answers = []
        for info in sorted(self._plugins, key=lambda p: p.source):
            if info.status != "loaded" or info.source not in implementers:
                continue
            try:
                answer = self._hook_for_source(hook_name, info.source)(**kwargs)
            except Exception as exc:  # one broken plugin must not stop the others
                warnings.warn(
                    f"geofm plugin {info.source!r} from {info.distribution} failed in "
                    f"{hook_name} ({type(exc).__name__}: {exc}); the other plugins keep "
                    "working", PluginLoadWarning, stacklevel=2,
                )
                if failed is not None:
                    failed.append(info.source)
                continue
            # A non-firstresult hook answers with a list of each implementation's result.
            for result in answer if isinstance(answer, list) else [answer]:
                answers.append((info, result))
        return answers

    def sources(self) -> list[str]:
        """Sources whose plugin loaded."""
        return sorted({p.source for p in self._plugins if p.status == "loaded"})

    def dynamic_sources(self) -> list[str]:
        """Loaded sources that resolve names on demand (such as ``timm``)."""
        return [
            p.source for p in self._plugins
            if p.status == "loaded" and any(h in p.hooks for h in _DYNAMIC_HOOKS)
        ]

    def _check_source_usable(self, source: str, asked: str) -> None:
        claims = [p for p in self._plugins if p.source == source]
        if not claims:
            return
        if any(p.status == CONFLICT for p in claims):
            raise PluginConflictError(f"cannot use {asked!r}: {claims[0].error}")
        info = claims[0]
        if info.status == DISABLED:
            raise PluginLoadError(
                f"cannot use {asked!r}: plugin source {source!r} ({info.distribution}) is "
                "disabled by GEOFM_DISABLE_PLUGINS or GEOFM_DISABLE_PLUGIN_AUTOLOAD; unset it"
            )
        if info.status == FAILED:
            raise PluginLoadError(
                f"cannot use {asked!r}: plugin source {source!r} from {info.distribution} "
                f"{info.version} failed to load: {info.error}. Reinstall or fix the plugin "
                "(`geofm plugins` shows every plugin's state)"
            ) from info.exception

    # -- lookup -------------------------------------------------------------------

    def get(self, kind: str, name: str) -> ComponentSpec:
        """Return the component ``name`` (``source:name`` or bare) of ``kind``.

        Raises:
            UnknownComponentError: No source provides it; the message lists close matches.
            AmbiguousComponentError: A bare name exists in several sources.
            PluginConflictError: Two distributions claim the source.
            PluginLoadError: The source's plugin failed to load (chained to its error).
            DuplicateComponentError: The plugin registered the name twice.
        """
        kind = check_kind(kind)
        parsed = parse_name(name, loose=True)
        if parsed.source is None:
            return self._get_bare(kind, parsed.require_strict().name)
        source = parsed.source
        self._check_source_usable(source, name)
        key = (kind, source, parsed.name)
        if key in self._duplicates:
            raise DuplicateComponentError(
                f"{kind} {name!r} is registered more than once by plugin {source!r} "
                f"({', '.join(self._duplicates[key])}); fix or reinstall that plugin"
            )
        if key in self._specs:
            return self._specs[key]
        if source in self.dynamic_sources():
            target = self._hook_for_source("geofm_resolve_component", source)(
                kind=kind, source=source, name=parsed.name
            )
            if target is not None:
                info = next(p for p in self._plugins if p.source == source)
                doc = getattr(getattr(target, "func", target), "__doc__", None)
                return ComponentSpec(kind, source, parsed.name, target, _first_line(doc),
                                     info.distribution, info.version,
                                     self._dynamic_metadata(info, kind, parsed.name))
        else:
            parsed.require_strict()  # the strict grammar applies outside dynamic sources
        raise UnknownComponentError(self._unknown_message(kind, parsed))

    def _get_bare(self, kind: str, name: str) -> ComponentSpec:
        found = [s for (k, _, n), s in self._specs.items() if k == kind and n == name]
        if len(found) == 1:
            return found[0]
        if len(found) > 1:
            names = ", ".join(sorted(s.qualified_name for s in found))
            raise AmbiguousComponentError(
                f"{kind} {name!r} is provided by several sources: {names}. "
                "Write the qualified name (source:name) to choose one"
            )
        raise UnknownComponentError(self._unknown_message(kind, ComponentName(None, name)))

    def _dynamic_metadata(self, info: PluginInfo, kind: str, name: str) -> (
        ComponentMetadata | None
    ):
        """What the owning plugin's ``geofm_component_metadata`` says of a resolved name."""
        if "geofm_component_metadata" not in info.hooks:
            return None
        try:
            answer = self._hook_for_source("geofm_component_metadata", info.source)(
                kind=kind, source=info.source, name=name
            )
            return parse_metadata(answer, f"metadata of {kind} {info.source}:{name}")
        except Exception as exc:  # metadata informs; it must not stop the component's use
            warnings.warn(
                f"geofm plugin {info.source!r} from {info.distribution} failed to give the "
                f"metadata of {kind} {info.source}:{name} ({type(exc).__name__}: {exc}); "
                "the component is used without it", PluginLoadWarning, stacklevel=3,
            )
            return None

    def _hook_for_source(self, hook_name: str, source: str) -> Any:
        """The hook ``hook_name`` restricted to the plugin that owns ``source``."""
        assert self._pm is not None
        others = [p for n, p in self._pm.list_name_plugin() if n != source]
        return self._pm.subset_hook_caller(hook_name, remove_plugins=others)

    def _unknown_message(self, kind: str, asked: ComponentName) -> str:
        installed = self.sources()
        lines = [f"unknown {kind} {str(asked)!r}."]
        if asked.source is not None and asked.source not in installed:
            close = difflib.get_close_matches(asked.source, installed, n=3, cutoff=0.6)
            lines.append(
                f"No installed plugin provides the source {asked.source!r}"
                + (f" (did you mean {', '.join(repr(c) for c in close)}?)" if close else "")
                + f"; install the plugin that provides it (e.g. pip install "
                f"geofm-plugin-{asked.source})."
            )
        else:
            candidates = [s.qualified_name for s in self.list(kind)]
            if asked.source is not None and asked.source in self.dynamic_sources():
                names = self._hook_for_source("geofm_list_components", asked.source)(
                    kind=kind, source=asked.source, pattern="*"
                ) or []
                candidates += [f"{asked.source}:{n}" for n in names]
            pool = candidates if asked.source is None else [
                c for c in candidates if c.startswith(f"{asked.source}:")
            ]
            by_name = {c.partition(":")[2]: c for c in pool}
            close = difflib.get_close_matches(asked.name, list(by_name), n=5, cutoff=0.6)
            if close:
                lines.append(f"Did you mean: {', '.join(by_name[c] for c in close)}?")
            other_kinds = [
                k for k in KINDS if k != kind
                and any(s.name == asked.name and (asked.source in (None, s.source))
                        for s in self.list(k))
            ]
            if other_kinds:
                lines.append(f"{str(asked)!r} exists as a {', '.join(other_kinds)}, not a {kind}.")
        dyn = set(self.dynamic_sources())
        shown = ", ".join(f"{s} (dynamic)" if s in dyn else s for s in installed)
        lines.append(f"Installed sources: {shown}.")
        lines.append(f"Run `geofm list {kind}` to see the names, `geofm plugins` for the plugins.")
        return " ".join(lines)

    # -- building and listing -----------------------------------------------------

    def build(self, kind: str, name: str, /, **kwargs: Any) -> Any:
        """Build the component ``name`` of ``kind`` with ``kwargs`` (checked against its signature).

        Raises:
            ComponentArgumentError: A keyword the component does not accept (with close
                matches), or a required argument missing.
        """
        spec = self.get(kind, name)
        factory = spec.load()
        check_arguments(factory, kwargs, f"{kind} {spec.qualified_name!r}")
        return factory(**kwargs)

    def list(self, kind: str | None = None, pattern: str | None = None) -> list[ComponentSpec]:
        """Components of ``kind`` (all kinds when ``None``) matching an fnmatch ``pattern``.

        A pattern with a ``:`` matches qualified names; without one, bare names. A
        pattern into a dynamic source (``timm:resnet*``) asks that source's plugin.
        """
        kinds = KINDS if kind is None else (check_kind(kind),)
        specs = [s for s in self._specs.values() if s.kind in kinds]
        if pattern:
            source_pat, sep, name_pat = pattern.partition(":")
            if sep:
                specs = [s for s in specs if fnmatch.fnmatchcase(s.qualified_name, pattern)]
                specs += self._list_dynamic(kinds, source_pat, name_pat)
            else:
                specs = [s for s in specs if fnmatch.fnmatchcase(s.name, pattern)]
        order = {k: i for i, k in enumerate(KINDS)}
        return sorted(specs, key=lambda s: (order[s.kind], s.source, s.name))

    def _list_dynamic(
        self, kinds: Iterable[str], source_pat: str, name_pat: str
    ) -> builtins.list[ComponentSpec]:
        specs = []
        for source in self.dynamic_sources():
            if not fnmatch.fnmatchcase(source, source_pat):
                continue
            info = next(p for p in self._plugins if p.source == source)
            caller = self._hook_for_source("geofm_list_components", source)
            for kind in kinds:
                for n in caller(kind=kind, source=source, pattern=name_pat or "*") or []:
                    specs.append(ComponentSpec(kind, source, n, None, "",
                                               info.distribution, info.version))
        return specs

    def describe(self, kind: str, name: str) -> dict[str, str]:
        """Signature, docstring, source, distribution and version of one component.

        Imports only the module of that component.
        """
        spec = self.get(kind, name)
        factory = spec.load()
        build = getattr(factory, "build_model", None) if inspect.isclass(factory) else None
        # A model factory is used through build_model: its arguments are what users write.
        signature = (signature_text(build, skip_first=True) if callable(build)
                     else signature_text(factory))
        return {
            **spec.as_dict(),
            "signature": signature,
            "doc": inspect.cleandoc(_factory_doc(factory) or "") or spec.description,
        }


_registry: Registry | None = None
_registry_lock = threading.Lock()


def get_registry() -> Registry:
    """The process-wide registry, built from the installed plugins on first use."""
    global _registry
    with _registry_lock:
        if _registry is None:
            from geofm_core.plugins import load_plugins, new_plugin_manager

            pm = new_plugin_manager()
            _registry = Registry.from_plugin_manager(pm, load_plugins(pm))
        return _registry


def reset_registry() -> None:
    """Forget the registry so the next :func:`get_registry` rediscovers plugins."""
    global _registry
    with _registry_lock:
        _registry = None
