"""The name grammar, with property tests."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from geofm_core.errors import InvalidNameError
from geofm_core.names import ComponentName, parse_name

sources = st.from_regex(r"[a-z][a-z0-9_-]{0,12}", fullmatch=True)
names = st.from_regex(r"[a-z0-9_.-]{1,20}", fullmatch=True)


@given(sources, names)
def test_parse_format_round_trip(source, name):
    parsed = parse_name(f"{source}:{name}")
    assert parsed == ComponentName(source, name)
    assert parse_name(str(parsed)) == parsed


@given(names)
def test_bare_names_round_trip(name):
    assert parse_name(name) == ComponentName(None, name)


@given(st.text(min_size=1, max_size=20))
def test_malformed_names_are_rejected_or_valid(text):
    try:
        parsed = parse_name(text)
    except InvalidNameError as exc:
        assert "source:name" in str(exc)
    else:
        assert str(parsed) == text


@pytest.mark.parametrize("bad", ["", ":x", "Prithvi:x", "a:B c", "a:", "1a:x", "a:b:c"])
def test_examples_of_bad_names(bad):
    with pytest.raises(InvalidNameError):
        parse_name(bad)
