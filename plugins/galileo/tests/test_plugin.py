"""Registration, metadata and the light plugin module."""

from __future__ import annotations

import subprocess
import sys

from geofm_galileo._plugin import variant_metadata
from geofm_galileo.constants import PRETRAINED_MEAN, PRETRAINED_STD, VARIANTS

from geofm_core.metadata import ComponentMetadata
from geofm_core.registry import get_registry


def test_every_variant_is_registered_with_its_metadata():
    names = {s.qualified_name for s in get_registry().list("backbone", "galileo:*")}
    assert names == {"galileo:galileo_nano", "galileo:galileo_tiny", "galileo:galileo_base"}
    meta = ComponentMetadata.from_mapping(variant_metadata(VARIANTS["galileo_tiny"]))
    assert meta.parameters == 5_705_520 and meta.patch_size == 4 and meta.multi_temporal
    assert {"optical", "sar"} <= set(meta.all_modalities())
    assert "NIR_NARROW" in meta.bands and "VV" in meta.bands
    weights = meta.weight_set("galileo_tiny")
    assert weights is not None and weights.license == "MIT"
    assert "huggingface.co/nasaharvest/galileo" in weights.url
    assert meta.forward_metadata == ("temporal_coords", "location_coords")
    assert meta.matches(bands=["B8A", "VV"], modalities=["sar"])


def test_published_normalisation_is_galileos_affine_map():
    # Galileo: (x - (m - 2 s)) / (4 s); B2: m = 1395.34, s = 917.70
    assert abs(PRETRAINED_MEAN[2] - (1395.3408730676722 - 2 * 917.7041440370853)) < 1e-9
    assert abs(PRETRAINED_STD[2] - 4 * 917.7041440370853) < 1e-9


def test_listing_does_not_import_torch():
    code = ("import sys; from geofm_core.registry import get_registry; "
            "get_registry().list('backbone', 'galileo:*'); "
            "import geofm_galileo._plugin, geofm_galileo._conversion; "
            "print('torch' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True)
    assert out.stdout.strip() == "False"
