"""The Prithvi Swin encoders: sizes, parameter counts, bands, weights from the hub cache, errors."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch
from geofm_prithvi import swin_configs
from geofm_prithvi.constants import SWIN_VARIANTS
from safetensors.torch import load_file

from geofm_core import get_registry
from geofm_core.errors import ConfigurationError

FIXTURES = Path(__file__).parent / "fixtures"
TINY = {"embed_dim": 3, "depths": [2, 2, 2, 2], "num_heads": [1, 1, 2, 2], "window_size": 3}

# TerraTorch 1.2.11's BACKBONE_REGISTRY.build("prithvi_swin_B") / ("prithvi_swin_L")
# (features only, six bands), counted in the peer environment.
TERRATORCH_PARAMETERS = {"prithvi_swin_b": 86_751_160, "prithvi_swin_l": 195_007_380}


@pytest.mark.parametrize("variant", list(SWIN_VARIANTS))
def test_full_size_parameter_counts_equal_terratorchs(variant):
    with torch.device("meta"):
        model = getattr(swin_configs, variant)()
    count = sum(p.numel() for p in model.parameters())
    assert count == TERRATORCH_PARAMETERS[variant] == SWIN_VARIANTS[variant].parameters
    spec = SWIN_VARIANTS[variant]
    assert model.out_channels == [spec.embed_dim * 2**i for i in range(4)]
    assert [len(s.blocks) for s in model.stages] == [2, 2, 18, 2]


@pytest.mark.parametrize(("size", "grids"), [
    ((224, 224), [(56, 56), (28, 28), (14, 14), (7, 7)]),
    ((50, 45), [(13, 12), (7, 6), (4, 3), (2, 2)]),  # padded inside, as TerraTorch
])
def test_feature_maps_are_channels_first_at_strides_4_to_32(size, grids):
    model = swin_configs.prithvi_swin_b(embed_dim=8, depths=[1, 1, 1, 1], num_heads=[1, 1, 2, 2])
    with torch.no_grad():
        out = model(torch.randn(1, 6, *size))
    assert [tuple(o.shape[2:]) for o in out] == grids
    assert [o.shape[1] for o in out] == model.out_channels == [8, 16, 32, 64]
    assert model.input_multiple == 1


def test_out_indices_select_stages():
    model = swin_configs.prithvi_swin_l(out_indices=[-1, 1], **TINY)
    out = model(torch.randn(2, 6, 32, 32))
    assert model.out_channels == [24, 6] == [o.shape[1] for o in out]


def test_metadata_declares_bands_sizes_counts_and_weights():
    registry = get_registry()
    b = registry.get("backbone", "prithvi:prithvi_swin_b").metadata
    assert b.bands == ("BLUE", "GREEN", "RED", "NIR_NARROW", "SWIR_1", "SWIR_2")
    assert (b.patch_size, b.image_size, b.parameters) == (4, 224, 86_751_160)
    assert [w.name for w in b.weights] == ["ibm-granite/granite-geospatial-biomass"]
    assert b.weights[0].license == "Apache-2.0"
    large = registry.get("backbone", "prithvi:prithvi_swin_l").metadata
    assert large.parameters == 195_007_380 and large.weights == ()


def test_new_bands_and_bad_inputs_give_one_clear_error():
    with pytest.raises(ConfigurationError, match="num_frames"):
        swin_configs.prithvi_swin_b(num_frames=3, **TINY)
    with pytest.raises(ConfigurationError, match="bands"):
        swin_configs.prithvi_swin_b(bands=["RED", "red"], **TINY)
    with pytest.raises(ConfigurationError, match="num_heads"):
        swin_configs.prithvi_swin_b(embed_dim=3, depths=[1, 1], num_heads=[2, 2])
    model = swin_configs.prithvi_swin_b(bands=["RED", "SAR_VV"], **TINY)
    with pytest.raises(ConfigurationError, match=r"\(B, 2, H, W\)"):
        model(torch.randn(1, 6, 32, 32))


def test_pretrained_swin_l_has_no_published_weights(clean_hub_env):
    with pytest.raises(ConfigurationError, match="no weights of this variant are published"):
        swin_configs.prithvi_swin_l(pretrained=True)
    with pytest.raises(ConfigurationError, match="embed_dim"):
        swin_configs.prithvi_swin_b(pretrained=True, embed_dim=8)


def test_pretrained_offline_without_cache_names_the_file(clean_hub_env):
    with pytest.raises(ConfigurationError) as info:
        swin_configs.prithvi_swin_b(pretrained=True)
    assert "ibm-granite/granite-geospatial-biomass" in str(info.value)
    assert "HF_HUB_OFFLINE" in str(info.value)


def test_pretrained_from_a_prefilled_hub_cache(clean_hub_env):
    # a full-size Swin-B task checkpoint in TerraTorch's layout (model.encoder.stages_N,
    # attn.w_msa, ffn.layers), random values, as published in the biomass repository
    torch.manual_seed(0)
    with torch.device("meta"):
        layout = swin_configs.prithvi_swin_b().state_dict()
    state = {}
    for key, value in layout.items():  # geofm -> TerraTorch task names
        foreign = key.replace("patch_embed.proj.", "patch_embed.projection.")
        foreign = foreign.replace(".attn.", ".attn.w_msa.").replace(".mlp.fc1.", ".ffn.layers.0.0.")
        foreign = foreign.replace(".mlp.fc2.", ".ffn.layers.1.")
        foreign = foreign.replace("stages.", "stages_", 1)
        state[f"model.encoder.{foreign}"] = torch.randn(value.shape)
    state["model.head.weight"] = torch.zeros(1)
    weights = SWIN_VARIANTS["prithvi_swin_b"].weights
    assert weights is not None
    repo = Path(os.environ["HF_HOME"]) / "hub" / ("models--" + weights.repo_id.replace("/", "--"))
    commit = "0123456789abcdef0123456789abcdef01234567"
    (repo / "refs").mkdir(parents=True)
    (repo / "refs" / "main").write_text(commit)
    (repo / "snapshots" / commit).mkdir(parents=True)
    torch.save({"state_dict": state, "epoch": 3}, repo / "snapshots" / commit / weights.filename)
    model = swin_configs.prithvi_swin_b(pretrained=True, bands=["NIR_NARROW", "BLUE"])
    expected = state["model.encoder.stages_2.blocks.17.attn.w_msa.qkv.weight"]
    assert torch.equal(model.stages[2].blocks[17].attn.qkv.weight, expected)
    patch = state["model.encoder.patch_embed.projection.weight"]
    assert torch.equal(model.patch_embed.proj.weight[:, 0], patch[:, 3])
    assert model.pretrained_bands == ("BLUE", "GREEN", "RED", "NIR_NARROW", "SWIR_1", "SWIR_2")
    assert "model.head.weight" in model.dropped_keys


def test_leftover_and_missing_keys_are_named(tmp_path):
    tiny = load_file(str(FIXTURES / "swin_tiny.safetensors"))
    state = {k.removeprefix("state."): v for k, v in tiny.items() if k.startswith("state.")}
    state["stages.0.extra.weight"] = torch.zeros(1)
    del state["stages.3.blocks.1.ffn.layers.1.bias"]
    path = tmp_path / "bad.pt"
    torch.save(state, path)
    with pytest.raises(ConfigurationError) as info:
        swin_configs.prithvi_swin_b(ckpt_path=str(path), **TINY)
    message = str(info.value)
    assert "unexpected keys: stages.0.extra.weight" in message
    assert "missing keys: stages.3.blocks.1.mlp.fc2.bias" in message
    assert "prithvi:prithvi_swin_b" in message
