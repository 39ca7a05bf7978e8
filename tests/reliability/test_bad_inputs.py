"""The bad-input catalogue: every case runs through the real ``geofm`` command line.

Each case asserts: exit code 1; one ``error:`` paragraph naming the file / YAML path /
component and the fix; no traceback without ``--debug``; and nothing written or
overwritten (files present before are byte-identical after; no checkpoint, raster,
ONNX or safetensors file appears; config errors leave no new file at all). Errors found
while a run has started (data read at the first batch, checkpoints loaded by Lightning)
may leave the run's log folder (config.yaml, hparams.yaml) so the failure is traceable.

Configuration errors already covered one by one in ``tests/cli/test_training_cli.py``
(unknown class, ``lrr``, optimizer names, ...) and checkpoint errors of ``geofm infer``
in ``tests/inference/test_infer_cli.py`` are not repeated; the cases here add the
nothing-written guarantee and the classes those files do not reach.
"""

from __future__ import annotations

import copy
import os
import pickle
import shutil
import subprocess
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

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

ARTIFACTS = (".ckpt", ".tif", ".onnx", ".safetensors")


@dataclass
class Case:
    """A command line, what its error must say, and how strictly outputs are checked."""

    argv: list[str]
    expect: list[str]
    strict: bool = True  # no new file at all (else: no new artifact, old files unchanged)
    env: dict[str, str] = field(default_factory=dict)


@dataclass
class Ctx:
    """What a case builder gets: its folder, the shared data, a trained checkpoint."""

    tmp: Path
    data: dict[str, Path]
    trained: dict[str, Path]
    fake_dist: Callable[..., Path]
    readonly: Callable[[], Path]
    config: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.config = seg_config(self.data, self.tmp / "run")

    def seg_copy(self) -> Path:
        """A private copy of the segmentation chips the case may damage."""
        folder = self.tmp / "chips"
        shutil.copytree(self.data["seg"], folder)
        for stage in ("train", "val", "test"):
            set_path(self.config, f"data.init_args.{stage}_data_root", str(folder))
        return folder

    def fit(self, *extra: str) -> list[str]:
        return ["fit", "-c", str(write_config(self.config, self.tmp / "config.yaml")), *extra]

    def infer(self, source: Path, output: Path, *extra: str,
              ckpt: Path | None = None) -> list[str]:
        return ["infer", "--ckpt", str(ckpt or self.trained["ckpt"]), str(source), str(output),
                "--no-progress", *extra]


# -- configuration and component names ------------------------------------------------

PLUGIN = """
from geofm_core import hookimpl

@hookimpl
def geofm_register_components(register):
    register("decoder", "fcn", "geofm_core.models.decoders:FCNDecoder", description="copy")
    register("backbone", "net", "geofm_core.models.timm_backbone:TimmBackbone")
"""


def unknown_source(c: Ctx) -> Case:
    set_path(c.config, "model.init_args.model_args.backbone", "acme:vit")
    return Case(c.fit(), ["model.init_args.model_args.backbone", "unknown backbone 'acme:vit'",
                          "pip install geofm-plugin-acme"])


def unknown_name(c: Ctx) -> Case:
    set_path(c.config, "model.init_args.model_args.decoder", "geofm:fcnn")
    return Case(c.fit(), ["model.init_args.model_args.decoder", "'geofm:fcnn'",
                          "Did you mean", "geofm:fcn"])


def ambiguous_name(c: Ctx) -> Case:
    c.fake_dist("acme-plugin", {"acme": "acme_rel_plugin"}, {"acme_rel_plugin": PLUGIN})
    set_path(c.config, "model.init_args.model_args.decoder", "fcn")
    return Case(c.fit(), ["decoder", "'fcn'", "acme:fcn", "geofm:fcn"])


