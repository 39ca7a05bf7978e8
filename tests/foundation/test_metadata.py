"""Capability metadata: matching, `geofm list --band/--modality`, describe, dynamic sources."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import warnings

import pytest

from geofm_core.cli.listing import shorten_names
from geofm_core.errors import PluginLoadWarning
from geofm_core.metadata import ComponentMetadata

S2 = ("BLUE", "GREEN", "RED", "NIR_NARROW", "SWIR_1", "SWIR_2")
META = ComponentMetadata.from_mapping({
    "modalities": ["multispectral"],
    "weights": [
        {"name": "S2_ALL", "bands": ["B02", "B03", "B04", "B8A", "B11", "B12"],
         "modalities": ["multispectral"]},
        {"name": "S1", "bands": ["VV", "VH"], "modalities": ["sar"]},
        {"name": "RGB", "bands": ["RED", "GREEN", "BLUE"]},  # the component's modality
    ],
})


def geofm(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "geofm_core.cli", *args], capture_output=True,
                          text=True, timeout=120, env=os.environ.copy())


def names(ws: list) -> list[str]:
    return [w.name for w in ws]


def test_matching_weights_need_every_band_and_one_modality() -> None:
    assert names(META.matching_weights(["b8a"])) == ["S2_ALL"]
    assert names(META.matching_weights(["B8A", "VV"])) == []
    assert names(META.matching_weights(modalities=["sar", "multispectral"])) == [
        "S2_ALL", "S1", "RGB"]
    assert names(META.matching_weights(["RED"], ["optical"])) == ["S2_ALL", "RGB"]
    assert META.matches(["VV"], ["sar"]) and not META.matches(["VV"], ["multispectral"])
    assert META.matches() and not META.matches(["DEM"])


def test_any_bands_alone_does_not_match_a_band_but_native_and_wavelengths_do() -> None:
    any_bands = ComponentMetadata(any_bands=True, modalities=("rgb",))
    assert not any_bands.matches(["NIR_NARROW"]) and any_bands.matches(modalities=["rgb"])
    native = ComponentMetadata.from_mapping({"bands": S2, "modalities": "multispectral"})
    assert native.matches(["B8A"]) and not native.matches(["B8A"], ["sar"])
    dofa = ComponentMetadata(wavelength_conditioned=True, modalities=("any",))
    assert dofa.matches(["RED_EDGE_1"], ["sar"]) and not dofa.matches(["VV"])


def test_weight_names_are_shortened_for_the_table() -> None:
    assert shorten_names(["a", "b"]) == "a, b"
    short = shorten_names([f"weights_{i}" for i in range(20)], width=30)
    assert short.endswith("more") and len(short) <= 30 and short.startswith("weights_0")


def test_list_by_band_imports_no_torch() -> None:
    code = ("import sys, io, contextlib\nfrom geofm_core.cli import main\n"
            "with contextlib.redirect_stdout(io.StringIO()) as out:\n"
            "    code = main(['list', 'backbone', '--band', 'B8A', '--modality', 'sar,rgb'])\n"
            "heavy = [m for m in ('torch', 'timm', 'lightning', 'segmentation_models_pytorch')"
            " if m in sys.modules]\nprint(code, heavy)")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=120, check=True)
    assert done.stdout.split()[-1] == "[]", done.stdout


def test_list_filters_show_matching_weights() -> None:
    done = geofm("list", "backbone", "--band", "B8A")
    assert done.returncode == 0, done.stderr
    header, *rows = done.stdout.split("\n\n")[0].splitlines()
    assert header.split()[:3] == ["KIND", "NAME", "WEIGHTS"]
    assert any("prithvi:prithvi_eo_v2_300 " in r and "Prithvi-EO-2.0-300M" in r for r in rows)
    assert not any("smp:" in r or "example:" in r for r in rows)  # any_bands, no B8A weights
    both = geofm("list", "backbone", "--band", "nir_narrow", "--band", "VV", "--json")
    # optical and radar bands together: only weight sets trained on both (radar-optical
    # models, when an installed plugin has one) or wavelength-conditioned ones match
    for entry in json.loads(both.stdout) if both.returncode == 0 else []:
        meta = entry["metadata"]
        assert meta["wavelength_conditioned"] or any(
            {"NIR_NARROW", "VV"} <= set(w["bands"]) for w in meta["weights"]), entry["name"]
    assert not any(n.startswith("prithvi:") for n in both.stdout.split('"') if ":" in n)
    rgb = geofm("list", "backbone", "--modality", "rgb")
    assert "smp:resnet18" in rgb.stdout and "imagenet, ssl, swsl" in rgb.stdout
    assert "prithvi:" not in rgb.stdout


def test_components_without_metadata_are_counted_not_searched() -> None:
    done = geofm("list", "--modality", "multispectral")
    assert "declare no metadata and were not searched" in done.stdout
    assert "geofm:fcn" not in done.stdout


def test_unknown_band_is_one_usage_error() -> None:
    done = geofm("list", "backbone", "--band", "B13")
    assert done.returncode == 2
    assert "unknown band 'B13'" in done.stderr and "NIR_NARROW" in done.stderr
    assert "Traceback" not in done.stderr
    done = geofm("list", "backbone", "--modality", "radar")
    assert done.returncode == 2 and "sar" in done.stderr


def test_list_json_carries_metadata_and_matching_weights() -> None:
    data = json.loads(geofm("list", "backbone", "prithvi:*", "--json", "--band", "B8A").stdout)
    entry = next(d for d in data if d["name"] == "prithvi:prithvi_eo_v2_tiny_tl")
    assert entry["matching_weights"] == ["ibm-nasa-geospatial/Prithvi-EO-2.0-tiny-TL"]
    weights = entry["metadata"]["weights"][0]
    assert weights["license"] == "Apache-2.0" and len(weights["mean"]) == 6
    assert entry["metadata"]["forward_metadata"] == ["temporal_coords", "location_coords"]


def test_describe_shows_bands_with_wavelengths_and_weight_sets() -> None:
    done = geofm("describe", "backbone", "prithvi:prithvi_eo_v2_300")
    assert done.returncode == 0, done.stderr
    assert "NIR_NARROW (0.865 um)" in done.stdout and "patch size              16" in done.stdout
    assert "weight sets (1):" in done.stdout and "Apache-2.0" in done.stdout
    meta = json.loads(geofm("describe", "backbone", "example:tiny_cnn", "--json").stdout)
    assert meta["metadata"]["any_bands"] is True and meta["metadata"]["weights"] == []


def test_dynamic_sources_attach_metadata_on_use(fresh_registry) -> None:
    registry = fresh_registry()
    timm_spec = registry.get("backbone", "timm:resnet18.tv_in1k")
    assert timm_spec.metadata is not None and timm_spec.metadata.any_bands
    (weights,) = timm_spec.metadata.weights
    assert weights.license == "bsd-3-clause" and weights.bands == ("RED", "GREEN", "BLUE")
    default = registry.get("backbone", "timm:resnet18").metadata
    assert default is not None and len(default.weights) > 1
    smp = registry.get("backbone", "smp:efficientnet-b3").metadata
    assert smp is not None and {w.name for w in smp.weights} >= {"imagenet"}


def test_a_failing_metadata_hook_warns_and_the_component_stays_usable(fake_dist) -> None:
    fake_dist("geofm-plugin-dyn", {"dyn": "dyn_plugin"}, {"dyn_plugin": '''
        from geofm_core import hookimpl

        @hookimpl
        def geofm_register_components(register):
            pass

        @hookimpl
        def geofm_resolve_component(kind, source, name):
            return "collections:OrderedDict" if name == "thing" else None

        @hookimpl
        def geofm_component_metadata(kind, source, name):
            return {"bands": ["RED"], "colour": "blue"}
    '''})
    from geofm_core.plugins import load_plugins, new_plugin_manager
    from geofm_core.registry import Registry

    pm = new_plugin_manager({})
    registry = Registry.from_plugin_manager(pm, load_plugins(pm, environ={}))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        spec = registry.get("backbone", "dyn:thing")
    assert spec.metadata is None and spec.target == "collections:OrderedDict"
    assert any(issubclass(w.category, PluginLoadWarning) and "colour" in str(w.message)
               for w in caught)


@pytest.mark.parametrize("bad", [{"weights": [{"name": "a", "bands": ["RED"], "mean": [1, 2]}]},
                                 {"modalities": ["radar"]}])
def test_bad_metadata_names_the_field(bad) -> None:
    with pytest.raises(ValueError, match=r"mean|radar"):
        ComponentMetadata.from_mapping(bad)
