"""Shared helpers: official-layout TerraMind state dicts and a Hugging Face cache to put them in.

The official key layout is spelled out here from the published checkpoints' structure
(encoder, generation decoder, tokenized and sequence modalities), not taken from geofm's
model, so that a mapping error shows up.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import torch
from geofm_terramind.vit import sincos_2d

from geofm_core.testing import SEN1FLOODS11_CHIP, shared_data

#: Raw-pixel embeddings in the v1 files: key -> channels.
RAW = {"untok_sen2l2a@224": 12, "untok_sen2l1c@224": 13, "untok_sen2rgb@224": 3,
       "untok_sen1grd@224": 2, "untok_sen1rtc@224": 2, "untok_dem@224": 1}
CHIP = SEN1FLOODS11_CHIP
TOKENIZED = ("tok_sen2l2a@224", "tok_sen1grd@224", "tok_lulc@224", "tok_ndvi@224")


def official_shapes(dim: int, depth: int, *, gated: bool, patch: int = 16,
                    grid: int = 14) -> dict[str, tuple[int, ...]]:
    """Key -> shape of an official TerraMind v1 checkpoint (encoder and decoder parts)."""
    shapes: dict[str, tuple[int, ...]] = {}
    for key, c in RAW.items():
        shapes |= {f"encoder_embeddings.{key}.proj.weight": (dim, c * patch * patch),
                   f"encoder_embeddings.{key}.mod_emb": (1, 1, dim),
                   f"encoder_embeddings.{key}.pos_emb": (1, grid * grid, dim)}
    for key in TOKENIZED:
        shapes |= {f"encoder_embeddings.{key}.token_emb.weight": (64, dim),
                   f"encoder_embeddings.{key}.mod_emb": (1, 1, dim),
                   f"encoder_embeddings.{key}.pos_emb": (1, grid * grid, dim)}
    shapes |= {"encoder_embeddings.caption.token_emb.weight": (64, dim),
               "encoder_embeddings.caption.mod_emb": (1, 1, dim),
               "encoder_embeddings.caption.pos_emb": (1, 256, dim)}
    hidden = int(2 * 4 * dim / 3) if gated else 4 * dim
    for prefix in [f"encoder.{i}." for i in range(depth)] + ["decoder.0."]:
        for norm in ("norm1", "norm2"):
            shapes |= {f"{prefix}{norm}.weight": (dim,), f"{prefix}{norm}.bias": (dim,)}
        shapes |= {f"{prefix}attn.qkv.weight": (3 * dim, dim),
                   f"{prefix}attn.proj.weight": (dim, dim),
                   f"{prefix}mlp.fc1.weight": (hidden, dim),
                   f"{prefix}mlp.fc2.weight": (dim, hidden)}
        if gated:
            shapes[f"{prefix}mlp.fc3.weight"] = (hidden, dim)
        else:
            shapes |= {f"{prefix}attn.qkv.bias": (3 * dim,), f"{prefix}attn.proj.bias": (dim,),
                       f"{prefix}mlp.fc1.bias": (hidden,), f"{prefix}mlp.fc2.bias": (dim,)}
    shapes |= {"encoder_norm.weight": (dim,), "encoder_norm.bias": (dim,),
               "decoder_norm.weight": (dim,), "decoder_norm.bias": (dim,),
               "decoder_proj_context.weight": (dim, dim), "mask_token": (1, 1, dim),
               "decoder_embeddings.tok_sen2l2a@224.mod_emb": (1, 1, dim)}
    return shapes


def official_state_dict(dim: int, depth: int, *, gated: bool,
                        seed: int = 0) -> dict[str, torch.Tensor]:
    """Random tensors in the official layout; LayerNorm biases zero, positions sin-cos."""
    gen = torch.Generator().manual_seed(seed)
    state = {}
    for key, shape in official_shapes(dim, depth, gated=gated).items():
        if key.endswith("pos_emb"):
            side = int(shape[1] ** 0.5)
            state[key] = sincos_2d((side, side), dim) if side * side == shape[1] \
                else torch.randn(shape, generator=gen)
        elif "norm" in key and key.endswith("bias"):
            state[key] = torch.zeros(shape)
        else:
            state[key] = torch.randn(shape, generator=gen) * 0.02
    return state


@pytest.fixture
def hf_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Callable[..., Path]:
    """An offline Hugging Face cache in tmp_path; ``put(repo, filename, state)`` stores a file."""
    home = tmp_path / "hf_home"
    (home / "hub").mkdir(parents=True)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HOME", str(home))
    for name in ("HF_HUB_CACHE", "HUGGINGFACE_HUB_CACHE", "GEOFM_TERRAMIND_WEIGHTS_DIR"):
        monkeypatch.delenv(name, raising=False)

    def put(repo_id: str, filename: str, state: dict[str, torch.Tensor]) -> Path:
        folder = home / "hub" / f"models--{repo_id.replace('/', '--')}"
        commit = "0" * 40
        (folder / "refs").mkdir(parents=True, exist_ok=True)
        (folder / "refs" / "main").write_text(commit)
        path = folder / "snapshots" / commit / filename
        path.parent.mkdir(parents=True, exist_ok=True)
        torch.save(state, path)
        return path

    return put


@pytest.fixture(scope="session")
def official_tiny() -> dict[str, torch.Tensor]:
    """A random TerraMind-1.0-tiny checkpoint in the official layout."""
    return official_state_dict(192, 12, gated=False)


@pytest.fixture
def stacked_chip(tmp_path: Path) -> Path:
    """Two halves of the chip with S2 then S1 bands in one float32 file each, labels beside."""
    root = tmp_path / "chips"
    root.mkdir()
    data = shared_data("sen1floods11")
    import rasterio
    from rasterio.windows import Window

    with rasterio.open(data / f"{CHIP}_S2Hand.tif") as s2, \
            rasterio.open(data / f"{CHIP}_S1Hand.tif") as s1, \
            rasterio.open(data / f"{CHIP}_LabelHand.tif") as label:
        assert (s2.count, s1.count) == (13, 2) and s2.transform == s1.transform
        stacked = np.concatenate([s2.read().astype("float32"), s1.read().astype("float32")])
        labels = label.read()
        for i in range(2):
            window = Window(i * 256, 0, 256, 256)
            profile = s2.profile | {"count": 15, "dtype": "float32", "nodata": float("nan"),
                                    "width": 256, "height": 256,
                                    "transform": s2.window_transform(window)}
            rows, cols = window.toslices()
            with rasterio.open(root / f"half{i}_S2S1.tif", "w", **profile) as dst:
                dst.write(stacked[:, rows, cols])
            with rasterio.open(root / f"half{i}_LabelHand.tif", "w",
                               **(label.profile | {"width": 256, "height": 256,
                                                   "transform": s2.window_transform(window)})
                               ) as dst:
                dst.write(labels[:, rows, cols])
    return root
