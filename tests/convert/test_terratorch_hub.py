"""Published TerraTorch models by repo id, read from a local Hugging Face cache (offline).

The cache is written in the hub's documented layout: ``models--<org>--<name>/`` with
``refs/main`` naming a commit, ``blobs/<hash>`` holding the bytes and
``snapshots/<commit>/<file>`` linking to them.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest
import yaml

from geofm_core.convert.terratorch import rule_book
from geofm_core.convert.terratorch.hub import resolve_hub_model
from geofm_core.errors import ConfigurationError

COMMIT = "0123456789abcdef0123456789abcdef01234567"
SEN1FLOODS11 = "ibm-nasa-geospatial/Prithvi-EO-2.0-300M-TL-Sen1Floods11"


def cache_repo(cache: Path, repo_id: str, files: dict[str, bytes]) -> Path:
    """Write ``files`` as the cached ``main`` snapshot of ``repo_id``; return the snapshot."""
    repo = cache / ("models--" + repo_id.replace("/", "--"))
    (repo / "refs").mkdir(parents=True)
    (repo / "refs" / "main").write_text(COMMIT)
    snapshot = repo / "snapshots" / COMMIT
    for name, data in files.items():
        blob = repo / "blobs" / hashlib.sha256(data).hexdigest()
        blob.parent.mkdir(parents=True, exist_ok=True)
        blob.write_bytes(data)
        link = snapshot / name
        link.parent.mkdir(parents=True, exist_ok=True)
        link.symlink_to(Path("..", "..", "blobs", blob.name) if "/" not in name else blob)
    return snapshot


@pytest.fixture
def offline(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    cache = tmp_path / "hub"
    cache.mkdir()
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HUB_CACHE", str(cache))
    return cache


def test_a_known_model_resolves_to_its_cached_config_and_checkpoint(offline: Path) -> None:
    # The Prithvi plugin declares the file names of the models published for its backbones.
    config, checkpoint = rule_book().published()[SEN1FLOODS11]
    assert checkpoint == "Prithvi-EO-V2-300M-TL-Sen1Floods11.pt"
    text = yaml.safe_dump({"model": {"class_path": "terratorch.tasks.SemanticSegmentationTask"}})
    snapshot = cache_repo(offline, SEN1FLOODS11, {
        config: text.encode(), checkpoint: b"not a real checkpoint", "README.md": b"# card"})
    model = resolve_hub_model(SEN1FLOODS11)
    assert model.config == snapshot / config
    assert model.checkpoint == snapshot / checkpoint
    assert yaml.safe_load(model.config.read_text())["model"]["class_path"].startswith(
        "terratorch.")
    other = resolve_hub_model(SEN1FLOODS11, known={SEN1FLOODS11: ("README.md", config)})
    assert (other.config.name, other.checkpoint.name) == ("README.md", config)


def test_an_unlisted_model_needs_exactly_one_config_and_checkpoint(offline: Path) -> None:
    repo = "someone/my-terratorch-model"
    snapshot = cache_repo(offline, repo, {"finetune.yaml": b"trainer: {}\n",
                                          "best.ckpt": b"x", "notes.txt": b"x"})
    model = resolve_hub_model(repo)
    assert (model.config, model.checkpoint) == (snapshot / "finetune.yaml",
                                                snapshot / "best.ckpt")
    two = "someone/two-checkpoints"
    cache_repo(offline, two, {"config.yaml": b"x", "a.ckpt": b"x", "b.pt": b"x"})
    with pytest.raises(ConfigurationError, match=r"several checkpoint files .*a\.ckpt, b\.pt"):
        resolve_hub_model(two)
    assert resolve_hub_model(two, checkpoint_file="b.pt").checkpoint.name == "b.pt"


def test_an_mmsegmentation_model_is_told_apart(offline: Path) -> None:
    repo = "ibm-nasa-geospatial/Prithvi-EO-1.0-100M-multi-temporal-crop-classification"
    cache_repo(offline, repo, {"multi_temporal_crop_classification_Prithvi_100M.py": b"x",
                               "multi_temporal_crop_classification_Prithvi_100M.pth": b"x"})
    with pytest.raises(ConfigurationError, match="not a TerraTorch model"):
        resolve_hub_model(repo)


def test_a_model_missing_from_the_offline_cache_names_the_cache(offline: Path) -> None:
    with pytest.raises(ConfigurationError, match=r"not in the hub cache .*HF_HUB_OFFLINE"):
        resolve_hub_model(SEN1FLOODS11)
    with pytest.raises(ConfigurationError, match="not in the hub cache"):
        resolve_hub_model("someone/absent")
    with pytest.raises(ConfigurationError, match="not a Hugging Face repo id"):
        resolve_hub_model("no-slash")


def test_geofm_convert_hf_writes_a_geofm_checkpoint_of_a_published_model(
        offline: Path, tmp_path: Path) -> None:
    """`geofm convert terratorch --hf REPO -o model.ckpt`, offline, from the hub cache."""
    from geofm_core.cli import main
    from geofm_core.inference.checkpoint import load_task

    fixtures = Path(__file__).parent / "fixtures" / "terratorch"
    repo = "example-org/prithvi-v1-upernet-finetuned"
    cache_repo(offline, repo, {
        "config.yaml": (fixtures / "prithvi_v1_upernet.yaml").read_bytes(),
        "model.ckpt": (fixtures / "prithvi_v1_upernet.ckpt").read_bytes(),
        "README.md": b"# card"})
    out = tmp_path / "model.ckpt"
    assert main(["convert", "terratorch", "--hf", repo, "-o", str(out)]) == 0
    task = load_task(out)
    assert type(task).__name__ == "SemanticSegmentationTask"
    assert main(["convert", "terratorch", "--hf", repo, "config.yaml", "-o",
                 str(tmp_path / "x.ckpt")]) == 1
    assert main(["convert", "terratorch", "--hf", "example-org/not-cached", "-o",
                 str(tmp_path / "y.ckpt")]) == 1
    assert not (tmp_path / "x.ckpt").exists() and not (tmp_path / "y.ckpt").exists()
