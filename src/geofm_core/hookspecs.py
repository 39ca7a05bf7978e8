"""The pluggy hook specifications of geofm; plugins implement them with :data:`hookimpl`.

Every hook is prefixed ``geofm_`` and called with keyword arguments. A plugin module
(the value of its ``geofm.plugins`` entry point) must stay light: it names its
components by ``"module:attr"`` strings and imports nothing heavy.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Protocol

import pluggy

if TYPE_CHECKING:
    from geofm_core.convert.rules import ConversionRules

__all__ = ["PROJECT_NAME", "RegisterCallback", "hookimpl", "hookspec"]

PROJECT_NAME = "geofm"

hookspec = pluggy.HookspecMarker(PROJECT_NAME)
#: Decorator for plugin hook implementations: ``@hookimpl def geofm_register_components(...)``.
hookimpl = pluggy.HookimplMarker(PROJECT_NAME)


class RegisterCallback(Protocol):
    """The ``register`` callable handed to :func:`geofm_register_components`."""

    def __call__(
        self, kind: str, name: str, target: str | Callable[..., Any], *, description: str = "",
        metadata: Any = None,
    ) -> None:
        """Register one component of the calling plugin's source.

        ``metadata`` is a mapping of :class:`~geofm_core.metadata.ComponentMetadata`
        fields (bands, modalities, patch size, weight sets, ...), or that dataclass.
        """


@hookspec
def geofm_register_components(register: RegisterCallback) -> None:
    """Register the plugin's components.

    Call ``register(kind, name, target, description=..., metadata=...)`` once per
    component (``metadata``, optional: see :mod:`geofm_core.metadata`). ``kind``
    is one of ``backbone, neck, decoder, head, loss, model_factory, mae_decoder``
    (a masked-autoencoding decoder built as ``factory(encoder=backbone, ...)``, see
    :mod:`geofm_core.models.mae`); ``name`` is the
    bare name (the plugin's source is stamped on it by geofm); ``target`` is a
    ``"module:attr"`` string imported only when the component is first built.
    """


@hookspec(firstresult=True)
def geofm_resolve_component(kind: str, source: str, name: str) -> Callable[..., Any] | str | None:
    """Resolve a name of a *dynamic* source that was not registered up front.

    Called only on the plugin that owns ``source``. Return the component's factory
    (a callable or a ``"module:attr"`` string), or ``None`` when the name does not
    exist. May import the library behind the source (timm, say).
    """


@hookspec(firstresult=True)
def geofm_component_metadata(kind: str, source: str, name: str) -> Any:
    """Capability metadata of a name of a *dynamic* source, resolved on demand.

    Called only on the plugin that owns ``source``, right after
    :func:`geofm_resolve_component` resolved ``name`` (so only when a component is used
    or described, never by ``geofm list``), and the answer is attached to the resolved
    :class:`~geofm_core.registry.ComponentSpec`. Return a mapping of
    :class:`~geofm_core.metadata.ComponentMetadata` fields (``any_bands``, ``weights``,
    ...), that dataclass, or ``None`` when nothing is known. May import the library
    behind the source. A hook that raises or returns bad fields gives a warning and no
    metadata; the component stays usable.
    """


@hookspec(firstresult=True)
def geofm_list_components(kind: str, source: str, pattern: str) -> list[str] | None:
    """List names of a *dynamic* source matching the fnmatch ``pattern``.

    Called only on the plugin that owns ``source``, when a user lists into it
    (``geofm list backbone 'timm:resnet*'``). Return ``None`` for a kind the source
    does not provide.
    """


@hookspec
def geofm_conversion_rules(framework: str) -> ConversionRules | None:
    """Declare how another framework names the plugin's components, for ``geofm convert``.

    ``framework`` is the converter asking (``"terratorch"``). Return a
    :class:`~geofm_core.convert.rules.ConversionRules` (foreign names and aliases ->
    this plugin's registry names, argument renames, defaults that differ, facts such as
    a backbone's depth), or ``None`` for a framework the plugin knows nothing about.
    Bare target names are stamped with the plugin's source. Rules are plain data: build
    them in a light module (no torch); logic that cannot be data is a ``"module:attr"``
    function, imported only when a config uses it. A foreign name claimed by two plugins
    is converted by neither, and the report names both.
    """
