"""Official checkpoints: strict loading, dropped tensors listed, the hub cache offline, errors.

The official layout comes from the parity fixtures (TerraTorch's own Clay modules under
``model.encoder.*``), not from this plugin's model.
"""

from __future__ import annotations

import warnings

import pytest
import torch
from geofm_clay import backbones
from geofm_clay.backbones import build_clay, resolve_wavelengths
from geofm_clay.constants import VARIANTS
from geofm_clay.weights import (
    DroppedWeightsWarning,
    find_pretrained_file,
    load_checkpoint,
    map_official_keys,
)

from geofm_core.errors import ConfigurationError
from geofm_core.registry import get_registry


def _tiny(fixture, **kwargs):
    arch = {k: (float(v) if k == "mlp_ratio" else int(v)) for k, v in fixture.arch.items()}
    return build_clay("clay_v1_5_base", wavelengths=[0.49, 0.665, 1.61], **arch, **kwargs)


def _save(state, path):
    torch.save({"state_dict": state, "epoch": 3}, path)
    return path


def test_map_official_keys_keeps_the_encoder_and_counts_the_rest(parity):
    state = parity("v1.5").state_dict
    mapped, dropped = map_official_keys(state)
    assert "cls_token" in mapped and "transformer.norm.weight" in mapped
    assert "patch_embedding.weight_generator.encoder.layers.0.linear1.weight" in mapped
    assert dropped == {"model.decoder.*": 1, "model.teacher.*": 1}
    bare = {k.removeprefix("model.encoder."): v for k, v in state.items()
            if k.startswith("model.encoder.")}
    assert map_official_keys(bare) == (bare, {})
    prefixed = {f"encoder.{k}": v for k, v in bare.items()}
    assert map_official_keys(prefixed)[0].keys() == bare.keys()


def test_a_missing_key_is_named(parity, tmp_path):
    state = dict(parity("v1.5").state_dict)
    del state["model.encoder.transformer.layers.1.0.to_qkv.weight"]
    with pytest.raises(ConfigurationError, match=r"missing keys: transformer\.layers\.1\.0\."):
        load_checkpoint(_tiny(parity("v1.5")), _save(state, tmp_path / "c.ckpt"))


def test_an_extra_encoder_key_is_named(parity, tmp_path):
    state = {**parity("v1.5").state_dict, "model.encoder.mask_token": torch.zeros(3)}
    with pytest.raises(ConfigurationError, match="unexpected keys: mask_token"):
        load_checkpoint(_tiny(parity("v1.5")), _save(state, tmp_path / "c.ckpt"))


def test_another_size_names_the_shapes(parity, tmp_path):
    fixture = parity("v1.5")
    model = build_clay("clay_v1_5_base", bands=["RED"], dim=int(fixture.arch["dim"]) + 4,
                       depth=int(fixture.arch["depth"]), heads=3, dim_head=8, mlp_ratio=2.0)
    with pytest.raises(ConfigurationError, match=r"shape mismatches: cls_token \(1, 1, 48\) vs"):
        load_checkpoint(model, _save(fixture.state_dict, tmp_path / "c.ckpt"))


def test_ckpt_path_loads_through_the_factory(parity, tmp_path):
    fixture = parity("v1")
    path = _save(fixture.state_dict, tmp_path / "clay-v1-base.ckpt")
    with pytest.warns(DroppedWeightsWarning, match=r"model\.decoder\.\* \(1\), model\.teacher"):
        model = _tiny(fixture, ckpt_path=str(path))
    own = model.state_dict()
    for key, value in fixture.state_dict.items():
        if key.startswith("model.encoder."):
            assert torch.equal(own[key.removeprefix("model.encoder.")], value), key


def test_pretrained_offline_without_cache_says_where_to_put_the_file(clean_hub_env):
    with pytest.raises(ConfigurationError, match="HF_HUB_OFFLINE is set") as info:
        build_clay("clay_v1_5_large", pretrained=True, bands=["RED"])
    message = str(info.value)
    assert "made-with-clay/Clay" in message and "v1.5/clay-v1.5.ckpt" in message
    assert "ckpt_path=" in message and str(clean_hub_env) in message


