"""``geofm fit|validate|test|predict -c config.yaml``: Lightning's CLI with geofm's defaults.

* Short class names: ``class_path: SemanticSegmentationTask`` or
  ``class_path: GeoTiffSegmentationDataModule`` always mean geofm's classes, and their
  modules are imported only when named, so ``geofm fit --help`` costs little more than
  importing torch and lightning; the config is checked before and after parsing
  (:mod:`geofm_core.cli.train_config`). Any other ``LightningModule`` /
  ``LightningDataModule`` (TorchGeo's included) works by its full class path.
* Default callbacks, each added only when the config has none of its type: checkpoints
  of the best model (by the task's ``monitor``/``mode``) and of the last epoch, a
  learning-rate monitor (when a logger is on), a model summary without Lightning's
  FLOPs column, and a summary printed when the run ends (best and last checkpoints, the
  monitored metric's best value, per-class metrics: :mod:`geofm_core.cli.run_report`);
  Lightning's progress bar stays on.
* Checkpoints are written atomically in their own folder
  (:class:`~geofm_core.io.checkpoint_io.AtomicCheckpointIO`, unless the config names a
  ``CheckpointIO``); SIGTERM saves a resumable ``last.ckpt`` and exits with status 143,
  and ``fast_dev_run`` writes no checkpoint (:mod:`geofm_core.cli.run_guard`).
* ``predict`` writes with :class:`~geofm_core.inference.writer.GeoTiffPredictionWriter`
  (detection tasks, ``vector_output``: with
  :class:`~geofm_core.inference.vector_writer.VectorPredictionWriter`, one vector file
  per image) unless the config names a prediction writer; ``--overwrite`` replaces its outputs,
  ``--skip_existing`` predicts only the inputs whose outputs are missing (a rerun).
* ``--ckpt_path`` resumes training or loads weights; the settings of the config always
  win over the hyper-parameters saved in the checkpoint (Lightning would otherwise
  replace the model's config by the checkpoint's, e.g. dropping ``tiled_inference``).
* Configuration mistakes become one :class:`~geofm_core.errors.ConfigurationError`
  paragraph naming the YAML path and the fix; ``--debug`` shows the traceback.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any, ClassVar

from lightning.pytorch import Callback, Trainer
from lightning.pytorch.callbacks import (
    BasePredictionWriter,
    LearningRateMonitor,
    ModelCheckpoint,
    ModelSummary,
)
from lightning.pytorch.cli import LightningCLI
from lightning.pytorch.utilities.exceptions import SIGTERMException

from geofm_core.cli.train_config import (
    LOADER_MODE,
    check_accelerator,
    check_components,
    check_config_files,
    check_ranges,
    expand_argv,
    install_loader,
)
from geofm_core.cli.train_errors import argument_error, geofm_error_in_chain, with_location
from geofm_core.errors import ConfigurationError

__all__ = ["GeofmCLI", "main"]

SUBCOMMANDS = ("fit", "validate", "test", "predict")


class GeofmCLI(LightningCLI):
    """Lightning's CLI in subclass mode with geofm's short names, callbacks and errors."""

    #: The parsed configuration of the running subcommand, kept for error messages.
    last_config: dict[str, Any] | None = None

    def before_instantiate_classes(self) -> None:
        """Keep a plain copy of the configuration, and look up its registry names.

        The copy lets errors name YAML paths; an unknown component name is reported at its
        exact path here, before anything is built.
        """
        try:
            import yaml

            dumped = yaml.safe_load(self.parser.dump(self.config, skip_none=False))
            GeofmCLI.last_config = dumped.get(self.config.get("subcommand"), dumped)
        except Exception:  # only used to make messages more precise
            GeofmCLI.last_config = None
        check_components(GeofmCLI.last_config)
        check_ranges(GeofmCLI.last_config, str(self.config.get("subcommand") or "fit"))
        check_accelerator(GeofmCLI.last_config)

    def after_instantiate_classes(self) -> None:
        """Check that model and data agree on the settings they share (e.g. ``num_classes``).

        Lightning logs both hyper-parameter sets together and stops with a RuntimeError
        when a shared key differs. Two given values that differ are a configuration
        error; a value given on one side only (the other None) is fine, and then the
        data's hyper-parameters are not logged separately (the saved config has them).
        """
        super().after_instantiate_classes()
        model_hp = dict(getattr(self.model, "hparams", {}) or {})
        data_hp = dict(getattr(self.datamodule, "hparams", {}) or {}) if self.datamodule else {}
        conflicts = [k for k in model_hp.keys() & data_hp.keys()
                     if not k.startswith("_") and model_hp[k] != data_hp[k]]
        real = [k for k in conflicts if model_hp[k] is not None and data_hp[k] is not None]
        if data_hp.get("ignore_index") is not None and "ignore_index" in model_hp and \
                model_hp["ignore_index"] is None:
            real.append("ignore_index")  # the task would train on those pixels as a class
        if real:
            details = "; ".join(
                f"model.init_args.{k} is {model_hp[k]!r} but data.init_args.{k} is {data_hp[k]!r}"
                for k in sorted(real)
            )
            raise ConfigurationError(f"model and data disagree: {details}. Make them equal")
        if conflicts and self.datamodule is not None:
            self.datamodule._log_hyperparams = False

    def _parse_ckpt_path(self) -> None:
        """Leave the configuration as given: the checkpoint supplies weights, not settings."""

    #: The SIGTERM and fast_dev_run guard of the running ``fit`` (None otherwise).
    guard: Any = None
    #: ``--overwrite`` was given: ``fit`` may replace an earlier run's checkpoints.
    overwrite: bool = False
    #: ``--skip_existing`` was given: ``predict`` leaves inputs with finished outputs alone.
    skip_existing: bool = False
    #: The command line of this run (``geofm fit ...``), as DDP's other ranks must see it.
    launch_argv: ClassVar[list[str]] = ["geofm"]

    def _prepare_subcommand_kwargs(self, subcommand: str) -> dict[str, Any]:
        """Resolve and check ``ckpt_path`` and the outputs (:mod:`geofm_core.cli.run_checks`)."""
        from geofm_core.cli.run_checks import prepare_run

        kwargs = super()._prepare_subcommand_kwargs(subcommand)
        # Lightning's DDP launcher starts the other ranks with this process's sys.argv.
        sys.argv = list(GeofmCLI.launch_argv)
        return prepare_run(self.trainer, subcommand, kwargs, overwrite=GeofmCLI.overwrite,
                           model=self.model)

    def _instantiate_trainer(self, config: dict[str, Any], callbacks: list[Callback]) -> Trainer:
        given = config.get("callbacks") or []
        given = given if isinstance(given, list) else [given]
        defaults: list[Callback] = []
        if not any(isinstance(c, ModelCheckpoint) for c in [*given, *callbacks]) and config.get(
            "enable_checkpointing", True
        ) is not False:
            from geofm_core.cli.run_guard import LastCheckpoint

            monitor = getattr(self.model, "monitor", None)
            defaults.append(LastCheckpoint(
                monitor=monitor, mode=getattr(self.model, "mode", "min"), save_last=True,
                filename="best-{epoch}-{step}" if monitor else "{epoch}-{step}",
                auto_insert_metric_name=False,
            ))
        if self.subcommand == "fit":
            from geofm_core.cli.run_guard import RunGuard

            GeofmCLI.guard = RunGuard()
            defaults.append(GeofmCLI.guard)
        if config.get("logger") is not False and not any(
            isinstance(c, LearningRateMonitor) for c in given
        ):
            defaults.append(LearningRateMonitor())
        from geofm_core.cli.run_report import LeanModelSummary, RunSummary

        if config.get("enable_model_summary", True) is not False and not any(
            isinstance(c, ModelSummary) for c in given
        ):
            defaults.append(LeanModelSummary())
        defaults.append(RunSummary())
        if self.subcommand == "predict":
            from geofm_core.inference.vector_writer import VectorPredictionWriter, for_vectors
            from geofm_core.inference.writer import GeoTiffPredictionWriter

            if getattr(self.model, "vector_output", False):
                # A GeoTIFF writer (a converted TerraTorch config names one) cannot write
                # detections: the vector writer takes its place and settings.
                given, callbacks = for_vectors(given), for_vectors(callbacks)
                config = {**config, "callbacks": given}
            for writer in [*given, *callbacks]:  # the flags reach a configured writer too
                if isinstance(writer, GeoTiffPredictionWriter | VectorPredictionWriter):
                    writer.overwrite = writer.overwrite or GeofmCLI.overwrite
                    writer.skip_existing = writer.skip_existing or GeofmCLI.skip_existing
                elif isinstance(getattr(writer, "overwrite", None), bool):
                    writer.overwrite = writer.overwrite or GeofmCLI.overwrite
            if not any(isinstance(c, BasePredictionWriter) for c in [*given, *callbacks]):
                root = Path(config.get("default_root_dir") or os.getcwd())
                # A task whose predictions are no maps names its own writer.
                own = getattr(self.model, "default_prediction_writer", None)
                if getattr(self.model, "vector_output", False):  # detections: vector files
                    defaults.append(VectorPredictionWriter(
                        output_dir=str(root / "predictions"), overwrite=GeofmCLI.overwrite,
                        skip_existing=GeofmCLI.skip_existing))
                elif callable(own):
                    defaults.append(own(output_dir=str(root / "predictions"),
                                        overwrite=GeofmCLI.overwrite))
                else:
                    defaults.append(GeoTiffPredictionWriter(
                        output_dir=str(root / "predictions"), overwrite=GeofmCLI.overwrite,
                        skip_existing=GeofmCLI.skip_existing))
        config = dict(config)
        config["plugins"] = _with_atomic_checkpoints(config.get("plugins"))
        return super()._instantiate_trainer(config, [*callbacks, *defaults])


#: What each subcommand does, first in its ``--help``.
_PURPOSES = {
    "fit": "Train a model: geofm fit -c config.yaml.",
    "validate": "Validate a model on the validation data: geofm validate -c config.yaml "
                "--ckpt_path CKPT.",
    "test": "Test a model on the test data: geofm test -c config.yaml --ckpt_path CKPT.",
    "predict": "Predict the predict_data_root chips of a config with Lightning's loop "
               "(several devices, GeoTIFFs per chip): geofm predict -c config.yaml "
               "--ckpt_path CKPT. For one raster of any size, streamed, without a "
               "config, use geofm infer.",
}


def subcommand_description(subcommand: str) -> str:
    """The top of ``geofm SUBCOMMAND --help``: geofm's tasks, data modules and options.

    jsonargparse lists only the subclasses imported so far, and geofm imports a task or
    data module only when a config names it, so the names are listed here instead.
    """
    from geofm_core.cli.train_config import SHORT_NAMES

    tasks = ", ".join(n for n in SHORT_NAMES if n.endswith("Task"))
    data = ", ".join(n for n in SHORT_NAMES if n.endswith("DataModule"))
    overwrite = {"fit": "replace an earlier run's checkpoints",
                 "predict": "replace existing prediction files"}.get(subcommand)
    extra = f" --overwrite: {overwrite}." if overwrite else ""
    return (
        f"{_PURPOSES[subcommand]} Tasks (model.class_path): {tasks}. Data modules "
        f"(data.class_path): {data}. Any other LightningModule / LightningDataModule "
        "(TorchGeo's too) by its full class path. `--model.help SemanticSegmentationTask` "
        "and `--data.help GeoTiffSegmentationDataModule` show their options; `geofm "
        f"describe NAME` a component's.{extra} --ckpt is --ckpt_path; --debug shows "
        "tracebacks."
    )


def _with_atomic_checkpoints(plugins: Any) -> Any:
    """The trainer's plugins with :class:`AtomicCheckpointIO`, unless one writes checkpoints."""
    from lightning.pytorch.plugins.io import CheckpointIO

    from geofm_core.io.checkpoint_io import AtomicCheckpointIO

    given = [] if plugins is None else plugins if isinstance(plugins, list) else [plugins]
    if any(isinstance(p, CheckpointIO) for p in given):
        return plugins
    return [*given, AtomicCheckpointIO()]


