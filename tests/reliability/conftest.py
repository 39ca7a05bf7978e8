"""Tiny GeoTIFF folders, configs and a trained checkpoint for the reliability tests."""

from __future__ import annotations

import copy
import hashlib
import os
import sys
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import yaml

rasterio = pytest.importorskip("rasterio")
from rasterio.transform import from_origin  # noqa: E402

SIZE = 32
BANDS = 4
CLASSES = ["water", "land", "cloud"]
TRANSFORM = from_origin(500_000, 4_000_000, 30, 30)


def write_tif(path: Path, array: np.ndarray, nodata: float | None = None,
              crs: str | None = "EPSG:32633") -> Path:
    """Write a (bands, H, W) or (H, W) array as a GeoTIFF (georeferenced unless crs=None)."""
    array = array if array.ndim == 3 else array[None]
    path.parent.mkdir(parents=True, exist_ok=True)
    extra: dict[str, Any] = {"crs": crs, "transform": TRANSFORM} if crs else {}
    with rasterio.open(path, "w", driver="GTiff", height=array.shape[1], width=array.shape[2],
                       count=array.shape[0], dtype=array.dtype, nodata=nodata,
                       **extra) as dst:
        dst.write(array)
    return path


def _image(rng: np.random.Generator, pattern: np.ndarray) -> np.ndarray:
    return (pattern[None] + rng.normal(0, 0.3, (BANDS, *pattern.shape))).astype(np.float32)


def write_dataset(root: Path, seed: int = 0, chips: int = 4) -> dict[str, Path]:
    """Folders of BANDS-band SIZE px chips for the four tasks under ``root``."""
    rng = np.random.default_rng(seed)
    for i in range(chips):
        mask = rng.integers(0, len(CLASSES), (SIZE, SIZE)).astype(np.uint8)
        write_tif(root / "seg" / f"chip{i}_img.tif", _image(rng, mask.astype(np.float32)))
        write_tif(root / "seg" / f"chip{i}_mask.tif", mask)
        target = rng.normal(0, 1, (SIZE, SIZE)).astype(np.float32)
        write_tif(root / "reg" / f"chip{i}_img.tif", _image(rng, target))
        write_tif(root / "reg" / f"chip{i}_target.tif", target)
        label = i % len(CLASSES)
        write_tif(root / "cls" / CLASSES[label] / f"chip{i}.tif",
                  _image(rng, np.full((SIZE, SIZE), label, np.float32)))
        write_tif(root / "multi" / f"chip{i}.tif",
                  _image(rng, np.full((SIZE, SIZE), label, np.float32)))
    rows = ["file," + ",".join(CLASSES)]
    rows += [f"chip{i}.tif," + ",".join("1" if c in (i % 3, (i + 1) % 3) else "0"
                                        for c in range(3)) for i in range(chips)]
    (root / "multi_labels.csv").write_text("\n".join(rows) + "\n")
    write_tif(root / "predict" / "scene0.tif", rng.normal(0, 1, (BANDS, SIZE, SIZE + 8))
              .astype(np.float32))
    return {k: root / k for k in ("seg", "reg", "cls", "multi", "predict")} | {
        "multi_labels": root / "multi_labels.csv"
    }


