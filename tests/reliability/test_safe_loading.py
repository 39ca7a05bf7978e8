"""Safe loading: weights_only=True everywhere, unsafe pickles refused, safetensors round trip."""

from __future__ import annotations

import json
import os
import pickle
import re
from pathlib import Path
from typing import Any

import pytest
import torch

from geofm_core.cli import main
from geofm_core.errors import ConfigurationError

ROOT = Path(__file__).resolve().parents[2]


def test_every_torch_load_is_weights_only() -> None:
    """A static check over the core and the plugins: no torch.load without weights_only=True."""
    offenders = []
    sources = [*(ROOT / "src").rglob("*.py"), *(ROOT / "plugins").glob("*/src/**/*.py")]
    assert sources
    for path in sources:
        text = path.read_text()
        for match in re.finditer(r"torch\.load\(", text):
            call = text[match.start(): text.find(")", match.start()) + 1]
            if "weights_only=True" not in call:
                offenders.append(f"{path.relative_to(ROOT)}: {call}")
    assert not offenders, offenders


class _Exploit:
    marker = ""

    def __reduce__(self) -> tuple[Any, ...]:
        return (os.system, (f"touch {self.marker}",))


def _task_from(trained: dict[str, Path], **extra: Any) -> Any:
    from geofm_core.tasks import SemanticSegmentationTask

    hparams = torch.load(trained["ckpt"], map_location="cpu",
                         weights_only=True)["hyper_parameters"]
    hparams = {k: v for k, v in hparams.items() if not k.startswith("_")} | extra
    return SemanticSegmentationTask(**hparams)


def test_safetensors_export_and_round_trip(trained: dict[str, Path], tmp_path: Path,
                                           capsys: pytest.CaptureFixture[str]) -> None:
    from safetensors import safe_open

    out = tmp_path / "model.safetensors"
    assert main(["export", "safetensors", "--ckpt", str(trained["ckpt"]),
                 "--output", str(out)]) == 0
    assert "wrote" in capsys.readouterr().out
    with safe_open(str(out), framework="pt") as handle:
        meta = handle.metadata()
        keys = set(handle.keys())
    assert meta["geofm_task_class"].endswith("SemanticSegmentationTask")
    assert json.loads(meta["hyper_parameters"])["num_classes"] == 3
    state = torch.load(trained["ckpt"], map_location="cpu", weights_only=True)["state_dict"]
    model_state = {k.removeprefix("model."): v for k, v in state.items()
                   if k.startswith("model.")}
    assert keys == set(model_state)

    task = _task_from(trained, weights_path=str(out))  # a fresh model, weights from the file
    loaded = task.model.state_dict()
    assert all(torch.equal(loaded[k], model_state[k]) for k in model_state)
    fresh = _task_from(trained).model.state_dict()
    assert not all(torch.equal(fresh[k], model_state[k]) for k in model_state
                   if fresh[k].is_floating_point())

    assert main(["export", "safetensors", "--ckpt", str(trained["ckpt"]),
                 "--output", str(out)]) == 1  # exists
    assert "--overwrite" in capsys.readouterr().err
    assert main(["export", "safetensors", "--ckpt", str(trained["ckpt"]),
                 "--output", str(out), "--overwrite"]) == 0
    assert not list(tmp_path.glob(".*partial"))


def test_weights_path_in_a_config_trains_from_safetensors(
    trained: dict[str, Path], tmp_path: Path, dataset: dict[str, Path],
) -> None:
    from .conftest import seg_config, write_config

    weights = tmp_path / "w.safetensors"
    assert main(["export", "safetensors", "--ckpt", str(trained["ckpt"]),
                 "--output", str(weights)]) == 0
    config = seg_config(dataset, tmp_path / "run")
    config["trainer"]["logger"] = False
    config["trainer"]["max_steps"] = 0  # build, load, validate: no update
    config["model"]["init_args"]["weights_path"] = str(weights)
    assert main(["validate", "-c", str(write_config(config, tmp_path / "c.yaml"))]) == 0


def test_weights_of_another_model_are_refused(trained: dict[str, Path], tmp_path: Path) -> None:
    out = tmp_path / "model.safetensors"
    assert main(["export", "safetensors", "--ckpt", str(trained["ckpt"]),
                 "--output", str(out)]) == 0
    with pytest.raises(ConfigurationError, match="weights of another model"):
        _task_from(trained, weights_path=str(out), num_classes=5)


def test_unsafe_pickle_as_weights_is_refused(trained: dict[str, Path], tmp_path: Path) -> None:
    exploit = _Exploit()
    exploit.marker = str(tmp_path / "pwned")
    bad = tmp_path / "weights.pt"
    with bad.open("wb") as f:
        pickle.dump({"conv.weight": exploit}, f)
    with pytest.raises(ConfigurationError, match="refused to load"):
        _task_from(trained, weights_path=str(bad))
    assert not (tmp_path / "pwned").exists()
    torn = tmp_path / "torn.safetensors"
    torn.write_bytes(b"\x10\x00\x00\x00\x00\x00\x00\x00{")
    with pytest.raises(ConfigurationError, match="not a readable safetensors"):
        _task_from(trained, weights_path=str(torn))
