"""``geofm fit|validate|test|predict -c config.yaml``: Lightning's CLI with geofm's defaults.

* Short class names: ``class_path: SemanticSegmentationTask`` or
  ``class_path: GeoTiffSegmentationDataModule``. The module defining a short name is
  imported only when the command line or a config file mentions it, so ``geofm fit
  --help`` costs little more than importing torch and lightning. Any other
  ``LightningModule`` / ``LightningDataModule`` (TorchGeo's included) works by its full
  class path.
* Default callbacks, each added only when the config has none of its type: checkpoints
  of the best model (by the task's ``monitor``/``mode``) and of the last epoch, a
  learning-rate monitor (when a logger is on); Lightning's progress bar stays on.
* ``--ckpt_path`` resumes training or loads weights; the settings of the config always
  win over the hyper-parameters saved in the checkpoint (Lightning would otherwise
  replace the model's config by the checkpoint's, e.g. dropping ``tiled_inference``).
* Configuration mistakes become one :class:`~geofm_core.errors.ConfigurationError`
  paragraph naming the YAML path and the fix; ``--debug`` shows the traceback.
"""

from __future__ import annotations

import contextlib
import difflib
import importlib
import os
import re
import sys
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any, ClassVar

from lightning.pytorch import Callback, Trainer
from lightning.pytorch.callbacks import BasePredictionWriter, LearningRateMonitor, ModelCheckpoint
from lightning.pytorch.cli import LightningCLI

from geofm_core.errors import ConfigurationError, GeofmError

__all__ = ["SHORT_NAMES", "GeofmCLI", "main"]

#: Short class names usable in configs -> the module that defines them.
SHORT_NAMES: dict[str, str] = {
    "SemanticSegmentationTask": "geofm_core.tasks",
    "PixelwiseRegressionTask": "geofm_core.tasks",
    "ClassificationTask": "geofm_core.tasks",
    "MultiLabelClassificationTask": "geofm_core.tasks",
    "GeoTiffSegmentationDataModule": "geofm_core.data",
    "GeoTiffRegressionDataModule": "geofm_core.data",
    "GeoTiffClassificationDataModule": "geofm_core.data",
    "GeoTiffMultiLabelDataModule": "geofm_core.data",
}

SUBCOMMANDS = ("fit", "validate", "test", "predict")


def _config_texts(args: Sequence[str]) -> Iterator[str]:
    """The command line and the text of every config file it names."""
    yield " ".join(args)
    for i, arg in enumerate(args):
        path = None
        if arg in ("-c", "--config") and i + 1 < len(args):
            path = args[i + 1]
        elif arg.startswith("--config="):
            path = arg.partition("=")[2]
        if path is not None and Path(path).is_file():
            yield Path(path).read_text(encoding="utf-8", errors="replace")


def import_short_names(args: Sequence[str]) -> list[str]:
    """Import the modules of the short class names that ``args`` or its configs mention."""
    text = "\n".join(_config_texts(args))
    found = []
    for name, module_name in SHORT_NAMES.items():
        if not re.search(rf"\b{name}\b", text):
            continue
        try:
            getattr(importlib.import_module(module_name), name)
        except (ImportError, AttributeError) as exc:
            raise ConfigurationError(
                f"{name} comes from {module_name}, which cannot be imported here: {exc}. "
                "Check the installation of geofm-core, or give the full class_path"
            ) from exc
        found.append(name)
    return found


@contextlib.contextmanager
def _short_names_first() -> Iterator[None]:
    """Resolve geofm's short class names to geofm's classes, whatever else is imported.

    Another imported package (e.g. ``torchgeo.trainers``) may have a class of the same
    name. jsonargparse resolves a dot-less ``class_path`` among the imported subclasses and
    refuses ambiguous names; geofm's short names are meant to be geofm's.
    """
    from jsonargparse import _typehints

    original = getattr(_typehints, "resolve_class_path_by_name", None)
    if original is None:  # a jsonargparse without this hook: plain resolution
        yield
        return

    def resolve(cls: Any, name: str) -> str:
        if name in SHORT_NAMES:
            return f"{SHORT_NAMES[name]}.{name}"
        return original(cls, name)  # type: ignore[no-any-return]

    _typehints.resolve_class_path_by_name = resolve
    try:
        yield
    finally:
        _typehints.resolve_class_path_by_name = original


