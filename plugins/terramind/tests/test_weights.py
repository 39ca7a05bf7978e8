"""Official-layout checkpoints load with strict keys, from an offline Hugging Face cache.

A random state dict in the published layout of TerraMind-1.0-tiny (encoder, generation
decoder, tokenized and caption embeddings) is put in a Hugging Face cache in tmp_path
under the repository and file name TerraTorch's register uses; ``pretrained=True`` with
``HF_HUB_OFFLINE=1`` must find and load it.
"""

from __future__ import annotations

import pytest
import torch
from geofm_terramind.constants import VARIANTS
from geofm_terramind.weights import DroppedWeightsNote, NewBandWarning

from geofm_core.errors import ConfigurationError
from geofm_core.registry import get_registry

TINY = VARIANTS["terramind_v1_tiny"]
REPO, FILE = "ibm-esa-geospatial/TerraMind-1.0-tiny", "TerraMind_v1_tiny.pt"


def build(**kwargs: object) -> torch.nn.Module:
    return get_registry().build("backbone", "terramind:terramind_v1_tiny", **kwargs)


@pytest.fixture
def official(official_tiny: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    return official_tiny


def test_the_weights_file_is_the_one_terratorch_downloads() -> None:
    assert (TINY.weights.repo_id, TINY.weights.filename) == (REPO, FILE)
    assert VARIANTS["terramind_v1_base"].weights.filename == "TerraMind_v1_base.pt"


def test_pretrained_loads_the_encoder_from_the_offline_cache(hf_cache, official) -> None:
    hf_cache(REPO, FILE, official)
    with pytest.warns(DroppedWeightsNote) as notes:
        model = build(modalities=["S2L1C", "S1GRD"], pretrained=True)
    text = " ".join(str(n.message) for n in notes)
    for part in ("generation decoder's blocks", "mask token", "modalities this model was not "
                 "built for", "position embeddings"):
        assert part in text
    state = model.state_dict()
    for key in ("encoder_embeddings.untok_sen2l1c@224.proj.weight", "encoder.11.mlp.fc2.bias",
                "encoder_embeddings.untok_sen1grd@224.mod_emb", "encoder_norm.weight"):
        torch.testing.assert_close(state[key], official[key], atol=0, rtol=0)
    assert model.pretrained_bands[-2:] == ("VV", "VH")
    assert len(model.pretrained_bands) == 15


def test_band_subsets_take_their_pretrained_columns(hf_cache, official) -> None:
    hf_cache(REPO, FILE, official)
    with pytest.warns(NewBandWarning, match=r"S2L1C bands \['EXTRA'\]"):
        model = build(modalities=["S2L1C"], bands={"S2L1C": ["B04", "B02", "EXTRA"]},
                      pretrained=True)
    got = model.encoder_embeddings["untok_sen2l1c@224"].proj.weight.reshape(192, 256, 3)
    full = official["encoder_embeddings.untok_sen2l1c@224.proj.weight"].reshape(192, 256, 13)
    torch.testing.assert_close(got[..., 0], full[..., 3], atol=0, rtol=0)  # RED
    torch.testing.assert_close(got[..., 1], full[..., 1], atol=0, rtol=0)  # BLUE
    assert model.bands == ["RED", "BLUE", "EXTRA"]


def test_a_file_without_the_zero_norm_biases_loads(hf_cache, official) -> None:
    hf_cache(REPO, FILE, {k: v for k, v in official.items()
                          if not ("norm" in k and k.endswith(".bias"))})
    with pytest.warns(DroppedWeightsNote, match="LayerNorms' zero biases: 25 tensor"):
        model = build(modalities=["DEM"], pretrained=True)
    assert not model.encoder_norm.bias.any()


def test_missing_and_unknown_keys_are_errors(hf_cache, official) -> None:
    broken = {k: v for k, v in official.items() if k != "encoder.3.attn.qkv.weight"}
    broken["encoder.3.attn.qkv_extra"] = torch.zeros(1)
    hf_cache(REPO, FILE, broken)
    with pytest.raises(ConfigurationError, match=r"missing key.*encoder\.3\.attn\.qkv\.weight"
                       r".*unexpected key.*qkv_extra"):
        build(modalities=["S2L1C"], pretrained=True)


def test_a_learned_position_table_is_not_taken_for_the_fixed_one(hf_cache, official) -> None:
    tampered = dict(official)
    key = "encoder_embeddings.untok_dem@224.pos_emb"
    tampered[key] = tampered[key] + 0.5
    hf_cache(REPO, FILE, tampered)
    with pytest.raises(ConfigurationError, match="not TerraMind's fixed sin-cos"):
        build(modalities=["DEM"], pretrained=True)


def test_an_empty_offline_cache_says_where_the_file_is_expected(hf_cache) -> None:
    with pytest.raises(ConfigurationError, match=r"HF_HUB_OFFLINE is set.*TerraMind_v1_tiny\.pt"):
        build(modalities=["S2L1C"], pretrained=True)


def test_the_untrained_modalities_are_named(hf_cache, official) -> None:
    hf_cache(REPO, FILE, official)
    with pytest.warns(NewBandWarning, match=r"NDVI \(all channels\), myrgb \(all"):
        model = build(modalities=["S2L2A", "NDVI", {"myrgb": 3}], pretrained=True)
    assert model.pretrained_bands[-3:] == ("MYRGB_0", "MYRGB_1", "MYRGB_2")
