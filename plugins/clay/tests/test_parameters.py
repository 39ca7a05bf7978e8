"""Full-size encoders have TerraTorch's parameter counts (built on the meta device)."""

from __future__ import annotations

import pytest
import torch
from geofm_clay.backbones import build_clay
from geofm_clay.constants import VARIANTS

from geofm_core.registry import get_registry

#: Parameter counts of TerraTorch 1.2.11's encoders, counted on the meta device in the
#: peer venv: clay_v1/modules.py EmbeddingEncoder(img_size=256, patch_size=8, dim=768,
#: depth=12, heads=12, dim_head=64, mlp_ratio=4.0) for clay_v1_base, and clay_v15/model.py
#: Encoder(mask_ratio=0, patch_size=8, shuffle=False, ...) with the encoder arguments of
#: clay_mae_tiny/small/base/large for v1.5.
TERRATORCH_COUNTS = {
    "clay_v1_base": 92_102_144,
    "clay_v1_5_tiny": 4_030_592,
    "clay_v1_5_small": 10_957_568,
    "clay_v1_5_base": 92_102_144,
    "clay_v1_5_large": 311_442_944,
}


@pytest.mark.parametrize("name", sorted(VARIANTS))
def test_parameter_count_equals_terratorchs(name):
    with torch.device("meta"):
        model = build_clay(name, bands=["BLUE", "GREEN", "RED"])
    assert sum(p.numel() for p in model.parameters()) == TERRATORCH_COUNTS[name]
    # and the listing's metadata says the same, without building anything
    metadata = get_registry().get("backbone", f"clay:{name}").metadata
    assert metadata is not None
    assert metadata.parameters == TERRATORCH_COUNTS[name]
    assert metadata.wavelength_conditioned and metadata.any_bands
    assert metadata.patch_size == 8
    assert metadata.forward_metadata == ("temporal_coords", "location_coords")


def test_weight_sets_of_the_published_checkpoints():
    registry = get_registry()
    large = registry.get("backbone", "clay:clay_v1_5_large").metadata.weights
    v1 = registry.get("backbone", "clay:clay_v1_base").metadata.weights
    assert [w.url for w in large] == [
        "https://huggingface.co/made-with-clay/Clay/resolve/main/v1.5/clay-v1.5.ckpt"]
    assert [w.url for w in v1] == [
        "https://huggingface.co/made-with-clay/Clay-legacy/resolve/main/v1/clay-v1-base.ckpt"]
    assert {w.license for w in (*large, *v1)} == {"Apache-2.0"}
    assert registry.get("backbone", "clay:clay_v1_5_tiny").metadata.weights == ()
