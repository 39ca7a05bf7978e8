"""`geofm fit|validate|test|predict` end to end on tiny GeoTIFF folders, and config errors."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import torch
import yaml

from geofm_core.cli import main
from geofm_core.errors import GeofmError
from geofm_core.registry import get_registry
from geofm_core.testing import logged_metric_keys as logged_keys

from .conftest import BANDS, CLASSES, MakeConfig

TASKS = ["segmentation", "regression", "classification", "multilabel"]


def geofm(args: list[str]) -> int:
    return main(args)


def last_checkpoint(root: Path) -> Path:
    found = sorted(root.rglob("last.ckpt"), key=lambda p: p.stat().st_mtime)
    assert found, f"no last.ckpt under {root}"
    return found[-1]


EXPECTED_KEYS = {
    "segmentation": {"train/loss_epoch", "val/loss", "val/mIoU", "val/mIoU_micro",
                     "val/IoU_water", "val/IoU_cloud", "val/accuracy", "val/F1",
                     "train/mIoU", "test/mIoU", "test/IoU_land"},
    "regression": {"train/loss_epoch", "val/loss", "val/RMSE", "val/MAE", "val/R2",
                   "test/RMSE"},
    "classification": {"train/loss_epoch", "val/loss", "val/accuracy", "val/F1",
                       "val/accuracy_water", "test/accuracy"},
    "multilabel": {"train/loss_epoch", "val/loss", "val/mAP", "val/F1", "val/AP_land",
                   "test/mAP"},
}


@pytest.mark.parametrize("task", TASKS)
def test_fit_validate_test_predict(task: str, make_config: MakeConfig, tmp_path: Path) -> None:
    config = make_config(task)
    assert geofm(["fit", "-c", str(config)]) == 0
    ckpt = last_checkpoint(tmp_path / "logs")
    assert any(p.name.startswith("best-") for p in ckpt.parent.iterdir())
    for command in ("validate", "test", "predict"):
        assert geofm([command, "-c", str(config), "--ckpt_path", str(ckpt)]) == 0, command
    assert EXPECTED_KEYS[task] <= logged_keys(tmp_path / "logs")
    assert "lr-AdamW/default" in logged_keys(tmp_path / "logs")  # LearningRateMonitor
    if task == "segmentation":  # tiling given on the command line, for this run only
        args = ["predict", "-c", str(config), "--ckpt_path", str(ckpt),
                "--trainer.default_root_dir", str(tmp_path / "tiled"),
                "--model.init_args.tiled_inference", '{"crop": 16, "stride": 8}']
        assert geofm(args) == 0


def test_resume_continues_the_step_count_and_foreign_checkpoints_fail_clearly(
    make_config: MakeConfig, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = make_config("segmentation")
    assert geofm(["fit", "-c", str(config)]) == 0
    first = last_checkpoint(tmp_path / "logs")
    state = torch.load(first, map_location="cpu", weights_only=False)
    assert state["global_step"] == 2 and state["epoch"] == 0
    assert geofm(["fit", "-c", str(config), "--trainer.max_epochs", "2",
                  "--ckpt_path", str(first)]) == 0
    second = last_checkpoint(tmp_path / "logs")
    assert second != first
    state = torch.load(second, map_location="cpu", weights_only=False)
    assert state["global_step"] == 4 and state["epoch"] == 1
    # The checkpoint of this segmentation model does not fit a regression model.
    ckpt = second
    other = make_config("regression", name="other.yaml")
    capsys.readouterr()
    assert geofm(["test", "-c", str(other), "--ckpt_path", str(ckpt)]) == 1
    err = capsys.readouterr().err
    assert "Traceback" not in err
    error = [ln for ln in err.splitlines() if ln.startswith("error:")]
    assert len(error) == 1 and str(ckpt) in error[0] and "key(s) in state_dict" in error[0]


def test_resnet18_aux_heads_frozen_backbone_and_lr_overrides(
    make_config: MakeConfig, tmp_path: Path
) -> None:
    from .conftest import timm_model_args

    args = timm_model_args("segmentation", "timm:resnet18") | {"aux_decoders": [
        {"name": "deep", "decoder": "geofm:fcn",
         "decoder_kwargs": {"channels": 8, "num_convs": 1, "in_index": -2}}]}
    config = make_config(
        "segmentation", model_args=args,
        model={"aux_loss": {"deep": 0.4}, "loss": {"ce": 1.0, "dice": 0.5},
               "freeze_backbone": True, "lr_overrides": {"decoder": 1e-2}},
    )
    assert geofm(["fit", "-c", str(config)]) == 0
    keys = logged_keys(tmp_path / "logs")
    assert {"train/aux_deep_loss_epoch", "val/aux_deep_loss", "val/loss_main", "val/loss_ce",
            "val/loss_dice"} <= keys
    state = torch.load(last_checkpoint(tmp_path / "logs"), map_location="cpu",
                       weights_only=False)
    groups = state["optimizer_states"][0]["param_groups"]
    assert [g["name"] for g in groups] == ["decoder", "default"]
    assert groups[0]["lr"] == 1e-2
    # The optimizer holds exactly the trainable (non-backbone) parameters.
    from geofm_core.tasks import SemanticSegmentationTask

    task = SemanticSegmentationTask(model_args=args, num_classes=3, freeze_backbone=True,
                                    aux_loss={"deep": 0.4})
    trainable = [n for n, p in task.named_parameters() if p.requires_grad]
    assert trainable and not any(n.startswith("model.backbone.") for n in trainable)
    assert sum(len(g["params"]) for g in groups) == len(trainable)


def test_prithvi_necks_upernet_from_yaml(make_config: MakeConfig, tmp_path: Path) -> None:
    for kind, name in (("backbone", "prithvi:prithvi_eo_v1_100"),
                       ("decoder", "upernet:upernet")):
        try:
            get_registry().get(kind, name)
        except GeofmError:
            pytest.skip(f"{kind} {name} is not installed")
    model_args = {
        "backbone": "prithvi:prithvi_eo_v1_100",
        "backbone_kwargs": {"embed_dim": 32, "depth": 4, "num_heads": 2, "img_size": 32,
                            "bands": [0, 1, 2, 3, 4, 5]},
        "necks": [{"name": "geofm:select_indices", "indices": [0, 1, 2, 3]},
                  {"name": "geofm:reshape_tokens_to_image"},
                  {"name": "geofm:learned_interpolate_to_pyramidal"}],
        "decoder": "upernet:upernet", "decoder_kwargs": {"channels": 16},
    }
    config = make_config("segmentation", model_args=model_args,
                         model={"tiled_inference": {"crop": 32, "stride": 16}})
    assert geofm(["fit", "-c", str(config)]) == 0
    ckpt = last_checkpoint(tmp_path / "logs")
    for command in ("test", "predict"):
        assert geofm([command, "-c", str(config), "--ckpt_path", str(ckpt)]) == 0
    assert {"test/mIoU", "val/IoU_water"} <= logged_keys(tmp_path / "logs")


def test_ready_module_instead_of_a_factory(make_config: MakeConfig, tmp_path: Path) -> None:
    config = make_config("segmentation", model={"model": {
        "class_path": "torch.nn.Conv2d",
        "init_args": {"in_channels": BANDS, "out_channels": len(CLASSES), "kernel_size": 1}}})
    assert geofm(["fit", "-c", str(config)]) == 0
    state = torch.load(last_checkpoint(tmp_path / "logs"), map_location="cpu",
                       weights_only=False)
    assert set(state["state_dict"]) == {"model.weight", "model.bias"}


def test_plot_on_val_uses_the_datamodule_plot(geotiff_data: dict[str, Path],
                                              tmp_path: Path) -> None:
    from lightning.pytorch import Trainer
    from lightning.pytorch.loggers import Logger

    from geofm_core.data import GeoTiffSegmentationDataModule
    from geofm_core.tasks import SemanticSegmentationTask

    class FigureLogger(Logger):
        """Takes figures like TensorBoard's logger (not installed here)."""

        name, version = "figures", 0

        def __init__(self) -> None:
            super().__init__()
            self.tags: list[str] = []

        @property
        def experiment(self) -> Any:
            return self

        def add_figure(self, tag: str, figure: Any, step: int) -> None:
            assert type(figure).__name__ == "Figure"
            self.tags.append(tag)

        def log_metrics(self, metrics: Any, step: Any = None) -> None:
            pass

        def log_hyperparams(self, *args: Any, **kwargs: Any) -> None:
            pass

    root = str(geotiff_data["seg"])
    data = GeoTiffSegmentationDataModule(
        train_data_root=root, val_data_root=root, img_pattern="*_img.tif",
        label_pattern="*_mask.tif", batch_size=2, means=[0.0] * BANDS, stds=[1.0] * BANDS,
        num_classes=3, rgb_indices=[2, 1, 0])
    task = SemanticSegmentationTask(model=torch.nn.Conv2d(BANDS, 3, 1), num_classes=3,
                                    plot_on_val=2)
    logger = FigureLogger()
    Trainer(accelerator="cpu", max_epochs=1, logger=logger, enable_checkpointing=False,
            enable_progress_bar=False, num_sanity_val_steps=0, limit_train_batches=1,
            default_root_dir=tmp_path).fit(task, datamodule=data)
    # One figure per sample (the first two of the first batch), named by the chip.
    assert logger.tags[:2] == ["val/prediction_chip0_img", "val/prediction_chip1_img"]
    assert logger.tags[2:] == ["val/confusion_matrix"]


