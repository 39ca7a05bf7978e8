"""The config of ``geofm fit|validate|test|predict``, read and checked before and after parsing.

* **Short class names.** ``class_path: SemanticSegmentationTask`` (or
  ``GeoTiffSegmentationDataModule``, ...) always means geofm's class, even when another
  imported package has one of the same name: config files are read through a
  jsonargparse loader (:func:`install_loader`, jsonargparse's documented
  ``set_loader``) that writes the full class path, and the command line is rewritten
  the same way (:func:`expand_argv`). jsonargparse then imports only what is named.
* **Before parsing** (:func:`check_config_files`): each ``-c`` file exists and is YAML;
  in what the files say, ``trainer`` settings and the ``init_args`` of geofm's classes
  are checked against the signatures (unknown keys with close matches, values of the
  wrong type) and unknown short names are named with close matches. The message names
  the YAML path. A section whose class is given on the command line is left to
  jsonargparse, and so is every value given there.
* **After parsing** (:func:`check_components`): the registry names of a geofm task
  (``model_factory``, ``loss``, and the components of ``geofm:encoder_decoder``) are
  looked up, so an unknown name is reported at its exact YAML path before anything is
  built; numbers out of range (:data:`RANGES`: class counts, learning rates, epochs) and
  an accelerator this machine lacks are reported the same way (:func:`check_ranges`,
  :func:`check_accelerator`), wherever the value was given.
* **Trust.** ``class_path`` names code that jsonargparse imports to build the class; a
  config is a program, like a Python script (docs/configuration.md, "Trust").
"""

from __future__ import annotations

import difflib
import importlib
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import yaml

from geofm_core.errors import ConfigurationError, GeofmError

__all__ = [
    "LOADER_MODE",
    "RANGES",
    "SHORT_NAMES",
    "check_accelerator",
    "check_components",
    "check_config_files",
    "config_files",
    "expand_argv",
    "expand_short_names",
    "install_loader",
    "invalid_configuration",
    "located",
    "check_ranges",
]

#: Short class names usable in configs -> the module that defines them.
SHORT_NAMES: dict[str, str] = {
    "SemanticSegmentationTask": "geofm_core.tasks",
    "PixelwiseRegressionTask": "geofm_core.tasks",
    "ClassificationTask": "geofm_core.tasks",
    "MultiLabelClassificationTask": "geofm_core.tasks",
    "EmbeddingTask": "geofm_core.tasks",
    "ChangeDetectionTask": "geofm_core.tasks",
    "ReconstructionTask": "geofm_core.tasks",
    "ObjectDetectionTask": "geofm_core.tasks",
    "InstanceSegmentationTask": "geofm_core.tasks",
    "GeoTiffSegmentationDataModule": "geofm_core.data",
    "GeoTiffRegressionDataModule": "geofm_core.data",
    "GeoTiffClassificationDataModule": "geofm_core.data",
    "GeoTiffMultiLabelDataModule": "geofm_core.data",
    "GeoTiffChangeDetectionDataModule": "geofm_core.data",
    "GeoTiffSceneDataModule": "geofm_core.data",
    "GeoTiffImageDataModule": "geofm_core.data",
    "GeoTiffObjectDetectionDataModule": "geofm_core.data",
    "GeoTiffInstanceSegmentationDataModule": "geofm_core.data",
}

#: The jsonargparse parser mode whose loader expands short names.
LOADER_MODE = "geofm_yaml"

_SECTIONS = ("model", "data")
# Options whose value is a class name (``--model SemanticSegmentationTask``).
_CLASS_OPTIONS = tuple(f"--{s}{suffix}" for s in _SECTIONS for suffix in ("", ".class_path",
                                                                          ".help"))


def full_class_path(name: str) -> str:
    """``module.Class`` of a short name; any other name unchanged."""
    return f"{SHORT_NAMES[name]}.{name}" if name in SHORT_NAMES else name


def expand_short_names(config: Any) -> Any:
    """``config`` with every ``class_path`` (and a top-level ``model:``/``data:`` name) expanded."""
    if isinstance(config, dict):
        return {k: full_class_path(v) if k == "class_path" and isinstance(v, str)
                else expand_short_names(v) for k, v in config.items()}
    if isinstance(config, list):
        return [expand_short_names(v) for v in config]
    return config


def _load(text: str) -> Any:
    from jsonargparse import get_loader

    value = get_loader("yaml")(text)
    if isinstance(value, str):
        return full_class_path(value)
    if isinstance(value, dict):
        value = {k: full_class_path(v) if k in _SECTIONS and isinstance(v, str) else v
                 for k, v in value.items()}
    return expand_short_names(value)


def install_loader() -> None:
    """Register the :data:`LOADER_MODE` loader with jsonargparse (once)."""
    from jsonargparse import set_loader

    set_loader(LOADER_MODE, _load, exceptions=(yaml.YAMLError,))


