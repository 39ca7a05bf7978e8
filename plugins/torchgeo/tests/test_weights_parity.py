"""Weights arrive through torchgeo's API, and features equal torchgeo's own model's."""

from __future__ import annotations

import pytest
import torch
import torchgeo.models
from geofm_torchgeo.backbones import checkpoint_path

from geofm_core import get_registry
from geofm_core.data.bands import SENTINEL2_L1C_BANDS, wavelength_of
from geofm_core.errors import ConfigurationError

SATLAS_MS = ("RED", "GREEN", "BLUE", "RED_EDGE_1", "RED_EDGE_2", "RED_EDGE_3", "NIR_BROAD",
             "SWIR_1", "SWIR_2")


def _build(name: str, **kwargs):
    return get_registry().build("backbone", name, **kwargs).eval()


def _assert_loaded(backbone, state: dict[str, torch.Tensor]) -> None:
    ours = backbone.model.state_dict()
    shared = [k for k in state if k in ours]
    assert len(shared) > 0.9 * len(ours)
    for key in shared:
        assert torch.equal(ours[key], state[key]), key


def test_resnet18_weights_and_parity(offline_weights):
    state = offline_weights("resnet18", "SENTINEL2_ALL_MOCO")
    backbone = _build("torchgeo:resnet18_sentinel2_all_moco")
    _assert_loaded(backbone, state)
    assert backbone.pretrained_bands == SENTINEL2_L1C_BANDS
    assert backbone.out_channels == [64, 64, 128, 256, 512]
    reference = torchgeo.models.resnet18(
        weights=torchgeo.models.ResNet18_Weights.SENTINEL2_ALL_MOCO).eval()
    x = torch.randn(2, 13, 64, 96)
    with torch.no_grad():
        out = backbone(x)
        expected = reference.forward_features(x)
    assert [tuple(f.shape[-2:]) for f in out] == [(32, 48), (16, 24), (8, 12), (4, 6), (2, 3)]
    torch.testing.assert_close(out[-1], expected, atol=1e-6, rtol=0)


def test_vit_small_weights_and_parity(offline_weights):
    state = offline_weights("vit_small_patch16_224", "SENTINEL2_ALL_MOCO")
    backbone = _build("torchgeo:vit_small_patch16_224", weights="sentinel2_all_moco")
    _assert_loaded(backbone, state)
    reference = torchgeo.models.vit_small_patch16_224(
        weights=torchgeo.models.ViTSmall16_Weights.SENTINEL2_ALL_MOCO).eval()
    x = torch.randn(1, 13, 224, 224)
    with torch.no_grad():
        out = backbone(x)
        expected = reference.forward_features(x)
    assert len(out) == 12 and out[-1].shape == (1, 1 + 14 * 14, 384)
    torch.testing.assert_close(backbone.model.norm(out[-1]), expected, atol=1e-6, rtol=0)
    with torch.no_grad():  # other multiples of the patch: position embeddings interpolated
        assert backbone(torch.randn(1, 13, 64, 96))[-1].shape == (1, 1 + 4 * 6, 384)


def test_swin_v2_t_weights_and_parity(offline_weights):
    state = offline_weights("swin_v2_t", "SENTINEL2_SI_MS_SATLAS")
    backbone = _build("torchgeo:swin_v2_t_sentinel2_si_ms_satlas", bands=list(SATLAS_MS))
    _assert_loaded(backbone, state)
    assert backbone.pretrained_bands == SATLAS_MS
    reference = torchgeo.models.swin_v2_t(
        weights=torchgeo.models.Swin_V2_T_Weights.SENTINEL2_SI_MS_SATLAS).eval()
    x = torch.randn(1, 9, 64, 96)
    with torch.no_grad():
        out = backbone(x)
        expected = reference.features(x).permute(0, 3, 1, 2)
    assert backbone.out_channels == [96, 192, 384, 768]
    assert [f.shape[1] for f in out] == backbone.out_channels
    torch.testing.assert_close(out[-1], expected, atol=1e-6, rtol=0)


