"""Shared helpers: state dicts in the two official Prithvi key layouts, written from the docs.

The key names below are spelled out from the official ``prithvi_mae.py`` (v2,
``encoder.``/``decoder.`` split) and the Prithvi-EO-1.0 MAE (flat keys, ``decoder_*``
and ``mask_token``), not derived from our model, so a mapping error shows up.
"""

from __future__ import annotations

from collections.abc import Callable

import pytest
import torch

OfficialFactory = Callable[..., dict[str, torch.Tensor]]


def _block_shapes(prefix: str, d: int) -> dict[str, tuple[int, ...]]:
    return {
        f"{prefix}norm1.weight": (d,), f"{prefix}norm1.bias": (d,),
        f"{prefix}attn.qkv.weight": (3 * d, d), f"{prefix}attn.qkv.bias": (3 * d,),
        f"{prefix}attn.proj.weight": (d, d), f"{prefix}attn.proj.bias": (d,),
        f"{prefix}norm2.weight": (d,), f"{prefix}norm2.bias": (d,),
        f"{prefix}mlp.fc1.weight": (4 * d, d), f"{prefix}mlp.fc1.bias": (4 * d,),
        f"{prefix}mlp.fc2.weight": (d, 4 * d), f"{prefix}mlp.fc2.bias": (d,),
    }


def official_shapes(
    *, layout: str, embed_dim: int, depth: int, in_chans: int = 6, patch: int = 16,
    frames: int = 3, img: int = 224, tl: bool = False, decoder_dim: int = 16,
) -> dict[str, tuple[int, ...]]:
    """Key -> shape of an official MAE checkpoint (encoder + decoder)."""
    d = embed_dim
    tokens = 1 + frames * (img // patch) ** 2
    enc: dict[str, tuple[int, ...]] = {
        "cls_token": (1, 1, d),
        "pos_embed": (1, tokens, d),
        "patch_embed.proj.weight": (d, in_chans, 1, patch, patch),
        "patch_embed.proj.bias": (d,),
    }
    for i in range(depth):
        enc.update(_block_shapes(f"blocks.{i}.", d))
    enc.update({"norm.weight": (d,), "norm.bias": (d,)})
    dd = decoder_dim
    dec: dict[str, tuple[int, ...]] = {
        "decoder_embed.weight": (dd, d), "decoder_embed.bias": (dd,),
        "mask_token": (1, 1, dd),
        "decoder_pos_embed": (1, tokens, dd),
        **_block_shapes("decoder_blocks.0.", dd),
        "decoder_norm.weight": (dd,), "decoder_norm.bias": (dd,),
        "decoder_pred.weight": (patch * patch * in_chans, dd),
        "decoder_pred.bias": (patch * patch * in_chans,),
    }
    if layout == "v1":
        return {**enc, **dec}
    assert layout == "v2"
    if tl:
        enc.update({"temporal_embed_enc.scale": (1,), "location_embed_enc.scale": (1,)})
        dec.update({"temporal_embed_dec.scale": (1,), "location_embed_dec.scale": (1,)})
    return {**{f"encoder.{k}": s for k, s in enc.items()},
            **{f"decoder.{k}": s for k, s in dec.items()}}


def official_state_dict(seed: int = 0, **kwargs: object) -> dict[str, torch.Tensor]:
    """Random tensors under the official key names (see :func:`official_shapes`)."""
    gen = torch.Generator().manual_seed(seed)
    return {k: torch.randn(s, generator=gen) for k, s in official_shapes(**kwargs).items()}


@pytest.fixture
def official() -> OfficialFactory:
    """Build an official-layout state dict: ``official(layout="v1", embed_dim=32, depth=2)``."""
    return official_state_dict


@pytest.fixture
def clean_hub_env(monkeypatch: pytest.MonkeyPatch, tmp_path: object) -> None:
    """No network, an empty HF cache, no local weights folder."""
    import pathlib

    home = pathlib.Path(str(tmp_path)) / "hf_home"
    home.mkdir()
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HOME", str(home))
    monkeypatch.delenv("HF_HUB_CACHE", raising=False)
    monkeypatch.delenv("HUGGINGFACE_HUB_CACHE", raising=False)
    monkeypatch.delenv("GEOFM_PRITHVI_WEIGHTS_DIR", raising=False)
