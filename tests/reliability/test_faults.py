"""Faults: training killed with SIGKILL and resumed, inference killed mid-raster, DDP on CPU."""

from __future__ import annotations

import json
import re
import signal
import subprocess
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from geofm_core.cli import main

from .conftest import (
    BANDS,
    geofm_exe,
    seg_config,
    subprocess_env,
    write_config,
    write_tif,
)

CKPT = "lightning.pytorch.callbacks.ModelCheckpoint"


def _resume_config(dataset: dict[str, Path], run: Path, *callbacks: dict[str, Any]
                   ) -> dict[str, Any]:
    """2 steps per epoch, 3 epochs, a last.ckpt after every step, deterministic."""
    config = seg_config(dataset, run)
    config["trainer"].update({
        "max_epochs": 3, "limit_train_batches": 2, "limit_val_batches": 2, "logger": False,
        "deterministic": True,
        "callbacks": [
            {"class_path": CKPT, "init_args": {"every_n_train_steps": 1, "save_last": True}},
            {"class_path": "reliability_callbacks.DumpMetrics",
             "init_args": {"folder": str(run / "metrics")}},
            *callbacks,
        ],
    })
    return config


def _state(ckpt: Path) -> dict[str, Any]:
    return torch.load(ckpt, map_location="cpu", weights_only=True)


def test_sigkill_mid_epoch_then_resume_matches_an_uninterrupted_run(
    tmp_path: Path, dataset: dict[str, Path], monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.syspath_prepend(str(Path(__file__).parent))
    straight = tmp_path / "straight"
    config = write_config(_resume_config(dataset, straight), tmp_path / "straight.yaml")
    assert main(["fit", "-c", str(config)]) == 0

    killed = tmp_path / "killed"
    kill = {"class_path": "reliability_callbacks.KillAtStep", "init_args": {"step": 4}}
    config = write_config(_resume_config(dataset, killed, kill), tmp_path / "killed.yaml")
    done = subprocess.run([geofm_exe(), "fit", "-c", str(config)], capture_output=True,
                          text=True, timeout=300, env=subprocess_env())
    assert done.returncode == -signal.SIGKILL, done.stderr[-3000:]
    last = killed / "checkpoints" / "last.ckpt"
    saved = _state(last)
    # killed after step 4; the newest checkpoint is mid-epoch: epoch 1, one batch done
    assert saved["global_step"] == 3 and saved["epoch"] == 1
    loader_state = saved["loops"]["fit_loop"]["state_dict"]["combined_loader"][0]
    assert loader_state["batches"] == 1 and loader_state["epoch"] == 1

    config = write_config(_resume_config(dataset, killed), tmp_path / "resume.yaml")
    assert main(["fit", "-c", str(config), "--ckpt_path", "last"]) == 0

    a, b = _state(straight / "checkpoints" / "last.ckpt"), _state(last)
    assert a["global_step"] == b["global_step"] == 6
    assert a["state_dict"].keys() == b["state_dict"].keys()
    for key in a["state_dict"]:
        assert torch.equal(a["state_dict"][key], b["state_dict"][key]), key
    moments_a = a["optimizer_states"][0]["state"]
    moments_b = b["optimizer_states"][0]["state"]
    for index in moments_a:
        assert torch.equal(moments_a[index]["exp_avg"], moments_b[index]["exp_avg"])
    metrics_a = json.loads((straight / "metrics" / "metrics_rank0.json").read_text())
    metrics_b = json.loads((killed / "metrics" / "metrics_rank0.json").read_text())
    assert metrics_a == metrics_b
    assert "val/loss" in metrics_a and "val/mIoU" in metrics_a


def test_sigkill_mid_raster_leaves_no_output_and_a_rerun_completes(
    tmp_path: Path, trained: dict[str, Path],
) -> None:
    rng = np.random.default_rng(0)
    source = write_tif(tmp_path / "scene.tif",
                       rng.normal(0, 1, (BANDS, 1024, 1024)).astype(np.float32))
    out = tmp_path / "out" / "pred.tif"
    out.parent.mkdir()
    command = [geofm_exe(), "infer", "--ckpt", str(trained["ckpt"]), str(source), str(out),
               "--crop", "32", "--stride", "32", "--batch-size", "4"]
    log = tmp_path / "stderr.txt"
    with log.open("w") as err:
        proc = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=err,
                                env=subprocess_env())
        deadline = time.monotonic() + 240
        progressed = False
        while time.monotonic() < deadline and proc.poll() is None:
            text = log.read_text(errors="replace")
            counts = [int(m) for m in re.findall(r"\| *(\d+)/\d+ ", text)]
            if counts and max(counts) >= 8:
                progressed = True
                break
            time.sleep(0.2)
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=60)
    assert progressed, log.read_text()[-2000:]
    assert proc.returncode == -signal.SIGKILL
    assert not out.exists()
    leftovers = list(out.parent.glob(".pred.tif.*.partial.tif"))
    assert leftovers  # SIGKILL allows no clean-up: the hidden partial file stays...
    rerun = [*command[:-1], "256", "--no-progress"]  # bigger batches: the rerun just has to end
    done = subprocess.run(rerun, capture_output=True, text=True,
                          timeout=300, env=subprocess_env())
    assert done.returncode == 0, done.stderr[-3000:]
    assert out.is_file()
    assert not any(p.exists() for p in leftovers)  # ...and the next run removes it
    assert sorted(p.name for p in out.parent.iterdir()) == ["pred.tif"]


