"""What a component accepts: its keyword arguments and their types, read from its signature.

Every factory geofm builds (a class, a function, a ``functools.partial`` of one, or a
callable object) is checked here before it is called, so a misspelt keyword or a value
of the wrong type fails with one message naming the component, the keyword and the close
matches, not deep inside torch. Converters use :func:`accepted_arguments` to know which
keywords a component takes. Nothing here imports torch.
"""

from __future__ import annotations

import difflib
import functools
import inspect
import typing
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from geofm_core.errors import ComponentArgumentError

__all__ = ["Accepted", "accepted_arguments", "check_arguments", "signature_text"]


@dataclass(frozen=True)
class Accepted:
    """The keywords a factory accepts.

    Attributes:
        names: Keyword-passable parameters, in signature order.
        required: Those without a default.
        any_keyword: The factory also takes ``**kwargs`` (any other keyword is passed on).
    """

    names: tuple[str, ...]
    required: tuple[str, ...]
    any_keyword: bool

    def accepts(self, keyword: str) -> bool:
        """Whether ``keyword`` may be passed."""
        return self.any_keyword or keyword in self.names


def _signature(factory: Callable[..., Any]) -> inspect.Signature | None:
    try:
        return inspect.signature(factory)
    except (TypeError, ValueError):  # builtins and C extensions without a signature
        return None


def accepted_arguments(factory: Callable[..., Any]) -> Accepted | None:
    """The keywords ``factory`` takes, or ``None`` when its signature cannot be read."""
    sig = _signature(factory)
    if sig is None:
        return None
    keyword_kinds = (inspect.Parameter.POSITIONAL_OR_KEYWORD, inspect.Parameter.KEYWORD_ONLY)
    params = [p for p in sig.parameters.values() if p.kind in keyword_kinds]
    return Accepted(
        names=tuple(p.name for p in params),
        required=tuple(p.name for p in params if p.default is p.empty),
        any_keyword=any(p.kind is p.VAR_KEYWORD for p in sig.parameters.values()),
    )


def signature_text(factory: Callable[..., Any], *, skip_first: bool = False) -> str:
    """The signature as ``(a: int = 1, ...)``, annotations resolved where possible.

    Args:
        factory: The callable.
        skip_first: Leave out the first parameter (``self`` of a method read off its class).
    """
    sig = _signature(factory)
    if sig is None:
        return "(...)"
    params = list(sig.parameters.values())[1 if skip_first else 0:]
    # Annotations as written in the source (``x: Bands``), not their expansion.
    params = [p.replace(annotation=_Source(p.annotation)) if isinstance(p.annotation, str)
              else p for p in params]
    return str(sig.replace(parameters=params, return_annotation=inspect.Signature.empty))


class _Source(str):
    """An annotation's source text, shown unquoted in a signature."""

    def __repr__(self) -> str:
        return str(self)


def check_arguments(factory: Callable[..., Any], kwargs: Mapping[str, Any], what: str) -> None:
    """Check ``kwargs`` against ``factory``'s signature; raise one clear error if they don't fit.

    Args:
        factory: A class, function, ``functools.partial`` or callable object.
        kwargs: The keyword arguments about to be passed.
        what: How to name the component in the message, e.g. ``"decoder 'upernet:upernet'"``.

    Raises:
        ComponentArgumentError: An unknown keyword (with close matches), a missing
            required argument, or a value that cannot be its parameter's annotated type.
    """
    accepted = accepted_arguments(factory)
    if accepted is None:
        return
    _check_types(factory, accepted, kwargs, what)
    if accepted.any_keyword:
        return
    for key in kwargs:
        if key not in accepted.names:
            close = difflib.get_close_matches(key, accepted.names, n=3, cutoff=0.5)
            hint = f" Did you mean {', '.join(repr(c) for c in close)}?" if close else ""
            raise ComponentArgumentError(
                f"{what} got an unknown argument {key!r}.{hint} "
                f"It accepts: {', '.join(accepted.names) or 'no arguments'}"
            )
    missing = [n for n in accepted.required if n not in kwargs]
    if missing:
        raise ComponentArgumentError(
            f"{what} is missing required argument(s): {', '.join(missing)}"
        )


def _annotated_callable(factory: Any) -> Any:
    """The function whose annotations describe ``factory``'s parameters."""
    while isinstance(factory, functools.partial):
        factory = factory.func
    if inspect.isclass(factory):
        return factory.__init__
    if not inspect.isfunction(factory) and not inspect.ismethod(factory) and callable(factory):
        return type(factory).__call__
    return factory


def _annotations(factory: Callable[..., Any]) -> dict[str, Any]:
    """Resolved parameter annotations of a factory; unresolvable ones left out."""
    target = _annotated_callable(factory)
    try:
        return typing.get_type_hints(target)
    except Exception:
        pass
    namespace = dict(getattr(inspect.getmodule(target), "__dict__", {}))
    out: dict[str, Any] = {}
    for name, annotation in getattr(target, "__annotations__", {}).items():
        try:
            out[name] = eval(annotation, namespace) if isinstance(annotation, str) else annotation
        except Exception:
            continue
    return out


def _check_types(factory: Callable[..., Any], accepted: Accepted, kwargs: Mapping[str, Any],
                 what: str) -> None:
    """Raise for a value that cannot be its parameter's annotated type ("eight" for an int).

    Values are validated with pydantic in lax mode (8.0 passes for an int) and never
    converted; parameters whose annotation pydantic cannot check are left alone.
    """
    given = {k: v for k, v in kwargs.items() if k in accepted.names and v is not None}
    if not given:
        return
    annotations = _annotations(factory)
    if not annotations:
        return
    from pydantic import TypeAdapter, ValidationError

    for key, value in given.items():
        annotation = annotations.get(key)
        if annotation is None or annotation is Any:
            continue
        try:
            adapter: TypeAdapter[Any] = TypeAdapter(annotation)
        except Exception:  # classes such as nn.Module: nothing to check here
            continue
        try:
            adapter.validate_python(value)
        except ValidationError as exc:
            expected = getattr(annotation, "__name__", None) or str(annotation).replace(
                "typing.", "")
            reason = exc.errors()[0].get("msg", "") if exc.errors() else ""
            raise ComponentArgumentError(
                f"{what} argument {key!r} expects {expected}, got {value!r} "
                f"({type(value).__name__}): {reason}. Fix the value of {key!r}"
            ) from None
        except Exception:
            continue
