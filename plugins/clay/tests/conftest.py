"""Shared helpers: the parity fixtures as official-layout checkpoints, a clean hub cache."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import pytest
import torch
from safetensors import safe_open
from safetensors.torch import load_file

FIXTURES = Path(__file__).resolve().parent / "fixtures"


@dataclass
class Parity:
    """One parity fixture: the official-layout state dict, inputs, expected block tokens."""

    version: str
    arch: dict[str, float]
    gsd: float
    state_dict: dict[str, torch.Tensor]
    inputs: dict[str, torch.Tensor]
    levels: list[torch.Tensor]


def load_parity(version: str) -> Parity:
    """Read ``clay_<version>.safetensors``, regenerating the seeded tensors (checked)."""
    path = FIXTURES / f"clay_{version.replace('.', '_')}.safetensors"
    tensors = load_file(str(path))
    with safe_open(str(path), framework="pt") as handle:
        meta = handle.metadata()
    state = {k: v for k, v in tensors.items() if k.startswith("model.")}
    for key in [k for k in tensors if k.startswith("seed.")]:
        name = key[len("seed."):]
        seed, scale = tensors[key].tolist()
        shape = tuple(int(s) for s in tensors[f"shape.{name}"].tolist())
        value = torch.randn(shape, generator=torch.Generator().manual_seed(int(seed))) * scale
        flat = value.double().flatten()
        found = torch.cat((flat.sum()[None], (flat * flat).sum()[None], flat[:4]))
        assert torch.allclose(found, tensors[f"check.{name}"], rtol=1e-6, atol=1e-6), (
            f"{name}: this torch's seeded randn differs from the fixture's; regenerate the "
            "fixtures with scripts/make_parity_fixtures.py")
        state[name] = value
    inputs = {k[len("input."):]: v for k, v in tensors.items() if k.startswith("input.")}
    count = sum(1 for k in tensors if k.startswith("level."))
    levels = [tensors[f"level.{i}"] for i in range(count)]
    return Parity(meta["version"], json.loads(meta["arch"]), float(meta["gsd"]), state,
                  inputs, levels)


@pytest.fixture
def clean_hub_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    """No network, an empty HF cache (returned), no local weights folder."""
    home = tmp_path / "hf_home"
    home.mkdir()
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HOME", str(home))
    monkeypatch.delenv("HF_HUB_CACHE", raising=False)
    monkeypatch.delenv("HUGGINGFACE_HUB_CACHE", raising=False)
    monkeypatch.delenv("GEOFM_CLAY_WEIGHTS_DIR", raising=False)
    return home / "hub"


def fill_hub_cache(cache: Path, repo_id: str, filename: str, state: dict) -> Path:
    """Write ``state`` as a Lightning checkpoint where huggingface_hub's cache keeps it."""
    repo = cache / f"models--{repo_id.replace('/', '--')}"
    commit = "0" * 40
    (repo / "refs").mkdir(parents=True)
    (repo / "refs" / "main").write_text(commit)
    file = repo / "snapshots" / commit / filename
    file.parent.mkdir(parents=True)
    torch.save({"state_dict": state, "epoch": 1}, file)
    return file


@pytest.fixture
def parity() -> type[Parity] | object:
    """``parity("v1")``: a parity fixture (see :func:`load_parity`)."""
    return load_parity


@pytest.fixture
def hub_file() -> object:
    """``hub_file(cache, repo_id, filename, state)`` (see :func:`fill_hub_cache`)."""
    return fill_hub_cache
