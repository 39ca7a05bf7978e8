"""upernet:upernet passes the decoder contract, matches MMSeg's layout and fails clearly."""

from typing import ClassVar

import pytest
import torch
from geofm_upernet.upernet import UperNetDecoder

from geofm_core import ComponentArgumentError, get_registry
from geofm_core.testing import DecoderContract, TinyViT, train_step


class TestUperNetContract(DecoderContract):
    source = "upernet"
    kwargs: ClassVar[dict] = {"upernet": {"channels": 16}}


def test_layout_follows_mmseg():
    dec = UperNetDecoder([8, 16, 24, 32], channels=16)
    assert len(dec.psp_modules) == 4
    assert [b[0].output_size for b in dec.psp_modules] == [1, 2, 3, 6]
    # PPM bottleneck sees the last level plus one branch per pool scale
    assert dec.bottleneck[0].in_channels == 32 + 4 * 16
    assert [c[0].in_channels for c in dec.lateral_convs] == [8, 16, 24]
    assert len(dec.fpn_convs) == 3
    assert dec.fpn_bottleneck[0].in_channels == 4 * 16
    assert dec.fpn_bottleneck[0].kernel_size == (3, 3)


def test_output_at_finest_level_non_square():
    dec = UperNetDecoder([8, 16, 24, 32], channels=16, pool_scales=(1, 2)).eval()
    feats = [torch.randn(1, c, 16 // 2**i, 24 // 2**i) for i, c in enumerate([8, 16, 24, 32])]
    assert dec(feats).shape == (1, 16, 16, 24)


def test_three_levels_rejected_by_the_factory_naming_both():
    factory = get_registry().build("model_factory", "geofm:encoder_decoder")
    with pytest.raises(ComponentArgumentError) as err:
        factory.build_model(
            "segmentation", "timm:resnet18", "upernet:upernet", num_classes=2,
            necks=[{"name": "geofm:select_indices", "indices": [1, 2, 3]}],
        )
    msg = str(err.value)
    assert "neck 'geofm:select_indices' outputs 3 levels" in msg
    assert "decoder 'upernet:upernet' needs 4" in msg


def test_direct_construction_with_three_levels_is_a_clear_error():
    with pytest.raises(ComponentArgumentError, match="exactly 4"):
        UperNetDecoder([8, 16, 24])


def test_trains_on_resnet18_levels_directly():
    """A CNN with 4 levels (timm out_indices) needs no neck."""
    factory = get_registry().build("model_factory", "geofm:encoder_decoder")
    model = factory.build_model(
        "segmentation", "timm:resnet18", "upernet:upernet", num_classes=3,
        backbone_kwargs={"in_chans": 6, "out_indices": [1, 2, 3, 4]},
        decoder_kwargs={"channels": 32},
    )
    assert model.backbone.out_channels == [64, 128, 256, 512]
    train_step(model, "segmentation", torch.randn(2, 6, 64, 64), 3)


def test_vit_with_necks_on_a_224_by_448_input():
    factory = get_registry().build("model_factory", "geofm:encoder_decoder")
    model = factory.build_model(
        "regression", TinyViT(in_chans=6, embed_dim=32, depth=4), "upernet:upernet",
        necks=[{"name": "geofm:reshape_tokens_to_image"},
               {"name": "geofm:learned_interpolate_to_pyramidal"}],
        decoder_kwargs={"channels": 16},
    ).eval()
    with torch.no_grad():
        assert model(torch.randn(1, 6, 224, 448)).output.shape == (1, 224, 448)


def test_training_on_one_image_is_a_clear_error():
    import pytest
    import torch

    from geofm_core import ComponentArgumentError, get_registry

    decoder = get_registry().build("decoder", "upernet:upernet", in_channels=[8, 8, 8, 8],
                                   channels=8)
    features = [torch.randn(1, 8, s, s) for s in (16, 8, 4, 2)]
    with pytest.raises(ComponentArgumentError, match="batch of one image"):
        decoder.train()(features)
    assert decoder.eval()(features).shape == (1, 8, 16, 16)  # inference is fine
