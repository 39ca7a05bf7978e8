"""Errors raised by geofm: each says what was asked, what exists and how to fix it."""

from __future__ import annotations

__all__ = [
    "AmbiguousComponentError",
    "ComponentArgumentError",
    "ComponentImportError",
    "ComponentLookupError",
    "ConfigurationError",
    "DuplicateComponentError",
    "GeofmError",
    "InvalidNameError",
    "NonFiniteError",
    "OutputExistsError",
    "OutputWriteError",
    "PluginConflictError",
    "PluginLoadError",
    "PluginLoadWarning",
    "PluginWarning",
    "TrainingInterruptedError",
    "UnknownComponentError",
]


class GeofmError(Exception):
    """Base class of every error geofm raises on purpose.

    The CLI prints these as one paragraph, without a traceback unless ``--debug``, and
    exits with :attr:`exit_code`.
    """

    #: The exit status of the ``geofm`` command that stops with this error.
    exit_code: int = 1


class ComponentLookupError(GeofmError, LookupError):
    """A component name could not be turned into exactly one component.

    A ``LookupError`` rather than a ``KeyError``: ``KeyError`` quotes its message and
    mangles multi-line text.
    """


class UnknownComponentError(ComponentLookupError):
    """No installed source provides the requested name."""


class AmbiguousComponentError(ComponentLookupError):
    """A bare name is provided by more than one source."""


class PluginConflictError(ComponentLookupError):
    """Two distributions claim the same source, so geofm refuses to pick one."""


class DuplicateComponentError(ComponentLookupError):
    """One plugin registered the same kind and name twice with different targets."""


class PluginLoadError(GeofmError):
    """A plugin failed to load; raised, chained to the original error, when it is used."""


class ComponentImportError(GeofmError, ImportError):
    """A registered component's ``module:attr`` target could not be imported."""


class InvalidNameError(GeofmError, ValueError):
    """A component name or kind does not follow the grammar."""


class ComponentArgumentError(GeofmError, TypeError):
    """A component was given an argument it does not accept, or a wrong value."""


class ConfigurationError(GeofmError, ValueError):
    """A configuration value is wrong; the message names the field and the fix."""


class NonFiniteError(GeofmError, ArithmeticError):
    """A loss or weights became NaN / inf while training, or a checkpoint holds such weights."""


class OutputExistsError(GeofmError, FileExistsError):
    """An output file exists and overwriting was not asked for."""


class OutputWriteError(GeofmError, OSError):
    """Writing an output failed (a full disk, say); nothing is left at the final path."""


class TrainingInterruptedError(GeofmError):
    """Training was stopped by SIGTERM (a scheduler's pre-emption, say) before it ended.

    The exit status is 143 (128 + SIGTERM), what a scheduler expects of a terminated job.
    """

    exit_code = 143


class PluginWarning(UserWarning):
    """Base class of warnings about installed plugins."""


class PluginLoadWarning(PluginWarning):
    """A plugin could not be loaded or conflicts with another; the others keep working."""
