"""The core necks: shapes, channel rules (TerraTorch's definitions) and errors."""

import pytest
import torch

from geofm_core import ComponentArgumentError, get_registry
from geofm_core.models.necks import (
    AddBottleneckLayer,
    AggregateTokens,
    InterpolateToPyramidal,
    LearnedInterpolateToPyramidal,
    MaxpoolToPyramidal,
    PermuteDims,
    ReshapeTokensToImage,
    SelectIndices,
    token_grid,
)


def tokens(batch, h, w, dim, frames=1, cls=True):
    return torch.randn(batch, int(cls) + frames * h * w, dim)


def test_reshape_tokens_non_square_grid():
    neck = ReshapeTokensToImage([32])
    out = neck([tokens(2, 4, 6, 32)], image_size=(64, 96))
    assert out[0].shape == (2, 32, 4, 6)
    out = neck([tokens(2, 6, 4, 32)], image_size=(96, 64))
    assert out[0].shape == (2, 32, 6, 4)


def test_reshape_tokens_keeps_positions_and_drops_cls():
    x = tokens(1, 2, 3, 4)
    out = ReshapeTokensToImage([4])([x], image_size=(32, 48))[0]
    # token k (after the CLS) is grid position (k // 3, k % 3)
    for k in range(6):
        assert torch.equal(out[0, :, k // 3, k % 3], x[0, 1 + k])


def test_reshape_tokens_multi_temporal_stacks_time_in_channels():
    h, w, dim, frames = 2, 3, 4, 3
    x = tokens(1, h, w, dim, frames=frames)
    out = ReshapeTokensToImage([dim * frames], effective_time_dim=frames)(
        [x], image_size=(32, 48))[0]
    assert out.shape == (1, dim * frames, h, w)
    # time step t, grid position (i, j) is token 1 + t*h*w + i*w + j, in channels t*dim..
    t, i, j = 2, 1, 2
    assert torch.equal(out[0, t * dim:(t + 1) * dim, i, j], x[0, 1 + t * h * w + i * w + j])


def test_reshape_tokens_without_cls():
    out = ReshapeTokensToImage([8], remove_cls_token=False)(
        [tokens(1, 3, 3, 8, cls=False)], image_size=None)
    assert out[0].shape == (1, 8, 3, 3)


def test_reshape_tokens_left_cls_is_a_clear_error():
    neck = ReshapeTokensToImage([8], remove_cls_token=False)
    with pytest.raises(ComponentArgumentError, match="CLS"):
        neck([tokens(1, 4, 6, 8)], image_size=(64, 96))


def test_token_grid_handles_floor_of_unpadded_patch_embedding():
    assert token_grid(4 * 6, (70, 100)) == (4, 6)
    assert token_grid(9, None) == (3, 3)
    with pytest.raises(ComponentArgumentError):
        token_grid(10, None)


def test_learned_interpolate_scales_and_channels():
    neck = LearnedInterpolateToPyramidal([32, 32, 32, 32])
    assert neck.out_channels == [8, 16, 32, 32]
    out = neck([torch.randn(2, 32, 4, 6) for _ in range(4)], image_size=(64, 96))
    assert [tuple(o.shape[1:]) for o in out] == [(8, 16, 24), (16, 8, 12), (32, 4, 6),
                                                  (32, 2, 3)]


def test_learned_interpolate_needs_four():
    with pytest.raises(ComponentArgumentError, match="exactly 4"):
        LearnedInterpolateToPyramidal([32, 32, 32])


def test_interpolate_and_maxpool_to_pyramidal():
    feats = [torch.randn(1, 8, 4, 6) for _ in range(3)]
    up = InterpolateToPyramidal([8, 8, 8])(feats, image_size=(64, 96))
    assert [tuple(o.shape[-2:]) for o in up] == [(32, 48), (16, 24), (8, 12)]
    down = MaxpoolToPyramidal([8, 8, 8])(feats, image_size=(64, 96))
    assert [tuple(o.shape[-2:]) for o in down] == [(4, 6), (2, 3), (1, 1)]
    assert down[0] is feats[0]


def test_select_indices():
    neck = SelectIndices([1, 2, 3, 4], indices=[-1, 0])
    assert neck.out_channels == [4, 1]
    feats = [torch.randn(1, c, 2, 2) for c in [1, 2, 3, 4]]
    assert neck(feats) == [feats[-1], feats[0]]
    with pytest.raises(ComponentArgumentError, match="4 features"):
        SelectIndices([1, 2, 3, 4], indices=[4])


def test_aggregate_tokens():
    feats = [torch.randn(2, 5, 8) for _ in range(3)]
    mean = AggregateTokens([8, 8, 8])(feats)
    assert torch.allclose(mean[0], (feats[0] + feats[1] + feats[2]) / 3)
    cat = AggregateTokens([8, 8, 8], pooling="concat", indices=[0, 2])
    assert cat.out_channels == [16] and cat(feats)[0].shape == (2, 5, 16)
    with pytest.raises(ComponentArgumentError, match="equal channels"):
        AggregateTokens([8, 4])
    with pytest.raises(ComponentArgumentError, match="pooling"):
        AggregateTokens([8], pooling="median")


def test_permute_dims():
    neck = PermuteDims([3], new_order=[0, 3, 1, 2])
    assert neck([torch.randn(1, 4, 5, 3)])[0].shape == (1, 3, 4, 5)
    with pytest.raises(ComponentArgumentError, match="permutation"):
        PermuteDims([3], new_order=[0, 1, 1])


def test_add_bottleneck_layer():
    neck = AddBottleneckLayer([8, 16])
    assert neck.out_channels == [8, 16, 8]
    out = neck([torch.randn(1, 8, 4, 4), torch.randn(1, 16, 2, 2)])
    assert out[-1].shape == (1, 8, 2, 2) and len(out) == 3


def test_vit_chain_threads_channels_through_the_registry():
    reg = get_registry()
    channels = [32, 32, 32, 32]
    for name in ["geofm:reshape_tokens_to_image", "geofm:learned_interpolate_to_pyramidal"]:
        channels = reg.build("neck", name, in_channels=channels).out_channels
    assert channels == [8, 16, 32, 32]


def test_reshape_tokens_with_a_known_patch_size():
    neck = ReshapeTokensToImage([32], patch_size=16)
    assert neck([tokens(2, 4, 6, 32)], image_size=(64, 96))[0].shape == (2, 32, 4, 6)
    with pytest.raises(ComponentArgumentError, match="patch_size"):
        ReshapeTokensToImage([32], patch_size=0)
