"""smp decoders and encoders: geofm contracts, channel-list mapping, errors."""

from typing import ClassVar

import pytest
import torch
from geofm_smp_decoders.decoders import SmpDPT, SmpPAN, SmpUnet, SmpUnetPlusPlus, regular_pyramid

from geofm_core import ComponentArgumentError, UnknownComponentError, get_registry
from geofm_core.testing import BackboneContract, DecoderContract, TinyViT, train_step

#: Tiny widths so that 12 decoders x 2 backbones x 2 tasks stay cheap on a CPU.
TINY_DECODER_KWARGS: dict = {
    "unet": {"decoder_channels": [32, 16, 16, 8]},
    "unetplusplus": {"decoder_channels": [32, 16, 16, 8]},
    "fpn": {"pyramid_channels": 16, "segmentation_channels": 32},  # GroupNorm(32)
    "pspnet": {"out_channels": 16},
    "deeplabv3": {"out_channels": 16, "atrous_rates": [1, 2, 3]},
    "deeplabv3plus": {"out_channels": 16, "atrous_rates": [1, 2, 3]},
    "linknet": {"prefinal_channels": 8},
    "manet": {"decoder_channels": [32, 16, 16, 8], "pab_channels": 8, "reduction": 4},
    "pan": {"decoder_channels": 8},
    "upernet": {"decoder_channels": 16},
    "segformer": {"segmentation_channels": 16},
    # the contract feeds a 4-level pyramid at strides 4..32
    "dpt": {"encoder_output_strides": [4, 8, 16, 32], "intermediate_channels": [8, 16, 16, 16],
            "fusion_channels": 16},
}


class TestSmpDecoders(DecoderContract):
    source = "smp"
    kwargs: ClassVar[dict] = TINY_DECODER_KWARGS


class TestSmpEncoders(BackboneContract):
    source = "smp"
    in_chans = 4
    image_size = (32, 64)  # non-square, the smallest multiple of 32 that is
    default_kwargs: ClassVar[dict] = {"in_channels": 4}


def factory():
    return get_registry().build("model_factory", "geofm:encoder_decoder")


@pytest.mark.parametrize("name", sorted(TINY_DECODER_KWARGS))
def test_five_level_cnn_list_without_necks(name):
    """A 5-level list at strides 2..32 (what smp encoders give) works directly."""
    kwargs = dict(TINY_DECODER_KWARGS[name])
    if "decoder_channels" in kwargs and isinstance(kwargs["decoder_channels"], list):
        kwargs["decoder_channels"] = [32, 16, 16, 8, 8]
    if name == "dpt":
        kwargs.update(encoder_output_strides=[2, 4, 8, 16, 32],
                      intermediate_channels=[8, 8, 16, 16, 16])
    model = factory().build_model(
        "segmentation", "timm:test_resnet", f"smp:{name}", num_classes=2,
        backbone_kwargs={"in_chans": 3}, decoder_kwargs=kwargs,
    ).eval()
    with torch.no_grad():
        out = model(torch.randn(1, 3, 64, 96)).output
    assert out.shape == (1, 2, 64, 96)


