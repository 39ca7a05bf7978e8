"""Running `geofm fit` again: --overwrite keeps the documented names; fast_dev_run writes nothing.

Also: last.ckpt is the last state, whether or not the monitored metric improved.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
import torch

from geofm_core.cli import main

from .conftest import geofm_exe, seg_config, subprocess_env, write_config


def _config(dataset: dict[str, Path], run: Path) -> Path:
    config = seg_config(dataset, run)
    config["trainer"]["logger"] = False
    return write_config(config, run.parent / "config.yaml")


def test_fit_overwrite_makes_last_ckpt_the_new_runs(
    tmp_path: Path, dataset: dict[str, Path],
) -> None:
    run = tmp_path / "run"
    path = _config(dataset, run)
    assert main(["fit", "-c", str(path)]) == 0
    folder = run / "checkpoints"
    first = (folder / "last.ckpt").read_bytes()
    assert main(["fit", "-c", str(path), "--overwrite", "--trainer.max_epochs", "2"]) == 0
    last = torch.load(folder / "last.ckpt", map_location="cpu", weights_only=True)
    assert last["global_step"] == 4 and last["epoch"] == 1  # the second run's, not the first's
    assert not list(folder.glob("last-v*.ckpt"))
    assert len(list(folder.glob("best-*.ckpt"))) == 1
    replaced = [p for p in run.iterdir() if p.name != "checkpoints" and p.is_dir()]
    assert len(replaced) == 1 and replaced[0].name.startswith("checkpoints-replaced-")
    assert (replaced[0] / "last.ckpt").read_bytes() == first  # moved aside, not lost


def test_last_ckpt_is_the_last_epoch_also_when_the_metric_did_not_improve(
    tmp_path: Path, dataset: dict[str, Path], monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Lightning 2.6 alone leaves last.ckpt at the best epoch then."""
    monkeypatch.syspath_prepend(str(Path(__file__).parent))
    run = tmp_path / "run"
    config = seg_config(dataset, run)
    config["trainer"].update({"logger": False, "max_epochs": 3, "callbacks": [
        {"class_path": "reliability_callbacks.WorseningValLoss"}]})
    assert main(["fit", "-c", str(write_config(config, tmp_path / "c.yaml"))]) == 0
    folder = run / "checkpoints"
    last = torch.load(folder / "last.ckpt", map_location="cpu", weights_only=True)
    assert last["global_step"] == 6 and last["epoch"] == 2
    assert [p.name for p in folder.glob("best-*.ckpt")] == ["best-0-2.ckpt"]


def test_fast_dev_run_writes_no_checkpoint_and_can_be_rerun(
    tmp_path: Path, dataset: dict[str, Path],
) -> None:
    """The fix-the-config-and-rerun loop, through the real `geofm` process."""
    run = tmp_path / "run"
    command = [geofm_exe(), "fit", "-c", str(_config(dataset, run)), "--trainer.fast_dev_run",
               "1"]
    for _ in range(2):
        done = subprocess.run(command, capture_output=True, text=True, timeout=300,
                              env=subprocess_env())
        assert done.returncode == 0, done.stderr[-3000:]
        assert "already holds checkpoints" not in done.stderr
        assert not list(tmp_path.rglob("*.ckpt"))
