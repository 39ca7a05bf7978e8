"""The fast `geofm` commands, run as real subprocesses of the installed console script."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys

import pytest

GEOFM = shutil.which("geofm", path=os.path.dirname(sys.executable))
HEAVY = ["torch", "lightning", "timm", "torchgeo", "segmentation_models_pytorch",
         "geofm_prithvi.vit", "geofm_upernet.upernet", "geofm_plugin_example.backbone"]


def run(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    assert GEOFM, "the geofm console script is not installed next to this Python"
    return subprocess.run([GEOFM, *args], capture_output=True, text=True, timeout=120,
                          env={**os.environ, **(env or {})})


def imported_after(code: str) -> set[str]:
    script = f"import sys\n{code}\nprint(' '.join(sorted(sys.modules)))"
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                         check=True, timeout=120).stdout.split("\n")[-2]
    return set(out.split())


@pytest.mark.parametrize("argv", [["plugins"], ["list"], ["list", "backbone", "prithvi:*"]])
def test_plugins_and_list_import_nothing_heavy(argv):
    modules = imported_after(
        f"from geofm_core.cli import main\nimport contextlib, io\n"
        f"with contextlib.redirect_stdout(io.StringIO()): main({argv!r})"
    )
    assert not [m for m in HEAVY if m in modules]


def test_describe_imports_only_the_described_component():
    modules = imported_after(
        "from geofm_core.cli import main\nimport contextlib, io\n"
        "with contextlib.redirect_stdout(io.StringIO()): "
        "main(['describe', 'backbone', 'example:tiny_cnn'])"
    )
    assert "geofm_plugin_example.backbone" in modules
    assert "timm" not in modules and "geofm_prithvi.vit" not in modules


def test_plugins_lists_every_installed_source():
    result = run("plugins")
    assert result.returncode == 0, result.stderr
    for source in ("geofm", "timm", "prithvi", "smp", "upernet", "example"):
        assert f"\n{source} " in "\n" + result.stdout
    data = json.loads(run("plugins", "--json").stdout)
    assert {d["source"]: d["status"] for d in data}["example"] == "loaded"


def test_list_example_and_timm_backbones():
    result = run("list", "backbone", "example:*")
    assert "example:tiny_cnn" in result.stdout and result.returncode == 0
    result = run("list", "backbone", "timm:resnet*")
    assert "timm:resnet18" in result.stdout
    data = json.loads(run("list", "--json").stdout)
    # listings are sorted by name; other installed plugins may sort before "example"
    assert any({"kind": "backbone", "name": "example:tiny_cnn"}.items() <= entry.items()
               for entry in data)


def test_describe_prints_signature():
    result = run("describe", "backbone", "timm:resnet18")
    assert result.returncode == 0
    assert "timm:resnet18(pretrained: bool = False, in_chans: int = 3" in result.stdout


@pytest.mark.parametrize(
    ("name", "suggestion"),
    [("timm:resnet_18", "timm:resnet18"), ("example:tinycnn", "example:tiny_cnn"),
     ("exampl:tiny_cnn", "'example'")],
)
def test_typo_is_one_readable_error(name, suggestion):
    result = run("describe", "backbone", name)
    assert result.returncode != 0
    assert suggestion in result.stderr
    assert "Traceback" not in result.stderr
    assert result.stderr.startswith("error: unknown backbone")


def test_debug_shows_the_traceback():
    result = run("--debug", "describe", "backbone", "timm:resnet_18")
    assert result.returncode != 0 and "Traceback" in result.stderr


def test_version():
    from geofm_core import __version__

    assert run("--version").stdout.strip() == f"geofm {__version__}"


def test_short_version_flag():
    assert run("-V").stdout == run("--version").stdout


def test_bare_geofm_prints_help_and_exits_non_zero():
    result = run()
    assert result.returncode == 2
    assert "COMMAND" in result.stderr and "Traceback" not in result.stderr


def test_list_without_match_exits_non_zero():
    result = run("list", "backbone", "example:nothing*")
    assert result.returncode == 1
    assert "no backbones matching" in result.stdout
    assert run("list", "backbone", "example:nothing*", "--json").returncode == 1


def test_output_into_a_closed_pipe_is_quiet():
    """`geofm list | head -1` shows the first line and no BrokenPipe traceback."""
    # timm's list is longer than a pipe's buffer, so the writer meets the closed pipe.
    proc = subprocess.run(f"'{GEOFM}' list backbone 'timm:*' | head -1", shell=True,
                          capture_output=True, text=True, timeout=120)
    assert proc.stdout.startswith("KIND")
    assert "Traceback" not in proc.stderr and "BrokenPipe" not in proc.stderr


def test_describe_without_kind_when_the_name_is_unique():
    result = run("describe", "example:tiny_cnn")
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("backbone example:tiny_cnn(")


def test_describe_without_kind_of_an_unknown_name_suggests_names():
    result = run("describe", "example:tiny_cn")
    assert result.returncode == 1
    assert "example:tiny_cnn" in result.stderr and "Traceback" not in result.stderr


def test_describe_model_factory_shows_build_model_and_the_tasks():
    result = run("describe", "model_factory", "geofm:encoder_decoder")
    assert result.returncode == 0, result.stderr
    assert "(task: TaskName, backbone:" in result.stdout  # build_model, without self
    assert "SemanticSegmentationTask (task='segmentation')" in result.stdout
    assert "ObjectDetectionTask" not in result.stdout  # the factory declares its tasks
    detection = run("describe", "model_factory", "geofm:detection")
    assert detection.returncode == 0, detection.stderr
    assert "ObjectDetectionTask (task='object_detection'), InstanceSegmentationTask " \
        "(task='instance_segmentation')\n" in detection.stdout


def test_describe_task_and_data_module():
    task = run("describe", "SemanticSegmentationTask")
    assert task.returncode == 0, task.stderr
    assert task.stdout.startswith("task SemanticSegmentationTask(model_factory: str")
    data = run("describe", "GeoTiffSegmentationDataModule", "--json")
    info = json.loads(data.stdout)
    assert info["kind"] == "data module"
    assert {"train_data_root", "means", "batch_size"} <= set(info["inherited_options"])
    assert "num_classes" in info["signature"]


def test_one_checkpoint_spelling_everywhere(tmp_path):
    """`--ckpt` and `--ckpt_path` work for geofm fit/validate/... and geofm infer/export."""
    from geofm_core.cli.train_config import expand_argv

    assert expand_argv(["--ckpt", "a.ckpt", "--ckpt=b.ckpt", "--ckpt-path", "c.ckpt"]) == [
        "--ckpt_path", "a.ckpt", "--ckpt_path=b.ckpt", "--ckpt_path", "c.ckpt"]
    import numpy as np
    import rasterio

    missing, scene = tmp_path / "missing.ckpt", tmp_path / "in.tif"
    with rasterio.open(scene, "w", driver="GTiff", width=4, height=4, count=1,
                       dtype="uint8") as dst:
        dst.write(np.zeros((1, 4, 4), np.uint8))
    for command in (["infer", "--ckpt_path", str(missing), str(scene),
                     str(tmp_path / "out.tif")],
                    ["export", "onnx", "--ckpt_path", str(missing), "--output", "m.onnx"]):
        result = run(*command)
        assert result.returncode == 1, result.stderr
        assert f"{missing} does not exist" in result.stderr


def test_bash_completion_completes_commands_and_options(tmp_path):
    result = run("completion", "bash")
    assert result.returncode == 0, result.stderr
    script = tmp_path / "geofm.bash"
    script.write_text(result.stdout)
    probe = (f"source '{script}'; COMP_WORDS=(geofm inf); COMP_CWORD=1; _shtab_geofm; "
             'echo "[${COMPREPLY[*]}]"; COMP_WORDS=(geofm infer --prob); COMP_CWORD=2; '
             '_shtab_geofm; echo "[${COMPREPLY[*]}]"')
    done = subprocess.run(["bash", "-c", probe], capture_output=True, text=True, timeout=60)
    assert done.stdout.split() == ["[infer]", "[--probabilities]"], done.stderr