def test_ddp_on_cpu_two_processes_sync_metrics_and_write_one_checkpoint(
    tmp_path: Path, dataset: dict[str, Path],
) -> None:
    run = tmp_path / "run"
    config = seg_config(dataset, run)
    config["trainer"]["callbacks"] = [{"class_path": "reliability_callbacks.DumpMetrics",
                                       "init_args": {"folder": str(run / "metrics")}}]
    config["trainer"]["limit_val_batches"] = 2
    path = write_config(config, tmp_path / "ddp.yaml")
    done = subprocess.run(
        [geofm_exe(), "fit", "-c", str(path), "--trainer.strategy", "ddp",
         "--trainer.devices", "2", "--trainer.accelerator", "cpu"],
        capture_output=True, text=True, timeout=400, env=subprocess_env(),
    )
    assert done.returncode == 0, done.stderr[-4000:]
    ranks = [json.loads((run / "metrics" / f"metrics_rank{r}.json").read_text())
             for r in (0, 1)]
    # each rank validated its own half of the data; the logged epoch values are the same
    assert "val/loss" in ranks[0] and "val/mIoU" in ranks[0]
    assert ranks[0] == ranks[1]
    checkpoints = sorted(p.relative_to(run) for p in run.rglob("*.ckpt"))
    assert [p.name for p in checkpoints if p.name.startswith("best-")] == ["best-0-1.ckpt"]
    assert [p.name for p in checkpoints if p.name == "last.ckpt"] == ["last.ckpt"]
    assert len(checkpoints) == 2, checkpoints
    assert len(list((run / "logs").glob("lightning_logs/version_*"))) == 1


