"""Shared helpers: official-layout weight folders and an offline Hugging Face cache."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from geofm_galileo.constants import HF_REPO_ID, VARIANTS, GalileoVariant
from geofm_galileo.encoder import GalileoEncoder

from geofm_core.testing import sen1floods11_chips

FIXTURES = Path(__file__).resolve().parent / "fixtures"
COMMIT = "0123456789abcdef0123456789abcdef01234567"


def official_config(spec: GalileoVariant) -> dict[str, object]:
    """A ``config.json`` as the official folders hold it (training section shortened)."""
    encoder = {"embedding_size": spec.embedding_size, "depth": spec.depth,
               "num_heads": spec.num_heads, "mlp_ratio": int(spec.mlp_ratio),
               "max_sequence_length": spec.max_sequence_length, "freeze_projections": False,
               "drop_path": 0.1, "max_patch_size": spec.max_patch_size}
    return {"training": {"patch_sizes": [1, 2, 3, 4, 5, 6, 7, 8]},
            "model": {"encoder": encoder, "decoder": {"depth": 2}}}


def random_official_state(spec: GalileoVariant, seed: int = 0) -> dict[str, torch.Tensor]:
    """Random weights of a variant under the official names, one with ``.backbone`` in it.

    The names are the encoder's, which the parity test checks against the reference's
    file strictly; the stray ``.backbone`` is what some official files carry.
    """
    torch.manual_seed(seed)
    encoder = GalileoEncoder(spec.embedding_size, spec.depth, spec.num_heads, spec.mlp_ratio,
                             spec.max_sequence_length, spec.max_patch_size)
    state = {k: torch.randn_like(v) for k, v in encoder.state_dict().items()}
    state["blocks.0.backbone.attn.q.weight"] = state.pop("blocks.0.attn.q.weight")
    return state


def write_folder(folder: Path, spec: GalileoVariant, state: dict[str, torch.Tensor]) -> Path:
    """``encoder.pt`` and ``config.json`` in ``folder``, as the Hub's ``models/<name>``."""
    folder.mkdir(parents=True, exist_ok=True)
    torch.save(state, folder / "encoder.pt")
    (folder / "config.json").write_text(json.dumps(official_config(spec)))
    return folder


class Official:
    """The helpers above, handed to tests by the ``official`` fixture."""

    config = staticmethod(official_config)
    state = staticmethod(random_official_state)
    write = staticmethod(write_folder)
    fixtures = FIXTURES


@pytest.fixture
def official() -> type[Official]:
    """Helpers that write official-layout files (``official.write(folder, spec, state)``)."""
    return Official


@pytest.fixture
def offline_hub(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An empty hub cache read with HF_HUB_OFFLINE=1; returns the repo's snapshot folder."""
    home = tmp_path / "hf_home"
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HOME", str(home))
    monkeypatch.delenv("HF_HUB_CACHE", raising=False)
    monkeypatch.delenv("HUGGINGFACE_HUB_CACHE", raising=False)
    monkeypatch.delenv("GEOFM_GALILEO_WEIGHTS_DIR", raising=False)
    repo = home / "hub" / ("models--" + HF_REPO_ID.replace("/", "--"))
    (repo / "refs").mkdir(parents=True)
    (repo / "refs" / "main").write_text(COMMIT)
    return repo / "snapshots" / COMMIT


@pytest.fixture
def cached_variant(offline_hub: Path):
    """Put random official files of a variant into the offline cache; return the state."""

    def put(name: str) -> dict[str, torch.Tensor]:
        spec = VARIANTS[name]
        state = random_official_state(spec)
        write_folder(offline_hub / spec.folder, spec, state)
        return state

    return put


@pytest.fixture
def chips(tmp_path: Path) -> Path:
    """The real Sen1Floods11 S2 chip and its label in a folder of their own."""
    return sen1floods11_chips(tmp_path)