#: Spellings of Lightning's ``--ckpt_path`` that the other commands use (``geofm infer
#: --ckpt``): one spelling works everywhere.
CKPT_ALIASES = ("--ckpt", "--ckpt-path")


def expand_argv(args: Sequence[str]) -> list[str]:
    """The command line with class names given to ``--model``/``--data`` expanded.

    ``--ckpt``/``--ckpt-path`` become Lightning's ``--ckpt_path``.
    """
    out: list[str] = []
    expand_next = False
    for arg in args:
        if expand_next:
            out.append(full_class_path(arg))
            expand_next = False
            continue
        option, sep, value = arg.partition("=")
        if option in CKPT_ALIASES:
            option = "--ckpt_path"
            arg = f"{option}{sep}{value}"
        if option in _CLASS_OPTIONS:
            if sep:
                out.append(f"{option}={full_class_path(value)}")
                continue
            expand_next = True
        out.append(arg)
    return out


def config_files(args: Sequence[str]) -> list[str]:
    """The config files named on the command line (``-c F``, ``--config F``, ``--config=F``)."""
    files = [args[i + 1] for i, a in enumerate(args[:-1]) if a in ("-c", "--config")]
    return files + [a.partition("=")[2] for a in args if a.startswith("--config=")]


def invalid_configuration(path: str, reason: str, hint: str = "",
                          command: str = "fit") -> ConfigurationError:
    """The one message of a configuration entry that jsonargparse would refuse."""
    where = f" at {path}" if path else ""
    return ConfigurationError(
        f"invalid configuration{where}: {reason}.{hint} Fix that entry of the config "
        f"(`geofm {command} --help` lists the arguments, `--print_config` prints the "
        "parsed configuration)"
    )


