"""geofm:encoder_decoder: the four tasks, aux heads, padding, freezing, and its errors."""

from typing import Any

import pytest
import torch
from torch import nn

from geofm_core import (
    ComponentArgumentError,
    ConfigurationError,
    Model,
    ModelOutput,
    UnknownComponentError,
    get_registry,
)
from geofm_core.models.pixelwise import PixelWiseModel, pad_to_multiple
from geofm_core.models.scalar import ScalarOutputModel
from geofm_core.testing import TinyViT, train_step

VIT_NECKS = [
    {"name": "geofm:reshape_tokens_to_image"},
    {"name": "geofm:learned_interpolate_to_pyramidal"},
]


@pytest.fixture(scope="module")
def factory():
    return get_registry().build("model_factory", "geofm:encoder_decoder")


def tiny_cnn(factory, task="segmentation", **kwargs):
    args: dict[str, Any] = {
        "backbone": "timm:test_resnet", "backbone_kwargs": {"in_chans": 6},
        "decoder": "geofm:fcn", "decoder_kwargs": {"channels": 8},
        "num_classes": None if task == "regression" else 3,
    }
    args.update(kwargs)
    return factory.build_model(task, **args)


# -- the tasks ------------------------------------------------------------------------


def test_segmentation_on_resnet18_with_six_bands(factory):
    model = factory.build_model(
        "segmentation", "timm:resnet18", "geofm:fcn", num_classes=4,
        backbone_kwargs={"in_chans": 6}, decoder_kwargs={"channels": 16},
    )
    assert isinstance(model, PixelWiseModel) and isinstance(model, Model)
    train_step(model, "segmentation", torch.randn(2, 6, 64, 64), 4)


def test_regression_output_has_no_channel_dim(factory):
    # sigmoid rather than relu: a relu head can start dead, with no gradient at all
    model = tiny_cnn(factory, "regression", head_kwargs={"final_act": "sigmoid"})
    out = model(torch.randn(2, 6, 64, 96))
    assert isinstance(out, ModelOutput) and out.output.shape == (2, 64, 96)
    assert ((out.output >= 0) & (out.output <= 1)).all()
    train_step(model, "regression", torch.randn(2, 6, 64, 64), 1)


@pytest.mark.parametrize("task", ["classification", "multilabel"])
def test_classification_on_timm_resnet18(factory, task):
    model = factory.build_model(task, "timm:resnet18", num_classes=5,
                                backbone_kwargs={"in_chans": 6},
                                head_kwargs={"dim_list": [16], "dropout": 0.1})
    assert isinstance(model, ScalarOutputModel)
    assert model.decoder.out_channels == 512  # geofm:identity on the last level
    train_step(model, task, torch.randn(2, 6, 64, 64), 5)


def test_classification_of_vit_tokens_with_cls_pooling(factory):
    model = factory.build_model("classification", TinyViT(in_chans=6), num_classes=3,
                                pooling="cls")
    assert model(torch.randn(2, 6, 64, 96)).output.shape == (2, 3)


def test_multi_label_alias(factory):
    model = factory.build_model("multi-label", "timm:test_resnet", num_classes=2,
                                backbone_kwargs={"in_chans": 6})
    assert model.task == "multilabel"


# -- aux heads, sizes, padding ------------------------------------------------------


def test_aux_decoders_return_named_outputs(factory):
    model = tiny_cnn(factory, aux_decoders=[
        {"name": "aux_fcn", "decoder": "geofm:fcn", "decoder_kwargs": {"channels": 4}},
        {"name": "aux_mlp", "decoder": "geofm:mlp", "decoder_kwargs": {"channels": 4},
         "head_kwargs": {"dropout": 0.1}},
    ])
    out = model(torch.randn(2, 6, 64, 96))
    assert set(out.auxiliary_heads) == {"aux_fcn", "aux_mlp"}
    assert all(v.shape == (2, 3, 64, 96) for v in out.auxiliary_heads.values())
    loss = out.output.mean() + sum(v.mean() for v in out.auxiliary_heads.values())
    loss.backward()
    assert model.aux_heads["aux_mlp"].decoder.mlp[0].weight.grad is not None


