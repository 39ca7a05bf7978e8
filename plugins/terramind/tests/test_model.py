"""Inputs, merges, levels and the errors of the TerraMind backbone (tiny sizes, random init)."""

from __future__ import annotations

from typing import Any

import pytest
import torch
from geofm_terramind.configs import resolve_modalities

from geofm_core.errors import ConfigurationError
from geofm_core.registry import get_registry

TINY: dict[str, Any] = {"embed_dim": 32, "depth": 3, "num_heads": 2, "img_size": 32}


def build(**kwargs: Any) -> torch.nn.Module:
    torch.manual_seed(0)
    return get_registry().build("backbone", "terramind:terramind_v1_tiny", **{**TINY, **kwargs})


def test_a_stacked_input_splits_by_the_modalities_channel_counts() -> None:
    model = build(modalities=["S2L1C", "S1GRD", "DEM"], merge_method="dict").eval()
    x = torch.randn(2, 16, 32, 32)
    with torch.no_grad():
        stacked = model(x)[-1]
        parts = model({"S2L1C": x[:, :13], "S1GRD": x[:, 13:15], "DEM": x[:, 15:]})[-1]
    assert list(stacked) == ["S2L1C", "S1GRD", "DEM"]
    for name in stacked:
        torch.testing.assert_close(stacked[name], parts[name], atol=0, rtol=0)
    assert model.bands[-3:] == ["VV", "VH", "DEM"]


def test_a_wrong_channel_count_names_the_modalities_and_their_channels() -> None:
    model = build(modalities=["S2L1C", "S1GRD"])
    with pytest.raises(ConfigurationError, match=r"C = 15.*S2L1C: 13, S1GRD: 2"):
        model(torch.randn(1, 13, 32, 32))


def test_a_dict_with_an_unknown_modality_is_refused() -> None:
    model = build(modalities=["S2L1C"])
    with pytest.raises(ConfigurationError, match=r"\['S1GRD'\].*\['S2L1C'\]"):
        model({"S1GRD": torch.randn(1, 2, 32, 32)})


@pytest.mark.parametrize(("merge", "width"), [("mean", 32), ("max", 32), ("concat", 64)])
def test_merges_give_the_declared_channels(merge: str, width: int) -> None:
    model = build(modalities=["S2L2A", "S1RTC"], merge_method=merge, out_indices=[0, -1])
    out = model(torch.randn(2, 14, 32, 48))
    assert model.out_channels == [width, width]
    assert [tuple(o.shape) for o in out] == [(2, 6, width)] * 2


def test_out_indices_pick_the_blocks_of_the_full_output() -> None:
    full = build(modalities=["RGB"]).eval()
    some = build(modalities=["RGB"], out_indices=[1, -1]).eval()
    x = torch.randn(1, 3, 32, 32)
    with torch.no_grad():
        every, picked = full(x), some(x)
    assert len(every) == 3 and len(picked) == 2
    torch.testing.assert_close(picked[0], every[1], atol=0, rtol=0)
    torch.testing.assert_close(picked[1], every[2], atol=0, rtol=0)


def test_concat_fills_dropped_modalities_with_the_learned_token() -> None:
    model = build(modalities=["S2L1C", "S1GRD"], merge_method="concat", modality_drop_rate=1.0)
    model.train()
    out = model(torch.randn(1, 15, 32, 32))[-1]
    assert out.shape == (1, 4, 64)
    # one modality was dropped: its half of the channels is the missing-modality token
    halves = out[..., :32], out[..., 32:]
    assert any(torch.equal(h, model.missing_mod_token.expand_as(h)) for h in halves)


def test_new_modalities_and_band_subsets() -> None:
    entries, sources = resolve_modalities(
        ["S2L2A", {"planet": 4}], {"S2L2A": ["B04", "B03", "B02", "SOMETHING"]})
    assert entries[0][2:] == (4, ("RED", "GREEN", "BLUE", "SOMETHING"))
    assert sources == {"untok_sen2l2a@224": [3, 2, 1, None]}
    assert entries[1] == ("planet", "planet", 4, ("PLANET_0", "PLANET_1", "PLANET_2",
                                                  "PLANET_3"))
    # TerraTorch's spellings
    assert [e[1] for e in resolve_modalities(["sen1grd", "S1RTC", "s2l1c"])[0]] == [
        "untok_sen1grd@224", "untok_sen1rtc@224", "untok_sen2l1c@224"]


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"modalities": ["S3OLCI"]}, "unknown modality 'S3OLCI'.*S2L1C"),
    ({"modalities": ["tok_sen2l2a@224"]}, "unknown modality 'tok_sen2l2a@224'.*tokenized"),
    ({"modalities": ["caption"]}, "unknown modality 'caption'"),
    ({"modalities": ["S1GRD", "sen1"]}, "same modality twice"),
    ({"modalities": ["S2L2A"], "bands": {"S1GRD": ["VV"]}}, "not among the modalities"),
    ({"modalities": ["NDVI"], "bands": {"NDVI": ["NDVI"]}}, "no pretrained bands"),
    ({"modalities": ["S2L2A"], "merge_method": "sum"}, "merge_method 'sum'"),
    ({"modalities": ["S2L2A"], "pretrained": True}, "change the architecture"),
    ({"modalities": ["S2L2A"], "out_indices": [3]}, "outside the 3 blocks"),
])
def test_bad_settings_get_one_clear_error(kwargs: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigurationError, match=message):
        build(**kwargs)


def test_sizes_must_be_multiples_of_the_patch() -> None:
    model = build(modalities=["DEM"])
    with pytest.raises(ConfigurationError, match="multiple of the patch size 16"):
        model(torch.randn(1, 1, 40, 32))


def test_dict_merges_are_refused_in_a_model_with_a_clear_error() -> None:
    factory = get_registry().build("model_factory", "geofm:encoder_decoder")
    with pytest.raises(ConfigurationError, match="merge_method 'dict' returns a dict"):
        factory.build_model(
            task="segmentation", backbone="terramind:terramind_v1_tiny",
            backbone_kwargs={**TINY, "modalities": ["S2L1C", "S1GRD"], "merge_method": "dict"},
            necks=[{"name": "geofm:reshape_tokens_to_image", "remove_cls_token": False}],
            decoder="geofm:fcn", num_classes=2)