def test_sigterm_saves_a_resumable_checkpoint_and_exits_non_zero(
    tmp_path: Path, dataset: dict[str, Path],
) -> None:
    """A scheduler's SIGTERM mid-epoch: exit 143 with a message, then resume to the same end."""
    def config(run: Path, *callbacks: dict[str, Any]) -> Path:
        cfg = seg_config(dataset, run)
        cfg["trainer"].update({"max_epochs": 3, "logger": False, "deterministic": True,
                               "callbacks": list(callbacks)})
        return write_config(cfg, run.parent / f"{run.name}-{len(callbacks)}.yaml")

    straight, stopped = tmp_path / "straight", tmp_path / "stopped"
    assert main(["fit", "-c", str(config(straight))]) == 0
    term = {"class_path": "reliability_callbacks.TermAtStep", "init_args": {"step": 3}}
    done = subprocess.run([geofm_exe(), "fit", "-c", str(config(stopped, term))],
                          capture_output=True, text=True, timeout=300, env=subprocess_env())
    last = stopped / "checkpoints" / "last.ckpt"
    assert done.returncode == 143, done.stderr[-3000:]
    assert "Traceback" not in done.stderr
    error = next(line for line in done.stderr.splitlines() if line.startswith("error:"))
    assert "SIGTERM" in error and str(last) in error and "--ckpt_path last" in error
    saved = _state(last)  # mid-epoch: epoch 1 of 2 steps each, one batch done
    assert saved["global_step"] == 3 and saved["epoch"] == 1

    done = subprocess.run([geofm_exe(), "fit", "-c", str(config(stopped)), "--ckpt_path",
                           "last"], capture_output=True, text=True, timeout=300,
                          env=subprocess_env())
    assert done.returncode == 0, done.stderr[-3000:]
    a, b = _state(straight / "checkpoints" / "last.ckpt"), _state(last)
    assert a["global_step"] == b["global_step"] == 6
    for key in a["state_dict"]:
        assert torch.equal(a["state_dict"][key], b["state_dict"][key]), key
    assert not list(last.parent.glob("last-v*.ckpt"))  # one last.ckpt, continued


def _last_only_config(dataset: dict[str, Path], run: Path, path: Path) -> Path:
    """One epoch more on each resume, saving only last.ckpt (the file at stake)."""
    cfg = seg_config(dataset, run)
    cfg["trainer"].update({"max_epochs": 1, "logger": False, "callbacks": [
        {"class_path": CKPT, "init_args": {"save_top_k": 0, "save_last": True}}]})
    return write_config(cfg, path)


def _full_disk_run(run: Path, dataset: dict[str, Path], capsys: pytest.CaptureFixture[str],
                   fill: Any) -> None:
    """Train once, then resume for another epoch with ``fill()`` making the disk full."""
    config = _last_only_config(dataset, run, run.parent / "c.yaml")
    assert main(["fit", "-c", str(config)]) == 0
    last = run / "checkpoints" / "last.ckpt"
    before = last.read_bytes()
    fill()
    capsys.readouterr()
    code = main(["fit", "-c", str(config), "--ckpt_path", "last", "--trainer.max_epochs", "2"])
    err = capsys.readouterr().err
    assert code == 1, err[-3000:]
    assert "Traceback" not in err, err[-3000:]
    assert "disk may be full" in err and str(last) in err, err[-3000:]
    assert last.read_bytes() == before  # the previous checkpoint is intact...
    assert sorted(p.name for p in last.parent.iterdir()) == ["last.ckpt"]  # ...nothing partial


def test_a_checkpoint_save_on_a_simulated_full_disk_keeps_the_previous_one(
    tmp_path: Path, dataset: dict[str, Path], trained: dict[str, Path],
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch,
) -> None:
    """ENOSPC raised by the write call under the checkpoint writer, half-way through.

    (``trained`` makes Lightning's log handler take pytest's stream, not this capsys's.)
    """
    import errno

    from geofm_core.io import checkpoint_io

    def failing(stream: Any, data: memoryview) -> None:
        stream.write(data[: len(data) // 2])
        raise OSError(errno.ENOSPC, "No space left on device")

    _full_disk_run(tmp_path / "run", dataset, capsys,
                   lambda: monkeypatch.setattr(checkpoint_io, "_write", failing))


def test_a_checkpoint_save_on_a_real_full_disk_keeps_the_previous_one(
    tmp_path: Path, dataset: dict[str, Path], trained: dict[str, Path],
    capsys: pytest.CaptureFixture[str],
) -> None:
    """A tmpfs that holds one last.ckpt and half of another (needs mount permission)."""
    from .test_bad_inputs import _mount_tmpfs

    run = tmp_path / "full"
    size = trained["ckpt"].stat().st_size * 3 // 2 // 1024  # the same model's checkpoint
    if not _mount_tmpfs(run, f"size={size}k"):
        pytest.skip("mounting a tmpfs needs root; the simulated ENOSPC test covers the path")
    try:
        _full_disk_run(run, dataset, capsys, lambda: None)
    finally:
        subprocess.run(["umount", str(run)], capture_output=True, timeout=30)