def test_dofa_base_weights_and_parity(offline_weights):
    state = offline_weights("dofa_base_patch16_224", "DOFA_MAE")
    bands = ["BLUE", "GREEN", "RED", "B8A", "SWIR_1"]
    backbone = _build("torchgeo:dofa_base_patch16_224_dofa_mae", bands=bands)
    _assert_loaded(backbone, state)
    assert backbone.wavelengths == [wavelength_of(b) for b in bands]
    reference = torchgeo.models.dofa_base_patch16_224(
        weights=torchgeo.models.DOFABase16_Weights.DOFA_MAE).eval()
    x = torch.randn(1, 5, 224, 224)
    with torch.no_grad():
        out = backbone(x)
        expected = reference.forward_features(x, backbone.wavelengths)
        pooled = reference.fc_norm(out[-1][:, 1:].mean(dim=1))
    torch.testing.assert_close(pooled, expected, atol=1e-6, rtol=0)
    with torch.no_grad():
        assert backbone(torch.randn(1, 5, 64, 96))[-1].shape == (1, 1 + 4 * 6, 768)


def test_pretrained_false_builds_the_weight_sets_shape_without_loading(torch_home):
    backbone = _build("torchgeo:resnet50_sentinel2_all_moco", pretrained=False)
    assert backbone.model.conv1.in_channels == 13
    assert backbone.pretrained_bands is None
    assert not torch_home.exists() or not any(torch_home.rglob("*.pth"))


def test_missing_file_offline_names_weights_url_and_cache(torch_home):
    member = torchgeo.models.ResNet18_Weights.SENTINEL2_RGB_MOCO
    with pytest.raises(ConfigurationError) as info:
        _build("torchgeo:resnet18", weights="SENTINEL2_RGB_MOCO")
    text = str(info.value)
    assert "SENTINEL2_RGB_MOCO" in text and member.url in text
    assert checkpoint_path(member) in text and str(torch_home) in text


def test_unknown_weights_and_band_mismatches_are_clear():
    with pytest.raises(ConfigurationError, match="SENTINEL2_ALL_MOCO"):
        _build("torchgeo:resnet18", weights="sentinel3")
    with pytest.raises(ConfigurationError, match="13 bands but in_chans=4"):
        _build("torchgeo:resnet18", weights="SENTINEL2_ALL_MOCO", in_chans=4, pretrained=False)
    with pytest.raises(ConfigurationError, match="2 bands given"):
        _build("torchgeo:resnet18", in_chans=3, bands=["VV", "VH"])
    with pytest.raises(ConfigurationError, match="pass wavelengths"):
        _build("torchgeo:dofa_small_patch16_224", bands=["RED", "VV"])
    with pytest.raises(ConfigurationError, match="wavelength-conditioned"):
        _build("torchgeo:dofa_small_patch16_224")


def test_copernicusfm_base_weights_and_parity(offline_weights):
    state = offline_weights("copernicusfm_base", "CopernicusFM_ViT")
    bands = ["BLUE", "GREEN", "RED", "B8A", "VV"]
    backbone = _build("torchgeo:copernicusfm_base_copernicusfm_vit", bands=bands)
    _assert_loaded(backbone, state)
    assert backbone.wavelengths[:4] == [wavelength_of(b) for b in bands[:4]]
    assert backbone.extras["bandwidths"] == [65.0, 35.0, 30.0, 20.0, 1e9]
    assert backbone.out_channels == [768] * 12 and backbone.input_multiple == 16
    reference = torchgeo.models.copernicusfm_base(
        weights=torchgeo.models.CopernicusFM_Base_Weights.CopernicusFM_ViT).eval()
    x = torch.randn(1, 5, 64, 64)
    with torch.no_grad():
        out = backbone(x)
        expected = reference(x, torch.full((1, 4), float("nan")),
                             wavelengths=[490.0, 560.0, 665.0, 865.0, 5e7],
                             bandwidths=[65.0, 35.0, 30.0, 20.0, 1e9])
        pooled = reference.fc_norm(out[-1][:, 1:].mean(dim=1))
    assert len(out) == 12 and out[-1].shape == (1, 1 + 4 * 4, 768)
    torch.testing.assert_close(pooled, expected, atol=1e-5, rtol=0)
    with torch.no_grad():  # non-square: the position embedding is resized to 4 x 6
        assert backbone(torch.randn(1, 5, 64, 96))[-1].shape == (1, 1 + 4 * 6, 768)
    with pytest.raises(ValueError, match="multiples of 16"):
        backbone(torch.randn(1, 5, 64, 72))