def test_torchgeo_task_by_full_class_path(make_config: MakeConfig, tmp_path: Path) -> None:
    config = make_config("segmentation")
    data = yaml.safe_load(config.read_text())
    data["model"] = {"class_path": "torchgeo.trainers.SemanticSegmentationTask", "init_args": {
        "model": "fcn", "in_channels": BANDS, "num_classes": len(CLASSES), "num_filters": 4,
        "loss": "ce", "weights": None}}
    config.write_text(yaml.safe_dump(data))
    assert geofm(["fit", "-c", str(config)]) == 0
    assert "val_loss" in logged_keys(tmp_path / "logs")


# -- errors ---------------------------------------------------------------------


def _edit(config: Path, path: str, value: Any) -> None:
    data = yaml.safe_load(config.read_text())
    *parents, last = path.split(".")
    node = data
    for key in parents:
        node = node[key]
    if value is None:
        del node[last]
    else:
        node[last] = value
    config.write_text(yaml.safe_dump(data))


@pytest.mark.parametrize(("path", "value", "expected"), [
    ("model.init_args.model_args.backbone", "acme:vit",
     ["model.init_args.model_args.backbone: unknown backbone 'acme:vit'",
      "pip install geofm-plugin-acme"]),
    ("model.init_args.model_args.backbone", "timm:test_resnt",
     ["model.init_args.model_args.backbone", "Did you mean: timm:test_resnet"]),
    ("model.init_args.model_args.decoder_kwargs",
     {"channels": 8, "num_conv": 1},
     ["model.init_args.model_args.decoder", "'num_conv'", "Did you mean 'num_convs'"]),
    ("model.init_args.lr", "fast", ["at model.init_args.lr", "expected a float, got fast"]),
    ("model.init_args.lrr", 0.1,
     ["at model.init_args.lrr", "no argument 'lrr'", "Did you mean 'lr'"]),
    ("model.class_path", "SemanticSegmentationTsk",
     ["at model.class_path", "unknown class 'SemanticSegmentationTsk'",
      "Did you mean SemanticSegmentationTask"]),
    ("data.init_args.batch_size", "two", ["at data.init_args.batch_size", "expected a int"]),
    ("model.init_args.loss", "dicee", ["model.init_args.loss", "Did you mean: geofm:dice"]),
    ("model.init_args.aux_loss", {"deep": 1.0},
     ["aux_loss names ['deep'] match no auxiliary head"]),
    ("model.init_args.optimizer", "Adamw", ["model.init_args.optimizer", "'AdamW'"]),
    ("model.init_args.class_names", ["a", "b", "c"],
     ["model.init_args.class_names is ['a', 'b', 'c'] but data.init_args.class_names is"]),
    ("trainer.max_epoch", 1, ["at trainer.max_epoch", "Did you mean 'trainer.max_epochs'"]),
    ("model", None, ["at model: model is required", "class_path: SemanticSegmentationTask"]),
    ("data.init_args.ignore_index", 255,
     ["model.init_args.ignore_index is None but data.init_args.ignore_index is 255"]),
])
def test_config_errors_are_one_readable_paragraph(
    make_config: MakeConfig, capsys: pytest.CaptureFixture[str], path: str, value: Any,
    expected: list[str],
) -> None:
    config = make_config("segmentation")
    _edit(config, path, value)
    capsys.readouterr()
    assert geofm(["fit", "-c", str(config)]) == 1
    err = capsys.readouterr().err
    assert "Traceback" not in err
    error_lines = [ln for ln in err.splitlines() if ln.startswith("error:")]
    assert len(error_lines) == 1, err
    for text in expected:
        assert text in error_lines[0], err