class GeofmCLI(LightningCLI):
    """Lightning's CLI in subclass mode with geofm's short names, callbacks and errors."""

    #: The parsed configuration of the running subcommand, kept for error messages.
    last_config: dict[str, Any] | None = None

    def before_instantiate_classes(self) -> None:
        """Keep a plain copy of the configuration so errors can name its YAML paths."""
        try:
            import yaml

            dumped = yaml.safe_load(self.parser.dump(self.config, skip_none=False))
            GeofmCLI.last_config = dumped.get(self.config.get("subcommand"), dumped)
        except Exception:  # only used to make messages more precise
            GeofmCLI.last_config = None

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

    #: ``--overwrite`` was given: ``fit`` may replace an earlier run's checkpoints.
    overwrite: bool = False
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
            monitor = getattr(self.model, "monitor", None)
            defaults.append(ModelCheckpoint(
                monitor=monitor, mode=getattr(self.model, "mode", "min"), save_last=True,
                filename="best-{epoch}-{step}" if monitor else "{epoch}-{step}",
                auto_insert_metric_name=False,
            ))
        if config.get("logger") is not False and not any(
            isinstance(c, LearningRateMonitor) for c in given
        ):
            defaults.append(LearningRateMonitor())
        if self.subcommand == "predict" and not any(
            isinstance(c, BasePredictionWriter) for c in [*given, *callbacks]
        ):
            from geofm_core.inference.writer import GeoTiffPredictionWriter

            root = Path(config.get("default_root_dir") or os.getcwd())
            defaults.append(GeoTiffPredictionWriter(output_dir=str(root / "predictions"),
                                                    overwrite=GeofmCLI.overwrite))
        return super()._instantiate_trainer(config, [*callbacks, *defaults])


def _parser_kwargs() -> dict[str, Any]:
    kwargs: dict[str, Any] = {"exit_on_error": False}
    for sub in SUBCOMMANDS:
        kwargs[sub] = {"exit_on_error": False}
    return kwargs


def _walk(node: Any, path: str = "") -> Iterator[tuple[str, str, Any]]:
    """Yield (path, key, value) for every entry of a nested config."""
    if isinstance(node, dict):
        for key, value in node.items():
            sub = f"{path}.{key}" if path else str(key)
            yield sub, str(key), value
            yield from _walk(value, sub)
    elif isinstance(node, list):
        for i, value in enumerate(node):
            sub = f"{path}[{i}]"
            yield from _walk(value, sub)


def locate(message: str, config: dict[str, Any] | None) -> list[str]:
    """YAML paths of the config entries that an error message quotes (by value or by key)."""
    if not config:
        return []
    by_value: list[str] = []
    by_key: list[str] = []
    for path, key, value in _walk(config):
        if isinstance(value, str | int | float) and not isinstance(value, bool):
            text = str(value)
            if len(text) > 1 and (f"'{text}'" in message or f'"{text}"' in message):
                by_value.append(path)
        if f"'{key}'" in message and not path.startswith("trainer"):
            by_key.append(path)
    found = by_value or by_key
    return [p for p in found if not any(o != p and o.startswith(p + ".") for o in found)][:3]