def _parser_kwargs() -> dict[str, Any]:
    # Config files are read by geofm's loader, which expands short class names.
    options = {"exit_on_error": False, "parser_mode": LOADER_MODE}
    kwargs: dict[str, Any] = dict(options)
    for sub in SUBCOMMANDS:
        kwargs[sub] = dict(options, description=subcommand_description(sub))
    return kwargs


def _run_cli(args: list[str]) -> None:
    GeofmCLI(
        model_class=None,
        datamodule_class=None,
        subclass_mode_model=True,
        subclass_mode_data=True,
        save_config_kwargs={"overwrite": True},
        parser_kwargs=_parser_kwargs(),
        args=args,
    )


def _check_print_config(args: Sequence[str]) -> None:
    """``--print_config`` without a config or a model would print ``model: null``."""
    if not any(a == "--print_config" or a.startswith("--print_config=") for a in args):
        return
    given = [a for a in args if a in ("-c", "--config") or a.startswith("--config=")
             or a.startswith("--model")]
    if not given:
        raise ConfigurationError(
            f"geofm {args[0] if args else 'fit'} --print_config prints the configuration of "
            "a run, and none is given: add -c config.yaml, or --model TASK and --data "
            "DATAMODULE (e.g. --model SemanticSegmentationTask --data "
            "GeoTiffSegmentationDataModule) to see every option with its default"
        )