def test_copernicusfm_needs_wavelengths_and_bandwidths():
    with pytest.raises(ConfigurationError, match="wavelength-conditioned"):
        _build("torchgeo:copernicusfm_base", model_kwargs={"depth": 1})
    with pytest.raises(ConfigurationError, match="no known bandwidth"):
        _build("torchgeo:copernicusfm_base", bands=["RED", "DEM"], wavelengths=[0.6, 1.0])
    backbone = _build("torchgeo:copernicusfm_base", wavelengths=[0.6, 1.0],
                      bandwidths=[10.0, 20.0])
    assert backbone.extras == {"wavelengths": [0.6, 1.0], "bandwidths": [10.0, 20.0]}


def test_panopticon_weights_and_parity(offline_weights):
    state = offline_weights("panopticon_vitb14", "VIT_BASE14")
    bands = ["RED", "NIR_NARROW", "VV", "VH"]
    backbone = _build("torchgeo:panopticon_vitb14_vit_base14", bands=bands, img_size=56)
    ours = backbone.model.model.state_dict()
    assert all(torch.equal(ours[k], v) for k, v in state.items() if k not in (
        "mask_token", "pos_embed"))
    assert backbone.extras["chn_ids"] == [665.0, 865.0, -1.0, -2.0]
    assert backbone.out_channels == [768] * 12 and backbone.input_multiple == 14
    reference = torchgeo.models.panopticon_vitb14(
        weights=torchgeo.models.Panopticon_Weights.VIT_BASE14, img_size=56).eval()
    torch.testing.assert_close(backbone.model.model.pos_embed, reference.model.pos_embed)
    x = torch.randn(1, 4, 56, 56)
    ids = torch.tensor([[665.0, 865.0, -1.0, -2.0]])
    with torch.no_grad():
        out = backbone(x)
        expected = reference.model.forward_features({"imgs": x, "chn_ids": ids})
    assert len(out) == 12 and out[-1].shape == (1, 1 + 4 * 4, 768)
    torch.testing.assert_close(backbone.model.model.norm(out[-1]), expected, atol=1e-5,
                               rtol=0)
    with torch.no_grad():  # other multiples of 14: the position embedding is resampled
        assert backbone(torch.randn(1, 4, 28, 42))[-1].shape == (1, 1 + 2 * 3, 768)
    with pytest.raises(ValueError, match="multiples of 14"):
        backbone(torch.randn(1, 4, 28, 40))
    with pytest.raises(ConfigurationError, match="neither optical"):
        _build("torchgeo:panopticon_vitb14", bands=["RED", "DEM"])


def test_scalemae_large_weights_and_parity(offline_weights):
    state = offline_weights("scalemae_large_patch16", "FMOW_RGB")
    backbone = _build("torchgeo:scalemae_large_patch16_fmow_rgb", img_size=64,
                      model_kwargs={"res": 2.5})
    ours = backbone.model.state_dict()
    assert all(torch.equal(ours[k], v) for k, v in state.items() if k != "pos_embed")
    assert backbone.out_channels == [1024] * 24 and backbone.input_multiple == 16
    reference = torchgeo.models.scalemae_large_patch16(
        weights=torchgeo.models.ScaleMAELarge16_Weights.FMOW_RGB, img_size=64, res=2.5).eval()
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        out = backbone(x)
        expected = reference.forward_features(x)
        assert len(out) == 24 and out[-1].shape == (2, 1 + 4 * 4, 1024)
        torch.testing.assert_close(backbone.model.norm(out[-1]), expected, atol=1e-5, rtol=0)
        # other grids, square or not: the GSD embedding is computed for the input's grid,
        # as torchgeo's model built for that size computes it
        assert backbone(torch.randn(1, 3, 32, 48))[-1].shape == (1, 1 + 2 * 3, 1024)
        small = torchgeo.models.scalemae_large_patch16(img_size=32, res=2.5).eval()
        small.load_state_dict({k: v for k, v in reference.state_dict().items()
                               if k != "pos_embed"}, strict=False)
        x = x[..., :32, :32]
        torch.testing.assert_close(backbone.model.norm(backbone(x)[-1]),
                                   small.forward_features(x), atol=1e-5, rtol=0)
    with pytest.raises(ValueError, match="multiples of 16"):
        backbone(torch.randn(1, 3, 32, 40))


