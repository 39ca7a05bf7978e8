"""PrithviViT: shapes, time series, metadata, non-square inputs, and agreement with a reference."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from geofm_prithvi import configs
from geofm_prithvi.vit import PrithviViT, sincos_3d
from timm.models.vision_transformer import Block as TimmBlock

from geofm_core.errors import ConfigurationError

TINY = {"embed_dim": 32, "depth": 2, "num_heads": 2}


def reference_sincos_3d(dim: int, grid: tuple[int, int, int]) -> np.ndarray:
    """The published 3-D sin-cos recipe, written with numpy (w 6/16, h 6/16, t 4/16, CLS 0)."""

    def one_d(d: int, pos: np.ndarray) -> np.ndarray:
        omega = 1.0 / 10000 ** (np.arange(d // 2, dtype=float) / (d / 2.0))
        out = np.einsum("m,d->md", pos.reshape(-1).astype(float), omega)
        return np.concatenate([np.sin(out), np.cos(out)], axis=1)

    t, h, w = grid
    emb_w = np.tile(one_d(dim // 16 * 6, np.arange(w)), (t * h, 1))
    emb_h = np.tile(np.repeat(one_d(dim // 16 * 6, np.arange(h)), w, axis=0), (t, 1))
    emb_t = np.repeat(one_d(dim // 16 * 4, np.arange(t)), h * w, axis=0)
    return np.concatenate([np.zeros((1, dim)), np.concatenate([emb_w, emb_h, emb_t], 1)], 0)


@pytest.mark.parametrize("grid", [(1, 14, 14), (3, 14, 14), (2, 2, 3)])
def test_position_embedding_matches_the_published_recipe(grid):
    ours = sincos_3d(64, grid)[0].numpy()
    assert ours.shape == (1 + grid[0] * grid[1] * grid[2], 64)
    np.testing.assert_allclose(ours, reference_sincos_3d(64, grid), atol=1e-6)


def reference_forward(model: PrithviViT, x: torch.Tensor) -> torch.Tensor:
    """The official encoder computation, with timm's Block (as prithvi_mae.py uses it)."""
    sd = model.state_dict()
    d = model.embed_dim
    tokens = F.conv3d(x, sd["patch_embed.proj.weight"], sd["patch_embed.proj.bias"],
                      stride=model.patch_size).flatten(2).transpose(1, 2)
    grid = (x.shape[2], x.shape[3] // 16, x.shape[4] // 16)
    pos = torch.from_numpy(reference_sincos_3d(d, grid)).float()[None]
    tokens = tokens + pos[:, 1:]
    cls = (sd["cls_token"] + pos[:, :1]).expand(x.shape[0], -1, -1)
    h = torch.cat([cls, tokens], dim=1)
    for i in range(model.depth):
        block = TimmBlock(d, 2, 4.0, qkv_bias=True, norm_layer=torch.nn.LayerNorm).eval()
        block.load_state_dict({k.removeprefix(f"blocks.{i}."): v for k, v in sd.items()
                               if k.startswith(f"blocks.{i}.")})
        h = block(h)
    return F.layer_norm(h, (d,), sd["norm.weight"], sd["norm.bias"])


def test_forward_matches_the_reference_encoder():
    torch.manual_seed(0)
    model = configs.prithvi_eo_v1_100(**TINY, num_frames=2).eval()
    x = torch.randn(2, 6, 2, 32, 48)
    with torch.no_grad():
        ours = model(x)[-1]
        ref = reference_forward(model, x)
    torch.testing.assert_close(ours, ref, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("frames", [1, 3])
@pytest.mark.parametrize("size", [(32, 32), (32, 48)])
def test_forward_backward_shapes(frames, size):
    model = configs.prithvi_eo_v2_300(**TINY, num_frames=frames, img_size=32)
    h, w = size
    x = torch.randn(2, 6, frames, h, w) if frames > 1 else torch.randn(2, 6, h, w)
    out = model(x)
    assert len(out) == len(model.out_channels) == 2
    assert model.out_channels == [32 * frames] * 2
    for tokens in out:
        assert tokens.shape == (2, 1 + frames * (h // 16) * (w // 16), 32)
    sum(t.mean() for t in out).backward()
    assert model.patch_embed.proj.weight.grad is not None
    assert model.cls_token.grad is not None


@pytest.mark.parametrize("frames", [1, 3])
def test_time_and_location_metadata(frames):
    torch.manual_seed(0)
    model = configs.prithvi_eo_v2_tiny_tl(**TINY, num_frames=frames, img_size=32).eval()
    x = torch.randn(2, 6, frames, 32, 48)
    temporal = torch.tensor([[2020.0, 30.0 + 40 * i] for i in range(frames)]).expand(2, -1, -1)
    location = torch.tensor([[46.5, 7.1], [-3.2, 120.0]])
    plain = model(x)[-1]
    timed = model(x, temporal_coords=temporal)[-1]
    placed = model(x, location_coords=location)[-1]
    both = model(x, temporal_coords=temporal, location_coords=location, filename=["a", "b"])[-1]
    for other in (timed, placed, both):
        assert other.shape == plain.shape
        assert not torch.allclose(other, plain)
    # The location bias differs between the two samples: same input, different output.
    same = x[:1].expand(2, -1, -1, -1, -1)
    diff = model(same, location_coords=location)[-1]
    assert not torch.allclose(diff[0], diff[1])
    model.train()
    out = model(x, temporal_coords=temporal, location_coords=location)
    out[-1].sum().backward()
    assert model.temporal_embed_enc.scale.grad is not None
    assert model.location_embed_enc.scale.grad is not None
    assert model.temporal_embed_enc.scale.item() == pytest.approx(0.1)


def test_models_without_coords_ignore_metadata():
    model = configs.prithvi_eo_v2_300(**TINY, img_size=32).eval()
    x = torch.randn(1, 6, 32, 32)
    with torch.no_grad():
        a = model(x)[-1]
        b = model(x, temporal_coords=torch.zeros(1, 1, 2), location_coords=torch.zeros(1, 2))[-1]
    assert torch.equal(a, b)


def test_bad_metadata_shapes_are_named():
    model = configs.prithvi_eo_v2_tiny_tl(**TINY, num_frames=2, img_size=32)
    x = torch.randn(1, 6, 2, 32, 32)
    with pytest.raises(ConfigurationError, match="temporal_coords"):
        model(x, temporal_coords=torch.zeros(1, 3, 2))
    with pytest.raises(ConfigurationError, match="location_coords"):
        model(x, location_coords=torch.zeros(1, 3))


def test_bad_inputs_raise_clear_errors():
    model = configs.prithvi_eo_v1_100(**TINY, img_size=32)
    with pytest.raises(ConfigurationError, match="multiple of the patch size"):
        model(torch.randn(1, 6, 30, 32))
    with pytest.raises(ConfigurationError, match="6 bands but the input has 4"):
        model(torch.randn(1, 4, 32, 32))
    with pytest.raises(ConfigurationError, match=r"\(B, C, H, W\)"):
        model(torch.randn(6, 32, 32))


def test_out_indices_and_final_norm():
    torch.manual_seed(0)
    full = configs.prithvi_eo_v1_100(embed_dim=32, depth=3, num_heads=2).eval()
    some = configs.prithvi_eo_v1_100(embed_dim=32, depth=3, num_heads=2, out_indices=[0, -1])
    some.load_state_dict(full.state_dict())
    some.eval()
    assert some.out_indices == [0, 2] and some.out_channels == [32, 32]
    x = torch.randn(1, 6, 32, 32)
    with torch.no_grad():
        all_out, few = full(x), some(x)
    assert torch.equal(few[0], all_out[0]) and torch.equal(few[1], all_out[2])
    # Only the last block's output is normed.
    last = all_out[2]
    assert torch.allclose(last.mean(-1), torch.zeros(()), atol=1e-5)
    assert not torch.allclose(all_out[1].mean(-1), torch.zeros(()), atol=1e-3)
    with pytest.raises(ConfigurationError, match="out_indices"):
        configs.prithvi_eo_v1_100(**TINY, out_indices=[5])


def test_input_multiple_and_patch14():
    model = configs.prithvi_eo_v2_600(embed_dim=32, depth=1, num_heads=2, img_size=28)
    assert model.input_multiple == 14
    assert model(torch.randn(1, 6, 28, 42))[0].shape == (1, 1 + 2 * 3, 32)


def test_drop_path_changes_training_outputs_only():
    torch.manual_seed(0)
    model = configs.prithvi_eo_v1_100(**TINY, drop_path_rate=0.5, img_size=32)
    x = torch.randn(8, 6, 32, 32)
    model.eval()
    with torch.no_grad():
        assert torch.equal(model(x)[-1], model(x)[-1])
    model.train()
    with torch.no_grad():
        assert not torch.equal(model(x)[-1], model(x)[-1])


def test_the_interpolated_position_grid_is_the_stored_one_at_img_size_and_resized_elsewhere(
) -> None:
    model = PrithviViT(in_chans=3, img_size=32, embed_dim=32, depth=1, num_heads=2,
                       position_grid="interpolate")
    device = torch.device("cpu")
    assert torch.equal(model.position_embedding((1, 2, 2), device), sincos_3d(32, (1, 2, 2)))
    resized = model.position_embedding((2, 3, 4), device)
    stored = sincos_3d(32, (2, 2, 2))
    grid = stored[0, 1:].reshape(2, 2, 2, 32).permute(0, 3, 1, 2)
    expected = F.interpolate(grid, size=(3, 4), mode="bicubic", align_corners=True)
    assert torch.allclose(resized[0, 1:], expected.permute(0, 2, 3, 1).reshape(-1, 32))
    assert not torch.allclose(resized, sincos_3d(32, (2, 3, 4)))


def test_the_float32_coordinate_encoding_differs_from_float64_only_by_rounding() -> None:
    from geofm_prithvi.vit import TemporalEncoder

    coords = torch.tensor([[[2021.0, 173.0]]])
    wide, narrow = TemporalEncoder(64), TemporalEncoder(64, precision="float32")
    with torch.no_grad():
        diff = float((wide(coords, 1) - narrow(coords, 1)).abs().max())
    assert 0 < diff < 1e-3


def test_unknown_position_grid_and_coords_dtype_are_refused() -> None:
    with pytest.raises(ConfigurationError, match="position_grid"):
        PrithviViT(in_chans=3, embed_dim=32, depth=1, num_heads=2, position_grid="nearest")


def test_the_uniform_drop_path_schedule_gives_every_block_the_rate() -> None:
    uniform = PrithviViT(in_chans=3, embed_dim=32, depth=3, num_heads=2, drop_path_rate=0.1,
                         drop_path_schedule="uniform")
    linear = PrithviViT(in_chans=3, embed_dim=32, depth=3, num_heads=2, drop_path_rate=0.1)
    assert [b.drop_path.p for b in uniform.blocks] == [0.1, 0.1, 0.1]
    assert [b.drop_path.p for b in linear.blocks] == [0.0, 0.05, 0.1]
