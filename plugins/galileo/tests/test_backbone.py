"""The geofm backbone: bands by name, masks, months, feature maps and their pooling."""

from __future__ import annotations

import warnings

import pytest
import torch
from geofm_galileo import configs
from geofm_galileo.backbone import PartialGroupWarning, months_from_doy
from geofm_galileo.constants import VARIANTS
from geofm_galileo.encoder import GalileoEncoder

from geofm_core.errors import ConfigurationError

SMALL = {"embedding_size": 32, "depth": 3, "num_heads": 4, "patch_size": 4}
S2 = ["B2", "B3", "B4", "B5", "B6", "B7", "B8", "B8A", "B11", "B12"]

# Parameter counts of the official encoders: the reference Encoder of nasaharvest/galileo's
# single_file_galileo.py, built on the meta device from config/models/{nano,tiny,base}.json
# (model.encoder), counting all of parameters() (the frozen position and month tables too).
PUBLISHED_PARAMETERS = {"galileo_nano": 1_037_856, "galileo_tiny": 5_705_520,
                        "galileo_base": 86_523_072}


@pytest.mark.parametrize("name", sorted(VARIANTS))
def test_parameter_counts_are_the_published_ones(name):
    spec = VARIANTS[name]
    with torch.device("meta"):
        encoder = GalileoEncoder(spec.embedding_size, spec.depth, spec.num_heads,
                                 spec.mlp_ratio, spec.max_sequence_length, spec.max_patch_size)
    assert sum(p.numel() for p in encoder.parameters()) == PUBLISHED_PARAMETERS[name]
    assert spec.parameters == PUBLISHED_PARAMETERS[name]


def test_bands_map_to_galileo_channels_by_name_and_absent_groups_are_masked():
    backbone = configs.galileo_nano(bands=["VH", "RED", "NIR_NARROW", "B3", "B2", "VV"],
                                    **SMALL)
    x = torch.randn(1, 6, 2, 8, 8)
    s_t_x, sp_x, _, _, s_t_m, sp_m, t_m, st_m, months = backbone.inputs(x)
    # Galileo's space-time order: VV, VH, B2, B3, B4, ..., B8A at 9
    for source, channel in ((0, 1), (1, 4), (2, 9), (3, 3), (4, 2), (5, 0)):
        assert torch.equal(s_t_x[..., channel], x[:, source].permute(0, 2, 3, 1))
    assert s_t_x[..., [5, 6, 7, 8, 10, 11, 12]].abs().sum() == 0
    present = s_t_m[0, 0, 0, 0].tolist()  # S1, RGB, red edge, NIR 10 m, NIR 20 m, SWIR, NDVI
    assert present == [0, 0, 1, 1, 0, 1, 1]
    assert sp_m.min() == 1 and t_m.min() == 1 and st_m.min() == 1 and sp_x.abs().sum() == 0
    assert months.tolist() == [[6, 6]]  # July (0-based 6), Galileo's fine-tuning default


def test_an_unknown_band_names_itself_and_the_supported_bands():
    with pytest.raises(ConfigurationError) as info:
        configs.galileo_nano(bands=["B1", "B2", "B3", "B4"], **SMALL)
    message = str(info.value)
    assert "'B1' (COASTAL_AEROSOL) has no Galileo channel" in message
    assert "B8A (NIR_NARROW)" in message and "VV" in message and "drop_unknown_bands" in message
    backbone = configs.galileo_nano(bands=["B1", "B2", "B3", "B4"], drop_unknown_bands=True,
                                    **SMALL)
    assert backbone(torch.randn(1, 4, 8, 8))[0].shape == (1, 32, 2, 2)


def test_bad_band_lists_are_refused():
    with pytest.raises(ConfigurationError, match="both Galileo's B8A"):
        configs.galileo_nano(bands=["B8A", "NIR_NARROW"], **SMALL)
    with pytest.raises(ConfigurationError, match="none of the bands"):
        configs.galileo_nano(bands=["DEM"], **SMALL)
    backbone = configs.galileo_nano(bands=["B2", "B3", "B4"], **SMALL)
    with pytest.raises(ConfigurationError, match=r"expected an image \(B, 3"):
        backbone(torch.randn(1, 4, 8, 8))


def test_a_partly_present_group_warns_and_is_filled_with_zeros():
    with pytest.warns(PartialGroupWarning, match="S1 lacks VH.*S2_RGB lacks B2"):
        backbone = configs.galileo_nano(bands=["VV", "B3", "B4"], **SMALL)
    s_t_x, *_ = backbone.inputs(torch.ones(1, 3, 8, 8))
    assert s_t_x[..., 1].abs().sum() == 0 and s_t_x[..., 2].abs().sum() == 0
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        configs.galileo_nano(bands=S2, **SMALL)


