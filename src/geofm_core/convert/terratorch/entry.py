"""Converting a whole TerraTorch config: detection, the sections in order, and the YAML text."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import yaml

from geofm_core.convert.book import RuleBook
from geofm_core.convert.terratorch.data import convert_data
from geofm_core.convert.terratorch.detection import rename_monitors
from geofm_core.convert.terratorch.names import rule_book
from geofm_core.convert.terratorch.report import (
    Conversion,
    Report,
    class_name,
    is_terratorch_path,
)
from geofm_core.convert.terratorch.tables import (
    DATAMODULES,
    ENCODER_DECODER_FACTORIES,
    GEOFM_WRITER,
    OTHER_TERRATORCH_FACTORIES,
    TOP_LEVEL_COPIED,
)
from geofm_core.convert.terratorch.task import convert_model
from geofm_core.convert.terratorch.trainer import convert_trainer
from geofm_core.errors import ConfigurationError
from geofm_core.registry import Registry

__all__ = ["convert_config", "convert_file", "is_terratorch_config", "render"]


def is_terratorch_config(config: Any, book: RuleBook | None = None) -> bool:
    """Whether ``config`` looks like a TerraTorch LightningCLI config.

    Args:
        config: The parsed YAML.
        book: The rules in use (their factory names count as TerraTorch's); by default
            those of the installed plugins.
    """
    if not isinstance(config, dict):
        return False
    model = config.get("model")
    data = config.get("data")
    paths = [s.get("class_path") for s in (model, data) if isinstance(s, dict)]
    if any(is_terratorch_path(p) for p in paths):
        return True
    if any(isinstance(p, str) and p in DATAMODULES for p in paths):
        return True
    factory = (model or {}).get("init_args", {}) if isinstance(model, dict) else {}
    factory_name = class_name(factory.get("model_factory")) if isinstance(factory, dict) else ""
    if factory_name in ENCODER_DECODER_FACTORIES + OTHER_TERRATORCH_FACTORIES:
        return True
    return bool(factory_name) and factory_name in (book or rule_book()).factory_names()


def convert_config(config: dict[str, Any], source: str = "<config>", *,
                   registry: Registry | None = None) -> Conversion:
    """Convert a parsed TerraTorch config.

    Args:
        config: The parsed YAML.
        source: Where it came from (for messages).
        registry: Whose plugins' rules and components to use (default: the installed ones).

    Raises:
        ConfigurationError: ``config`` is not a TerraTorch config.
    """
    book = rule_book(registry)
    if not is_terratorch_config(config, book):
        raise ConfigurationError(
            f"{source} is not a TerraTorch config: it has no terratorch.* model or data "
            "class_path, no generic TerraTorch datamodule and no TerraTorch model_factory "
            "(EncoderDecoderFactory, ...). `geofm convert terratorch` converts configs "
            "written for `terratorch fit`"
        )
    report = Report()
    out: dict[str, Any] = {}
    task: str | None = None
    task_args: dict[str, Any] = {}
    for key, value in config.items():
        if key in ("model", "data"):
            continue
        if key == "trainer":
            out[key] = convert_trainer(value, report, config.get("predict_output_dir"))
        elif key in TOP_LEVEL_COPIED:
            out[key] = copy.deepcopy(value)
        elif key != "predict_output_dir":
            report.drop(key, value, "not a `geofm fit` setting")
    if "predict_output_dir" in config and not _writes_to_it(out.get("trainer")):
        report.drop("predict_output_dir", config["predict_output_dir"],
                    "not a `geofm fit` setting (geofm's prediction writer takes output_dir)")
    model = config.get("model")
    if isinstance(model, dict):
        converted, task = convert_model(model, report, book, cli_optimizer="optimizer" in config)
        out["model"] = converted
        task_args = dict(converted.get("init_args") or {})
        rename_monitors(out, task, report)
    elif model is not None:
        report.drop("model", model, "expected a class_path / init_args mapping")
    data = config.get("data")
    if isinstance(data, dict):
        out["data"] = convert_data(data, task, task_args, report)
        _check_classes(task, task_args, out["data"], report)
        _bands_from_data(out, book, report)
    elif data is not None:
        report.drop("data", data, "expected a class_path / init_args mapping")
    first: tuple[str, ...] = ("seed_everything", "trainer", "model", "data")
    ordered: dict[str, Any] = {k: out[k] for k in first if k in out}
    ordered.update({k: v for k, v in out.items() if k not in ordered})
    return Conversion(ordered, report.unmapped, report.notes, source)


def _bands_from_data(out: dict[str, Any], book: RuleBook, report: Report) -> None:
    """Give a backbone whose rule asks for it the data's ``output_bands`` as its bands."""
    model_args = (out.get("model") or {}).get("init_args", {}).get("model_args")
    data_args = (out.get("data") or {}).get("init_args") or {}
    bands = data_args.get("output_bands")
    if not isinstance(model_args, dict) or not isinstance(bands, list) or not bands \
            or not all(isinstance(b, str) for b in bands):
        return
    backbone = model_args.get("backbone")
    rule = next((c.rule for c in book.component_claims()
                 if c.rule.kind == "backbone" and c.rule.target == backbone), None)
    if rule is None or not rule.backbone.bands_from_data:
        return
    kwargs = model_args.setdefault("backbone_kwargs", {})
    if not isinstance(kwargs, dict) or "bands" in kwargs:
        return
    kwargs["bands"] = list(bands)
    report.note("model.init_args.model_args.backbone_bands", (
        f"{backbone} maps its input channels by band name and the config names none: "
        f"written as the data's output_bands {bands}"))


def _writes_to_it(trainer: Any) -> bool:
    """Whether the converted trainer's prediction writer took TerraTorch's predict_output_dir."""
    callbacks = trainer.get("callbacks") if isinstance(trainer, dict) else None
    return any(isinstance(c, dict) and c.get("class_path") == GEOFM_WRITER
               for c in callbacks or [])


def _check_classes(task: str | None, task_args: dict[str, Any], data: dict[str, Any],
                   report: Report) -> None:
    """List a model class count the data or the class names contradict (kept as given)."""
    if task not in ("segmentation", "classification", "multilabel"):
        return
    model_args = task_args.get("model_args")
    classes = model_args.get("num_classes") if isinstance(model_args, dict) else None
    if not isinstance(classes, int) or isinstance(classes, bool):
        return
    data_args = data.get("init_args")
    counts: dict[str, Any] = {}
    if isinstance(data_args, dict) and isinstance(data_args.get("num_classes"), int):
        counts["data.init_args.num_classes"] = data_args["num_classes"]
    if isinstance(task_args.get("class_names"), list):
        counts["model.init_args.class_names"] = len(task_args["class_names"])
    other = {where: n for where, n in counts.items() if n != classes}
    if other:
        said = "; ".join(f"{where} says {n}" for where, n in other.items())
        report.drop("model.init_args.model_args.num_classes", classes, (
            f"kept as given, but {said}: the model predicts {classes} classes and the metrics "
            "count that many; make them agree (a checkpoint's class count is the model's)"))


def convert_file(path: str | Path, *, registry: Registry | None = None) -> Conversion:
    """Read and convert a TerraTorch YAML config file.

    Raises:
        ConfigurationError: The file is missing, not YAML, or not a TerraTorch config.
    """
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigurationError(f"cannot read {path}: {exc.strerror or exc}") from exc
    except UnicodeDecodeError as exc:
        raise ConfigurationError(
            f"{path} is not UTF-8 text (byte {exc.object[exc.start]:#04x} at offset "
            f"{exc.start}); YAML configs are UTF-8: re-save it as UTF-8") from exc
    try:
        config = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ConfigurationError(f"{path} is not valid YAML: {exc}") from exc
    return convert_config(config, str(path), registry=registry)


def render(conversion: Conversion) -> str:
    """The converted config as YAML text, with the unmapped keys and notes as a header."""
    lines = [f"# Converted from the TerraTorch config {conversion.source} by "
             "`geofm convert terratorch`."]
    if conversion.unmapped:
        lines.append("#")
        lines.append("# NOT CONVERTED (no geofm equivalent; review before training):")
        lines += [f"#   - {item}" for item in conversion.unmapped]
    if conversion.notes:
        lines.append("#")
        lines.append("# Converted with a difference, or a TerraTorch default written out:")
        lines += [f"#   - {item}" for item in conversion.notes]
    body = str(yaml.safe_dump(conversion.config, sort_keys=False, default_flow_style=False,
                              width=100))
    return "\n".join(lines) + "\n\n" + body
