"""The four full-size encoders have TerraTorch's parameter counts (built on the meta device).

The reference counts come from TerraTorch 1.2.11 in the peer venv: ``terramind_v1_<size>(
modalities=..., pretrained=False)`` built under ``torch.device("meta")`` (with
``torch.linspace`` pinned to the CPU, which TerraTorch calls ``.item()`` on), summing
``p.numel()`` over ``model.parameters()``.
"""

from __future__ import annotations

import pytest
import torch
from geofm_terramind.constants import VARIANTS

from geofm_core.registry import get_registry

S2L2A = ("S2L2A",)
OPTICAL_RADAR = ("S2L1C", "S1GRD")
ALL_RAW = ("S2L1C", "S2L2A", "S1GRD", "S1RTC", "DEM", "RGB")
#: TerraTorch 1.2.11's counts, (variant, modalities) -> parameters.
TERRATORCH_COUNTS = {
    ("terramind_v1_tiny", S2L2A): 5_923_968,
    ("terramind_v1_tiny", OPTICAL_RADAR): 6_071_616,
    ("terramind_v1_tiny", ALL_RAW): 6_957_120,
    ("terramind_v1_small", S2L2A): 22_464_768,
    ("terramind_v1_small", OPTICAL_RADAR): 22_760_064,
    ("terramind_v1_small", ALL_RAW): 24_531_072,
    ("terramind_v1_base", S2L2A): 87_313_920,
    ("terramind_v1_base", OPTICAL_RADAR): 87_904_512,
    ("terramind_v1_base", ALL_RAW): 91_446_528,
    ("terramind_v1_large", S2L2A): 305_137_664,
    ("terramind_v1_large", OPTICAL_RADAR): 305_925_120,
    ("terramind_v1_large", ALL_RAW): 310_647_808,
}


@pytest.mark.parametrize(("variant", "modalities"), list(TERRATORCH_COUNTS))
def test_parameter_count_equals_terratorch(variant: str, modalities: tuple[str, ...]) -> None:
    with torch.device("meta"):
        model = get_registry().build("backbone", f"terramind:{variant}",
                                     modalities=list(modalities))
    count = sum(p.numel() for p in model.parameters())
    assert count == TERRATORCH_COUNTS[variant, modalities]
    assert all(p.device.type == "meta" for p in model.parameters())


def test_the_metadata_states_the_s2l2a_counts() -> None:
    for name, spec in VARIANTS.items():
        assert spec.parameters == TERRATORCH_COUNTS[name, S2L2A]
        assert get_registry().get("backbone", f"terramind:{name}").metadata.parameters == \
            spec.parameters
