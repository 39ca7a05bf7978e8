"""The plugin's TerraTorch conversion rules (UperNetDecoder) fit its real components."""

from __future__ import annotations

from geofm_core.convert.book import rule_problems


def test_terratorch_rules_match_the_registered_components() -> None:
    # Every target is registered, every keyword a rule writes is in the real signature.
    assert rule_problems("terratorch", source="upernet") == []
