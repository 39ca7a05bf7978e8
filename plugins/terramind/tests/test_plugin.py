"""Listing is light; the metadata states modalities, bands, normalisation and weights."""

from __future__ import annotations

import inspect
import subprocess
import sys

from geofm_terramind import MODALITIES
from geofm_terramind._conversion import TERRATORCH
from geofm_terramind.configs import build_terramind

from geofm_core.data.bands import canonical_band
from geofm_core.registry import get_registry


def test_listing_imports_no_torch() -> None:
    code = ("import sys\nfrom geofm_core.registry import get_registry\n"
            "names = [s.qualified_name for s in get_registry().list('backbone', 'terramind:*')]\n"
            "print(names, 'torch' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True).stdout
    assert "'terramind:terramind_v1_base'" in out and out.strip().endswith("False")


def test_metadata_has_one_weight_set_per_pretrained_modality() -> None:
    meta = get_registry().get("backbone", "terramind:terramind_v1_base").metadata
    assert meta.patch_size == 16 and meta.image_size == 224
    assert [w.name for w in meta.weights] == ["S2L2A", "S2L1C", "S1RTC", "S1GRD", "RGB", "DEM"]
    for weights in meta.weights:
        assert weights.license == "Apache-2.0"
        assert weights.url == ("https://huggingface.co/ibm-esa-geospatial/TerraMind-1.0-base/"
                               "resolve/main/TerraMind_v1_base.pt")
        assert len(weights.mean) == len(weights.std) == len(weights.bands)
    s1 = meta.weight_set("S1GRD")
    assert s1 is not None and s1.bands == ("VV", "VH") and s1.modalities == ("sar",)
    assert s1.mean == (-12.599, -20.293)
    assert meta.weight_set("S2L1C").bands[10] == "CIRRUS"  # type: ignore[union-attr]
    assert meta.matches(bands=["VV"], modalities=["sar"])


def test_band_names_are_the_cores() -> None:
    for modality in MODALITIES.values():
        if modality.pretrained:
            assert all(canonical_band(b) == b for b in modality.bands), modality.name


def test_the_conversion_rules_write_only_real_keywords() -> None:
    accepted = set(inspect.signature(build_terramind).parameters)
    for rule in TERRATORCH.components:
        assert rule.declared_keywords() <= accepted
        assert rule.target in {"terramind_v1_tiny", "terramind_v1_small", "terramind_v1_base",
                               "terramind_v1_large"}
