"""bf16: every task trains, validates and predicts under ``bf16-mixed``, fp32 stays fp32.

Lightning's ``--trainer.precision bf16-mixed`` runs the forward passes under
``torch.autocast``; geofm's parts after the model (losses, metrics, non-finite guards,
validation figures, the prediction writer) must take bfloat16 outputs. The precision is
a choice of the run: it is not written into the checkpoint, so `geofm infer` on a bf16
checkpoint computes in fp32 unless ``--precision bf16`` is given.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import rasterio
import torch

from geofm_core.cli import main

from .conftest import write_config
from .test_defaults import TASKS, _minimal


def _fit(task: str, tmp_path: Path, dataset: dict[str, Path], precision: str) -> Path:
    model, data = _minimal(task, dataset)
    fit = {
        "trainer": {"max_epochs": 1, "limit_train_batches": 2, "limit_val_batches": 1,
                    "logger": False, "enable_progress_bar": False, "precision": precision,
                    "default_root_dir": str(tmp_path / "run")},
        "model": model, "data": data,
    }
    return write_config(fit, tmp_path / "fit.yaml")


@pytest.mark.parametrize("task", TASKS)
def test_every_task_trains_validates_and_predicts_in_bf16(
        task: str, tmp_path: Path, dataset: dict[str, Path]) -> None:
    config = _fit(task, tmp_path, dataset, "bf16-mixed")
    assert main(["fit", "-c", str(config), "--model.init_args.plot_on_val", "1"]) == 0
    ckpt = tmp_path / "run" / "checkpoints" / "last.ckpt"
    state = torch.load(ckpt, map_location="cpu", weights_only=True)
    weights = [v for v in state["state_dict"].values() if v.is_floating_point()]
    # autocast keeps the weights in fp32: the checkpoint is an fp32 model
    assert weights and all(v.dtype == torch.float32 and torch.isfinite(v).all()
                           for v in weights)
    _, data = _minimal(task, dataset)
    args = ["-c", str(config), "--ckpt_path", str(ckpt),
            "--data.init_args.val_data_root", data["init_args"]["train_data_root"]]
    if "train_label_data_root" in data["init_args"]:
        args += ["--data.init_args.val_label_data_root",
                 data["init_args"]["train_label_data_root"]]
    assert main(["validate", *args]) == 0
    assert main(["predict", "-c", str(config), "--ckpt_path", str(ckpt),
                 "--data.init_args.predict_data_root", str(dataset["predict"]),
                 "--data.init_args.predict_img_pattern", "*.tif"]) == 0
    outputs = sorted((tmp_path / "run" / "predictions").rglob("*.*"))
    assert outputs, "geofm predict wrote nothing under bf16-mixed"
    for path in outputs:
        if path.suffix == ".tif":
            with rasterio.open(path) as src:
                values = src.read()
            # the writer stores fp32 values / integer classes, never bfloat16 bits
            assert values.dtype != np.float16
            if values.dtype.kind == "f":
                assert np.isfinite(values).any()


@pytest.fixture(scope="module")
def segmentation_ckpt(tmp_path_factory: pytest.TempPathFactory,
                      dataset: dict[str, Path]) -> Path:
    """A segmentation checkpoint trained under bf16-mixed."""
    tmp_path = tmp_path_factory.mktemp("bf16_fit")
    config = _fit("segmentation", tmp_path, dataset, "bf16-mixed")
    assert main(["fit", "-c", str(config)]) == 0
    return tmp_path / "run" / "checkpoints" / "last.ckpt"


def _infer(ckpt: Path, scene: Path, out: Path, *extra: str) -> np.ndarray:
    assert main(["infer", "--ckpt", str(ckpt), str(scene), str(out), "--crop", "32",
                 "--stride", "24", "--probabilities", "--no-progress", *extra]) == 0
    with rasterio.open(out.with_name(f"{out.stem}_probabilities.tif")) as src:
        return src.read()


def test_infer_is_fp32_unless_asked_and_bf16_agrees_with_it(
        segmentation_ckpt: Path, dataset: dict[str, Path], tmp_path: Path) -> None:
    scene = sorted(dataset["predict"].glob("*.tif"))[0]
    default = _infer(segmentation_ckpt, scene, tmp_path / "default.tif")
    fp32 = _infer(segmentation_ckpt, scene, tmp_path / "fp32.tif", "--precision", "32")
    bf16 = _infer(segmentation_ckpt, scene, tmp_path / "bf16.tif", "--precision", "bf16")
    # a bf16-trained checkpoint does not make inference bf16 silently
    np.testing.assert_array_equal(default, fp32)
    assert default.dtype == np.float32 and bf16.dtype == np.float32
    # bf16 keeps about 3 significant digits: close to fp32, and not bit-identical
    assert np.abs(bf16 - fp32).max() < 0.05
    assert not np.array_equal(bf16, fp32)


def test_bf16_with_the_onnx_backend_is_one_clear_error(
        segmentation_ckpt: Path, dataset: dict[str, Path], tmp_path: Path,
        capsys: pytest.CaptureFixture[str]) -> None:
    scene = sorted(dataset["predict"].glob("*.tif"))[0]
    code = main(["infer", "--ckpt", str(segmentation_ckpt), str(scene),
                 str(tmp_path / "out.tif"), "--backend", "onnx", "--precision", "bf16"])
    err = capsys.readouterr().err
    assert code == 1
    assert "--precision bf16" in err and "onnx" in err and "Traceback" not in err
    assert not (tmp_path / "out.tif").exists()