def test_croma_base_weights_modalities_and_parity(offline_weights):
    from geofm_torchgeo.wavelength_models import CROMA_OPTICAL

    state = offline_weights("croma_base", "CROMA_VIT")
    radar = ["VV", "VH"]
    x = torch.randn(1, 14, 32, 32)
    reference = torchgeo.models.croma_base(
        weights=torchgeo.models.CROMABase_Weights.CROMA_VIT, image_size=32).eval()
    with torch.no_grad():
        expected = reference(x_sar=x[:, 12:], x_optical=x[:, :12])
    for bands, key, depth in ((radar, "sar", 6), (list(CROMA_OPTICAL), "optical", 12),
                              ([*CROMA_OPTICAL, *radar], "joint", 6)):
        backbone = _build("torchgeo:croma_base_croma_vit", bands=bands, img_size=32)
        part = "s2_encoder" if key == "optical" else "s1_encoder"
        ours = getattr(backbone.model, part).state_dict()
        assert all(torch.equal(ours[k], v) for k, v in state[part].items())
        assert backbone.out_channels == [768] * depth and backbone.input_multiple == 8
        inputs = x[:, 12:] if key == "sar" else x[:, :12] if key == "optical" else x
        with torch.no_grad():
            out = backbone(inputs)
        assert len(out) == depth and out[-1].shape == (1, 4 * 4, 768)
        norm = (backbone.model.joint_encoder.norm_out if key == "joint" else
                getattr(backbone.model, part).transformer.norm_out)
        torch.testing.assert_close(norm(out[-1]), expected[f"{key}_encodings"], atol=1e-5,
                                   rtol=0)
    with pytest.raises(ValueError, match="takes 32 x 32 inputs"):
        backbone(torch.randn(1, 14, 40, 40))
    with pytest.raises(ConfigurationError, match="VV then VH"):
        _build("torchgeo:croma_base", bands=["VH", "VV"])
    with pytest.raises(ConfigurationError, match="12 Sentinel-2 L2A bands"):
        _build("torchgeo:croma_base", bands=["RED", "GREEN", "BLUE"])


def test_earthloc_trunk_weights_and_parity(offline_weights):
    state = offline_weights("earthloc", "SENTINEL2_RESNET50")
    backbone = _build("torchgeo:earthloc_sentinel2_resnet50")
    trunk = {f"backbone.{k}": v for k, v in backbone.model.backbone.state_dict().items()}
    assert trunk and all(torch.equal(v, state[k]) for k, v in trunk.items())
    assert backbone.out_channels == [64, 256, 512, 1024] and backbone.input_multiple == 16
    reference = torchgeo.models.earthloc(
        weights=torchgeo.models.get_model_weights("earthloc")["SENTINEL2_RESNET50"]).eval()
    x = torch.randn(1, 3, 64, 96)
    with torch.no_grad():
        out = backbone(x)
        expected = reference.backbone(x)  # the trunk EarthLoc's head reads
    assert [tuple(f.shape[-2:]) for f in out] == [(32, 48), (16, 24), (8, 12), (4, 6)]
    torch.testing.assert_close(out[-1], expected, atol=1e-6, rtol=0)
    # random initialisation downloads nothing (no ImageNet weights behind the user's back)
    assert _build("torchgeo:earthloc", weights=None, in_chans=5).out_channels[0] == 64


def test_pretrained_bands_follow_each_sensor_not_sentinel2_numbering(offline_weights):
    # torchgeo's meta names Landsat 5 TM bands B1..B7; B5 there is SWIR 1, not red edge 1
    offline_weights("resnet18", "LANDSAT_TM_TOA_MOCO")
    landsat = _build("torchgeo:resnet18_landsat_tm_toa_moco")
    assert landsat.pretrained_bands == ("BLUE", "GREEN", "RED", "NIR_NARROW", "SWIR_1",
                                        "THERMAL_INFRARED_1", "SWIR_2")
