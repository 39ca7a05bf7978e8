"""Plugin discovery with real entry points: conflicts, broken plugins, switches."""

from __future__ import annotations

import warnings

import pytest

from geofm_core.errors import (
    AmbiguousComponentError,
    DuplicateComponentError,
    PluginConflictError,
    PluginLoadError,
    PluginLoadWarning,
)
from geofm_core.plugins import apply_switches, find_entry_points, split_conflicts

PLUGIN = """
from geofm_core import hookimpl

@hookimpl
def geofm_register_components(register):
    register("backbone", "{name}", "{module}_impl:Net", description="{desc}")
"""
IMPL = """
class Net:
    '''A test network.'''
    def __init__(self, width: int = 4):
        self.width = width
"""


def _plugin(module: str, name: str = "net", desc: str = "a net") -> dict[str, str]:
    return {module: PLUGIN.format(name=name, module=module, desc=desc), f"{module}_impl": IMPL}


def test_installed_plugins_are_discovered(fresh_registry):
    registry = fresh_registry()
    by_source = {p.source: p for p in registry.plugins}
    for source in ("geofm", "timm", "prithvi", "smp", "upernet", "example"):
        assert by_source[source].status == "loaded", by_source[source]
    assert by_source["example"].distribution == "geofm-plugin-example"
    assert "geofm_register_components" in by_source["example"].hooks
    assert {"timm", "smp"} <= set(registry.dynamic_sources())  # smp resolves encoders on use


def test_component_is_stamped_with_source_and_distribution(fake_dist, fresh_registry):
    fake_dist("acme-plugin", {"acme": "acme_plugin"}, _plugin("acme_plugin"), version="2.3")
    spec = fresh_registry().get("backbone", "acme:net")
    assert (spec.source, spec.distribution, spec.version) == ("acme", "acme-plugin", "2.3")
    assert spec.target == "acme_plugin_impl:Net"
    assert spec.description == "a net"


def test_target_is_imported_only_on_build(fake_dist, fresh_registry):
    import sys

    fake_dist("lazy-plugin", {"lazy": "lazy_plugin"}, _plugin("lazy_plugin"))
    registry = fresh_registry()
    assert [s.qualified_name for s in registry.list("backbone", "lazy:*")] == ["lazy:net"]
    assert "lazy_plugin_impl" not in sys.modules
    net = registry.build("backbone", "lazy:net", width=7)
    assert net.width == 7
    assert "lazy_plugin_impl" in sys.modules


def test_bare_name_in_two_sources_is_ambiguous(fake_dist, fresh_registry):
    fake_dist("one-plugin", {"one": "one_plugin"}, _plugin("one_plugin", name="twin"))
    fake_dist("two-plugin", {"two": "two_plugin"}, _plugin("two_plugin", name="twin"))
    registry = fresh_registry()
    with pytest.raises(AmbiguousComponentError, match=r"one:twin, two:twin"):
        registry.get("backbone", "twin")
    assert registry.get("backbone", "one:twin").source == "one"


def test_two_distributions_claiming_one_source_warn_and_refuse(fake_dist, fresh_registry):
    fake_dist("dup-a", {"dup": "dup_a"}, _plugin("dup_a"))
    fake_dist("dup-b", {"dup": "dup_b"}, _plugin("dup_b"))
    with pytest.warns(PluginLoadWarning, match=r"'dup' is claimed by 2 distributions"):
        registry = fresh_registry()
    statuses = {(p.distribution, p.status) for p in registry.plugins if p.source == "dup"}
    assert statuses == {("dup-a", "conflict"), ("dup-b", "conflict")}
    with pytest.raises(PluginConflictError, match=r"dup-a 1.0, dup-b 1.0"):
        registry.get("backbone", "dup:net")
    # the other plugins keep working
    assert registry.get("backbone", "example:tiny_cnn").source == "example"


def test_broken_plugin_warns_and_raises_chained_when_used(fake_dist, fresh_registry):
    broken = {"broken_plugin": "import a_module_that_does_not_exist\n"}
    fake_dist("broken-plugin", {"broken": "broken_plugin"}, broken)
    with pytest.warns(PluginLoadWarning, match=r"'broken'.*failed to load"):
        registry = fresh_registry()
    info = next(p for p in registry.plugins if p.source == "broken")
    assert info.status == "failed" and "ModuleNotFoundError" in (info.error or "")
    with pytest.raises(PluginLoadError, match="broken-plugin") as excinfo:
        registry.get("backbone", "broken:net")
    assert isinstance(excinfo.value.__cause__, ImportError)
    assert registry.get("backbone", "example:tiny_cnn").source == "example"


