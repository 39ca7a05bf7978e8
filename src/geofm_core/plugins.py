"""Plugin discovery: entry points of the ``geofm.plugins`` group, loaded into pluggy.

Discovery is a pipeline of small functions over entry points (find, apply the
environment switches, split conflicts, load), each taking its input as an argument
so tests can feed it real ``EntryPoint`` objects. Nothing here imports torch.
"""

from __future__ import annotations

import importlib
import os
import sys
import warnings
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from importlib.metadata import EntryPoint, entry_points
from types import ModuleType

import pluggy

from geofm_core import hookspecs
from geofm_core.errors import PluginLoadWarning
from geofm_core.names import SOURCE_PATTERN, check_source

__all__ = [
    "BUILTIN_PLUGINS",
    "ENTRY_POINT_GROUP",
    "PluginInfo",
    "apply_switches",
    "find_entry_points",
    "load_plugins",
    "new_plugin_manager",
    "split_conflicts",
    "unknown_switch_names",
]

ENTRY_POINT_GROUP = "geofm.plugins"
CORE_DISTRIBUTION = "geofm-core"
#: Sources provided by geofm-core itself, loaded even when autoload is disabled.
BUILTIN_PLUGINS: Mapping[str, str] = {
    "geofm": "geofm_core._builtin_plugin",
    "timm": "geofm_core._timm_plugin",
}

ENV_DISABLE_AUTOLOAD = "GEOFM_DISABLE_PLUGIN_AUTOLOAD"
ENV_DISABLE = "GEOFM_DISABLE_PLUGINS"
ENV_TRACE = "GEOFM_TRACE_PLUGINS"

LOADED, FAILED, CONFLICT, DISABLED = "loaded", "failed", "conflict", "disabled"


@dataclass
class PluginInfo:
    """What geofm knows about one plugin source: who provides it and whether it loaded."""

    source: str
    distribution: str
    version: str
    module: str
    status: str = LOADED
    hooks: tuple[str, ...] = ()
    error: str | None = None
    exception: BaseException | None = field(default=None, repr=False, compare=False)
    conflicting: tuple[str, ...] = ()

    def as_dict(self) -> dict[str, object]:
        """A JSON-friendly view, as printed by ``geofm plugins --json``."""
        return {
            "source": self.source,
            "distribution": self.distribution,
            "version": self.version,
            "module": self.module,
            "status": self.status,
            "hooks": list(self.hooks),
            "error": self.error,
            "conflicting_distributions": list(self.conflicting),
        }


def _truthy(value: str | None) -> bool:
    return (value or "").strip().lower() not in ("", "0", "false", "no", "off")


def _dist_of(ep: EntryPoint) -> tuple[str, str]:
    dist = getattr(ep, "dist", None)
    if dist is None:
        return "<unknown>", "<unknown>"
    return str(dist.metadata["Name"] or dist.name), str(dist.version)


def find_entry_points(group: str = ENTRY_POINT_GROUP) -> list[EntryPoint]:
    """Return the installed entry points of ``group``, one per (name, distribution)."""
    seen: set[tuple[str, str, str]] = set()
    found: list[EntryPoint] = []
    for ep in entry_points(group=group):
        # The same distribution can appear twice on sys.path (an editable install
        # beside a regular one); that is one claim, not a conflict.
        key = (ep.name, _dist_of(ep)[0], ep.value)
        if key not in seen:
            seen.add(key)
            found.append(ep)
    return sorted(found, key=lambda e: (e.name, _dist_of(e)[0]))


def apply_switches(
    eps: Iterable[EntryPoint], environ: Mapping[str, str]
) -> tuple[list[EntryPoint], list[EntryPoint]]:
    """Split entry points into (kept, disabled) following the environment switches.

    ``GEOFM_DISABLE_PLUGIN_AUTOLOAD`` disables every third-party plugin;
    ``GEOFM_DISABLE_PLUGINS=a,b`` disables the named sources.
    """
    eps = list(eps)
    if _truthy(environ.get(ENV_DISABLE_AUTOLOAD)):
        return [], eps
    names = _disabled_names(environ)
    return [e for e in eps if e.name not in names], [e for e in eps if e.name in names]


def _disabled_names(environ: Mapping[str, str]) -> set[str]:
    return {n.strip() for n in environ.get(ENV_DISABLE, "").split(",") if n.strip()}


def unknown_switch_names(eps: Iterable[EntryPoint], environ: Mapping[str, str]) -> str | None:
    """The warning for ``GEOFM_DISABLE_PLUGINS`` names no plugin has; None when all match.

    A misspelt name would otherwise leave the plugin it meant enabled without a word.
    """
    names = _disabled_names(environ)
    installed = sorted({ep.name for ep in eps})
    unknown = sorted(names - set(installed) - set(BUILTIN_PLUGINS))
    builtin = sorted(names & set(BUILTIN_PLUGINS))
    parts = []
    if unknown:
        listed = ", ".join(installed) or "none"
        parts.append(f"{ENV_DISABLE} names {', '.join(map(repr, unknown))}, which no "
                     f"installed plugin provides (installed plugins: {listed}); check the "
                     "spelling")
    if builtin:
        parts.append(f"{ENV_DISABLE} cannot disable {', '.join(map(repr, builtin))}: built "
                     f"into {CORE_DISTRIBUTION}")
    return "; ".join(parts) or None


