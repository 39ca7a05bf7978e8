"""Registry lookups, errors with close matches, the timm source, argument checks."""

from __future__ import annotations

import pytest
import torch

from geofm_core import get_registry
from geofm_core.errors import (
    ComponentArgumentError,
    InvalidNameError,
    UnknownComponentError,
)
from geofm_core.registry import ComponentSpec, Registry
from geofm_core.signatures import check_arguments


def test_timm_typo_suggests_the_real_name():
    with pytest.raises(UnknownComponentError) as excinfo:
        get_registry().get("backbone", "timm:resnet_18")
    message = str(excinfo.value)
    assert "timm:resnet18" in message and "geofm plugins" in message
    assert isinstance(excinfo.value, LookupError)


def test_static_typo_suggests_the_real_name():
    with pytest.raises(UnknownComponentError, match=r"Did you mean: example:tiny_cnn"):
        get_registry().get("backbone", "example:tiny_cn")


def test_unknown_source_suggests_installed_sources():
    with pytest.raises(UnknownComponentError, match=r"source 'exampel'.*did you mean 'example'"):
        get_registry().get("backbone", "exampel:tiny_cnn")


def test_wrong_kind_is_named():
    with pytest.raises(UnknownComponentError, match="exists as a backbone, not a decoder"):
        get_registry().get("decoder", "example:tiny_cnn")


def test_bare_name_resolves_when_unique():
    assert get_registry().get("backbone", "tiny_cnn").qualified_name == "example:tiny_cnn"


def test_invalid_names_and_kinds():
    with pytest.raises(InvalidNameError, match="kinds are"):
        get_registry().get("gizmo", "example:tiny_cnn")
    with pytest.raises(InvalidNameError, match="invalid source"):
        get_registry().get("backbone", "Bad Source:x")


def test_list_patterns():
    registry = get_registry()
    assert [s.qualified_name for s in registry.list("backbone", "example:*")] == [
        "example:tiny_cnn"
    ]
    assert [s.qualified_name for s in registry.list(None, "tiny_*")] == [
        "example:tiny_cnn", "example:tiny_segmenter",
    ]
    timm_names = {s.name for s in registry.list("backbone", "timm:resnet*")}
    assert {"resnet18", "resnet50"} <= timm_names
    assert registry.list("neck", "timm:*") == []  # timm provides backbones only


def test_describe_imports_the_component_and_reports_its_signature():
    info = get_registry().describe("backbone", "timm:resnet18")
    assert "in_chans: int = 3" in info["signature"]
    assert "model_name" not in info["signature"]  # bound by the timm source
    assert info["distribution"] == "geofm-core"
    assert "features_only" in info["doc"]


def test_describe_shows_the_own_docstring_of_a_partial():
    import functools

    def build(variant: str, *, depth: int = 2) -> None:
        """Build any variant."""

    documented = functools.partial(build, "small")
    documented.__doc__ = "The small variant."
    registry = Registry()
    registry.add(ComponentSpec("backbone", "mine", "small", documented))
    registry.add(ComponentSpec("backbone", "mine", "any", functools.partial(build, "any")))
    info = registry.describe("backbone", "mine:small")
    assert info["doc"] == "The small variant." and info["signature"] == "(*, depth: int = 2)"
    assert registry.describe("backbone", "mine:any")["doc"] == "Build any variant."


def test_timm_backbone_builds_with_any_band_count():
    net = get_registry().build("backbone", "timm:resnet18", in_chans=6, out_indices=[1, 2, 3, 4])
    features = net(torch.randn(1, 6, 64, 96))
    assert [f.shape[1] for f in features] == net.out_channels == [64, 128, 256, 512]
    assert [f.shape[-1] for f in features] == [96 // r for r in net.reductions]


def test_build_rejects_unknown_kwarg_with_close_match():
    with pytest.raises(ComponentArgumentError, match=r"'in_chan'.*Did you mean 'in_chans'"):
        get_registry().build("backbone", "timm:resnet18", in_chan=6)


def test_check_arguments_reports_missing_required():
    def factory(in_channels: list[int], depth: int = 2) -> None:
        """Example."""

    with pytest.raises(ComponentArgumentError, match="missing required argument"):
        check_arguments(factory, {"depth": 3}, "neck 'x:y'")


def test_registry_add_and_get_round_trip():
    registry = Registry()
    spec = ComponentSpec("loss", "mine", "focal2", "mod:attr", "", "d", "1")
    registry.add(spec)
    assert registry.get("loss", "mine:focal2") is spec
    assert registry.get("loss", "focal2") is spec
