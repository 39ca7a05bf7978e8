"""Prithvi Swin equals TerraTorch's: weights in its layouts, per-stage outputs, a task's logits.

The fixtures were written by TerraTorch itself (``scripts/make_swin_fixtures.py``, run in
the peer environment): a reduced ``prithvi_swin_B`` (embed 3, depths 2-2-2-2, window 3,
pre-training size 32) with random weights, its outputs at 32x32 and at 21x27 (no
multiple of the patch: replicate padding, odd merges, padded windows), the same weights
in the Swin / SimMIM layout, and a Swin + UperNet segmentation task. TerraTorch is not
needed here.
"""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any

import pytest
import torch
from geofm_prithvi import swin_configs
from safetensors.torch import load_file, save_file

FIXTURES = Path(__file__).parent / "fixtures"
TINY: dict[str, Any] = {"embed_dim": 3, "depths": [2, 2, 2, 2], "num_heads": [1, 1, 2, 2],
                        "window_size": 3, "img_size": 32}
SIZES = ("32x32", "21x27")
TOLERANCE = 1e-5


@pytest.fixture(autouse=True)
def _exact_matmul() -> Any:
    previous = torch.get_float32_matmul_precision()
    torch.set_float32_matmul_precision("highest")
    yield
    torch.set_float32_matmul_precision(previous)


@pytest.fixture(scope="module")
def reference() -> dict[str, torch.Tensor]:
    return load_file(str(FIXTURES / "swin_tiny.safetensors"))


def _official(reference: dict[str, torch.Tensor], tmp_path: Path) -> Path:
    state = {k.removeprefix("state."): v for k, v in reference.items() if k.startswith("state.")}
    path = tmp_path / "prithvi_swin_tiny.safetensors"
    save_file(state, str(path))
    return path


def _max_diffs(model: torch.nn.Module, reference: dict[str, torch.Tensor]) -> list[float]:
    diffs = []
    model.eval()
    for size in SIZES:
        with torch.no_grad():
            outputs = model(reference[f"input.{size}"])
        assert len(outputs) == 4
        for i, out in enumerate(outputs):
            expected = reference[f"out.{size}.{i}"]
            assert out.shape == expected.shape, (size, i)
            diffs.append(float((out - expected).abs().max()))
    return diffs


def test_official_layout_gives_terratorchs_stage_outputs(reference, tmp_path):
    model = swin_configs.prithvi_swin_b(ckpt_path=str(_official(reference, tmp_path)), **TINY)
    assert max(_max_diffs(model, reference)) <= TOLERANCE
    assert model.out_channels == [3, 6, 12, 24]
    # the classifier and the computed indices are dropped, and said so
    assert "head.fc.weight" in model.dropped_keys
    assert "stages.0.blocks.0.attn.w_msa.relative_position_index" in model.dropped_keys


def test_a_terratorch_task_checkpoint_loads_as_backbone_weights(reference, tmp_path):
    # the task's encoder (``model.encoder.stages_N``) is another layout TerraTorch writes
    model = swin_configs.prithvi_swin_b(ckpt_path=str(FIXTURES / "swin_upernet.ckpt"), **TINY)
    assert any(k.startswith("model.decoder.") for k in model.dropped_keys)
    state = torch.load(FIXTURES / "swin_upernet.ckpt", weights_only=True)["state_dict"]
    assert torch.equal(model.stages[2].blocks[1].mlp.fc2.weight,
                       state["model.encoder.stages_2.blocks.1.ffn.layers.1.weight"])


def test_simmim_layout_maps_onto_the_same_weights(reference, tmp_path):
    official = swin_configs.prithvi_swin_b(ckpt_path=str(_official(reference, tmp_path)), **TINY)
    with pytest.warns(UserWarning, match=r"stages\.0\.norm\.weight"):
        simmim = swin_configs.prithvi_swin_b(
            ckpt_path=str(FIXTURES / "swin_tiny_simmim.safetensors"), **TINY)
    ours, theirs = official.state_dict(), simmim.state_dict()
    for key, value in ours.items():
        if ".norm." in key and key.startswith("stages.") and key.count(".") == 3:
            assert torch.equal(theirs[key], torch.ones_like(value) if key.endswith("weight")
                               else torch.zeros_like(value)), key  # identity, as TerraTorch
        else:
            assert torch.equal(theirs[key], value), key
    assert "encoder.norm.weight" in simmim.dropped_keys
    assert "decoder.0.weight" in simmim.dropped_keys


def test_band_subset_keeps_the_pretrained_channels(reference, tmp_path):
    path = _official(reference, tmp_path)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        model = swin_configs.prithvi_swin_b(ckpt_path=str(path), bands=["SWIR_2", "RED"], **TINY)
    weight = reference["state.patch_embed.projection.weight"]
    assert torch.equal(model.patch_embed.proj.weight[:, 0], weight[:, 5])
    assert torch.equal(model.patch_embed.proj.weight[:, 1], weight[:, 2])
    assert model.bands == ["SWIR_2", "RED"]


def test_other_window_resizes_the_bias_tables_as_terratorch(reference, tmp_path):
    path = _official(reference, tmp_path)
    model = swin_configs.prithvi_swin_b(ckpt_path=str(path), **{**TINY, "window_size": 4})
    model.eval()
    assert model.stages[0].blocks[0].attn.relative_position_bias_table.shape == (49, 1)
    with torch.no_grad():
        outputs = model(reference["input.21x27"])
    for i, out in enumerate(outputs):
        assert float((out - reference[f"out.window4.21x27.{i}"]).abs().max()) <= TOLERANCE
