"""Prithvi's MAE: forward_masked, the official decoder layout, and its weights kept on load."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from geofm_prithvi import configs
from geofm_prithvi.mae import PrithviMAEDecoder, build_mae_decoder, map_decoder_keys

from geofm_core import get_registry
from geofm_core.errors import ConfigurationError
from geofm_core.models.mae import MAEFactory, MaskedAutoencoder
from geofm_core.models.masking import random_masking

TINY = {"embed_dim": 32, "depth": 2, "num_heads": 2, "img_size": 32}
DECODER = {"decoder_embed_dim": 16, "decoder_depth": 1, "decoder_num_heads": 2}


def test_forward_masked_with_every_token_kept_is_the_plain_forward() -> None:
    torch.manual_seed(0)
    encoder = configs.prithvi_eo_v2_tiny_tl(**TINY, num_frames=2, out_indices=[-1]).eval()
    x = torch.randn(2, 6, 2, 32, 32)
    coords = {"temporal_coords": torch.tensor([[[2020.0, 5.0], [2020.0, 60.0]]] * 2),
              "location_coords": torch.tensor([[41.0, -3.0]] * 2)}
    everything = torch.arange(8).expand(2, 8)
    with torch.no_grad():
        assert torch.allclose(encoder.forward_masked(x, everything, **coords),
                              encoder(x, **coords)[0], atol=1e-6)
        kept = random_masking(2, (2, 2, 2), 0.75, generator=torch.Generator().manual_seed(0))
        assert encoder.forward_masked(x, kept.keep, **coords).shape == (2, 1 + 2, 32)


def test_decoder_has_the_official_names_and_predicts_every_patch() -> None:
    encoder = configs.prithvi_eo_v2_300_tl(**TINY, num_frames=3, bands=["RED", "GREEN"])
    decoder = build_mae_decoder(encoder, **DECODER)
    names = set(decoder.state_dict())
    assert {"decoder_embed.weight", "mask_token", "decoder_blocks.0.attn.qkv.weight",
            "decoder_norm.weight", "decoder_pred.weight", "temporal_embed_dec.scale",
            "location_embed_dec.scale"} <= names
    assert decoder.decoder_pred.out_features == 16 * 16 * 2
    mae = MaskedAutoencoder(encoder, decoder, mask_ratio=0.5, mask_mode="tube")
    out = mae.forward_mae(torch.randn(1, 2, 3, 32, 64))
    assert out.pred.shape == (1, 3 * 2 * 4, 512) and torch.isfinite(out.loss)
    assert out.mask.sum() == 3 * 4  # half of each frame


@pytest.mark.parametrize("layout", ["v1", "v2"])
def test_official_decoder_weights_are_kept(official, tmp_path: Path, layout: str) -> None:
    state = official(layout=layout, embed_dim=32, depth=2, decoder_dim=16)
    path = tmp_path / "official.pt"
    torch.save(state, path)
    model = MAEFactory().build_model(
        "reconstruction", "prithvi:prithvi_eo_v1_100",
        backbone_kwargs={**TINY, "ckpt_path": str(path)}, decoder_kwargs=DECODER,
    )
    prefix = "decoder." if layout == "v2" else ""
    own = model.decoder.state_dict()
    for key in ("decoder_embed.weight", "mask_token", "decoder_blocks.0.mlp.fc2.weight",
                "decoder_pred.bias"):
        assert torch.equal(own[key], state[prefix + key]), key
    mapped = map_decoder_keys(state, time_location=False)
    assert "decoder_pos_embed" not in mapped and set(mapped) == set(own)


def test_decoder_weight_errors(official, tmp_path: Path) -> None:
    encoder_only = tmp_path / "encoder.pt"
    state = official(layout="v2", embed_dim=32, depth=2, decoder_dim=16)
    torch.save({k: v for k, v in state.items() if k.startswith("encoder.")}, encoder_only)
    encoder = configs.prithvi_eo_v1_100(**TINY, ckpt_path=str(encoder_only))
    with pytest.warns(UserWarning, match="holds no MAE decoder weights"):
        build_mae_decoder(encoder, **DECODER)
    with pytest.raises(ConfigurationError, match="holds no MAE decoder weights"):
        build_mae_decoder(encoder, **DECODER, pretrained=True)
    with pytest.raises(ConfigurationError, match="built without one"):
        build_mae_decoder(configs.prithvi_eo_v1_100(**TINY), pretrained=True)
    full = tmp_path / "full.pt"
    torch.save(state, full)
    with pytest.raises(ConfigurationError, match=r"do not fit.*decoder_embed_dim"):
        build_mae_decoder(encoder, decoder_embed_dim=32, decoder_depth=1, ckpt_path=str(full))
    swin = configs_swin()
    with pytest.raises(ConfigurationError, match="decodes for Prithvi ViT"):
        build_mae_decoder(swin)
    assert isinstance(build_mae_decoder(encoder, **DECODER, pretrained=False), PrithviMAEDecoder)


def configs_swin() -> torch.nn.Module:
    return get_registry().build("backbone", "prithvi:prithvi_swin_b", embed_dim=8,
                                depths=[2, 2, 2, 2], num_heads=[1, 2, 2, 4], window_size=4)


def test_the_backbone_names_its_decoder_in_the_registry() -> None:
    spec = get_registry().get("mae_decoder", "prithvi:prithvi_vit_mae")
    assert spec.load() is build_mae_decoder
    assert configs.prithvi_eo_v2_300(**TINY).mae_decoder == spec.qualified_name
    with pytest.raises(ConfigurationError, match="mae_decoder"):
        MAEFactory().build_model("reconstruction", "prithvi:prithvi_swin_b",
                                 backbone_kwargs={"embed_dim": 8, "depths": [2, 2, 2, 2],
                                                  "num_heads": [1, 2, 2, 4]})
    with pytest.raises(ConfigurationError, match="reconstruction models"):
        MAEFactory().build_model("segmentation", "prithvi:prithvi_eo_v2_300")
