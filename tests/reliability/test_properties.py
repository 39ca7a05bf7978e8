"""Registry invariants with hypothesis (name grammar and tiling coverage live beside their code:
tests/foundation/test_names.py and tests/inference/test_raster.py)."""

from __future__ import annotations

import warnings

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from geofm_core.errors import (
    AmbiguousComponentError,
    DuplicateComponentError,
    UnknownComponentError,
)
from geofm_core.names import KINDS
from geofm_core.registry import ComponentSpec, Registry

kinds = st.sampled_from(KINDS)
sources = st.from_regex(r"[a-z][a-z0-9_-]{0,8}", fullmatch=True)
names = st.from_regex(r"[a-z0-9_.-]{1,12}", fullmatch=True)
keys = st.tuples(kinds, sources, names)


def _spec(kind: str, source: str, name: str) -> ComponentSpec:
    return ComponentSpec(kind, source, name, f"pkg_{source}.mod:{name.replace('.', '_')}",
                         distribution=f"dist-{source}")


@settings(max_examples=60, deadline=None)
@given(st.sets(keys, min_size=1, max_size=25))
def test_register_then_get_returns_it(registered: set[tuple[str, str, str]]) -> None:
    registry = Registry()
    for key in registered:
        registry.add(_spec(*key))
    for kind, source, name in registered:
        spec = registry.get(kind, f"{source}:{name}")
        assert (spec.kind, spec.source, spec.name) == (kind, source, name)
        assert spec.target == _spec(kind, source, name).target
        providers = {s for k, s, n in registered if k == kind and n == name}
        if len(providers) == 1:
            assert registry.get(kind, name) == spec  # a bare name unique to one source
        else:
            with pytest.raises(AmbiguousComponentError) as info:
                registry.get(kind, name)
            for other in providers:  # every claimant is named, none is picked
                assert f"{other}:{name}" in str(info.value)
    listed = {(s.kind, s.source, s.name) for s in registry.list()}
    assert listed == registered


@settings(max_examples=60, deadline=None)
@given(kinds, names, st.lists(sources, min_size=2, max_size=5, unique=True),
       st.permutations(range(5)))
def test_two_sources_never_shadow_each_other(kind: str, name: str, claimants: list[str],
                                             order: list[int]) -> None:
    """Whatever the registration order, each source keeps its own component."""
    registry = Registry()
    for i in [i for i in order if i < len(claimants)]:
        registry.add(_spec(kind, claimants[i], name))
    for source in claimants:
        assert registry.get(kind, f"{source}:{name}").source == source
    with pytest.raises(AmbiguousComponentError):
        registry.get(kind, name)


@settings(max_examples=40, deadline=None)
@given(keys, st.integers(min_value=2, max_value=4))
def test_a_name_registered_twice_is_never_silently_picked(
    key: tuple[str, str, str], times: int,
) -> None:
    kind, source, name = key
    registry = Registry()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        for i in range(times):
            registry.add(ComponentSpec(kind, source, name, f"m{i}:f"))
    assert caught  # a warning at registration...
    with pytest.raises(DuplicateComponentError):  # ...and an error when used
        registry.get(kind, f"{source}:{name}")


@settings(max_examples=40, deadline=None)
@given(st.sets(keys, max_size=10), keys)
def test_unknown_names_raise_lookup_errors(registered: set[tuple[str, str, str]],
                                           asked: tuple[str, str, str]) -> None:
    registry = Registry()
    for key in registered:
        registry.add(_spec(*key))
    kind, source, name = asked
    if asked in registered:
        return
    with pytest.raises(UnknownComponentError) as info:
        registry.get(kind, f"{source}:{name}")
    assert isinstance(info.value, LookupError) and "geofm plugins" in str(info.value)