def test_plugin_failing_to_register_leaves_nothing_half_registered(fake_dist, fresh_registry):
    code = """
from geofm_core import hookimpl

@hookimpl
def geofm_register_components(register):
    register("backbone", "good", "x:Good")
    register("gizmo", "bad", "x:Bad")
"""
    fake_dist("half-plugin", {"half": "half_plugin"}, {"half_plugin": code})
    with pytest.warns(PluginLoadWarning, match="unknown kind 'gizmo'"):
        registry = fresh_registry()
    assert registry.list(pattern="half:*") == []
    with pytest.raises(PluginLoadError, match="unknown kind 'gizmo'"):
        registry.get("backbone", "half:good")


def test_name_registered_twice_by_one_plugin(fake_dist, fresh_registry):
    code = """
from geofm_core import hookimpl

@hookimpl
def geofm_register_components(register):
    register("backbone", "twice", "x:First")
    register("backbone", "twice", "x:Second")
    register("backbone", "once", "x:Once")
"""
    fake_dist("twice-plugin", {"twice": "twice_plugin"}, {"twice_plugin": code})
    with pytest.warns(PluginLoadWarning, match=r"more than once \(x:First, x:Second\)"):
        registry = fresh_registry()
    with pytest.raises(DuplicateComponentError, match="x:First, x:Second"):
        registry.get("backbone", "twice:twice")
    assert registry.get("backbone", "twice:once").target == "x:Once"


def test_reserved_source_is_refused(fake_dist, fresh_registry):
    fake_dist("fake-timm", {"timm": "fake_timm_plugin"}, _plugin("fake_timm_plugin"))
    with pytest.warns(PluginLoadWarning, match="reserved"):
        registry = fresh_registry()
    timm_claims = [p for p in registry.plugins if p.source == "timm"]
    assert {(p.distribution, p.status) for p in timm_claims} == {
        ("geofm-core", "loaded"), ("fake-timm", "failed"),
    }
    assert registry.get("backbone", "timm:resnet18").distribution == "geofm-core"


def test_disable_autoload_keeps_builtins_only(fresh_registry):
    registry = fresh_registry({"GEOFM_DISABLE_PLUGIN_AUTOLOAD": "1"})
    assert registry.sources() == ["geofm", "timm"]
    with pytest.raises(PluginLoadError, match="disabled"):
        registry.get("backbone", "example:tiny_cnn")


def test_disable_named_plugins(fresh_registry):
    registry = fresh_registry({"GEOFM_DISABLE_PLUGINS": "example, upernet"})
    states = {p.source: p.status for p in registry.plugins}
    assert states["example"] == states["upernet"] == "disabled"
    assert states["prithvi"] == "loaded"


def test_trace_writes_to_stderr(fresh_registry, capfd):
    fresh_registry({"GEOFM_TRACE_PLUGINS": "1"})
    err = capfd.readouterr().err
    assert "plugin 'example' from geofm-plugin-example" in err
    assert "geofm_register_components" in err  # pluggy's own hook trace


def test_pipeline_functions_on_real_entry_points():
    from importlib.metadata import EntryPoint

    eps = [
        EntryPoint("a", "a_mod", "geofm.plugins"),
        EntryPoint("b", "b_mod", "geofm.plugins"),
        EntryPoint("a", "a_other", "geofm.plugins"),
    ]
    kept, disabled = apply_switches(eps, {"GEOFM_DISABLE_PLUGINS": "b"})
    assert [e.value for e in disabled] == ["b_mod"]
    unique, conflicts = split_conflicts(kept)
    assert unique == {} and [e.value for e in conflicts["a"]] == ["a_mod", "a_other"]
    assert apply_switches(eps, {"GEOFM_DISABLE_PLUGIN_AUTOLOAD": "true"})[0] == []


def test_find_entry_points_lists_installed_plugins():
    names = {ep.name for ep in find_entry_points()}
    assert {"prithvi", "smp", "upernet", "example"} <= names


def test_no_warning_for_healthy_install(fresh_registry):
    with warnings.catch_warnings():
        warnings.simplefilter("error", PluginLoadWarning)
        fresh_registry()