def _merge(base: dict[str, Any], extra: Mapping[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for key, value in extra.items():
        if isinstance(value, Mapping) and isinstance(out.get(key), dict):
            out[key] = _merge(out[key], value)
        else:
            out[key] = value
    return out


def _classes_given(args: Sequence[str]) -> set[str]:
    """Sections whose class the command line sets (``--model X``, ``--data.class_path X``)."""
    return {a[2:].partition("=")[0].partition(".")[0] for a in args
            if a.partition("=")[0] in _CLASS_OPTIONS}


def _read(file: str, command: str) -> dict[str, Any]:
    from geofm_core.io.atomic import input_problem
    from geofm_core.io.yaml_files import load_yaml

    problem = input_problem(file)
    if problem is not None:
        raise ConfigurationError(
            f"config file {file} {problem}; give the path of a YAML config "
            f"(`geofm {command} --print_config` prints a complete one)"
        )
    try:
        text = Path(file).read_text(encoding="utf-8")
        doc = load_yaml(text, file)
    except (yaml.YAMLError, UnicodeDecodeError) as exc:
        reason = " ".join(str(exc).split())
        raise ConfigurationError(
            f"{file} is not a valid config: {reason}. Fix the YAML syntax there "
            "(indentation, brackets, 'key: value' pairs)"
        ) from None
    if doc is None:
        raise ConfigurationError(
            f"config file {file} is empty (no settings, or only comments); write the "
            f"settings into it (`geofm {command} --print_config` prints a complete config)"
        )
    if not isinstance(doc, dict):
        raise ConfigurationError(
            f"{file} is not a valid config: it holds a {type(doc).__name__}, not "
            "'key: value' settings. Fix the YAML there (e.g. `model: {class_path: ...}`)"
        )
    return doc


def check_config_files(args: Sequence[str]) -> None:
    """Check what the config files of ``args`` say, before jsonargparse parses them.

    Raises:
        ConfigurationError: A missing or non-YAML file, an unknown ``trainer`` setting, an
            unknown short class name, or an ``init_args`` entry of a geofm class that its
            signature does not accept (unknown key, wrong type); named by YAML path.
    """
    command = args[0] if args else "fit"
    merged: dict[str, Any] = {}
    for file in config_files(args):
        merged = _merge(merged, _read(file, command))
    _check_trainer(merged.get("trainer"), command)
    given = _classes_given(args)
    for section in _SECTIONS:
        if section not in given:
            _check_class(merged.get(section), section, command)


def _check_trainer(trainer: Any, command: str) -> None:
    if not isinstance(trainer, dict):
        return
    from lightning.pytorch import Trainer

    from geofm_core.signatures import accepted_arguments

    accepted = accepted_arguments(Trainer)
    if accepted is None:
        return
    for key in trainer:
        path = f"trainer.{key}"
        if key not in accepted.names:
            close = difflib.get_close_matches(str(key), accepted.names, n=3, cutoff=0.6)
            hint = f" Did you mean {', '.join(repr(f'trainer.{c}') for c in close)}?" \
                if close else ""
            raise invalid_configuration(path, f"there is no setting {path!r}", hint, command)


def _check_class(section: Any, name: str, command: str) -> None:
    if not isinstance(section, dict):
        return
    class_path = section.get("class_path")
    if not isinstance(class_path, str):
        return
    short = class_path.rpartition(".")[2]
    if "." not in class_path and short not in SHORT_NAMES:
        close = difflib.get_close_matches(class_path, list(SHORT_NAMES), n=2, cutoff=0.6)
        hint = (f" Did you mean {', '.join(close)}?" if close else "") + (
            f" Short names: {', '.join(SHORT_NAMES)}; any other class needs its full "
            "class_path (e.g. torchgeo.trainers.SemanticSegmentationTask).")
        raise invalid_configuration(f"{name}.class_path", f"unknown class {class_path!r}",
                                    hint, command)
    init_args = section.get("init_args")
    if full_class_path(short) != full_class_path(class_path) or short not in SHORT_NAMES \
            or not isinstance(init_args, dict):
        return  # only geofm's own classes are checked here; jsonargparse checks the rest
    cls = getattr(importlib.import_module(SHORT_NAMES[short]), short)
    _check_init_args(cls, init_args, f"{name}.init_args", command)


def _check_init_args(cls: type, init_args: dict[str, Any], base: str, command: str) -> None:
    from geofm_core.signatures import accepted_arguments, class_annotations, type_mismatches

    accepted = accepted_arguments(cls, follow_kwargs=True)
    if accepted is None:
        return
    if not accepted.any_keyword:
        for key in init_args:
            if key not in accepted.names:
                close = difflib.get_close_matches(str(key), accepted.names, n=3, cutoff=0.5)
                hint = f" Did you mean {', '.join(repr(c) for c in close)}?" if close else ""
                raise invalid_configuration(f"{base}.{key}",
                                            f"{cls.__name__} has no argument {key!r}", hint,
                                            command)
    known = {k: v for k, v in init_args.items() if k in accepted.names}
    for problem in type_mismatches(cls, known, class_annotations(cls))[:1]:
        raise invalid_configuration(
            f"{base}.{problem.key}", f"expected a {problem.expected}, got {problem.value}",
            command=command)


# -- after parsing: registry names -------------------------------------------------------


def _names(model_args: Mapping[str, Any], base: str) -> Iterator[tuple[str, str, str]]:
    """(kind, name, YAML path) of every component ``geofm:encoder_decoder`` would build."""
    for key, kind in (("backbone", "backbone"), ("decoder", "decoder")):
        if isinstance(model_args.get(key), str):
            yield kind, model_args[key], f"{base}.{key}"
    for field, kind, key in (("necks", "neck", "name"), ("aux_decoders", "decoder", "decoder")):
        entries = model_args.get(field)
        for i, entry in enumerate(entries if isinstance(entries, list) else []):
            if isinstance(entry, Mapping) and isinstance(entry.get(key), str):
                yield kind, entry[key], f"{base}.{field}[{i}].{key}"


def located(exc: GeofmError, path: str) -> GeofmError:
    """The same error, its message prefixed with ``path`` (a YAML path) and its cause kept."""
    try:
        located = type(exc)(f"{path}: {exc}")
    except Exception:  # an error class with another constructor: keep it as it is
        return exc
    located.__cause__ = exc.__cause__
    return located


def check_components(config: Mapping[str, Any] | None) -> None:
    """Look up the registry names of a geofm task's section of the parsed ``config``.

    Raises:
        GeofmError: The registry's error for the first name that does not resolve,
            prefixed with its YAML path (e.g. ``model.init_args.model_args.backbone:``).
    """
    model = (config or {}).get("model")
    if not isinstance(model, Mapping) or not isinstance(model.get("init_args"), Mapping):
        return
    class_path = model.get("class_path")
    if not isinstance(class_path, str) or not _is_geofm_task(class_path):
        return
    from geofm_core.registry import get_registry

    registry = get_registry()
    args = model["init_args"]
    base = "model.init_args"
    wanted: list[tuple[str, str, str]] = []
    if args.get("model") is None and isinstance(args.get("model_factory"), str):
        wanted.append(("model_factory", args["model_factory"], f"{base}.model_factory"))
    loss = args.get("loss")
    if isinstance(loss, str):
        wanted.append(("loss", loss, f"{base}.loss"))
    elif isinstance(loss, Mapping):
        wanted += [("loss", str(k), f"{base}.loss.{k}") for k in loss]
    for kind, name, path in wanted:
        try:
            spec = registry.get(kind, name)
        except GeofmError as exc:
            raise located(exc, path) from exc.__cause__
        if kind == "model_factory" and spec.qualified_name == "geofm:encoder_decoder":
            model_args = args.get("model_args")
            if isinstance(model_args, Mapping):
                for sub_kind, sub_name, sub_path in _names(model_args, f"{base}.model_args"):
                    try:
                        registry.get(sub_kind, sub_name)
                    except GeofmError as exc:
                        raise located(exc, sub_path) from exc.__cause__


def _is_geofm_task(class_path: str) -> bool:
    module_name, _, name = class_path.rpartition(".")
    try:
        cls = getattr(importlib.import_module(module_name), name)
    except (ImportError, AttributeError, ValueError):
        return False
    from geofm_core.tasks.base import GeofmTask

    return isinstance(cls, type) and issubclass(cls, GeofmTask)


# -- after parsing: value ranges and hardware ---------------------------------------------

#: YAML path (``*`` for each entry of a list or mapping) -> (lowest value, whether the
#: lowest value itself is excluded, a note). Out of range, these reach torch or Lightning
#: as errors that do not name the setting, or silently train nothing.
RANGES: dict[str, tuple[float, bool, str]] = {
    "trainer.max_epochs": (-1, False, " (-1: no limit)"),
    "trainer.min_epochs": (0, False, ""),
    "trainer.max_steps": (-1, False, " (-1: no limit)"),
    "trainer.min_steps": (0, False, ""),
    "trainer.accumulate_grad_batches": (1, False, ""),
    "trainer.check_val_every_n_epoch": (1, False, ""),
    "model.init_args.num_classes": (1, False, ""),
    "model.init_args.model_args.num_classes": (1, False, ""),
    "model.init_args.lr": (0, True, " (a learning rate)"),
    "model.init_args.optimizer_hparams.lr": (0, True, " (a learning rate)"),
    "model.init_args.optimizer_hparams.weight_decay": (0, False, ""),
    "model.init_args.lr_overrides.*": (0, True, " (a learning rate)"),
    "model.init_args.class_weights.*": (0, False, ""),
    "model.init_args.plot_on_val": (0, False, ""),
    "data.init_args.num_classes": (1, False, ""),
    "data.init_args.batch_size": (1, False, ""),
    "data.init_args.num_workers": (0, False, ""),
}


def _values_at(node: Any, parts: Sequence[str], path: str) -> Iterator[tuple[str, Any]]:
    if not parts:
        yield path, node
        return
    head, rest = parts[0], parts[1:]
    if head == "*":
        items = node.items() if isinstance(node, Mapping) else \
            enumerate(node) if isinstance(node, list) else ()
        for key, value in items:
            sub = f"{path}[{key}]" if isinstance(node, list) else f"{path}.{key}"
            yield from _values_at(value, rest, sub)
    elif isinstance(node, Mapping) and head in node:
        yield from _values_at(node[head], rest, f"{path}.{head}" if path else head)


def check_ranges(config: Mapping[str, Any] | None, command: str = "fit") -> None:
    """Check the numeric settings of :data:`RANGES` in the parsed ``config``.

    Raises:
        ConfigurationError: A value below its range, named by YAML path.
    """
    for pattern, (low, exclusive, note) in RANGES.items():
        for path, value in _values_at(config or {}, pattern.split("."), ""):
            if isinstance(value, bool) or not isinstance(value, int | float):
                continue
            if value < low or (exclusive and value == low):
                bound = f"> {low:g}" if exclusive else f">= {low:g}"
                raise invalid_configuration(
                    path, f"{value!r} is out of range: it must be {bound}{note}",
                    command=command)


def check_accelerator(config: Mapping[str, Any] | None) -> None:
    """Refuse ``trainer.accelerator: gpu|cuda|mps`` on a machine without that device.

    Lightning would raise a long error from deep inside the accelerator connector.

    Raises:
        ConfigurationError: One paragraph naming the setting and the ways out.
    """
    trainer = (config or {}).get("trainer")
    accelerator = trainer.get("accelerator") if isinstance(trainer, Mapping) else None
    if not isinstance(accelerator, str) or accelerator.lower() not in ("gpu", "cuda", "mps"):
        return
    import torch

    kind = accelerator.lower()
    if kind == "mps":
        present = torch.backends.mps.is_available()
    else:
        present = torch.cuda.is_available() or (kind == "gpu" and
                                                torch.backends.mps.is_available())
    if not present:
        raise ConfigurationError(
            f"the accelerator {accelerator!r} is not available: this machine has no usable "
            f"{'MPS' if kind == 'mps' else 'CUDA'} device (torch sees none: a CPU-only torch "
            "build, no driver, or CUDA_VISIBLE_DEVICES hiding it). Set trainer.accelerator "
            "to cpu or auto (e.g. --trainer.accelerator cpu), or install the torch build for "
            "your GPU"
        )