def test_aux_decoders_on_a_classifier(factory):
    model = factory.build_model(
        "classification", "timm:test_resnet", num_classes=3, backbone_kwargs={"in_chans": 6},
        aux_decoders=[{"name": "aux", "decoder": "geofm:mlp",
                       "decoder_kwargs": {"channels": 8}}],
    )
    assert model(torch.randn(2, 6, 64, 64)).auxiliary_heads["aux"].shape == (2, 3)


@pytest.mark.parametrize("size", [(64, 96), (96, 64), (70, 90), (33, 127)])
def test_any_size_is_padded_and_cropped_back(factory, size):
    model = tiny_cnn(factory).eval()
    with torch.no_grad():
        assert model(torch.randn(1, 6, *size)).output.shape == (1, 3, *size)


def test_vit_with_necks_on_non_multiple_non_square_input(factory):
    model = factory.build_model(
        "segmentation", TinyViT(in_chans=6, depth=4), "geofm:fcn", num_classes=2,
        necks=VIT_NECKS, decoder_kwargs={"channels": 8},
    ).eval()
    assert model.input_multiple == 16
    with torch.no_grad():
        assert model(torch.randn(1, 6, 50, 90)).output.shape == (1, 2, 50, 90)


def test_input_multiple_override_and_no_rescale(factory):
    model = tiny_cnn(factory, input_multiple=64, rescale=False).eval()
    assert model.input_multiple == 64
    with torch.no_grad():
        out = model(torch.randn(1, 6, 64, 96)).output
    # padded to 64 x 128; fcn decodes the stride-32 level and nothing rescales it
    assert out.shape == (1, 3, 2, 4)


def test_pad_to_multiple_handles_time_series():
    x = torch.randn(1, 2, 3, 30, 17)
    padded = pad_to_multiple(x, 16)
    assert padded.shape == (1, 2, 3, 32, 32)
    assert torch.equal(padded[..., :30, :17], x) and padded[..., 30:, :].abs().sum() == 0


class FramesBackbone(nn.Module):
    """(B, C, T, H, W) in, one map out; records the metadata it was given."""

    def __init__(self, bands: int = 2, frames: int = 3) -> None:
        super().__init__()
        self.conv = nn.Conv2d(bands * frames, 8, 4, stride=4)
        self.out_channels = [8]
        self.input_multiple = 4
        self.seen: dict[str, Any] = {}

    def forward(self, x, **metadata):
        self.seen = metadata
        return [self.conv(x.flatten(1, 2))]


def test_time_series_input_and_metadata_reach_the_backbone(factory):
    backbone = FramesBackbone()
    model = factory.build_model("regression", backbone, "geofm:identity")
    coords = torch.zeros(2, 3, 2)
    out = model(torch.randn(2, 2, 3, 30, 18), temporal_coords=coords, location_coords=None)
    assert out.output.shape == (2, 30, 18)
    assert set(backbone.seen) == {"temporal_coords"}  # None values are not passed


class TokensWithPrep(nn.Module):
    """A token backbone that knows how to make its features image-shaped."""

    def __init__(self) -> None:
        super().__init__()
        self.vit = TinyViT(in_chans=3, embed_dim=16, depth=1)
        self.out_channels = [16]
        self.input_multiple = 16

    def forward(self, x, **metadata):
        self.size = x.shape[-2:]
        return self.vit(x)

    def prepare_features_for_image_model(self, features):
        h, w = self.size[0] // 16, self.size[1] // 16
        return [f[:, 1:].transpose(1, 2).reshape(len(f), -1, h, w) for f in features]


def test_backbone_prepare_features_for_image_model_is_applied(factory):
    model = factory.build_model("segmentation", TokensWithPrep(), "geofm:fcn", num_classes=2,
                                decoder_kwargs={"channels": 8})
    assert model(torch.randn(1, 3, 32, 48)).output.shape == (1, 2, 32, 48)


