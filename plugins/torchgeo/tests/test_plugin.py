"""Registration: light plugin module, names per model and weight set, TerraTorch aliases."""

from __future__ import annotations

import subprocess
import sys
from typing import Any, ClassVar

import pytest
from geofm_torchgeo import _zoo
from geofm_torchgeo._names import wrapper_family

from geofm_core import get_registry
from geofm_core.testing import BackboneContract


def test_plugin_module_imports_no_torch():
    code = "import geofm_torchgeo._plugin, sys; assert 'torch' not in sys.modules, 'torch'"
    subprocess.run([sys.executable, "-c", code], check=True)


def test_one_name_per_model_and_weight_set_with_metadata():
    registry = get_registry()
    names = {s.name for s in registry.list("backbone", "torchgeo:*")}
    for model, meta in _zoo.MODELS.items():
        if wrapper_family(model) is None:  # in the zoo's metadata, not registered
            assert model not in names
            continue
        assert model in names
        for entry in meta.get("weights") or ():
            assert f"{model}_{entry['name'].lower()}" in names
    spec = registry.get("backbone", "torchgeo:swin_v2_t_sentinel2_si_ms_satlas")
    assert spec.metadata is not None
    assert [w.name for w in spec.metadata.weights] == ["SENTINEL2_SI_MS_SATLAS"]
    assert spec.metadata.weights[0].bands[0] == "RED"


def test_terratorch_names_resolve_and_list():
    registry = get_registry()
    listed = [s.name for s in registry.list("backbone", "torchgeo:satlas*")]
    assert "satlas_swin_b_sentinel2_mi_ms" in listed
    spec = registry.get("backbone", "torchgeo:satlas_swin_t_sentinel2_si_ms")
    assert spec.metadata is not None  # a name resolved on demand carries its metadata
    assert [w.name for w in spec.metadata.weights] == ["SENTINEL2_SI_MS_SATLAS"]
    backbone = registry.build("backbone", "torchgeo:satlas_swin_t_sentinel2_si_ms",
                              pretrained=False)
    assert backbone.weights_name == "SENTINEL2_SI_MS_SATLAS"
    assert backbone.model.features[0][0].in_channels == 9


class TestTorchGeoBackbones(BackboneContract):
    source = "torchgeo"
    in_chans = 4
    # The small architectures; the others share their wrappers.
    names: ClassVar[list[str]] = [
        "torchgeo:resnet18", "torchgeo:swin_v2_t", "torchgeo:vit_small_patch16_224",
        "torchgeo:dofa_small_patch16_224", "torchgeo:copernicusfm_base",
        "torchgeo:panopticon_vitb14",
    ]
    kwargs: ClassVar[dict[str, Any]] = {
        "resnet18": {"in_chans": 4},
        "swin_v2_t": {"in_chans": 4},
        "vit_small_patch16_224": {"in_chans": 4, "model_kwargs": {"depth": 2}},
        "dofa_small_patch16_224": {"bands": ["BLUE", "GREEN", "RED", "NIR_NARROW"],
                                   "model_kwargs": {"depth": 2}},
        "copernicusfm_base": {"bands": ["BLUE", "GREEN", "RED", "VV"]},  # depth fixed: 12
        "panopticon_vitb14": {"bands": ["BLUE", "GREEN", "RED", "VH"], "img_size": 56},
    }

    @classmethod
    def component_names(cls) -> list[str]:
        return cls.names


def test_unsupported_family_and_band_order_are_named(offline_weights):
    from geofm_torchgeo.backbones import build

    from geofm_core.errors import ConfigurationError, ConfigurationWarning

    with pytest.raises(ConfigurationError, match="not supported as a geofm backbone yet"):
        build("aurora_swin_unet")
    offline_weights("resnet18", "SENTINEL2_RGB_MOCO")
    rgb = ["BLUE", "GREEN", "RED"]  # the weight set's order is RED, GREEN, BLUE
    with pytest.warns(ConfigurationWarning, match="RED, GREEN, BLUE"):
        build("resnet18", weights="SENTINEL2_RGB_MOCO", bands=rgb)
