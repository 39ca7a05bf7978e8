"""The bad-input catalogue, second part: inputs named as outputs, doubled YAML keys, ranges.

Same contract as ``test_bad_inputs.py`` (whose ``Case``/``Ctx`` these cases use): exit
code 1, one ``error:`` paragraph naming what is wrong and the fix, no traceback, and
nothing written or changed. The point of a few cases is the real ``geofm`` process;
those run it as one.
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

from geofm_core.cli import main
from geofm_core.registry import reset_registry

from .conftest import (
    BANDS,
    SIZE,
    geofm_exe,
    run_bad_input,
    seg_config,
    set_path,
    subprocess_env,
    write_config,
    write_tif,
)
from .test_bad_inputs import ARTIFACTS, Case, Ctx, readonly  # noqa: F401  (a fixture)

TERRATORCH = """\
trainer:
  max_epochs: 1
model:
  class_path: terratorch.tasks.SemanticSegmentationTask
  init_args:
    model_factory: EncoderDecoderFactory
    model_args:
      backbone: timm_resnet18
      decoder: smp_Unet
      num_classes: 2
    loss: ce
    lr: 1.0e-3
"""


def _scene(c: Ctx) -> Path:
    return write_tif(c.tmp / "scene.tif", np.ones((BANDS, SIZE, SIZE), np.float32))


# -- an output that is an input: refused always, --overwrite or not ---------------------


def infer_output_is_the_input(c: Ctx) -> Case:
    scene = _scene(c)
    return Case(c.infer(scene, scene, "--overwrite"), ["scene.tif", "is the input",
                                                       "even with --overwrite"])


def infer_output_is_the_input_through_dotdot(c: Ctx) -> Case:
    scene = _scene(c)
    (c.tmp / "d").mkdir()
    return Case(c.infer(scene, c.tmp / "d" / ".." / "scene.tif", "--overwrite"),
                ["is the input", "another path of the same file"])


def infer_output_is_a_symlink_to_the_input(c: Ctx) -> Case:
    scene = _scene(c)
    (c.tmp / "link.tif").symlink_to(scene)
    return Case(c.infer(scene, c.tmp / "link.tif", "--overwrite"), ["link.tif", "is the input"])


def infer_output_is_a_hard_link_to_the_input(c: Ctx) -> Case:
    scene = _scene(c)
    os.link(scene, c.tmp / "hard.tif")
    return Case(c.infer(scene, c.tmp / "hard.tif", "--overwrite"), ["hard.tif", "is the input"])


def infer_output_is_the_checkpoint(c: Ctx) -> Case:
    ckpt = c.tmp / "model.ckpt"
    ckpt.write_bytes(c.trained["ckpt"].read_bytes())
    return Case(c.infer(_scene(c), ckpt, "--overwrite", ckpt=ckpt),
                ["model.ckpt", "is the input"])


def infer_probabilities_output_is_the_input(c: Ctx) -> Case:
    scene = _scene(c)
    target = c.tmp / "x_probabilities.tif"
    scene.rename(target)
    return Case(c.infer(target, c.tmp / "x.tif", "--probabilities", "--overwrite"),
                ["x_probabilities.tif", "is the input"])


def export_output_is_the_checkpoint(c: Ctx) -> Case:
    ckpt = c.tmp / "model.ckpt"
    ckpt.write_bytes(c.trained["ckpt"].read_bytes())
    return Case(["export", "safetensors", "--ckpt", str(ckpt), "--output", str(ckpt),
                 "--overwrite"], ["model.ckpt", "is the input"])


def convert_output_is_the_source(c: Ctx) -> Case:
    source = c.tmp / "a.yaml"
    source.write_text(TERRATORCH)
    return Case(["convert", "terratorch", str(source), "-o", str(source), "--overwrite"],
                ["a.yaml", "is the input"])


def convert_output_exists(c: Ctx) -> Case:
    source = c.tmp / "a.yaml"
    source.write_text(TERRATORCH)
    (c.tmp / "existing.yaml").write_text("precious: true\n")
    return Case(["convert", "terratorch", str(source), "-o", str(c.tmp / "existing.yaml")],
                ["existing.yaml", "exists", "--overwrite"])


def predict_output_is_an_input(c: Ctx) -> Case:
    folder = c.tmp / "scenes"
    folder.mkdir()
    (folder / "scene0.tif").write_bytes((c.data["predict"] / "scene0.tif").read_bytes())
    set_path(c.config, "data.init_args.predict_data_root", str(folder))
    set_path(c.config, "trainer.callbacks", [{
        "class_path": "geofm_core.inference.writer.GeoTiffPredictionWriter",
        "init_args": {"output_dir": str(folder), "suffix": "", "overwrite": True}}])
    return Case(["predict", "-c", str(write_config(c.config, c.tmp / "config.yaml")),
                 "--ckpt_path", str(c.trained["ckpt"])], ["scene0.tif", "is the input"],
                strict=False)


# -- wrong export targets -----------------------------------------------------------------


def export_output_is_a_folder(c: Ctx) -> Case:
    (c.tmp / "models").mkdir()
    return Case(["export", "onnx", "--ckpt", str(c.trained["ckpt"]), "--output",
                 str(c.tmp / "models"), "--overwrite"], ["models", "is a folder",
                                                         "give a file path"])


def export_output_folder_missing(c: Ctx) -> Case:
    return Case(["export", "safetensors", "--ckpt", str(c.trained["ckpt"]), "--output",
                 str(c.tmp / "no" / "model.safetensors")], ["output folder", "does not exist"])


def export_calibration_without_int8(c: Ctx) -> Case:
    return Case(["export", "onnx", "--ckpt", str(c.trained["ckpt"]), "--output",
                 str(c.tmp / "m.onnx"), "--calibration", str(_scene(c))],
                ["--calibration", "--int8"])


# -- doubled YAML keys ------------------------------------------------------------------------


def _config_text(c: Ctx) -> list[str]:
    return yaml.safe_dump(c.config, sort_keys=False).splitlines()


def duplicate_key(c: Ctx) -> Case:
    lines = _config_text(c)
    at = next(i for i, line in enumerate(lines) if line.strip().startswith("lr:"))
    lines.insert(at + 1, lines[at].replace("0.001", "0.1"))
    path = c.tmp / "dup.yaml"
    path.write_text("\n".join(lines) + "\n")
    return Case(["fit", "-c", str(path)], ["dup.yaml", "'lr'", "twice", "model.init_args",
                                           f"line {at + 1} and line {at + 2}"])


def duplicate_section(c: Ctx) -> Case:
    path = c.tmp / "dup.yaml"
    path.write_text("\n".join(_config_text(c)) + "\ntrainer:\n  max_epochs: 3\n")
    return Case(["fit", "-c", str(path)], ["dup.yaml", "section 'trainer'", "twice",
                                           "line 2 and line"])


def duplicate_key_in_a_stats_file(c: Ctx) -> Case:
    stats = c.tmp / "stats.yaml"
    stats.write_text(f"means: {[0.0] * BANDS}\nstds: {[1.0] * BANDS}\nmeans: {[5.0] * BANDS}\n")
    set_path(c.config, "data.init_args.means", str(stats))
    return Case(c.fit(), ["stats.yaml", "'means'", "line 1 and line 3"], strict=False)


def duplicate_key_in_a_config_to_convert(c: Ctx) -> Case:
    source = c.tmp / "tt.yaml"
    source.write_text(TERRATORCH + "  init_args:\n    lr: 1\n")
    return Case(["convert", "terratorch", str(source), "-o", str(c.tmp / "out.yaml")],
                ["tt.yaml", "'init_args'", "twice"])


# -- out-of-range settings and missing hardware ---------------------------------------------


def _out_of_range(path: str, value: object, *expect: str) -> Callable[[Ctx], Case]:
    def build(c: Ctx) -> Case:
        set_path(c.config, path, value)
        if path.endswith("num_classes"):
            set_path(c.config, "data.init_args.num_classes", value)
        return Case(c.fit(), [path, "out of range", *expect])

    build.__name__ = f"out_of_range_{path.rpartition('.')[2]}_{value}"
    return build


def infer_cuda_without_a_gpu(c: Ctx) -> Case:
    if torch.cuda.is_available():
        pytest.skip("this machine has a GPU")
    return Case(c.infer(_scene(c), c.tmp / "out.tif", "--device", "cuda"),
                ["--device cuda", "no usable CUDA device", "--device cpu"])


def fit_gpu_without_a_gpu(c: Ctx) -> Case:
    if torch.cuda.is_available():
        pytest.skip("this machine has a GPU")
    set_path(c.config, "trainer.accelerator", "gpu")
    return Case(c.fit(), ["trainer.accelerator", "'gpu'", "no usable CUDA device", "cpu"])


# -- messages that name the right culprit -------------------------------------------------


def empty_config(c: Ctx) -> Case:
    (c.tmp / "empty.yaml").write_text("# nothing yet\n")
    return Case(["fit", "-c", str(c.tmp / "empty.yaml")], ["empty.yaml", "is empty"])


def config_is_a_folder(c: Ctx) -> Case:
    return Case(["fit", "-c", str(c.tmp)], ["config file", "is a folder"])


def infer_input_is_a_dangling_symlink(c: Ctx) -> Case:
    (c.tmp / "scene.tif").symlink_to(c.tmp / "moved.tif")
    return Case(c.infer(c.tmp / "scene.tif", c.tmp / "out.tif"),
                ["scene.tif", "symbolic link", "moved.tif", "does not exist"])


def infer_input_is_a_folder(c: Ctx) -> Case:
    return Case(c.infer(c.tmp, c.tmp / "out.tif"), ["input raster", "is a folder"])


def checkpoint_is_a_folder(c: Ctx) -> Case:
    return Case(c.infer(_scene(c), c.tmp / "out.tif", ckpt=c.tmp),
                ["--ckpt", "is a folder", ".ckpt"])


def geotiff_given_as_checkpoint(c: Ctx) -> Case:
    scene = _scene(c)
    return Case(c.infer(scene, c.tmp / "out.tif", ckpt=scene),
                ["scene.tif", "is a GeoTIFF, not a checkpoint"])


def geotiff_given_as_checkpoint_to_fit(c: Ctx) -> Case:
    return Case(c.fit("--ckpt_path", str(_scene(c))), ["scene.tif", "is a GeoTIFF"],
                strict=False)


CASES: list[Callable[[Ctx], Case]] = [
    infer_output_is_the_input, infer_output_is_the_input_through_dotdot,
    infer_output_is_a_symlink_to_the_input, infer_output_is_a_hard_link_to_the_input,
    infer_output_is_the_checkpoint, infer_probabilities_output_is_the_input,
    export_output_is_the_checkpoint, predict_output_is_an_input, convert_output_is_the_source,
    convert_output_exists,
    export_output_is_a_folder, export_output_folder_missing, export_calibration_without_int8,
    duplicate_key, duplicate_section, duplicate_key_in_a_stats_file,
    duplicate_key_in_a_config_to_convert,
    _out_of_range("model.init_args.num_classes", 0), _out_of_range("model.init_args.lr", -0.1),
    _out_of_range("model.init_args.lr", 0.0, "> 0"), _out_of_range("trainer.max_epochs", -2),
    _out_of_range("data.init_args.batch_size", 0),
    _out_of_range("model.init_args.optimizer_hparams.weight_decay", -1.0),
    infer_cuda_without_a_gpu, fit_gpu_without_a_gpu,
    empty_config, config_is_a_folder, infer_input_is_a_dangling_symlink, infer_input_is_a_folder,
    checkpoint_is_a_folder, geotiff_given_as_checkpoint, geotiff_given_as_checkpoint_to_fit,
]


@pytest.mark.parametrize("build", CASES, ids=[f.__name__ for f in CASES])
def test_bad_input_gives_one_clear_error_and_writes_nothing(
    build: Callable[[Ctx], Case], tmp_path: Path, dataset: dict[str, Path],
    trained: dict[str, Path], fake_dist: Callable[..., Path],
    readonly: Callable[[], Path], capsys: pytest.CaptureFixture[str],  # noqa: F811
) -> None:
    ctx = Ctx(tmp_path / "case", dataset, trained, fake_dist, readonly)
    ctx.tmp.mkdir()
    case = build(ctx)
    reset_registry()
    watched = [ctx.tmp, dataset["seg"].parent, trained["ckpt"].parent]
    new = run_bad_input(case.argv, watched, case.expect, capsys)
    if case.strict:
        assert not new, f"written: {new}"
    else:
        assert not [p for p in new if p.endswith(ARTIFACTS)], f"written: {new}"


@pytest.mark.parametrize("command", ["infer", "convert"])
def test_an_input_named_as_output_survives_a_real_process(
    command: str, tmp_path: Path, trained: dict[str, Path],
) -> None:
    """``geofm infer --ckpt CK in.tif d/../in.tif --overwrite``; ``convert a.yaml -o a.yaml``."""
    (tmp_path / "d").mkdir()
    if command == "infer":
        source = write_tif(tmp_path / "in.tif", np.ones((BANDS, SIZE, SIZE), np.float32))
        argv = ["infer", "--ckpt", str(trained["ckpt"]), str(source),
                str(tmp_path / "d" / ".." / "in.tif"), "--overwrite", "--no-progress"]
    else:
        source = tmp_path / "a.yaml"
        source.write_text(TERRATORCH)
        argv = ["convert", "terratorch", str(source), "-o", str(source), "--overwrite"]
    before = source.read_bytes()
    done = subprocess.run([geofm_exe(), *argv], capture_output=True, text=True, timeout=300,
                          env=subprocess_env())
    assert done.returncode == 1, done.stderr[-3000:]
    assert "Traceback" not in done.stderr and "is the input" in done.stderr
    assert source.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(["d", source.name])


def test_convert_overwrite_replaces_an_earlier_output(tmp_path: Path) -> None:
    source, out = tmp_path / "a.yaml", tmp_path / "out.yaml"
    source.write_text(TERRATORCH)
    out.write_text("old: true\n")
    assert main(["convert", "terratorch", str(source), "-o", str(out), "--overwrite"]) == 0
    assert "old" not in yaml.safe_load(out.read_text())


def test_merge_keys_may_still_be_overridden(tmp_path: Path, dataset: dict[str, Path]) -> None:
    from geofm_core.io.yaml_files import load_yaml

    text = "base: &b {lr: 1, wd: 2}\nmodel:\n  <<: *b\n  lr: 3\n"
    assert load_yaml(text, "x.yaml")["model"] == {"lr": 3, "wd": 2}


def test_a_misspelt_plugin_switch_is_named(capsys: pytest.CaptureFixture[str],
                                           monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GEOFM_DISABLE_PLUGINS", "prithvy,timm")
    reset_registry()
    try:
        assert main(["plugins"]) == 0
    finally:
        monkeypatch.delenv("GEOFM_DISABLE_PLUGINS")
        reset_registry()
    err = capsys.readouterr().err
    assert "'prithvy'" in err and "no installed plugin provides" in err
    assert "installed plugins:" in err and "prithvi" in err
    assert "cannot disable 'timm'" in err


def test_ranges_are_checked_on_the_command_line_too(
    tmp_path: Path, dataset: dict[str, Path], capsys: pytest.CaptureFixture[str],
) -> None:
    path = write_config(seg_config(dataset, tmp_path / "run"), tmp_path / "config.yaml")
    assert main(["fit", "-c", str(path), "--model.init_args.lr", "-1"]) == 1
    err = capsys.readouterr().err
    assert "model.init_args.lr" in err and "out of range" in err
    assert not (tmp_path / "run").exists()
