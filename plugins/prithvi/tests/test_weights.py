"""Loading official-layout checkpoints: key mapping, strictness, bands, the hub and real files."""

from __future__ import annotations

import hashlib
import os
import warnings
from pathlib import Path

import pytest
import torch
from geofm_prithvi import configs
from geofm_prithvi.constants import VARIANTS
from geofm_prithvi.weights import NewBandWarning, map_official_keys, read_state_dict
from safetensors.torch import save_file

from geofm_core.errors import ConfigurationError

TINY = {"embed_dim": 32, "depth": 2, "num_heads": 2}


def save(state: dict[str, torch.Tensor], path: Path) -> Path:
    if path.suffix == ".safetensors":
        save_file({k: v.contiguous() for k, v in state.items()}, str(path))
    else:
        torch.save(state, path)
    return path


def encoder_part(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """The official encoder tensors under our names, minus pos_embed (recomputed)."""
    out = {}
    for key, value in state.items():
        key = key.removeprefix("encoder.")
        if key.startswith(("decoder", "mask_token", "pos_embed")):
            continue
        out[key] = value
    return out


@pytest.mark.parametrize("suffix", [".pt", ".safetensors"])
@pytest.mark.parametrize(
    ("variant", "layout", "tl"),
    [("prithvi_eo_v1_100", "v1", False), ("prithvi_eo_v2_300", "v2", False),
     ("prithvi_eo_v2_300_tl", "v2", True)],
)
def test_official_layouts_load_bit_identical(tmp_path, official, variant, layout, tl, suffix):
    state = official(layout=layout, tl=tl, **{k: TINY[k] for k in ("embed_dim", "depth")})
    path = save(state, tmp_path / f"ckpt{suffix}")
    model = getattr(configs, variant)(ckpt_path=str(path), **TINY)
    loaded = model.state_dict()
    expected = encoder_part(state)
    assert set(loaded) == set(expected)
    for key, value in expected.items():
        assert torch.equal(loaded[key], value), key
    if tl:
        assert model.temporal_embed_enc.scale.item() == state["encoder.temporal_embed_enc.scale"]


def test_timm_module_prefix_is_tolerated(tmp_path, official):
    state = official(layout="v1", embed_dim=32, depth=2)
    prefixed = {f"_timm_module.{k}": v for k, v in state.items()}
    model = configs.prithvi_eo_v1_100(ckpt_path=str(save(prefixed, tmp_path / "c.pt")), **TINY)
    assert torch.equal(model.blocks[1].mlp.fc2.weight, state["blocks.1.mlp.fc2.weight"])


def test_time_location_scales_dropped_for_models_without_them(tmp_path, official):
    state = official(layout="v2", tl=True, embed_dim=32, depth=2)
    model = configs.prithvi_eo_v2_300(ckpt_path=str(save(state, tmp_path / "c.pt")), **TINY)
    assert not hasattr(model, "temporal_embed_enc")
    assert torch.equal(model.norm.weight, state["encoder.norm.weight"])


def test_leftover_and_missing_keys_are_named(tmp_path, official):
    state = official(layout="v2", embed_dim=32, depth=2)
    state["encoder.head.weight"] = torch.zeros(3)
    del state["encoder.blocks.1.mlp.fc2.bias"]
    path = save(state, tmp_path / "c.safetensors")
    with pytest.raises(ConfigurationError) as info:
        configs.prithvi_eo_v2_300(ckpt_path=str(path), **TINY)
    message = str(info.value)
    assert "unexpected keys: head.weight" in message
    assert "missing keys: blocks.1.mlp.fc2.bias" in message
    assert "prithvi:prithvi_eo_v2_300" in message


def test_tl_model_needs_the_scales(tmp_path, official):
    state = official(layout="v2", tl=False, embed_dim=32, depth=2)
    with pytest.raises(ConfigurationError, match=r"temporal_embed_enc\.scale"):
        configs.prithvi_eo_v2_300_tl(ckpt_path=str(save(state, tmp_path / "c.pt")), **TINY)


def test_wrong_architecture_names_the_shapes(tmp_path, official):
    state = official(layout="v1", embed_dim=32, depth=2)
    with pytest.raises(ConfigurationError, match=r"shape mismatches: .*cls_token"):
        configs.prithvi_eo_v1_100(ckpt_path=str(save(state, tmp_path / "c.pt")),
                                  embed_dim=48, depth=2, num_heads=2)
    with pytest.raises(ConfigurationError, match=r"missing keys: blocks\.2"):
        configs.prithvi_eo_v1_100(ckpt_path=str(save(state, tmp_path / "c.pt")),
                                  embed_dim=32, depth=3, num_heads=2)


def test_map_official_keys_drops_decoder_and_pos_embed(official):
    mapped = map_official_keys(official(layout="v1", embed_dim=32, depth=1), time_location=False)
    assert not [k for k in mapped if "decoder" in k or k in ("mask_token", "pos_embed")]
    assert "blocks.0.attn.qkv.weight" in mapped


@pytest.mark.parametrize(
    ("bands", "sources"),
    [(["RED", "BLUE"], [2, 0]),
     (["swir_2", "NIR_NARROW", "GREEN"], [5, 3, 1]),
     ([3, "green", 0], [3, 1, 0])],
)
def test_band_subset_and_reorder_copy_the_right_channels(tmp_path, official, bands, sources):
    state = official(layout="v2", embed_dim=32, depth=1)
    path = save(state, tmp_path / "c.pt")
    with warnings.catch_warnings():
        warnings.simplefilter("error", NewBandWarning)
        model = configs.prithvi_eo_v2_300(ckpt_path=str(path), bands=bands,
                                          embed_dim=32, depth=1, num_heads=2)
    weight = state["encoder.patch_embed.proj.weight"]
    assert model.patch_embed.proj.weight.shape[1] == len(bands)
    for channel, source in enumerate(sources):
        assert torch.equal(model.patch_embed.proj.weight[:, channel], weight[:, source])
    model(torch.randn(1, len(bands), 32, 32))


def test_new_bands_are_initialised_and_reported(tmp_path, official):
    state = official(layout="v1", embed_dim=32, depth=1)
    path = save(state, tmp_path / "c.pt")
    with pytest.warns(NewBandWarning, match=r"\['SAR_VV', 'RED_EDGE_1'\]"):
        model = configs.prithvi_eo_v1_100(ckpt_path=str(path), bands=["BLUE", "SAR_VV",
                                          "RED_EDGE_1"], embed_dim=32, depth=1, num_heads=2)
    weight = state["patch_embed.proj.weight"]
    got = model.patch_embed.proj.weight.detach()
    assert torch.equal(got[:, 0], weight[:, 0])
    assert torch.allclose(got[:, 1], weight.mean(dim=1))
    assert model.bands == ["BLUE", "SAR_VV", "RED_EDGE_1"]


@pytest.mark.parametrize("bands", [["RED", "red"], [6], [], "RED", [1.5]])
def test_bad_bands_raise_one_clear_error(bands):
    with pytest.raises(ConfigurationError, match="bands"):
        configs.prithvi_eo_v1_100(bands=bands, embed_dim=32, depth=1, num_heads=2)


def test_unreadable_or_missing_checkpoint(tmp_path):
    with pytest.raises(ConfigurationError, match="does not exist"):
        read_state_dict(tmp_path / "nope.pt")
    bad = tmp_path / "bad.pt"
    bad.write_bytes(b"not a pickle")
    with pytest.raises(ConfigurationError, match="cannot read checkpoint"):
        read_state_dict(bad)
    wrapped = tmp_path / "wrapped.pt"
    torch.save({"state_dict": {"a": torch.ones(1)}}, wrapped)
    assert list(read_state_dict(wrapped)) == ["a"]


def test_pretrained_offline_without_cache_gives_clear_error(clean_hub_env):
    with pytest.raises(ConfigurationError) as info:
        configs.prithvi_eo_v2_600(pretrained=True)
    message = str(info.value)
    assert "ibm-nasa-geospatial/Prithvi-EO-2.0-600M" in message
    assert "Prithvi_EO_V2_600M.pt" in message
    assert os.path.join(os.environ["HF_HOME"], "hub") in message
    assert "ckpt_path=" in message
    assert "HF_HUB_OFFLINE" in message


def test_pretrained_overrides_are_refused(clean_hub_env):
    with pytest.raises(ConfigurationError, match="embed_dim"):
        configs.prithvi_eo_v2_tiny_tl(pretrained=True, embed_dim=32)


def _tiny_tl_official(official):
    spec = VARIANTS["prithvi_eo_v2_tiny_tl"]
    return official(layout="v2", tl=True, embed_dim=spec.embed_dim, depth=spec.depth,
                     frames=4, img=32)


def test_pretrained_from_a_prefilled_hub_cache(clean_hub_env, official, monkeypatch):
    state = _tiny_tl_official(official)
    weights = VARIANTS["prithvi_eo_v2_tiny_tl"].weights
    cache = Path(os.environ["HF_HOME"]) / "hub"
    repo = cache / ("models--" + weights.repo_id.replace("/", "--"))
    commit = "0123456789abcdef0123456789abcdef01234567"
    (repo / "refs").mkdir(parents=True)
    (repo / "refs" / "main").write_text(commit)
    (repo / "snapshots" / commit).mkdir(parents=True)
    torch.save(state, repo / "snapshots" / commit / weights.filename)
    model = configs.prithvi_eo_v2_tiny_tl(pretrained=True)
    assert torch.equal(model.blocks[11].attn.qkv.weight,
                       state["encoder.blocks.11.attn.qkv.weight"])


def test_pretrained_from_the_weights_dir(clean_hub_env, official, monkeypatch, tmp_path):
    state = _tiny_tl_official(official)
    weights = VARIANTS["prithvi_eo_v2_tiny_tl"].weights
    save(state, tmp_path / weights.filename)
    monkeypatch.setenv("GEOFM_PRITHVI_WEIGHTS_DIR", str(tmp_path))
    model = configs.prithvi_eo_v2_tiny_tl(pretrained=True, bands=["NIR_NARROW", "RED"])
    patch = state["encoder.patch_embed.proj.weight"]
    assert torch.equal(model.patch_embed.proj.weight[:, 0], patch[:, 3])


# -- the real official files, where present ------------------------------------------


def _local_official_file(variant: str) -> Path | None:
    weights = VARIANTS[variant].weights
    folder = os.environ.get("GEOFM_PRITHVI_WEIGHTS_DIR")
    if folder and (Path(folder) / weights.filename).is_file():
        return Path(folder) / weights.filename
    from geofm_prithvi.weights import hf_cache_dir
    from huggingface_hub import try_to_load_from_cache

    found = try_to_load_from_cache(weights.repo_id, weights.filename, cache_dir=hf_cache_dir())
    return Path(found) if isinstance(found, str) else None


@pytest.mark.slow
@pytest.mark.parametrize("variant", list(VARIANTS))
def test_real_official_file(variant, monkeypatch, capsys):
    path = _local_official_file(variant)
    if path is None:
        pytest.skip(f"no local {VARIANTS[variant].weights.filename}: set GEOFM_PRITHVI_WEIGHTS_DIR "
                    "or fill the Hugging Face cache to run this test")
    weights = VARIANTS[variant].weights
    size = path.stat().st_size
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    with capsys.disabled():  # records the facts for files whose values are not published here
        print(f"\n{weights.filename}: {size} bytes, sha256 {digest.hexdigest()}")
    if weights.approx_bytes is not None:
        assert abs(size - weights.approx_bytes) < 0.02 * weights.approx_bytes
    if weights.sha256 is not None:
        assert digest.hexdigest() == weights.sha256
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    model = getattr(configs, variant)(ckpt_path=str(path), out_indices=[-1]).eval()
    with torch.no_grad():
        out = model(torch.randn(1, 6, 224, 224))
    assert torch.isfinite(out[0]).all()