def test_dem_feeds_the_srtm_group_and_location_the_location_group():
    backbone = configs.galileo_nano(bands=["B2", "B3", "B4", "DEM", "SLOPE"], **SMALL)
    x = torch.randn(2, 5, 3, 8, 8)
    location = torch.tensor([[0.0, 0.0], [90.0, 45.0]])
    _, sp_x, _, st_x, _, sp_m, _, st_m, _ = backbone.inputs(x, location_coords=location)
    assert torch.equal(sp_x[..., 0], x[:, 3, 0]) and torch.equal(sp_x[..., 1], x[:, 4, 0])
    assert sp_m[0, 0, 0].tolist() == [0, 1, 1]
    assert st_m[0].tolist() == [1, 0, 1, 1]
    assert torch.allclose(st_x[0, 1:4], torch.tensor([1.0, 0.0, 0.0]))
    assert torch.allclose(st_x[1, 1:4], torch.tensor([0.0, 0.0, 1.0]), atol=1e-6)


def test_months_come_from_the_option_the_batch_or_temporal_coords():
    backbone = configs.galileo_nano(bands=S2, months=[1, 6, 12], **SMALL)
    x = torch.randn(2, 10, 3, 8, 8)
    assert backbone.inputs(x)[-1].tolist() == [[0, 5, 11]] * 2
    coords = torch.tensor([[[2023.0, 1.0], [2023.0, 59.0], [2023.0, 60.0]],
                           [[2024.0, 60.0], [2024.0, 61.0], [2024.0, 366.0]]])
    assert backbone.inputs(x, temporal_coords=coords)[-1].tolist() == [[0, 1, 2], [1, 2, 11]]
    assert backbone.inputs(x, months=torch.tensor([3, 3, 4]))[-1].tolist() == [[2, 2, 3]] * 2
    with pytest.raises(ConfigurationError, match="calendar months 1-12"):
        configs.galileo_nano(bands=S2, months=0, **SMALL)
    with pytest.raises(ConfigurationError, match="3 months but the input has 2"):
        backbone(torch.randn(1, 10, 2, 8, 8))
    assert months_from_doy(torch.tensor([[[2023.0, 365.0]]])).tolist() == [[11]]


def test_months_change_the_features():
    backbone = configs.galileo_nano(bands=S2, **SMALL).eval()
    x = torch.randn(1, 10, 2, 8, 8)
    with torch.no_grad():
        january = backbone(x, months=torch.tensor([1, 1]))[-1]
        july = backbone(x)[-1]
    assert (january - july).abs().max() > 1e-4


def test_feature_maps_average_the_present_space_time_tokens_per_patch():
    backbone = configs.galileo_nano(bands=["VV", "VH", "B2", "B3", "B4"], out_indices=[0, -1],
                                    final_norm=True, **SMALL).eval()
    x = torch.randn(2, 5, 3, 12, 8)
    with torch.no_grad():
        maps = backbone(x)
        out, levels = backbone.encode(x)
    assert backbone.out_channels == [32, 32] and [tuple(m.shape) for m in maps] == [
        (2, 32, 3, 2)] * 2
    # S1 and S2_RGB are the present groups (0 and 1): mean over time steps and groups
    expected = out.space_time[:, :, :, :, :2].mean(dim=(3, 4)).permute(0, 3, 1, 2)
    assert torch.allclose(maps[1], expected, atol=1e-6)
    assert torch.allclose(maps[0], backbone.pool(levels[0]))
    assert backbone.pooled(x).shape == (2, 32)


def test_pooling_all_includes_the_space_and_static_tokens():
    kwargs = {**SMALL, "bands": ["B2", "B3", "B4", "DEM", "SLOPE"], "out_indices": [-1]}
    only = configs.galileo_nano(**kwargs).eval()
    every = configs.galileo_nano(pooling="all", **kwargs).eval()
    every.load_state_dict(only.state_dict())
    x = torch.randn(1, 5, 8, 8)
    with torch.no_grad():
        out, _ = only.encode(x)
        a, b = only(x)[0], every(x)[0]
    expected = (out.space_time[:, :, :, 0, 1] + out.space[:, :, :, 0]) / 2
    assert torch.allclose(b, expected.permute(0, 3, 1, 2), atol=1e-6)
    assert (a - b).abs().max() > 1e-4


def test_out_indices_are_checked():
    with pytest.raises(ConfigurationError, match="out_indices entry 3 is not a block"):
        configs.galileo_nano(out_indices=[3], **SMALL)
    assert configs.galileo_nano(**SMALL).out_indices == [0, 1, 2]


def test_a_different_patch_size_resizes_the_kernels_instead_of_refusing():
    backbone = configs.galileo_nano(bands=S2, **{**SMALL, "patch_size": 2})
    assert backbone.input_multiple == 2
    assert backbone(torch.randn(1, 10, 8, 8))[0].shape == (1, 32, 4, 4)