@pytest.fixture(scope="session")
def dataset(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """The shared (read-only) chip folders."""
    return write_dataset(tmp_path_factory.mktemp("reliability_data"))


MODEL_ARGS: dict[str, Any] = {
    "backbone": "timm:test_resnet", "backbone_kwargs": {"in_chans": BANDS},
    "decoder": "geofm:fcn", "decoder_kwargs": {"channels": 8, "num_convs": 1},
}


def seg_config(data: dict[str, Path], run: Path, **data_args: Any) -> dict[str, Any]:
    """A complete `geofm fit` config for segmentation on ``data``; outputs under ``run``."""
    root = str(data["seg"])
    init = {
        "train_data_root": root, "val_data_root": root, "test_data_root": root,
        "predict_data_root": str(data["predict"]), "img_pattern": "*_img.tif",
        "label_pattern": "*_mask.tif", "predict_img_pattern": "*.tif", "batch_size": 2,
        "num_workers": 0, "num_classes": 3, "means": [0.0] * BANDS, "stds": [1.0] * BANDS,
    } | data_args
    return {
        "seed_everything": 0,
        "trainer": {
            "accelerator": "cpu", "devices": 1, "max_epochs": 1, "limit_train_batches": 2,
            "limit_val_batches": 1, "num_sanity_val_steps": 0, "enable_progress_bar": False,
            "enable_model_summary": False, "default_root_dir": str(run),
            "logger": {"class_path": "lightning.pytorch.loggers.CSVLogger",
                       "init_args": {"save_dir": str(run / "logs")}},
        },
        "model": {"class_path": "SemanticSegmentationTask", "init_args": {
            "model_factory": "geofm:encoder_decoder", "model_args": copy.deepcopy(MODEL_ARGS),
            "num_classes": 3, "lr": 1e-3}},
        "data": {"class_path": "GeoTiffSegmentationDataModule", "init_args": init},
    }


def write_config(config: dict[str, Any], path: Path) -> Path:
    """Dump ``config`` as YAML to ``path``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    return path


def set_path(config: dict[str, Any], dotted: str, value: Any) -> None:
    """Set (or, with value None, delete) ``a.b.c`` in a nested config."""
    *parents, last = dotted.split(".")
    node = config
    for key in parents:
        node = node.setdefault(key, {})
    if value is None:
        node.pop(last, None)
    else:
        node[last] = value


Snapshot = dict[str, tuple[int, str]]


def snapshot(paths: Iterable[Path]) -> Snapshot:
    """Size and content hash of every file under (or at) ``paths``, hidden ones included."""
    out: Snapshot = {}
    for base in paths:
        files = [base] if base.is_file() else sorted(p for p in base.rglob("*") if p.is_file()) \
            if base.exists() else []
        for path in files:
            data = path.read_bytes()
            out[str(path)] = (len(data), hashlib.sha1(data).hexdigest())
    return out


def run_bad_input(argv: list[str], watched: Iterable[Path], expect: Iterable[str],
                  capsys: pytest.CaptureFixture[str]) -> list[str]:
    """Run ``geofm ARGV`` in this process and check the catalogue's promise.

    Exit code 1, no traceback, exactly one ``error:`` paragraph holding every text of
    ``expect``, and no file under ``watched`` changed or removed. Returns the files the
    run added, for each catalogue's own policy on new files.
    """
    from geofm_core.cli import main

    watched = list(watched)
    before = snapshot(watched)
    capsys.readouterr()
    code = main(argv)
    err = capsys.readouterr().err
    after = snapshot(watched)
    assert code == 1, err[-3000:]
    assert "Traceback" not in err, err[-3000:]
    errors = [line for line in err.splitlines() if line.startswith("error:")]
    assert len(errors) == 1, err[-3000:]
    for text in expect:
        assert text in errors[0], f"{text!r} not in: {errors[0]}"
    changed = [p for p in before if after.get(p) != before[p]]
    assert not changed, f"changed or removed: {changed}"
    return sorted(set(after) - set(before))


@pytest.fixture(scope="session")
def trained(tmp_path_factory: pytest.TempPathFactory, dataset: dict[str, Path]) -> dict[str, Path]:
    """A segmentation checkpoint written by one short `geofm fit` (shared, read-only)."""
    from geofm_core.cli import main

    root = tmp_path_factory.mktemp("reliability_trained")
    config = seg_config(dataset, root / "run")
    config["model"]["init_args"]["tiled_inference"] = {"crop": 32, "stride": 16}
    config["trainer"]["logger"] = False
    path = write_config(config, root / "config.yaml")
    assert main(["fit", "-c", str(path)]) == 0
    ckpt = root / "run" / "checkpoints" / "last.ckpt"
    assert ckpt.is_file()
    return {"root": root, "config": path, "ckpt": ckpt}


def geofm_exe() -> str:
    """The installed ``geofm`` console script beside this Python (skip when missing)."""
    exe = Path(sys.executable).parent / "geofm"
    if not exe.exists():
        pytest.skip("the geofm console script is not installed beside this Python")
    return str(exe)


def subprocess_env(**extra: str) -> dict[str, str]:
    """Environment for a child `geofm`: this test folder importable, warnings quiet."""
    here = str(Path(__file__).parent)
    path = os.pathsep.join(p for p in (here, os.environ.get("PYTHONPATH", "")) if p)
    return os.environ | {"PYTHONPATH": path, "PYTHONWARNINGS": "ignore"} | extra


MakeConfig = Callable[..., Path]