def test_prepare_features_callable_argument():
    vit = TinyViT(in_chans=3, embed_dim=16, depth=1)

    def prep(features):
        return [f[:, 1:].transpose(1, 2).reshape(len(f), 16, 2, 3) for f in features]

    decoder = get_registry().build("decoder", "geofm:identity", in_channels=[16])
    head = get_registry().build("head", "geofm:segmentation", in_channels=16, num_classes=2)
    model = PixelWiseModel("segmentation", vit, decoder, head,
                           prepare_features_for_image_model=prep)
    assert model(torch.randn(1, 3, 32, 48)).output.shape == (1, 2, 32, 48)


# -- freezing ---------------------------------------------------------------------------


def test_frozen_encoder_gets_no_gradient(factory):
    model = tiny_cnn(factory)
    model.freeze_encoder()
    before = [p.clone() for p in model.backbone.parameters()]
    train_step(model, "segmentation", torch.randn(2, 6, 64, 64), 3)
    assert all(p.grad is None for p in model.backbone.parameters())
    assert all(torch.equal(a, b) for a, b in zip(before, model.backbone.parameters(),
                                                  strict=True))
    assert any(p.grad is not None for p in model.decoder.parameters())


def test_frozen_decoder_keeps_head_trainable(factory):
    model = tiny_cnn(factory, necks=[{"name": "geofm:add_bottleneck_layer"}])
    model.freeze_decoder()
    assert not any(p.requires_grad for p in model.decoder.parameters())
    assert not any(p.requires_grad for p in model.necks.parameters())
    assert all(p.requires_grad for p in model.head.parameters())


# -- errors -----------------------------------------------------------------------------


def test_unknown_decoder_kwarg_names_component_kwarg_and_close_match(factory):
    with pytest.raises(ComponentArgumentError) as err:
        tiny_cnn(factory, decoder_kwargs={"chanels": 8})
    msg = str(err.value)
    assert "decoder 'geofm:fcn'" in msg and "'chanels'" in msg and "'channels'" in msg


@pytest.mark.parametrize(("field", "value", "component", "close"), [
    ("backbone_kwargs", {"in_chan": 6}, "backbone 'timm:test_resnet'", "in_chans"),
    ("head_kwargs", {"dropuot": 0.1}, "head 'geofm:segmentation'", "dropout"),
    ("necks", [{"name": "geofm:select_indices", "indice": [1]}],
     "neck 'geofm:select_indices'", "indices"),
    ("aux_decoders", [{"name": "a", "decoder": "geofm:fcn",
                       "decoder_kwargs": {"num_conv": 1}}], "geofm:fcn", "num_convs"),
])
def test_unknown_kwargs_of_every_component(factory, field, value, component, close):
    with pytest.raises(ComponentArgumentError) as err:
        tiny_cnn(factory, **{field: value})
    assert component in str(err.value) and f"'{close}'" in str(err.value)


def test_in_channels_is_set_by_the_factory(factory):
    with pytest.raises(ComponentArgumentError, match="do not pass 'in_channels'"):
        tiny_cnn(factory, decoder_kwargs={"in_channels": [8]})


def test_mismatched_levels_name_both_components(factory):
    with pytest.raises(ComponentArgumentError) as err:
        tiny_cnn(factory, necks=[
            {"name": "geofm:select_indices", "indices": [1, 2, 3]},
            {"name": "geofm:learned_interpolate_to_pyramidal"},
        ])
    assert ("neck 'geofm:select_indices' outputs 3 levels but neck "
            "'geofm:learned_interpolate_to_pyramidal' needs 4") in str(err.value)


def test_component_rejecting_its_input_names_the_one_before(factory):
    with pytest.raises(ComponentArgumentError) as err:
        tiny_cnn(factory, decoder="geofm:identity", decoder_kwargs={"out_index": 7})
    msg = str(err.value)
    assert "decoder 'geofm:identity'" in msg and "backbone 'timm:test_resnet'" in msg


