"""geofm's TerraMind reproduces TerraTorch's encoder block by block (fixtures from TerraTorch).

``scripts/make_parity_fixtures.py`` built TerraTorch 1.2.11's ``TerraMindViT`` at a reduced
size in both block flavours, saved its weights in the official layout and every block's
merged tokens; here they load into geofm's backbone (through the official-layout
loader, strict keys) and the stacked input gives the same tokens within 1e-5.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import torch
from geofm_terramind.weights import DroppedWeightsNote
from safetensors import safe_open

from geofm_core.registry import get_registry

FIXTURES = Path(__file__).parent / "fixtures"
CASES = ("s2l1c_mean_gelu", "s2l1c_s1grd_mean_swiglu", "s2l1c_s1grd_concat_gelu",
         "s2l1c_bands_s1rtc_max_swiglu", "s1grd_dem_dict_gelu")
#: The registered variant of each block flavour (biases + GELU, or SwiGLU without biases).
VARIANT = {"gelu": "terramind:terramind_v1_small", "swiglu": "terramind:terramind_v1_large"}


def build(config: dict, weights: Path | None) -> torch.nn.Module:
    return get_registry().build(
        "backbone", VARIANT[config["flavour"]], modalities=config["modalities"],
        merge_method=config["merge_method"], bands=config["bands"],
        embed_dim=config["dim"], depth=config["encoder_depth"],
        num_heads=config["num_heads"], patch_size=config["patch_size"],
        img_size=config["img_size"], ckpt_path=None if weights is None else str(weights))


def read_case(name: str) -> tuple[dict[str, Any], dict[str, torch.Tensor]]:
    """A parity case's settings and tensors."""
    path = FIXTURES / f"case_{name}.safetensors"
    with safe_open(str(path), framework="pt") as handle:
        config = json.loads(handle.metadata()["config"])
        tensors = {k: handle.get_tensor(k) for k in handle.keys()}
    return config, tensors


@pytest.fixture(autouse=True)
def _highest_precision() -> None:
    torch.set_float32_matmul_precision("highest")


def test_every_case_has_a_fixture() -> None:
    assert sorted(p.name for p in FIXTURES.glob("case_*.safetensors")) == sorted(
        f"case_{c}.safetensors" for c in CASES)
    assert sum(p.stat().st_size for p in FIXTURES.glob("*.safetensors")) < 500_000


@pytest.mark.parametrize("case", CASES)
def test_block_outputs_match_terratorch(case: str) -> None:
    config, tensors = read_case(case)
    weights = FIXTURES / f"weights_{config['flavour']}.safetensors"
    with pytest.warns(DroppedWeightsNote, match="generation decoder") as notes:
        model = build(config, weights).eval()
    assert any("position embeddings" in str(n.message) for n in notes)
    with torch.no_grad():
        outputs = model(tensors["input"].float())
    assert len(outputs) == config["depth"]
    worst = 0.0
    for i, out in enumerate(outputs):
        if config["merge_method"] == "dict":
            assert list(out) == config["modalities"]
            for name, tokens in out.items():
                expected = tensors[f"out.{i}.{name}"]
                assert tokens.shape == expected.shape
                worst = max(worst, (tokens - expected).abs().max().item())
        else:
            expected = tensors[f"out.{i}"]
            assert out.shape == expected.shape, (i, out.shape, expected.shape)
            worst = max(worst, (out - expected).abs().max().item())
    assert worst < 1e-5, f"{case}: max abs diff {worst:.3g}"


def test_the_outputs_depend_on_the_weights() -> None:
    """Random weights of geofm's own init do not reproduce the fixture (the test can fail)."""
    config, tensors = read_case("s2l1c_s1grd_mean_swiglu")
    model = build(config, None).eval()
    with torch.no_grad():
        out = model(tensors["input"].float())[-1]
    assert (out - tensors["out.1"]).abs().max().item() > 1e-2


def test_a_dict_input_gives_the_stacked_inputs_tokens() -> None:
    config, tensors = read_case("s2l1c_s1grd_concat_gelu")
    with pytest.warns(DroppedWeightsNote):
        model = build(config, FIXTURES / "weights_gelu.safetensors").eval()
    x = tensors["input"].float()
    s2, s1 = x[:, :13], x[:, 13:]
    with torch.no_grad():
        out = model({"S2L1C": s2, "S1GRD": s1})
    torch.testing.assert_close(out[-1], tensors["out.1"], atol=1e-5, rtol=0)
