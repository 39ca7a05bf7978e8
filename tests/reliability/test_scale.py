"""At scale: `geofm predict` on two DDP ranks, reruns that skip finished outputs."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

import lightning.pytorch  # noqa: F401  (its log handler binds to the real stderr, not capsys')
import numpy as np
import pytest

from geofm_core.cli import main

from .conftest import BANDS, SIZE, geofm_exe, seg_config, subprocess_env, write_config, write_tif

WRITER = "reliability_callbacks.RecordingWriter"


def _scenes(folder: Path, n: int) -> list[Path]:
    """``n`` small rasters, two of them with one name in different subfolders."""
    rng = np.random.default_rng(1)
    names = [f"scene{i}.tif" for i in range(n - 1)] + ["deep/scene0.tif"]
    return [write_tif(folder / name, rng.normal(0, 1, (BANDS, SIZE, SIZE + 8))
                      .astype(np.float32)) for name in names]


def _predict_config(tmp_path: Path, dataset: dict[str, Path], scenes: Path, out: Path,
                    **writer: Any) -> Path:
    config = seg_config(dataset, tmp_path / "run", predict_data_root=str(scenes),
                        predict_img_pattern="**/*.tif", batch_size=2)
    config["trainer"]["logger"] = False
    config["trainer"]["callbacks"] = [{"class_path": WRITER, "init_args": {
        "record_dir": str(tmp_path / "log"), "output_dir": str(out), **writer}}]
    return write_config(config, tmp_path / "predict.yaml")


def _ddp_predict(config: Path, *extra: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [geofm_exe(), "predict", "-c", str(config), "--trainer.strategy", "ddp",
         "--trainer.devices", "2", "--trainer.accelerator", "cpu", *extra],
        capture_output=True, text=True, timeout=400, env=subprocess_env(),
    )


def _records(log: Path) -> list[dict[str, list[str]]]:
    records = [json.loads((log / f"writes_rank{r}.json").read_text()) for r in (0, 1)]
    for path in log.iterdir():
        path.unlink()
    return records


def test_ddp_predict_writes_each_output_once_and_a_rerun_skips_finished_ones(
    tmp_path: Path, dataset: dict[str, Path],
) -> None:
    scenes = _scenes(tmp_path / "scenes", 5)
    out = tmp_path / "out"
    config = _predict_config(tmp_path, dataset, tmp_path / "scenes", out)
    done = _ddp_predict(config)
    assert done.returncode == 0, done.stderr[-4000:]
    records = _records(tmp_path / "log")
    written = [p for r in records for p in r["written"]]
    seen = [p for r in records for p in r["seen"]]
    # every input predicted on exactly one rank, every output written by exactly one rank
    assert sorted(seen) == sorted(str(s) for s in scenes)
    assert len(written) == len(set(written)) == len(scenes)
    outputs = sorted(p.relative_to(out).as_posix() for p in out.rglob("*") if p.is_file())
    assert outputs == ["deep/scene0_pred.tif", *[f"scene{i}_pred.tif" for i in range(4)]]

    # an interrupted run: two outputs missing, one of them with a killed run's partial file
    before = {p: p.stat().st_mtime_ns for p in out.rglob("*.tif")}
    (out / "scene1_pred.tif").unlink()
    (out / "deep" / "scene0_pred.tif").unlink()
    partial = out / f".scene1_pred.tif.tmp-{_dead_pid()}.partial.tif"
    partial.write_bytes(b"half a GeoTIFF")

    again = _ddp_predict(config, "--skip_existing")
    assert again.returncode == 0, again.stderr[-4000:]
    records = _records(tmp_path / "log")
    redone = sorted([str(scenes[1]), str(scenes[-1])])
    # the model ran on the two unfinished inputs only, and only their outputs were written
    assert sorted(p for r in records for p in r["seen"]) == redone
    assert sorted(p for r in records for p in r["written"]) == sorted(
        [str(out / "scene1_pred.tif"), str(out / "deep" / "scene0_pred.tif")])
    assert not partial.exists()
    for path, mtime in before.items():
        assert path.is_file()
        if path.name != "scene1_pred.tif" and path.parent.name != "deep":
            assert path.stat().st_mtime_ns == mtime, path  # finished outputs untouched
    assert "skipped 3 of 5 inputs" in again.stderr + again.stdout


def _dead_pid() -> int:
    """The id of a process that has ended."""
    proc = subprocess.Popen(["true"])
    proc.wait()
    return proc.pid


def test_without_skip_existing_finished_outputs_are_refused_and_it_excludes_overwrite(
    tmp_path: Path, dataset: dict[str, Path], monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.syspath_prepend(str(Path(__file__).parent))  # reliability_callbacks
    out = tmp_path / "out"
    config = _predict_config(tmp_path, dataset, dataset["predict"], out)
    def fails(*argv: str, command: str = "predict") -> str:
        capsys.readouterr()
        assert main([command, "-c", str(config), *argv]) == 1
        err = capsys.readouterr().err
        assert "Traceback" not in err
        return err

    assert "choose one" in fails("--skip_existing", "--overwrite")
    assert "--skip_existing applies to `geofm predict`" in fails("--skip_existing",
                                                                  command="fit")
    assert not out.exists()
    assert main(["predict", "-c", str(config)]) == 0
    assert main(["predict", "-c", str(config), "--skip_existing"]) == 0
    err = fails()
    assert "scene0_pred.tif exists" in err and "--skip_existing" in err
    assert main(["predict", "-c", str(config), "--overwrite"]) == 0


def _rss_kib(field: str) -> int:
    """A memory figure of this process from /proc/self/status (VmRSS, VmHWM), in KiB."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(f"{field}:"):
            return int(line.split()[1])
    raise LookupError(field)


def _reset_peak() -> bool:
    """Restart the peak-RSS count (VmHWM) from the current RSS; False where Linux forbids it."""
    try:
        Path("/proc/self/clear_refs").write_text("5")
    except OSError:
        return False
    return True


def test_soak_200_rasters_in_one_process_keep_peak_memory_flat(tmp_path: Path) -> None:
    if not Path("/proc/self/status").is_file():
        pytest.skip("needs /proc (Linux) to read this process's memory")
    import torch

    from geofm_core.inference.raster import predict_raster

    torch.manual_seed(0)
    model = torch.nn.Conv2d(BANDS, 3, 1).eval()
    rng = np.random.default_rng(0)
    sources = [write_tif(tmp_path / "in" / f"s{i}.tif",
                         rng.normal(0, 1, (BANDS, 32, 32)).astype(np.float32))
               for i in range(4)]  # 200 runs over 4 files: the inputs cost no memory
    out = tmp_path / "out"
    out.mkdir()

    def run(i: int) -> None:
        predict_raster(model, sources[i % len(sources)], out / f"p{i}.tif",
                       num_classes=3, crop=32, stride=32, batch_size=1, probabilities=True,
                       progress=True)

    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # one 32 px tile: threads would only contend on a busy machine
    try:
        _soak(run, out)
    finally:
        torch.set_num_threads(threads)


def _soak(run: Any, out: Path) -> None:
    import gc

    for i in range(20):  # warm-up: allocator pools, GDAL drivers, torch kernels
        run(i)
    gc.collect()
    start = _rss_kib("VmRSS")
    exact = _reset_peak()
    for i in range(20, 200):
        run(i)
    gc.collect()
    peak = _rss_kib("VmHWM") if exact else _rss_kib("VmRSS")
    assert len(list(out.glob("p*_probabilities.tif"))) == 200
    assert peak - start < 30 * 1024, f"RSS grew by {(peak - start) / 1024:.1f} MiB"