@pytest.mark.parametrize(("kwargs", "needle"), [
    ({"task": "segmentaton"}, "did you mean 'segmentation'"),
    ({"num_classes": None}, "needs num_classes"),
    ({"num_classes": 0}, "num_classes"),
    ({"task": "regression", "num_classes": 3}, "regression predicts one value"),
    ({"decoder": None}, "needs a decoder"),
    ({"necks": [{"indices": [1]}]}, "necks.0.name"),
    ({"aux_decoders": [{"name": "a", "decoder": "geofm:fcn", "kwargs": {}}]},
     "aux_decoders.0.kwargs"),
    ({"aux_decoders": [{"name": "a", "decoder": "geofm:fcn"},
                       {"name": "a", "decoder": "geofm:mlp"}]}, "must be unique"),
    ({"pooling": "mean"}, "pooling"),
    ({"necks": "geofm:select_indices"}, "necks"),
])
def test_invalid_arguments_are_configuration_errors(factory, kwargs, needle):
    args = {"task": "segmentation", "backbone": "timm:test_resnet", "decoder": "geofm:fcn",
            "num_classes": 3}
    args.update(kwargs)
    task = args.pop("task")
    with pytest.raises(ConfigurationError, match=needle):
        factory.build_model(task, **args)


def test_unknown_component_name(factory):
    with pytest.raises(UnknownComponentError, match="geofm:fcn"):
        tiny_cnn(factory, decoder="geofm:fnc")


def test_backbone_without_out_channels_is_a_clear_error(factory):
    with pytest.raises(ComponentArgumentError, match="out_channels"):
        factory.build_model("segmentation", nn.Conv2d(3, 4, 1), "geofm:fcn", num_classes=2)


def test_centred_reflect_padding_is_cropped_back_from_both_sides() -> None:
    import torch

    from geofm_core.models.pixelwise import pad_to_multiple, padding_of

    x = torch.arange(2 * 3 * 2 * 5 * 6, dtype=torch.float32).reshape(2, 3, 2, 5, 6)
    padded = pad_to_multiple(x, 8, mode="reflect", centred=True)
    assert padded.shape == (2, 3, 2, 8, 8)
    top, bottom, left, right = padding_of((5, 6), 8, centred=True)
    assert (top, bottom, left, right) == (1, 2, 1, 1)
    assert torch.equal(padded[..., top:top + 5, left:left + 6], x)
    assert torch.equal(padded[..., 0, left:left + 6], x[..., 1, :])  # reflected, not zeros
    assert torch.equal(pad_to_multiple(x, 8)[..., :5, :6], x)  # default: zeros, bottom/right


def test_the_head_conv_block_layouts_and_a_bad_pad_mode() -> None:
    import pytest
    import torch

    from geofm_core.errors import ComponentArgumentError, ConfigurationError
    from geofm_core.models.heads import SegmentationHead
    from geofm_core.models.pixelwise import check_pad_mode

    bias = SegmentationHead(8, 3, channel_list=[4], conv_block="conv_bias_relu")
    assert sorted(bias.state_dict()) == ["blocks.0.0.bias", "blocks.0.0.weight",
                                         "classifier.bias", "classifier.weight"]
    assert bias(torch.zeros(1, 8, 4, 4)).shape == (1, 3, 4, 4)
    assert SegmentationHead(8, 3, kernel_size=3).classifier.kernel_size == (3, 3)
    with pytest.raises(ComponentArgumentError, match="conv_block"):
        SegmentationHead(8, 3, channel_list=[4], conv_block="conv_gn")
    with pytest.raises(ConfigurationError, match="pad_mode"):
        check_pad_mode("circular")


def test_head_then_avg_runs_the_head_at_every_position() -> None:
    import torch
    from torch import nn

    from geofm_core.models.scalar import head_then_avg

    head = nn.Sequential(nn.Linear(3, 4), nn.ReLU(), nn.Linear(4, 2))
    x = torch.randn(2, 3, 5, 6)
    expected = head(x.flatten(2).transpose(1, 2)).mean(1)
    assert torch.allclose(head_then_avg(head, x), expected)
    assert not torch.allclose(head(x.mean((2, 3))), expected)
