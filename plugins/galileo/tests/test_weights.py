"""Official checkpoint layout: ``models/<variant>/{encoder.pt,config.json}``, loaded strictly."""

from __future__ import annotations

import json

import pytest
import torch
from geofm_galileo import configs
from geofm_galileo.constants import VARIANTS
from geofm_galileo.weights import WEIGHTS_DIR_ENV

from geofm_core.errors import ConfigurationError


def test_pretrained_from_an_offline_hub_cache(cached_variant):
    state = cached_variant("galileo_nano")
    backbone = configs.galileo_nano(pretrained=True)
    encoder = backbone.encoder
    assert backbone.pretrained_bands is not None and "VV" in backbone.pretrained_bands
    assert configs.galileo_nano(depth=1).pretrained_bands is None
    assert torch.equal(encoder.blocks[0].attn.q.weight, state["blocks.0.backbone.attn.q.weight"])
    assert torch.equal(encoder.space_time_embed["S2_RGB"].proj.weight,
                       state["space_time_embed.S2_RGB.proj.weight"])
    assert torch.equal(encoder.month_embed.weight, state["month_embed.weight"])


def test_offline_without_the_files_names_the_cache_and_the_fix(offline_hub):
    with pytest.raises(ConfigurationError) as info:
        configs.galileo_tiny(pretrained=True)
    message = str(info.value)
    assert "HF_HUB_OFFLINE" in message and "models/tiny/encoder.pt" in message
    assert "nasaharvest/galileo" in message and "ckpt_path" in message


def test_weights_dir_is_read_first(offline_hub, tmp_path, monkeypatch, official):
    spec = VARIANTS["galileo_nano"]
    state = official.state(spec, seed=3)
    official.write(tmp_path / "weights" / "nano", spec, state)
    monkeypatch.setenv(WEIGHTS_DIR_ENV, str(tmp_path / "weights"))
    encoder = configs.galileo_nano(pretrained=True).encoder
    assert torch.equal(encoder.norm.weight, state["norm.weight"])


def test_ckpt_path_takes_the_folder_or_the_file(tmp_path, official):
    spec = VARIANTS["galileo_nano"]
    state = official.state(spec, seed=4)
    folder = official.write(tmp_path / "nano", spec, state)
    for path in (folder, folder / "encoder.pt"):
        encoder = configs.galileo_nano(ckpt_path=str(path)).encoder
        assert torch.equal(encoder.static_embed["location"].weight,
                           state["static_embed.location.weight"])


def test_a_config_of_another_variant_is_refused(tmp_path, official):
    spec = VARIANTS["galileo_nano"]
    folder = official.write(tmp_path / "nano", spec, official.state(spec))
    (folder / "config.json").write_text(json.dumps(official.config(VARIANTS["galileo_tiny"])))
    with pytest.raises(ConfigurationError, match=r"another encoder than galileo_nano.*"
                                                 r"embedding_size=192"):
        configs.galileo_nano(ckpt_path=str(folder))


def test_missing_and_unexpected_keys_are_named(tmp_path, official):
    spec = VARIANTS["galileo_nano"]
    state = official.state(spec)
    state.pop("norm.bias")
    state["decoder.mask_token"] = torch.zeros(3)
    folder = official.write(tmp_path / "nano", spec, state)
    with pytest.raises(ConfigurationError) as info:
        configs.galileo_nano(ckpt_path=str(folder))
    assert "norm.bias" in str(info.value) and "decoder.mask_token" in str(info.value)


def test_architecture_overrides_are_refused_with_weights(tmp_path):
    with pytest.raises(ConfigurationError, match=r"depth change the architecture"):
        configs.galileo_nano(pretrained=True, depth=2)
    with pytest.raises(ConfigurationError, match="either pretrained=True"):
        configs.galileo_nano(pretrained=True, ckpt_path=str(tmp_path))