def test_debug_shows_the_traceback(make_config: MakeConfig,
                                   capsys: pytest.CaptureFixture[str]) -> None:
    config = make_config("segmentation")
    _edit(config, "model.init_args.model_args.backbone", "acme:vit")
    assert geofm(["--debug", "fit", "-c", str(config)]) == 1
    err = capsys.readouterr().err
    assert "Traceback" in err and "UnknownComponentError" in err


# -- real processes ---------------------------------------------------------------


def _geofm_exe() -> str:
    exe = Path(sys.executable).parent / "geofm"
    if not exe.exists():
        pytest.skip("the geofm console script is not installed beside this Python")
    return str(exe)


def test_fit_in_a_real_process(make_config: MakeConfig, tmp_path: Path) -> None:
    config = make_config("classification")
    done = subprocess.run([_geofm_exe(), "fit", "-c", str(config)], capture_output=True,
                          text=True, timeout=300, env=os.environ | {"PYTHONWARNINGS": "ignore"})
    assert done.returncode == 0, done.stderr[-3000:]
    assert last_checkpoint(tmp_path / "logs").exists()


def test_fit_help_is_light_and_errors_have_no_traceback(make_config: MakeConfig,
                                                        tmp_path: Path) -> None:
    bad = make_config("segmentation", name="bad.yaml")
    bad.write_text(bad.read_text().replace("timm:test_resnet", "acme:vit"))
    # One fresh process: `fit --help` first (what it imported is checked), then a bad config.
    code = (
        "import sys\n"
        "from geofm_core.cli import main\n"
        "code = main(['fit', '--help'])\n"
        # geofm_core.data itself is lazy and light (the registry reads its band names)
        "heavy = [m for m in ('geofm_core.tasks', 'geofm_core.data.datamodules', 'torchgeo',"
        " 'timm', 'rasterio', 'kornia') if m in sys.modules]\n"
        "print('HEAVY', heavy, code, flush=True)\n"
        f"sys.exit(main(['fit', '-c', {str(bad)!r}]))\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=300)
    assert "--trainer.max_epochs" in done.stdout
    assert "HEAVY [] 0" in done.stdout, done.stderr[-3000:]
    assert done.returncode == 1
    assert "Traceback" not in done.stderr
    assert "model.init_args.model_args.backbone: unknown backbone 'acme:vit'" in done.stderr


# -- the config, read before and after parsing --------------------------------------------


def test_short_names_are_geofm_classes_even_beside_torchgeo_trainers(
        make_config: MakeConfig, tmp_path: Path) -> None:
    """torchgeo.trainers has a SemanticSegmentationTask too; the short name means geofm's."""
    config = make_config("segmentation")
    code = (
        "import sys, torchgeo.trainers\n"
        "from geofm_core.cli import main\n"
        f"sys.exit(main(['fit', '-c', {str(config)!r}, '--print_config']))\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    printed = yaml.safe_load(done.stdout)
    assert printed["model"]["class_path"] == "geofm_core.tasks.SemanticSegmentationTask"
    assert printed["data"]["class_path"] == "geofm_core.data.GeoTiffSegmentationDataModule"
    # ... and on the command line, in both option spellings
    code = code.replace("'--print_config'", "'--model=SemanticSegmentationTask', "
                        "'--data', 'GeoTiffSegmentationDataModule', '--print_config'")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "geofm_core.tasks.SemanticSegmentationTask" in done.stdout


def test_a_bad_value_given_on_the_command_line_is_named(
        make_config: MakeConfig, capsys: pytest.CaptureFixture[str]) -> None:
    """Not in a file, so jsonargparse finds it; its error still becomes one paragraph."""
    config = make_config("segmentation")
    assert geofm(["fit", "-c", str(config), "--model.init_args.lr", "slow"]) == 1
    error = [ln for ln in capsys.readouterr().err.splitlines() if ln.startswith("error:")]
    assert len(error) == 1 and "at model.init_args.lr" in error[0], error
    assert "expected a float, got slow" in error[0]


@pytest.mark.parametrize(("path", "value", "expected"), [
    ("model.init_args.model_args.necks", [{"name": "geofm:select_indices", "indices": [0]},
                                          {"name": "geofm:reshape_tokns"}],
     "model.init_args.model_args.necks[1].name: unknown neck 'geofm:reshape_tokns'"),
    ("model.init_args.model_factory", "geofm:encoder_decodr",
     "model.init_args.model_factory: unknown model_factory 'geofm:encoder_decodr'"),
    ("model.init_args.loss", {"ce": 1.0, "dicee": 0.5},
     "model.init_args.loss.dicee: unknown loss 'dicee'"),
])
def test_unknown_registry_names_are_reported_at_their_exact_path_before_building(
        make_config: MakeConfig, capsys: pytest.CaptureFixture[str], path: str, value: Any,
        expected: str) -> None:
    config = make_config("segmentation")
    _edit(config, path, value)
    assert geofm(["fit", "-c", str(config)]) == 1
    error = [ln for ln in capsys.readouterr().err.splitlines() if ln.startswith("error:")]
    assert len(error) == 1 and expected in error[0], error


def test_a_config_file_that_is_not_a_mapping_is_named(tmp_path: Path,
                                                      capsys: pytest.CaptureFixture[str]) -> None:
    bad = tmp_path / "list.yaml"
    bad.write_text("- model\n- data\n")
    assert geofm(["fit", "-c", str(bad)]) == 1
    err = capsys.readouterr().err
    assert f"{bad} is not a valid config: it holds a list" in err and "Traceback" not in err


def test_fit_help_lists_geofm_tasks_data_modules_and_options() -> None:
    proc = subprocess.run([_geofm_exe(), "fit", "--help"], capture_output=True, text=True,
                          timeout=300, check=False)
    assert proc.returncode == 0, proc.stderr
    text = " ".join(proc.stdout.split())
    for name in ("SemanticSegmentationTask", "MultiLabelClassificationTask",
                 "GeoTiffSegmentationDataModule", "GeoTiffSceneDataModule",
                 "--overwrite", "--model.help SemanticSegmentationTask"):
        assert name in text, name


def test_print_config_alone_says_what_is_missing(capsys: pytest.CaptureFixture[str]) -> None:
    assert geofm(["fit", "--print_config"]) == 1
    err = capsys.readouterr().err
    assert "add -c config.yaml, or --model TASK and --data DATAMODULE" in err
    assert "model: null" not in err
