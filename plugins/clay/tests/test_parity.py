"""Parity with TerraTorch's Clay v1 and v1.5 encoders (fixtures from its own code, see scripts/).

The fixtures hold reduced-size encoders with random weights in the official checkpoint
layout, fixed inputs, and every block's tokens as TerraTorch computed them (v1:
``EmbeddingEncoder``, the encoder of ``clay_v1_base``; v1.5: ``Encoder`` without
masking). They are loaded here through the plugin's own checkpoint loader.
"""

from __future__ import annotations

import warnings

import pytest
import torch
from geofm_clay.backbones import build_clay
from geofm_clay.encoder import ClayEncoder, encode_location, encode_time
from geofm_clay.weights import DroppedWeightsWarning, load_checkpoint

VARIANT = {"v1": "clay_v1_base", "v1.5": "clay_v1_5_base"}
TOLERANCE = 1e-5


@pytest.fixture(autouse=True)
def _highest_precision():
    previous = torch.get_float32_matmul_precision()
    torch.set_float32_matmul_precision("highest")
    yield
    torch.set_float32_matmul_precision(previous)


def _model(fixture, tmp_path) -> tuple[ClayEncoder, dict]:
    arch = fixture.arch
    model = build_clay(VARIANT[fixture.version],
                       wavelengths=fixture.inputs["waves"].tolist(), gsd=fixture.gsd,
                       dim=int(arch["dim"]), depth=int(arch["depth"]), heads=int(arch["heads"]),
                       dim_head=int(arch["dim_head"]), mlp_ratio=float(arch["mlp_ratio"]))
    path = tmp_path / "official.ckpt"
    torch.save({"state_dict": fixture.state_dict}, path)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        dropped = load_checkpoint(model, path)
    assert dropped == {"model.decoder.*": 1, "model.teacher.*": 1}
    assert any(issubclass(w.category, DroppedWeightsWarning) and "model.teacher.*" in str(w.message)
               for w in caught)
    return model.eval(), fixture.inputs


@pytest.mark.parametrize("version", ["v1", "v1.5"])
def test_every_block_matches_terratorch(version, parity, tmp_path):
    fixture = parity(version)
    model, inputs = _model(fixture, tmp_path)
    assert len(fixture.levels) == model.depth
    with torch.no_grad():
        levels = model.forward_encoded(inputs["pixels"], inputs["time"], inputs["latlon"])
    assert len(levels) == len(fixture.levels)
    for i, (ours, theirs) in enumerate(zip(levels, fixture.levels, strict=True)):
        assert ours.shape == theirs.shape, f"block {i}"
        diff = (ours - theirs).abs().max().item()
        assert diff < TOLERANCE, f"{version} block {i}: max abs diff {diff:.2e}"
    # the outputs are not trivially equal across blocks (a test that can fail)
    assert (fixture.levels[0] - fixture.levels[-1]).abs().max() > 1e-2


@pytest.mark.parametrize("version", ["v1", "v1.5"])
def test_metadata_changes_the_tokens(version, parity, tmp_path):
    model, inputs = _model(parity(version), tmp_path)
    with torch.no_grad():
        with_metadata = model.forward_encoded(inputs["pixels"], inputs["time"], inputs["latlon"])
        without = model.forward_encoded(inputs["pixels"])
        model.gsd = 1.0
        other_gsd = model.forward_encoded(inputs["pixels"], inputs["time"], inputs["latlon"])
    assert (with_metadata[-1] - without[-1]).abs().max() > 1e-3
    assert (with_metadata[-1] - other_gsd[-1]).abs().max() > 1e-3


def test_forward_encodes_geofm_coordinates_as_clay(parity, tmp_path):
    model, inputs = _model(parity("v1.5"), tmp_path)
    temporal = torch.tensor([[2024.0, 45.5], [2019.0, 200.0]])
    location = torch.tensor([[48.1, 11.6], [-33.9, 151.2]])
    with torch.no_grad():
        direct = model(inputs["pixels"], temporal_coords=temporal[:, None],
                       location_coords=location)
        encoded = model.forward_encoded(inputs["pixels"], encode_time(temporal),
                                        encode_location(location))
    for a, b in zip(direct, encoded, strict=True):
        torch.testing.assert_close(a, b, rtol=0, atol=0)


def test_encode_metadata_off_keeps_the_channels_zero(parity, tmp_path):
    model, inputs = _model(parity("v1"), tmp_path)
    model.encode_metadata = False
    coords = {"temporal_coords": torch.tensor([[2024.0, 45.0]] * 2),
              "location_coords": torch.tensor([[48.1, 11.6]] * 2)}
    with torch.no_grad():
        ignored = model(inputs["pixels"], **coords)
        zeros = model.forward_encoded(inputs["pixels"])
        model.encode_metadata = True
        used = model(inputs["pixels"], **coords)
    torch.testing.assert_close(ignored[-1], zeros[-1], rtol=0, atol=0)
    assert (used[-1] - zeros[-1]).abs().max() > 1e-3