def test_pretrained_is_refused_where_no_weights_exist_or_the_size_differs(clean_hub_env):
    with pytest.raises(ConfigurationError, match="no published weights"):
        build_clay("clay_v1_5_tiny", pretrained=True, bands=["RED"])
    with pytest.raises(ConfigurationError, match=r"\['dim'\] change the architecture"):
        build_clay("clay_v1_5_large", pretrained=True, bands=["RED"], dim=32)


def test_the_hub_cache_is_read_offline(clean_hub_env, parity, hub_file):
    fixture = parity("v1.5")
    weights = VARIANTS["clay_v1_5_large"].weights
    assert weights is not None
    file = hub_file(clean_hub_env, weights.repo_id, weights.filename, fixture.state_dict)
    assert find_pretrained_file(weights) == file
    model = _tiny(fixture)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DroppedWeightsWarning)
        load_checkpoint(model, file)
    assert torch.equal(model.cls_token, fixture.state_dict["model.encoder.cls_token"])


def test_clay_v1_base_pretrained_from_the_hub_cache(clean_hub_env, hub_file):
    # full size, zeros: the official file name and key layout at the real shapes
    with torch.device("meta"):
        shapes = {k: v.shape for k, v in build_clay("clay_v1_base", bands=["RED"])
                  .state_dict().items()}
    state = {f"model.encoder.{k}": torch.zeros(s) for k, s in shapes.items()}
    state["model.decoder.mask_patch"] = torch.zeros(512)
    weights = VARIANTS["clay_v1_base"].weights
    assert weights is not None
    hub_file(clean_hub_env, weights.repo_id, weights.filename, state)
    with pytest.warns(DroppedWeightsWarning, match=r"model\.decoder\.\* \(1\)"):
        model = get_registry().build("backbone", "clay:clay_v1_base", pretrained=True,
                                     bands=["BLUE", "GREEN", "RED"])
    assert all(not p.any() for p in model.parameters())


# -- bands and wavelengths -------------------------------------------------------------


def test_band_names_resolve_to_wavelengths():
    names, values = resolve_wavelengths(["B02", "red", "NIR_NARROW", "swir16", "VV"], None)
    assert names == ["BLUE", "RED", "NIR_NARROW", "SWIR_1", "VV"]
    assert values == [0.49, 0.665, 0.865, 1.61, 3.5]
    assert resolve_wavelengths(None, [0.5, 1.0]) == (["BAND_0", "BAND_1"], [0.5, 1.0])


def test_a_band_without_wavelength_names_the_band_and_the_fix():
    with pytest.raises(ConfigurationError, match=r"band 'DEM' has no known centre wavelength; "
                                                 r"pass wavelengths="):
        build_clay("clay_v1_5_tiny", bands=["RED", "DEM"])
    with pytest.raises(ConfigurationError, match="band 3 has no known"):
        build_clay("clay_v1_5_tiny", bands=[3])


@pytest.mark.parametrize(("bands", "wavelengths", "match"), [
    (None, None, "wavelength-conditioned: pass bands"),
    (["RED", "GREEN"], [0.6], "2 bands but 1 wavelengths"),
    (None, [0.6, -1.0], "positive centre wavelengths"),
    ("RED", None, "lists, one entry per band"),
])
def test_bad_band_settings_raise_one_clear_error(bands, wavelengths, match):
    with pytest.raises(ConfigurationError, match=match):
        backbones.build_clay("clay_v1_5_tiny", bands=bands, wavelengths=wavelengths)


def test_bad_inputs_are_named():
    model = build_clay("clay_v1_5_tiny", bands=["RED", "GREEN"], dim=24, depth=1, heads=2,
                       dim_head=8)
    with pytest.raises(ConfigurationError, match=r"built for 2 bands .* got shape \(1, 3, 16"):
        model(torch.zeros(1, 3, 16, 16))
    with pytest.raises(ConfigurationError, match="not a multiple of the patch size 8"):
        model(torch.zeros(1, 2, 16, 12))
    with pytest.raises(ConfigurationError, match="outside the 1 blocks"):
        build_clay("clay_v1_5_tiny", bands=["RED"], depth=1, out_indices=[2])
    with pytest.raises(ConfigurationError, match="gsd"):
        build_clay("clay_v1_5_tiny", bands=["RED"], gsd=0)