def test_unet_output_is_at_twice_the_finest_level():
    dec = SmpUnet([8, 16, 24, 32], decoder_channels=[16, 16, 8, 8]).eval()
    feats = [torch.randn(1, c, 16 // 2**i, 24 // 2**i) for i, c in enumerate([8, 16, 24, 32])]
    assert dec(feats).shape == (1, 8, 32, 48)


def test_regular_pyramid_fixes_odd_grids_for_strict_decoders():
    # a 5 x 7 grid pooled twice gives 2 x 3 and 1 x 1: not exact 2x steps
    feats = [torch.randn(1, 8, 5, 7), torch.randn(1, 16, 2, 3), torch.randn(1, 24, 1, 1)]
    fixed = regular_pyramid(feats)
    assert [tuple(f.shape[-2:]) for f in fixed] == [(4, 4), (2, 2), (1, 1)]
    assert regular_pyramid(fixed)[0] is fixed[0]  # a regular pyramid is left alone
    dec = SmpUnetPlusPlus([8, 16, 24], decoder_channels=[16, 8, 8]).eval()
    with torch.no_grad():
        assert dec(feats).shape[1] == 8


def test_dpt_on_vit_features_at_the_patch_stride():
    """DPT's native use: ViT layers reshaped to maps, all at stride 16."""
    model = factory().build_model(
        "segmentation", TinyViT(in_chans=6, embed_dim=32, depth=4), "smp:dpt", num_classes=3,
        necks=[{"name": "geofm:reshape_tokens_to_image"}],
        decoder_kwargs={"intermediate_channels": [8, 16, 16, 16], "fusion_channels": 16},
    )
    train_step(model, "segmentation", torch.randn(2, 6, 64, 96), 3)


def test_dpt_odd_grid():
    dec = SmpDPT([16] * 4, intermediate_channels=[8, 8, 8, 8], fusion_channels=8).eval()
    with torch.no_grad():  # a 5 x 7 patch grid: the stride-32 level is 3 x 4
        assert dec([torch.randn(1, 16, 5, 7) for _ in range(4)]).shape[1] == 8


def test_pan_on_a_small_last_level():
    dec = SmpPAN([8, 16, 24, 32], decoder_channels=8).eval()
    feats = [torch.randn(1, c, 16 // 2**i, 16 // 2**i) for i, c in enumerate([8, 16, 24, 32])]
    with torch.no_grad():
        assert dec(feats).shape == (1, 8, 16, 16)


def test_unknown_decoder_kwarg_names_decoder_and_close_match():
    with pytest.raises(ComponentArgumentError) as err:
        factory().build_model("segmentation", "timm:test_resnet", "smp:unet", num_classes=2,
                              decoder_kwargs={"decoder_channel": [8, 8, 8, 8, 8]})
    msg = str(err.value)
    assert "decoder 'smp:unet'" in msg and "'decoder_channel'" in msg
    assert "Did you mean 'decoder_channels'" in msg


def test_too_few_levels_names_both_components():
    with pytest.raises(ComponentArgumentError) as err:
        factory().build_model(
            "segmentation", "timm:test_resnet", "smp:fpn", num_classes=2,
            necks=[{"name": "geofm:select_indices", "indices": [3, 4]}],
        )
    msg = str(err.value)
    assert "decoder 'smp:fpn'" in msg and "neck 'geofm:select_indices'" in msg
    assert "at least 4" in msg


def test_wrong_decoder_channels_length_is_clear():
    with pytest.raises(ComponentArgumentError, match="one width per input level"):
        SmpUnet([8, 16, 24, 32], decoder_channels=[16, 8])


def test_listed_encoder_with_six_bands_in_a_classifier():
    model = factory().build_model("classification", "smp:resnet18", num_classes=4,
                                  backbone_kwargs={"in_channels": 6})
    assert model.backbone.out_channels == [64, 64, 128, 256, 512]
    train_step(model, "classification", torch.randn(2, 6, 64, 64), 4)


def test_unlisted_encoders_resolve_on_use():
    """Any smp encoder (here smp's timm-universal wrapper of a tiny timm net) resolves."""
    backbone = get_registry().build("backbone", "smp:tu-test_resnet", in_channels=5)
    out = backbone(torch.randn(1, 5, 64, 64))
    assert [o.shape[1] for o in out] == backbone.out_channels
    assert "smp:tu-test_resnet" not in [s.qualified_name for s in get_registry().list("backbone")]


def test_mit_encoder_drops_its_empty_stride_two_level():
    backbone = get_registry().build("backbone", "smp:mit_b0", in_channels=4)
    assert backbone.out_channels == [32, 64, 160, 256]


def test_unknown_encoder_suggests_close_names():
    with pytest.raises(UnknownComponentError, match="smp:resnet18"):
        get_registry().get("backbone", "smp:resnet19")


def test_unet_without_last_upsampling_keeps_the_finest_resolution() -> None:
    import torch
    from geofm_smp_decoders.decoders import SmpUnet

    features = [torch.zeros(1, c, 32 // 2**i, 32 // 2**i) for i, c in enumerate((4, 8, 16))]
    assert SmpUnet([4, 8, 16], [16, 8, 4])(features).shape[-1] == 64
    assert SmpUnet([4, 8, 16], [16, 8, 4], upsample_last=False)(features).shape[-1] == 32
