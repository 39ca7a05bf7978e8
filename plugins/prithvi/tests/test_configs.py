"""The registered variants: parameter counts, registry and CLI listing, light plugin module."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import geofm_prithvi
import pytest
import torch
from geofm_prithvi import configs
from geofm_prithvi.constants import PRETRAINED_BANDS, SWIN_VARIANTS, VARIANTS

from geofm_core import get_registry
from geofm_core.errors import ComponentArgumentError

# Encoder parameters in millions, from the official model cards (the fixed position
# embedding is a buffer and not counted; the TL scales add 2 parameters).
PUBLISHED_MILLIONS = {
    "prithvi_eo_v1_100": 86.2,
    "prithvi_eo_v2_tiny_tl": 5.6,
    "prithvi_eo_v2_300": 303.9,
    "prithvi_eo_v2_600": 631.2,
}
ARCH = {  # embed, depth, heads, patch (h = w), time+location
    "prithvi_eo_v1_100": (768, 12, 12, 16, False),
    "prithvi_eo_v2_tiny_tl": (192, 12, 3, 16, True),
    "prithvi_eo_v2_100_tl": (768, 12, 12, 16, True),
    "prithvi_eo_v2_300": (1024, 24, 16, 16, False),
    "prithvi_eo_v2_300_tl": (1024, 24, 16, 16, True),
    "prithvi_eo_v2_600": (1280, 32, 16, 14, False),
    "prithvi_eo_v2_600_tl": (1280, 32, 16, 14, True),
}


def build_meta(name: str, **kwargs: object) -> torch.nn.Module:
    with torch.device("meta"):
        return getattr(configs, name)(**kwargs)


@pytest.mark.parametrize("name", list(ARCH))
def test_every_variant_builds_on_meta_with_its_architecture(name):
    embed, depth, heads, patch, tl = ARCH[name]
    model = build_meta(name)
    assert model.embed_dim == embed and len(model.blocks) == depth
    assert model.blocks[0].attn.num_heads == heads
    assert model.patch_size == (1, patch, patch) and model.input_multiple == patch
    assert model.coords_encoding is tl and hasattr(model, "temporal_embed_enc") is tl
    assert model.out_channels == [embed] * depth
    assert model.bands == ["BLUE", "GREEN", "RED", "NIR_NARROW", "SWIR_1", "SWIR_2"]
    params = sum(p.numel() for p in model.parameters())
    if name in PUBLISHED_MILLIONS:
        assert round(params / 1e6, 1) == PUBLISHED_MILLIONS[name]
    # A TL model is its plain twin plus the two learned scales.
    twin = name.removesuffix("_tl")
    if tl and twin in ARCH:
        assert params == sum(p.numel() for p in build_meta(twin).parameters()) + 2


def test_num_frames_and_out_indices_set_out_channels():
    model = build_meta("prithvi_eo_v1_100", num_frames=3, out_indices=[2, 5, 8, 11])
    assert model.out_channels == [768 * 3] * 4


def test_normalisation_constants_are_public():
    assert geofm_prithvi.PRITHVI_V1_MEAN == (775.0, 1081.0, 1229.0, 2497.0, 2204.0, 1611.0)
    assert geofm_prithvi.PRITHVI_V1_STD == (1282.0, 1270.0, 1399.0, 1368.0, 1292.0, 1155.0)
    assert geofm_prithvi.PRITHVI_V2_MEAN == (1087.0, 1342.0, 1433.0, 2734.0, 1958.0, 1363.0)
    assert geofm_prithvi.PRITHVI_V2_STD == (2248.0, 2179.0, 2178.0, 1850.0, 1242.0, 1049.0)
    assert VARIANTS["prithvi_eo_v1_100"].mean == geofm_prithvi.PRITHVI_V1_MEAN
    assert VARIANTS["prithvi_eo_v2_600_tl"].std == geofm_prithvi.PRITHVI_V2_STD


def test_registry_lists_and_builds_every_variant():
    registry = get_registry()
    names = {s.name for s in registry.list("backbone", "prithvi:*")}
    assert names == set(ARCH) | set(SWIN_VARIANTS)
    model = registry.build("backbone", "prithvi:prithvi_eo_v2_tiny_tl",
                           embed_dim=32, depth=1, num_heads=2, bands=["RED", "NIR_NARROW"])
    assert model.in_chans == 2
    with pytest.raises(ComponentArgumentError, match=r"num_frame.*num_frames"):
        registry.build("backbone", "prithvi:prithvi_eo_v2_300", num_frame=2)
    described = registry.describe("backbone", "prithvi:prithvi_eo_v2_300")
    for argument in ("bands", "num_frames", "pretrained", "ckpt_path", "out_indices"):
        assert argument in described["signature"] and argument in described["doc"]


def test_every_variant_is_one_documented_factory_of_the_table():
    registry = get_registry()
    for name, spec in VARIANTS.items():
        factory = getattr(configs, name)
        assert factory is configs.FACTORIES[name] and factory.args == (name,)
        doc = registry.describe("backbone", f"prithvi:{name}")["doc"]
        patch = spec.patch_size[-1]
        assert f"embed {spec.embed_dim}, depth {spec.depth}, {spec.num_heads} heads, " \
               f"patch {patch}" in doc
        assert spec.weights.repo_id in doc and "PRITHVI_V" in doc and "variant:" not in doc
        assert ("temporal_coords" in doc) is spec.coords_encoding
    assert set(configs.FACTORIES) == set(VARIANTS)
    with pytest.raises(AttributeError, match="prithvi_eo_v9"):
        configs.prithvi_eo_v9  # noqa: B018


def test_type_errors_name_the_argument():
    with pytest.raises(ComponentArgumentError, match=r"'num_frames' expects int"):
        get_registry().build("backbone", "prithvi:prithvi_eo_v1_100", num_frames="three")


def test_hls_band_names_are_the_cores():
    from geofm_core.data.bands import HLSBands

    assert geofm_prithvi.HLS_BANDS == tuple(b.value for b in HLSBands)


def _geofm() -> str:
    exe = Path(sys.executable).with_name("geofm")
    return str(exe) if exe.exists() else (shutil.which("geofm") or "geofm")


def test_cli_lists_and_describes():
    listed = subprocess.run([_geofm(), "list", "backbone", "prithvi:*"], capture_output=True,
                            text=True, check=True).stdout
    for name in [*ARCH, *SWIN_VARIANTS]:
        assert f"prithvi:{name}" in listed
    described = subprocess.run([_geofm(), "describe", "backbone", "prithvi:prithvi_eo_v2_300"],
                               capture_output=True, text=True, check=True).stdout
    assert "ckpt_path" in described and "Prithvi-EO-2.0-300M" in described
    described = subprocess.run([_geofm(), "describe", "backbone", "prithvi:prithvi_swin_b"],
                               capture_output=True, text=True, check=True).stdout
    assert "window_size" in described and "granite-geospatial-biomass" in described


def test_plugin_module_imports_no_torch():
    code = ("import sys, geofm_prithvi._plugin as p; assert len(p.COMPONENTS) == 10; "
            "assert 'torch' not in sys.modules, 'torch imported'")
    subprocess.run([sys.executable, "-c", code], check=True)


def test_declared_metadata_matches_the_built_models() -> None:
    """The light metadata (parameters, patch size) agrees with the architecture."""
    from geofm_prithvi._plugin import variant_metadata

    from geofm_core.metadata import parse_metadata

    for name, spec in VARIANTS.items():
        meta = parse_metadata(variant_metadata(spec))
        assert meta is not None
        with torch.device("meta"):
            model = configs.FACTORIES[name]()
        assert meta.parameters == sum(p.numel() for p in model.parameters()), name
        assert meta.patch_size == model.patch_size[-1]
        assert meta.multi_temporal and (bool(meta.forward_metadata) == spec.coords_encoding)
        (weights,) = meta.weights
        assert weights.name == spec.weights.repo_id and weights.license == "Apache-2.0"
        assert weights.mean == spec.mean and weights.bands == tuple(model.bands)


def test_loaded_weights_declare_their_bands(tmp_path, official) -> None:
    state = official(layout="v2", embed_dim=32, depth=1)
    path = tmp_path / "c.pt"
    torch.save(state, path)
    model = configs.prithvi_eo_v2_300(ckpt_path=str(path), bands=["RED", "BLUE"],
                                      embed_dim=32, depth=1, num_heads=2)
    assert model.pretrained_bands == PRETRAINED_BANDS and model.bands == ["RED", "BLUE"]
    assert configs.prithvi_eo_v2_300(embed_dim=32, depth=1, num_heads=2).pretrained_bands is None