def plugin_not_installed(c: Ctx) -> Case:
    set_path(c.config, "model.init_args.model_factory", "terratorch:encoder_decoder")
    return Case(c.fit(), ["model.init_args.model_factory", "terratorch",
                          "pip install geofm-plugin-terratorch"])


def broken_plugin(c: Ctx) -> Case:
    c.fake_dist("broken-plugin", {"broken": "broken_rel_plugin"},
                {"broken_rel_plugin": "import geofm_missing_dependency_xyz\n"})
    set_path(c.config, "model.init_args.model_args.backbone", "broken:net")
    return Case(c.fit(), ["broken", "geofm_missing_dependency_xyz"])


def conflicting_plugins(c: Ctx) -> Case:
    c.fake_dist("dup-one", {"dup": "dup_one_rel_plugin"}, {"dup_one_rel_plugin": PLUGIN})
    c.fake_dist("dup-two", {"dup": "dup_two_rel_plugin"}, {"dup_two_rel_plugin": PLUGIN})
    set_path(c.config, "model.init_args.model_args.backbone", "dup:net")
    return Case(c.fit(), ["dup", "dup-one", "dup-two"])


def invalid_name_grammar(c: Ctx) -> Case:
    set_path(c.config, "model.init_args.model_args.decoder", "Geofm:FCN!")
    return Case(c.fit(), ["model.init_args.model_args.decoder", "Geofm:FCN!"])


def wrong_kwarg(c: Ctx) -> Case:
    set_path(c.config, "model.init_args.model_args.decoder_kwargs.num_conv", 1)
    return Case(c.fit(), ["geofm:fcn", "'num_conv'", "Did you mean 'num_convs'"])


def wrong_backbone_kwarg(c: Ctx) -> Case:
    set_path(c.config, "model.init_args.model_args.backbone_kwargs.in_chan", BANDS)
    return Case(c.fit(), ["timm:test_resnet", "'in_chan'"])


def wrong_type_task(c: Ctx) -> Case:
    set_path(c.config, "model.init_args.lr", "fast")
    return Case(c.fit(), ["model.init_args.lr", "float", "fast"])


def wrong_type_component(c: Ctx) -> Case:
    set_path(c.config, "model.init_args.model_args.decoder_kwargs.channels", "eight")
    return Case(c.fit(), ["'channels'", "expects int", "'eight'", "geofm:fcn"])


def wrong_type_data(c: Ctx) -> Case:
    set_path(c.config, "data.init_args.batch_size", "two")
    return Case(c.fit(), ["data.init_args.batch_size", "int"])


def missing_required(c: Ctx) -> Case:
    set_path(c.config, "model.init_args.num_classes", None)
    set_path(c.config, "data.init_args.num_classes", None)
    return Case(c.fit(), ["SemanticSegmentationTask", "num_classes"])


def missing_config_file(c: Ctx) -> Case:
    return Case(["fit", "-c", str(c.tmp / "nope.yaml")], ["config file", "nope.yaml",
                                                        "does not exist"])


def config_not_yaml(c: Ctx) -> Case:
    bad = c.tmp / "broken.yaml"
    bad.write_text("model: [unclosed\n  - : :\n")
    return Case(["fit", "-c", str(bad)], ["broken.yaml"])


def model_data_disagree(c: Ctx) -> Case:
    set_path(c.config, "data.init_args.num_classes", 5)
    return Case(c.fit(), ["model.init_args.num_classes", "data.init_args.num_classes"])


# -- data -------------------------------------------------------------------------------


def empty_folder(c: Ctx) -> Case:
    (c.tmp / "empty").mkdir()
    for stage in ("train", "val", "test"):
        set_path(c.config, f"data.init_args.{stage}_data_root", str(c.tmp / "empty"))
    return Case(c.fit(), ["empty", "it is empty", "fix the folder or the pattern"],
                strict=False)


def missing_folder(c: Ctx) -> Case:
    set_path(c.config, "data.init_args.train_data_root", str(c.tmp / "nowhere"))
    return Case(c.fit(), ["nowhere", "does not exist"], strict=False)