def split_conflicts(
    eps: Iterable[EntryPoint],
) -> tuple[dict[str, EntryPoint], dict[str, list[EntryPoint]]]:
    """Split entry points into unique sources and sources claimed more than once.

    A source claimed by two distributions is never resolved by order: both claims
    are kept aside and the source is unusable until one is uninstalled.
    """
    by_source: dict[str, list[EntryPoint]] = {}
    for ep in eps:
        by_source.setdefault(ep.name, []).append(ep)
    unique = {s: claims[0] for s, claims in by_source.items() if len(claims) == 1}
    conflicts = {s: claims for s, claims in by_source.items() if len(claims) > 1}
    return unique, conflicts


def new_plugin_manager(environ: Mapping[str, str] | None = None) -> pluggy.PluginManager:
    """A pluggy manager with geofm's hook specifications (and tracing when asked)."""
    environ = os.environ if environ is None else environ
    pm = pluggy.PluginManager(hookspecs.PROJECT_NAME)
    pm.add_hookspecs(hookspecs)
    if _truthy(environ.get(ENV_TRACE)):
        pm.trace.root.setwriter(sys.stderr.write)
        pm.enable_tracing()
    return pm


def _hook_names(pm: pluggy.PluginManager, plugin: object) -> tuple[str, ...]:
    return tuple(sorted(h.name for h in pm.get_hookcallers(plugin) or ()))


def _register_module(
    pm: pluggy.PluginManager, source: str, module: ModuleType, info: PluginInfo
) -> None:
    pm.register(module, name=source)
    info.hooks = _hook_names(pm, module)


def load_plugins(
    pm: pluggy.PluginManager,
    eps: Iterable[EntryPoint] | None = None,
    environ: Mapping[str, str] | None = None,
) -> list[PluginInfo]:
    """Load the built-in sources and the plugins' entry points into ``pm``.

    A plugin that fails to import, claims a reserved or malformed source, or shares
    its source with another distribution is recorded with its error and a warning;
    the other plugins keep working.
    """
    environ = os.environ if environ is None else environ
    trace = _truthy(environ.get(ENV_TRACE))
    from geofm_core import __version__

    infos: list[PluginInfo] = []
    for source, module_name in BUILTIN_PLUGINS.items():
        info = PluginInfo(source, CORE_DISTRIBUTION, __version__, module_name)
        _register_module(pm, source, importlib.import_module(module_name), info)
        infos.append(info)

    eps = find_entry_points() if eps is None else list(eps)
    kept, disabled = apply_switches(eps, environ)
    unknown = None if _truthy(environ.get(ENV_DISABLE_AUTOLOAD)) else \
        unknown_switch_names(eps, environ)
    if unknown:
        warnings.warn(unknown, PluginLoadWarning, stacklevel=2)
    for ep in disabled:
        dist, version = _dist_of(ep)
        infos.append(PluginInfo(ep.name, dist, version, ep.value, status=DISABLED))
    unique, conflicts = split_conflicts(kept)

    for source, claims in conflicts.items():
        dists = tuple(f"{d} {v}" for d, v in map(_dist_of, claims))
        message = (
            f"plugin source {source!r} is claimed by {len(claims)} distributions "
            f"({', '.join(dists)}); geofm will not pick one. Uninstall all but one "
            f"(pip uninstall ...) to use {source!r}"
        )
        warnings.warn(message, PluginLoadWarning, stacklevel=2)
        for ep, (dist, version) in zip(claims, map(_dist_of, claims), strict=True):
            infos.append(
                PluginInfo(
                    source, dist, version, ep.value, status=CONFLICT, error=message,
                    conflicting=tuple(x for x in dists if not x.startswith(f"{dist} ")),
                )
            )

    for source, ep in unique.items():
        dist, version = _dist_of(ep)
        info = PluginInfo(source, dist, version, ep.value)
        infos.append(info)
        try:
            check_source(source)
            if source in BUILTIN_PLUGINS:
                raise ValueError(
                    f"source {source!r} is reserved for {CORE_DISTRIBUTION}; rename the "
                    f"entry point (sources match {SOURCE_PATTERN!r})"
                )
            module = ep.load()
            _register_module(pm, source, module, info)
        except Exception as exc:  # a broken plugin must not break the others
            info.status, info.exception = FAILED, exc
            info.error = f"{type(exc).__name__}: {exc}"
            warnings.warn(
                f"geofm plugin {source!r} from {dist} {version} failed to load "
                f"({info.error}); the other plugins keep working. Reinstall or fix it, "
                f"or disable it with {ENV_DISABLE}={source}",
                PluginLoadWarning,
                stacklevel=2,
            )
        if trace:
            sys.stderr.write(f"geofm: plugin {source!r} from {dist} {version}: {info.status}\n")
    return infos