def main(argv: Sequence[str]) -> int:
    """Run ``geofm fit|validate|test|predict ...``; returns the exit code.

    Raises:
        ConfigurationError: The configuration does not parse or names something unknown.
        GeofmError: A component could not be built; the message names the YAML path.
    """
    debug = "--debug" in argv or bool(os.environ.get("GEOFM_DEBUG"))
    flags = ("--debug", "--overwrite", "--skip_existing", "--skip-existing")
    args = expand_argv([a for a in argv if a not in flags])
    GeofmCLI.overwrite = "--overwrite" in argv
    GeofmCLI.skip_existing = "--skip_existing" in argv or "--skip-existing" in argv
    if GeofmCLI.skip_existing and args[:1] != ["predict"]:
        raise ConfigurationError(
            "--skip_existing applies to `geofm predict` only (it predicts the inputs whose "
            "outputs are missing); drop it"
        )
    GeofmCLI.last_config = None
    GeofmCLI.guard = None
    if not any(a in ("-h", "--help") for a in args):
        check_config_files(args)
        _check_print_config(args)
    install_loader()
    from geofm_core.cli.run_report import quiet_lightning

    quiet_lightning()
    saved_argv = sys.argv
    # The arguments come from ``args``; sys.argv names the program in usage lines and is
    # what Lightning's DDP launcher runs again for the other ranks.
    program = saved_argv[0] if saved_argv and Path(saved_argv[0]).name == "geofm" else "geofm"
    sys.argv = [program]
    GeofmCLI.launch_argv = [program, *argv]
    try:
        _run_cli(args)
    except SIGTERMException as exc:  # a SystemExit(None): it would read as success
        from geofm_core.cli.run_guard import interrupted_error

        raise interrupted_error(GeofmCLI.guard) from (exc if debug else None)
    except SystemExit as exc:  # --help, --print_config
        return exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
    except Exception as exc:
        from jsonargparse import ArgumentError

        found = geofm_error_in_chain(exc)
        if found is not None:
            located = with_location(found, GeofmCLI.last_config)
            if debug:
                raise located from exc
            raise located from found.__cause__
        if isinstance(exc, ArgumentError):
            raise argument_error(exc, args) from (exc if debug else None)
        raise
    finally:
        sys.argv = saved_argv
    return 0
