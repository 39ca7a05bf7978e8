"""Parity with the official reference encoder (fixtures from scripts/make_parity_fixtures.py).

The fixtures hold a reduced reference ``Encoder`` (32 wide, 2 blocks, kernels of 4) with
random weights under the official names, fixed inputs, and the reference's per-block
sequences and outputs for patch sizes 2 (kernels resized, FlexiPatch) and 4.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from geofm_galileo.encoder import GalileoEncoder
from geofm_galileo.weights import load_official
from safetensors.torch import load_file

TOL = 1e-5


FIXTURES = Path(__file__).resolve().parent / "fixtures"


@pytest.fixture(scope="module")
def reference() -> tuple[GalileoEncoder, dict[str, torch.Tensor]]:
    torch.set_float32_matmul_precision("highest")
    config = json.loads((FIXTURES / "reference_config.json").read_text())["model"]["encoder"]
    encoder = GalileoEncoder(config["embedding_size"], config["depth"], config["num_heads"],
                             config["mlp_ratio"], config["max_sequence_length"],
                             config["max_patch_size"]).eval()
    load_official(encoder, FIXTURES / "reference_encoder.safetensors")
    return encoder, load_file(str(FIXTURES / "reference_io.safetensors"))


def test_the_reference_file_has_the_official_names(reference):
    encoder, _ = reference
    state = load_file(str(FIXTURES / "reference_encoder.safetensors"))
    names = {k.replace(".backbone", "") for k in state}
    assert names == set(encoder.state_dict())
    assert "blocks.1.backbone.norm1.weight" in state  # the stray name official files have
    for key, value in encoder.state_dict().items():
        original = key if key in state else key.replace("blocks.1.", "blocks.1.backbone.")
        assert torch.equal(value, state[original]), key


@pytest.mark.parametrize("patch_size", [2, 4])
def test_every_block_and_the_output_match_the_reference(reference, patch_size):
    encoder, io = reference
    seen: list[torch.Tensor] = []
    hooks = [b.register_forward_hook(lambda _m, _i, o: seen.append(o)) for b in encoder.blocks]
    try:
        with torch.no_grad():
            out, _ = encoder(io["s_t_x"], io["sp_x"], io["t_x"], io["st_x"], io["s_t_m"],
                             io["sp_m"], io["t_m"], io["st_m"], io["months"],
                             patch_size=patch_size)
    finally:
        for hook in hooks:
            hook.remove()
    assert len(seen) == len(encoder.blocks)
    for i, seq in enumerate(seen):
        expected = io[f"p{patch_size}.block{i}"]
        assert seq.shape == expected.shape, i
        # padded slots (masked tokens moved to the end) carry nothing the output uses
        assert (seq - expected).abs().max() < TOL, f"block {i}"
    names = ("space_time", "space", "time", "static")
    for name, value in zip(names, out[:4], strict=True):
        diff = (value - io[f"p{patch_size}.{name}"]).abs().max()
        assert diff < TOL, f"{name}: max abs diff {diff}"
    for name, value in zip(names, out[4:], strict=True):
        assert torch.equal(value, io[f"p{patch_size}.{name}_mask"]), name
    average = GalileoEncoder.average_tokens(out)
    assert (average - io[f"p{patch_size}.average"]).abs().max() < TOL
    assert out.space_time.abs().sum() > 0 and out.static.abs().sum() > 0


def test_returned_blocks_are_the_output_of_an_early_exit(reference):
    encoder, io = reference
    args = [io[k] for k in ("s_t_x", "sp_x", "t_x", "st_x", "s_t_m", "sp_m", "t_m", "st_m",
                            "months")]
    with torch.no_grad():
        _, levels = encoder(*args, patch_size=2, return_blocks=(0,))
        early, _ = encoder(*args, patch_size=2, exit_after=1)
    assert torch.allclose(levels[0].space_time, early.space_time, atol=1e-6)