def _geofm_error_in_chain(exc: BaseException) -> GeofmError | None:
    """The first GeofmError among ``exc``, its causes and contexts (jsonargparse wraps them)."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        if isinstance(current, GeofmError):
            return current
        seen.add(id(current))
        current = current.__cause__ or current.__context__
    return None


def _with_location(exc: GeofmError) -> GeofmError:
    """The same error, its message prefixed with the YAML paths of the values it quotes."""
    paths = locate(str(exc), GeofmCLI.last_config)
    if not paths or ".init_args." in str(exc):
        return exc
    try:
        located = type(exc)(f"{' and '.join(paths)}: {exc}")
    except Exception:
        return exc
    located.__cause__ = exc.__cause__
    return located


_KEY = re.compile(r'Parser key "([^"]+)"')
_CLASS_PATH = re.compile(r"Problem with given class_path '([^']+)'")
_OPTION = re.compile(r"Option '([^']+)' is not accepted")
_DOT_PATH = re.compile(r"Expected a dot import path string: (\S+)")
_TOP_OPTION = re.compile(r"Subcommand '\w+' does not accept option '([\w.]+)'")
_REQUIRED = re.compile(r"the following arguments are required: \w+\.([\w.]+)")
_NOISE = (
    "Parser key", "Does not validate against any of the Union subtypes", "Subtypes:",
    "Errors:", "- Expected a <class 'NoneType'>", "Given value type:", "Given value:",
    "- Problem with given class_path",
)


def _accepted_options(class_path: str) -> list[str]:
    import inspect

    try:
        module_name, _, name = class_path.rpartition(".")
        cls = getattr(importlib.import_module(module_name), name)
        params = inspect.signature(cls).parameters
    except Exception:
        return []
    return [n for n, p in params.items() if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)]


def _argument_error(exc: Exception, args: Sequence[str]) -> ConfigurationError:
    """One readable paragraph, naming the YAML path, out of a (nested) jsonargparse error."""
    message = str(exc)
    keys = _KEY.findall(message)
    class_paths = _CLASS_PATH.findall(message)
    option = _OPTION.search(message)
    if option:
        keys.append(option.group(1))
    path = ".init_args.".join(keys) if class_paths else ".".join(keys)
    reasons = []
    for line in message.splitlines():
        line = line.strip()
        if line and not line.startswith(_NOISE) and line not in reasons:
            reasons.append(line.removeprefix("- "))
    reason = " ".join(reasons) or message.strip()
    reason = re.sub(r"<class '(?:[\w.]+\.)?(\w+)'>", r"\1", reason)
    reason = re.sub(r"Expected a (\w+)\. Got value: (.*?)(?= - |$)", r"expected a \1, got \2",
                    reason)
    hint = ""
    if option and class_paths:
        close = difflib.get_close_matches(option.group(1), _accepted_options(class_paths[-1]),
                                          n=3, cutoff=0.5)
        hint = f" Did you mean {', '.join(repr(c) for c in close)}?" if close else ""
        reason = f"{class_paths[-1].rpartition('.')[2]} has no argument {option.group(1)!r}"
    unknown_class = _DOT_PATH.search(message)
    if unknown_class:
        name = unknown_class.group(1)
        close = difflib.get_close_matches(name, list(SHORT_NAMES), n=2, cutoff=0.6)
        reason = f"unknown class {name!r}"
        path = f"{path}.class_path" if path else "class_path"
        hint = (f" Did you mean {', '.join(close)}?" if close else "") + (
            f" Short names: {', '.join(SHORT_NAMES)}; any other class needs its full "
            "class_path (e.g. torchgeo.trainers.SemanticSegmentationTask)."
        )
    top_option = _TOP_OPTION.search(message)
    if top_option and not path:
        path = top_option.group(1)
        group, _, key = path.rpartition(".")
        reason = f"there is no setting {path!r}"
        if group == "trainer":
            from lightning.pytorch import Trainer

            known = _accepted_options(f"{Trainer.__module__}.{Trainer.__name__}")
            close = difflib.get_close_matches(key, known, n=3, cutoff=0.6)
            hint = f" Did you mean {', '.join(repr(f'trainer.{c}') for c in close)}?" if close \
                else ""
    required = _REQUIRED.search(message)
    if required and not path:
        path = required.group(1)
        reason = f"{path} is required"
        if path in ("model", "data"):
            example = "SemanticSegmentationTask" if path == "model" else \
                "GeoTiffSegmentationDataModule"
            hint = f" Add e.g. `{path}: {{class_path: {example}, init_args: {{...}}}}`."
    command = args[0] if args else "fit"
    if path in ("", "config") and ("Problems parsing config" in message
                                   or "File does not exist" in message):
        files = [args[i + 1] for i, a in enumerate(args[:-1]) if a in ("-c", "--config")]
        files += [a.partition("=")[2] for a in args if a.startswith("--config=")]
        missing = [f for f in files if not Path(f).is_file()]
        if missing:
            return ConfigurationError(
                f"config file {missing[0]} does not exist; give the path of a YAML config "
                f"(`geofm {command} --print_config` prints a complete one)"
            )
        if files:
            return ConfigurationError(
                f"{' or '.join(files)} is not a valid config: {reason}. Fix the YAML syntax "
                "there (indentation, brackets, 'key: value' pairs)"
            )
    where = f" at {path}" if path else ""
    return ConfigurationError(
        f"invalid configuration{where}: {reason}.{hint} Fix that entry of the config "
        f"(`geofm {command} --help` lists the arguments, `--print_config` prints the "
        "parsed configuration)"
    )


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


def main(argv: Sequence[str]) -> int:
    """Run ``geofm fit|validate|test|predict ...``; returns the exit code.

    Raises:
        ConfigurationError: The configuration does not parse or names something unknown.
        GeofmError: A component could not be built; the message names the YAML path.
    """
    debug = "--debug" in argv or bool(os.environ.get("GEOFM_DEBUG"))
    args = [a for a in argv if a not in ("--debug", "--overwrite")]
    GeofmCLI.overwrite = "--overwrite" in argv
    import_short_names(args)
    GeofmCLI.last_config = None
    saved_argv = sys.argv
    # The arguments come from ``args``; sys.argv names the program in usage lines and is
    # what Lightning's DDP launcher runs again for the other ranks.
    program = saved_argv[0] if saved_argv and Path(saved_argv[0]).name == "geofm" else "geofm"
    sys.argv = [program]
    GeofmCLI.launch_argv = [program, *argv]
    try:
        with _short_names_first():
            _run_cli(args)
    except SystemExit as exc:  # --help, --print_config
        return exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
    except Exception as exc:
        from jsonargparse import ArgumentError

        found = _geofm_error_in_chain(exc)
        if found is not None:
            located = _with_location(found)
            if debug:
                raise located from exc
            raise located from found.__cause__
        if isinstance(exc, ArgumentError):
            raise _argument_error(exc, args) from (exc if debug else None)
        raise
    finally:
        sys.argv = saved_argv
    return 0