def no_matches(c: Ctx) -> Case:
    set_path(c.config, "data.init_args.img_pattern", "*_S2Hand.tif")
    return Case(c.fit(), ["*_S2Hand.tif", "no file", "fix the folder or the pattern"],
                strict=False)


def unpaired(c: Ctx) -> Case:
    (c.seg_copy() / "chip2_mask.tif").unlink()
    return Case(c.fit(), ["chip2_img.tif", "images without a label", "label_pattern"],
                strict=False)


def truncated_geotiff(c: Ctx) -> Case:
    path = c.seg_copy() / "chip1_img.tif"
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    return Case(c.fit(), ["chip1_img.tif", "truncated", "replace it"], strict=False)


def non_raster(c: Ctx) -> Case:
    (c.seg_copy() / "chip1_img.tif").write_text("this is not a GeoTIFF\n")
    return Case(c.fit(), ["chip1_img.tif", "not recognized", "replace it"], strict=False)


def mismatched_sizes(c: Ctx) -> Case:
    write_tif(c.seg_copy() / "chip1_mask.tif", np.zeros((SIZE // 2, SIZE // 2), np.uint8))
    return Case(c.fit(), ["chip1_mask.tif", "16x16", "32x32", "size of their image"],
                strict=False)


def band_out_of_range(c: Ctx) -> Case:
    set_path(c.config, "data.init_args.output_bands", [0, 1, 2, 9])
    return Case(c.fit(), ["output_bands", "band index 9", "valid 0..3"], strict=False)


def label_out_of_range(c: Ctx) -> Case:
    write_tif(c.seg_copy() / "chip1_mask.tif", np.full((SIZE, SIZE), 7, np.uint8))
    return Case(c.fit(), ["chip1_mask.tif", "[7]", "num_classes=3", "ignore_index"],
                strict=False)


def means_wrong_length(c: Ctx) -> Case:
    set_path(c.config, "data.init_args.means", [0.0, 0.0, 0.0])
    set_path(c.config, "data.init_args.stds", [1.0, 1.0, 1.0])
    return Case(c.fit(), ["means/stds have 3 values", "4 bands", "one value per"],
                strict=False)


def all_nodata_image(c: Ctx) -> Case:
    write_tif(c.seg_copy() / "chip1_img.tif", np.full((BANDS, SIZE, SIZE), -9999, np.float32),
              nodata=-9999)
    return Case(c.fit(), ["chip1_img.tif", "every pixel", "nodata", "split file"],
                strict=False)


def all_nodata_label(c: Ctx) -> Case:
    write_tif(c.seg_copy() / "chip1_mask.tif", np.full((SIZE, SIZE), 255, np.uint8),
              nodata=255)
    set_path(c.config, "data.init_args.ignore_index", 255)
    set_path(c.config, "model.init_args.ignore_index", 255)
    return Case(c.fit(), ["chip1_mask.tif", "every pixel of this label", "split file"],
                strict=False)


def nan_image(c: Ctx) -> Case:
    image = np.ones((BANDS, SIZE, SIZE), np.float32)
    image[:, :4, :4] = np.nan
    write_tif(c.seg_copy() / "chip1_img.tif", image)
    return Case(c.fit(), ["chip1_img.tif", "NaN", "no_data_replace"], strict=False)


# -- checkpoints --------------------------------------------------------------------------


def _test(c: Ctx, ckpt: Path | str) -> list[str]:
    return ["test", "-c", str(write_config(c.config, c.tmp / "config.yaml")),
            "--ckpt_path", str(ckpt)]


def missing_checkpoint(c: Ctx) -> Case:
    return Case(_test(c, c.tmp / "nope.ckpt"), ["nope.ckpt", "does not exist", "--ckpt_path"])


def truncated_checkpoint(c: Ctx) -> Case:
    bad = c.tmp / "truncated.ckpt"
    bad.write_bytes(c.trained["ckpt"].read_bytes()[:4000])
    return Case(_test(c, bad), ["truncated.ckpt", "not a readable checkpoint"], strict=False)


class _Exploit:
    marker = ""

    def __reduce__(self) -> tuple[Any, ...]:
        return (os.system, (f"touch {self.marker}",))


def unsafe_pickle(c: Ctx) -> Case:
    exploit = _Exploit()
    exploit.marker = str(c.tmp / "pwned")
    bad = c.tmp / "malicious.ckpt"
    with bad.open("wb") as f:
        pickle.dump({"state_dict": {}, "payload": exploit}, f)
    return Case(["validate", *_test(c, bad)[1:]], ["malicious.ckpt", "refused to load",
                                                    "weights_only"], strict=False)


def checkpoint_of_another_model(c: Ctx) -> Case:
    set_path(c.config, "model.init_args.model_args.decoder_kwargs.channels", 16)
    return Case(_test(c, c.trained["ckpt"]), ["last.ckpt", "weights of another model",
                                              "model.init_args"], strict=False)


def resume_from_another_model(c: Ctx) -> Case:
    set_path(c.config, "model.init_args.num_classes", 5)
    set_path(c.config, "data.init_args.num_classes", 5)
    return Case(c.fit("--ckpt_path", str(c.trained["ckpt"])),
                ["last.ckpt", "weights of another model"], strict=False)


def last_without_checkpoint(c: Ctx) -> Case:
    return Case(_test(c, "last"), ["--ckpt_path last", "no last*.ckpt"], strict=False)


def infer_corrupted_checkpoint(c: Ctx) -> Case:
    bad = c.tmp / "zeros.ckpt"
    bad.write_bytes(b"\0" * 1024)
    return Case(c.infer(c.data["predict"] / "scene0.tif", c.tmp / "out.tif", ckpt=bad),
                ["zeros.ckpt", "not a readable checkpoint"])


# -- outputs ---------------------------------------------------------------------------------


def fit_output_exists(c: Ctx) -> Case:
    set_path(c.config, "trainer.logger", False)
    folder = c.tmp / "run" / "checkpoints"
    folder.mkdir(parents=True)
    (folder / "last.ckpt").write_bytes(b"an earlier run")
    return Case(c.fit(), ["already holds checkpoints", "--overwrite", "--ckpt_path last"])


def fit_output_not_writable(c: Ctx) -> Case:
    set_path(c.config, "trainer.default_root_dir", str(c.readonly() / "run"))
    set_path(c.config, "trainer.logger", False)
    return Case(c.fit(), ["trainer.default_root_dir", "not writable"])


def fit_output_under_a_file(c: Ctx) -> Case:
    (c.tmp / "taken").write_text("a file")
    set_path(c.config, "trainer.logger.init_args.save_dir", str(c.tmp / "taken" / "logs"))
    return Case(c.fit(), ["taken", "is a file, not a folder"])


def infer_output_exists(c: Ctx) -> Case:
    out = c.tmp / "out.tif"
    out.write_bytes(b"precious")
    return Case(c.infer(c.data["predict"] / "scene0.tif", out), ["out.tif", "--overwrite"])


def infer_output_not_writable(c: Ctx) -> Case:
    return Case(c.infer(c.data["predict"] / "scene0.tif", c.readonly() / "out.tif"),
                ["not writable", "another output path"])


def infer_output_folder_missing(c: Ctx) -> Case:
    return Case(c.infer(c.data["predict"] / "scene0.tif", c.tmp / "no" / "out.tif"),
                ["output folder", "does not exist"])


def infer_without_crs(c: Ctx) -> Case:
    source = write_tif(c.tmp / "nocrs.tif", np.ones((BANDS, SIZE, SIZE), np.float32), crs=None)
    return Case(c.infer(source, c.tmp / "out.tif"),
                ["nocrs.tif", "has no CRS", "allow_missing_crs"])


def infer_truncated_input(c: Ctx) -> Case:
    source = write_tif(c.tmp / "big.tif", np.ones((BANDS, 300, 300), np.float32))
    source.write_bytes(source.read_bytes()[: source.stat().st_size // 8])
    return Case(c.infer(source, c.tmp / "out.tif"), ["big.tif", "truncated", "replace it"])


def infer_non_raster(c: Ctx) -> Case:
    source = c.tmp / "notes.tif"
    source.write_text("not a raster")
    return Case(c.infer(source, c.tmp / "out.tif"), ["notes.tif", "not a readable raster"])


def infer_band_out_of_range(c: Ctx) -> Case:
    source = write_tif(c.tmp / "two_bands.tif", np.ones((2, SIZE, SIZE), np.float32))
    return Case(c.infer(source, c.tmp / "out.tif"), ["two_bands.tif", "2"])


def export_output_exists(c: Ctx) -> Case:
    out = c.tmp / "model.onnx"
    out.write_bytes(b"precious")
    return Case(["export", "onnx", "--ckpt", str(c.trained["ckpt"]), "--output", str(out)],
                ["model.onnx", "exists", "--overwrite"])


CASES: list[Callable[[Ctx], Case]] = [
    unknown_source, unknown_name, ambiguous_name, plugin_not_installed, broken_plugin,
    conflicting_plugins, invalid_name_grammar, wrong_kwarg, wrong_backbone_kwarg,
    wrong_type_task, wrong_type_component, wrong_type_data, missing_required,
    missing_config_file, config_not_yaml, model_data_disagree,
    empty_folder, missing_folder, no_matches, unpaired, truncated_geotiff, non_raster,
    mismatched_sizes, band_out_of_range, label_out_of_range, means_wrong_length,
    all_nodata_image, all_nodata_label, nan_image,
    missing_checkpoint, truncated_checkpoint, unsafe_pickle, checkpoint_of_another_model,
    resume_from_another_model, last_without_checkpoint, infer_corrupted_checkpoint,
    fit_output_exists, fit_output_not_writable, fit_output_under_a_file, infer_output_exists,
    infer_output_not_writable, infer_output_folder_missing, infer_without_crs,
    infer_truncated_input, infer_non_raster, infer_band_out_of_range, export_output_exists,
]


# -- read-only folders and full disks (root can write through chmod: mount instead) -----------


def _mount_tmpfs(path: Path, options: str) -> bool:
    path.mkdir(parents=True, exist_ok=True)
    try:
        done = subprocess.run(["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(path)],
                              capture_output=True, timeout=30)
    except (OSError, subprocess.SubprocessError):
        return False
    return done.returncode == 0


@pytest.fixture
def readonly(tmp_path: Path) -> Iterator[Callable[[], Path]]:
    """A factory of a folder this process cannot write to (chmod, else a read-only tmpfs)."""
    mounted: list[Path] = []
    chmodded: list[Path] = []

    def make() -> Path:
        folder = tmp_path / "readonly"
        folder.mkdir(exist_ok=True)
        folder.chmod(0o500)
        chmodded.append(folder)
        if not os.access(folder, os.W_OK):
            return folder
        if _mount_tmpfs(folder, "ro,size=64k"):
            mounted.append(folder)
            if not os.access(folder, os.W_OK):
                return folder
        pytest.skip("cannot make a folder unwritable here (root without mount permission)")

    yield make
    for folder in mounted:
        subprocess.run(["umount", str(folder)], capture_output=True, timeout=30)
    for folder in chmodded:
        folder.chmod(0o700)


@pytest.mark.parametrize("build", CASES, ids=[f.__name__ for f in CASES])
def test_bad_input_gives_one_clear_error_and_writes_nothing(
    build: Callable[[Ctx], Case], tmp_path: Path, dataset: dict[str, Path],
    trained: dict[str, Path], fake_dist: Callable[..., Path],
    readonly: Callable[[], Path], capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    ctx = Ctx(tmp_path / "case", dataset, trained, fake_dist, readonly)
    ctx.tmp.mkdir()
    case = build(ctx)
    reset_registry()  # fake distributions of this case become visible
    for key, value in case.env.items():
        monkeypatch.setenv(key, value)
    watched = [ctx.tmp, dataset["seg"].parent, trained["ckpt"].parent]
    new = run_bad_input(case.argv, watched, case.expect, capsys)
    if case.strict:
        assert not new, f"written: {new}"
    else:
        assert not [p for p in new if p.endswith(ARTIFACTS)], f"written: {new}"
    assert not (ctx.tmp / "pwned").exists()


def test_the_catalogue_has_at_least_30_cases() -> None:
    assert len(CASES) >= 30


def test_debug_shows_the_traceback_of_a_data_error(
    tmp_path: Path, dataset: dict[str, Path], trained: dict[str, Path],
    fake_dist: Callable[..., Path], readonly: Callable[[], Path],
    capsys: pytest.CaptureFixture[str],
) -> None:
    ctx = Ctx(tmp_path, dataset, trained, fake_dist, readonly)
    case = nan_image(ctx)
    assert main(["--debug", *case.argv]) == 1
    err = capsys.readouterr().err
    assert "Traceback" in err and "no_data_replace" in err


# -- outputs: --overwrite, full disks, leftovers --------------------------------------------


def test_fit_overwrite_replaces_an_earlier_run(tmp_path: Path, dataset: dict[str, Path]) -> None:
    config = seg_config(dataset, tmp_path / "run")
    config["trainer"]["logger"] = False
    path = write_config(config, tmp_path / "config.yaml")
    assert main(["fit", "-c", str(path)]) == 0
    last = tmp_path / "run" / "checkpoints" / "last.ckpt"
    first = last.read_bytes()
    assert main(["fit", "-c", str(path)]) == 1
    assert last.read_bytes() == first
    assert main(["fit", "-c", str(path), "--overwrite"]) == 0
    assert last.is_file()


@pytest.fixture
def full_disk(tmp_path: Path) -> Iterator[Path]:
    """A 12 KiB tmpfs: writing a few hundred kilobytes fills it (needs mount permission)."""
    folder = tmp_path / "full"
    if not _mount_tmpfs(folder, "size=12k"):
        pytest.skip("mounting a tmpfs needs root; the simulated ENOSPC test covers the path")
    try:
        yield folder
    finally:
        subprocess.run(["umount", str(folder)], capture_output=True, timeout=30)


def test_infer_on_a_full_disk_leaves_nothing(
    full_disk: Path, tmp_path: Path, trained: dict[str, Path],
    capsys: pytest.CaptureFixture[str],
) -> None:
    rng = np.random.default_rng(0)
    source = write_tif(tmp_path / "big.tif", rng.normal(0, 1, (BANDS, 400, 400))
                       .astype(np.float32))
    out = full_disk / "out.tif"
    code = main(["infer", "--ckpt", str(trained["ckpt"]), str(source), str(out),
                 "--no-progress", "--probabilities"])
    err = capsys.readouterr().err
    assert code == 1, err[-2000:]
    assert "Traceback" not in err and "disk may be full" in err and "out" in err
    assert list(full_disk.iterdir()) == []  # no final file, no partial file


def test_infer_simulated_enospc_leaves_nothing(
    tmp_path: Path, trained: dict[str, Path], dataset: dict[str, Path],
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch,
) -> None:
    """ENOSPC raised by the lowest write call geofm makes (rasterio's window write)."""
    import errno

    from geofm_core.inference import raster

    original = raster._write_rows
    calls = {"n": 0}

    def failing(*args: Any, **kwargs: Any) -> None:
        calls["n"] += 1
        if calls["n"] > 1:
            raise OSError(errno.ENOSPC, "No space left on device")
        original(*args, **kwargs)

    monkeypatch.setattr(raster, "_write_rows", failing)
    source = write_tif(tmp_path / "in.tif", np.ones((BANDS, 80, 40), np.float32))
    (tmp_path / "out").mkdir()
    code = main(["infer", "--ckpt", str(trained["ckpt"]), str(source),
                 str(tmp_path / "out" / "pred.tif"), "--no-progress"])
    err = capsys.readouterr().err
    assert code == 1 and "Traceback" not in err and "No space left" in err
    assert list((tmp_path / "out").iterdir()) == []


def test_stale_partial_files_of_killed_runs_are_removed(
    tmp_path: Path, trained: dict[str, Path], dataset: dict[str, Path],
) -> None:
    out = tmp_path / "pred.tif"
    dead = subprocess.run(["true"], check=True)  # a pid that has exited
    del dead
    stale = tmp_path / f".pred.tif.tmp-{2**22 + 12345}.partial.tif"
    stale.write_bytes(b"half a raster")
    other = tmp_path / ".other.tif.tmp-1.partial.tif"  # another output's: kept
    other.write_bytes(b"x")
    assert main(["infer", "--ckpt", str(trained["ckpt"]), str(dataset["predict"] / "scene0.tif"),
                 str(out), "--no-progress"]) == 0
    assert out.is_file() and not stale.exists() and other.exists()


# -- real processes ---------------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["unknown_component", "broken_plugin", "bad_data"])
def test_bad_input_in_a_real_process(kind: str, tmp_path: Path, dataset: dict[str, Path]) -> None:
    config = copy.deepcopy(seg_config(dataset, tmp_path / "run"))
    env = subprocess_env()
    expect: list[str]
    if kind == "unknown_component":
        set_path(config, "model.init_args.model_args.decoder", "acme:upernet")
        expect = ["model.init_args.model_args.decoder", "acme:upernet"]
    elif kind == "broken_plugin":
        site = tmp_path / "site"
        info = site / "broken_sub-1.0.dist-info"
        info.mkdir(parents=True)
        (info / "METADATA").write_text("Metadata-Version: 2.1\nName: broken-sub\nVersion: 1.0\n")
        (info / "entry_points.txt").write_text("[geofm.plugins]\nbrokensub = broken_sub_plugin\n")
        (site / "broken_sub_plugin.py").write_text("raise RuntimeError('half installed')\n")
        env["PYTHONPATH"] = os.pathsep.join([str(site), env["PYTHONPATH"]])
        set_path(config, "model.init_args.model_args.backbone", "brokensub:net")
        expect = ["brokensub", "half installed"]
    else:
        folder = tmp_path / "chips"
        shutil.copytree(dataset["seg"], folder)
        (folder / "chip0_img.tif").write_bytes(b"II*\0garbage")
        for stage in ("train", "val", "test"):
            set_path(config, f"data.init_args.{stage}_data_root", str(folder))
        expect = ["chip0_img.tif", "replace it"]
    path = write_config(config, tmp_path / "config.yaml")
    done = subprocess.run([geofm_exe(), "fit", "-c", str(path)], capture_output=True, text=True,
                          timeout=300, env=env)
    assert done.returncode == 1, done.stderr[-3000:]
    assert "Traceback" not in done.stderr
    error = next(line for line in done.stderr.splitlines() if line.startswith("error:"))
    for text in expect:
        assert text in done.stderr, f"{text!r} not in {error}"
    assert not list((tmp_path).rglob("*.ckpt"))


def test_checkpoint_loading_in_lightning_is_weights_only(trained: dict[str, Path]) -> None:
    """A checkpoint the training CLI accepts holds only tensors and plain values."""
    state = torch.load(trained["ckpt"], map_location="cpu", weights_only=True)
    assert "state_dict" in state
