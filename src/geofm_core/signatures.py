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
import types
import typing
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from geofm_core.errors import ComponentArgumentError

__all__ = [
    "Accepted",
    "TypeMismatch",
    "accepted_arguments",
    "check_arguments",
    "class_annotations",
    "signature_text",
    "type_mismatches",
]


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


_KEYWORD_KINDS = (inspect.Parameter.POSITIONAL_OR_KEYWORD, inspect.Parameter.KEYWORD_ONLY)


def accepted_arguments(factory: Callable[..., Any], *,
                       follow_kwargs: bool = False) -> Accepted | None:
    """The keywords ``factory`` takes, or ``None`` when its signature cannot be read.

    Args:
        factory: A class, function, ``functools.partial`` or callable object.
        follow_kwargs: For a class whose ``__init__`` passes ``**kwargs`` on to its base
            class (as jsonargparse assumes), add the keywords of the bases, up to the first
            one without ``**kwargs``.
    """
    sig = _signature(factory)
    if sig is None:
        return None
    params = [p for p in sig.parameters.values() if p.kind in _KEYWORD_KINDS]
    any_keyword = any(p.kind is p.VAR_KEYWORD for p in sig.parameters.values())
    if follow_kwargs and any_keyword and inspect.isclass(factory):
        for base in factory.__mro__[1:]:
            if "__init__" not in vars(base):
                continue
            base_sig = _signature(vars(base)["__init__"])
            if base_sig is None:
                break
            own = {p.name for p in params}
            params += [p for p in list(base_sig.parameters.values())[1:]
                       if p.kind in _KEYWORD_KINDS and p.name not in own]
            any_keyword = any(p.kind is p.VAR_KEYWORD for p in base_sig.parameters.values())
            if not any_keyword:
                break
    return Accepted(
        names=tuple(p.name for p in params),
        required=tuple(p.name for p in params if p.default is p.empty),
        any_keyword=any_keyword,
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


def check_arguments(factory: Callable[..., Any], kwargs: Mapping[str, Any], what: str, *,
                    follow_kwargs: bool = False) -> None:
    """Check ``kwargs`` against ``factory``'s signature; raise one clear error if they don't fit.

    Args:
        factory: A class, function, ``functools.partial`` or callable object.
        kwargs: The keyword arguments about to be passed.
        what: How to name the component in the message, e.g. ``"decoder 'upernet:upernet'"``.
        follow_kwargs: For a class passing ``**kwargs`` on to its base, check against the
            base's keywords and types too (see :func:`accepted_arguments`).

    Raises:
        ComponentArgumentError: An unknown keyword (with close matches), a missing
            required argument, or a value that cannot be its parameter's annotated type.
    """
    accepted = accepted_arguments(factory, follow_kwargs=follow_kwargs)
    if accepted is None:
        return
    hints = class_annotations(factory) if follow_kwargs and inspect.isclass(factory) else None
    _check_types(factory, accepted, kwargs, what, hints)
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


@dataclass(frozen=True)
class TypeMismatch:
    """A value that cannot be its parameter's annotated type.

    Attributes:
        key: The parameter.
        value: The value given.
        expected: The annotation, readable (``float``, ``list[int]``; ``None`` left out).
        reason: pydantic's reason.
    """

    key: str
    value: Any
    expected: str
    reason: str


def _readable(annotation: Any) -> str:
    args = [a for a in typing.get_args(annotation) if a is not type(None)]
    if typing.get_origin(annotation) in (typing.Union, types.UnionType) and len(args) == 1:
        annotation = args[0]  # "int", not "int | None": None is always accepted
    name = getattr(annotation, "__name__", None)
    return name if isinstance(name, str) and not typing.get_args(annotation) else (
        str(annotation).replace("typing.", ""))


def type_mismatches(factory: Callable[..., Any], kwargs: Mapping[str, Any],
                    annotations: Mapping[str, Any] | None = None) -> list[TypeMismatch]:
    """The keywords of ``kwargs`` whose values cannot be ``factory``'s annotated types.

    Values are validated with pydantic in lax mode (8.0 passes for an int) and never
    converted; parameters whose annotation pydantic cannot check (classes such as
    ``nn.Module``) and ``None`` values are left alone.

    Args:
        factory: The callable whose parameters are annotated.
        kwargs: The values.
        annotations: Resolved annotations to use instead of ``factory``'s own (e.g.
            those of the base classes as well).
    """
    given = {k: v for k, v in kwargs.items() if v is not None}
    hints = dict(annotations) if annotations is not None else (
        _annotations(factory) if given else {})
    if not given or not hints:
        return []
    from pydantic import TypeAdapter, ValidationError

    found = []
    for key, value in given.items():
        annotation = hints.get(key)
        if annotation is None or annotation is Any:
            continue
        try:
            adapter: TypeAdapter[Any] = TypeAdapter(annotation)
        except Exception:  # classes such as nn.Module: nothing to check here
            continue
        try:
            adapter.validate_python(value)
        except ValidationError as exc:
            reason = exc.errors()[0].get("msg", "") if exc.errors() else ""
            found.append(TypeMismatch(key, value, _readable(annotation), reason))
        except Exception:
            continue
    return found


def class_annotations(cls: type) -> dict[str, Any]:
    """Resolved ``__init__`` annotations of ``cls`` and of its bases (the class's own win)."""
    merged: dict[str, Any] = {}
    for base in reversed(cls.__mro__):
        if "__init__" in vars(base) and base is not object:
            merged.update(_annotations(base))
    return merged


def _check_types(factory: Callable[..., Any], accepted: Accepted, kwargs: Mapping[str, Any],
                 what: str, hints: Mapping[str, Any] | None = None) -> None:
    """Raise for a value that cannot be its parameter's annotated type ("eight" for an int)."""
    known = {k: v for k, v in kwargs.items() if k in accepted.names}
    for problem in type_mismatches(factory, known, hints)[:1]:
        raise ComponentArgumentError(
            f"{what} argument {problem.key!r} expects {problem.expected}, got "
            f"{problem.value!r} ({type(problem.value).__name__}): {problem.reason}. "
            f"Fix the value of {problem.key!r}"
        )
