"""``geofm describe [KIND] NAME``: signature and documentation of one component or class.

``NAME`` is a registry name (``upernet:upernet``, or bare ``upernet`` when only one kind
has it) or a geofm task / data module (``SemanticSegmentationTask``,
``GeoTiffSegmentationDataModule``, or any ``module.Class`` path). Registry names import
only the module of that component; tasks and data modules import torch.
"""

from __future__ import annotations

import argparse
import inspect
import io
import json
import sys
from collections.abc import Sequence
from typing import Any

from geofm_core.cli._common import command_parser
from geofm_core.errors import GeofmError, UnknownComponentError
from geofm_core.names import KINDS, Kind, check_kind

__all__ = ["describe_class", "find_kinds", "main", "metadata_text"]

#: The tasks that build their model through a model factory: class -> its ``task`` value.
_FACTORY_TASKS = {
    "SemanticSegmentationTask": "segmentation",
    "PixelwiseRegressionTask": "regression",
    "ClassificationTask": "classification",
    "MultiLabelClassificationTask": "multilabel",
    "ChangeDetectionTask": "change_detection",
    "ReconstructionTask": "reconstruction",
    "ObjectDetectionTask": "object_detection",
    "InstanceSegmentationTask": "instance_segmentation",
}


def _parser() -> argparse.ArgumentParser:
    parser = command_parser(
        "describe", "Signature and documentation of one component, task or data module, "
        "e.g. geofm describe geofm:fcn, geofm describe decoder fcn, "
        "geofm describe SemanticSegmentationTask.", json_output=True)
    parser.add_argument("words", nargs="*", metavar="[KIND] NAME",
                        help=f"KIND is one of {', '.join(KINDS)}; optional when NAME is "
                        "unique or a task/data module")
    parser.add_argument("--all", action="store_true",
                        help="describe every registered component (imports each one; for "
                        "generated documentation, with --json)")
    return parser


def describe_all() -> list[dict[str, Any]]:
    """What ``describe`` says of every registered component, in one process.

    A component that cannot be described (its import fails) gets an ``error`` entry
    instead, so one broken plugin does not hide the others.
    """
    from geofm_core.registry import get_registry

    registry = get_registry()
    described = []
    for spec in registry.list(None):
        try:
            described.append(dict(registry.describe(spec.kind, spec.qualified_name)))
        except Exception as exc:  # documented, not fatal: the page shows the error
            described.append({**spec.as_dict(), "error": f"{type(exc).__name__}: {exc}"})
    return described


def _is_class_name(name: str) -> bool:
    last = name.rsplit(".", 1)[-1]
    return ":" not in name and last[:1].isupper()


def find_kinds(name: str) -> list[str]:
    """The kinds under which the registry knows ``name`` (several for a shared bare name)."""
    from geofm_core.registry import get_registry

    registry = get_registry()
    found = []
    for kind in KINDS:
        try:
            registry.get(kind, name)
        except UnknownComponentError:
            continue
        except GeofmError:  # ambiguous or broken: the kind exists, describe says why
            pass
        found.append(kind)
    return found


def describe_class(name: str) -> dict[str, Any]:
    """Signature and documentation of a task or data module (short name or class path)."""
    from geofm_core.cli.train_config import SHORT_NAMES, full_class_path
    from geofm_core.signatures import accepted_arguments, signature_text

    path = full_class_path(name)
    module_name, _, class_name = path.rpartition(".")
    if not module_name:
        raise UnknownComponentError(
            f"{name!r} is neither a registry name nor a known class; geofm's tasks and data "
            f"modules are {', '.join(SHORT_NAMES)} (geofm list shows the components)"
        )
    import importlib

    try:
        cls = getattr(importlib.import_module(module_name), class_name)
    except (ImportError, AttributeError) as exc:
        raise UnknownComponentError(f"cannot import {path!r}: {exc}") from exc
    info: dict[str, Any] = {
        "kind": "task" if class_name.endswith("Task") else "class",
        "name": class_name, "target": path,
        "signature": signature_text(cls), "doc": inspect.cleandoc(cls.__doc__ or ""),
    }
    accepted = accepted_arguments(cls, follow_kwargs=True)
    own = set(inspect.signature(cls).parameters)
    inherited = [n for n in (accepted.names if accepted else ()) if n not in own]
    if inherited:
        info["inherited_options"] = inherited
        info["kind"] = "data module" if "DataModule" in class_name else info["kind"]
    if class_name in _FACTORY_TASKS:
        info["model_factory"] = (
            f"builds its model with model_factory(...).build_model(task="
            f"{_FACTORY_TASKS[class_name]!r}, **model_args); `geofm list model_factory` "
            "shows the factories"
        )
    return info


def _describe_component(words: list[str]) -> dict[str, Any]:
    from geofm_core.registry import get_registry

    kind: str
    if len(words) == 2:
        kind, name = check_kind(words[0]), words[1]
    else:
        name = words[0]
        kinds = find_kinds(name)
        if not kinds:
            raise UnknownComponentError(_unknown(name))
        if len(kinds) > 1:
            raise UnknownComponentError(
                f"{name!r} is a {' and a '.join(kinds)}; say which: "
                + " or ".join(f"geofm describe {k} {name}" for k in kinds)
            )
        kind = kinds[0]
    info: dict[str, Any] = dict(get_registry().describe(kind, name))
    if kind == Kind.MODEL_FACTORY:
        # A factory that declares its ``tasks`` is called by those tasks only.
        declared = getattr(get_registry().get(kind, name).load(), "tasks", None)
        info["used_by"] = [f"{task} (task={value!r})" for task, value in _FACTORY_TASKS.items()
                           if declared is None or value in declared]
    return info


def _unknown(name: str) -> str:
    import difflib

    from geofm_core.registry import get_registry

    names = {s.qualified_name for s in get_registry().list(None, None)}
    names |= {n.split(":", 1)[1] for n in names}
    close = difflib.get_close_matches(name, sorted(names), n=3, cutoff=0.6)
    hint = f" (did you mean {', '.join(close)}?)" if close else ""
    return (f"no component, task or data module is named {name!r}{hint}; `geofm list` shows "
            "the components, `geofm describe KIND NAME` names the kind")


def _count(value: int | None) -> str:
    if value is None:
        return "unknown"
    for size, unit in ((1e9, "B"), (1e6, "M"), (1e3, "k")):
        if value >= size:
            return f"{value / size:.1f}{unit} ({value:,})"
    return str(value)


def metadata_text(meta: dict[str, Any]) -> str:
    """The capability metadata of ``geofm describe``: facts, bands, then the weight sets."""
    from geofm_core.cli._common import write_table
    from geofm_core.data.bands import wavelength_of

    def band(name: str) -> str:
        wavelength = wavelength_of(name)
        return f"{name} ({wavelength:g} um)" if wavelength is not None else name

    facts = [
        ("modalities", ", ".join(meta["modalities"]) or "-"),
        ("bands", ", ".join(band(b) for b in meta["bands"]) or "-"),
        ("any bands", "yes (the first layer adapts)" if meta["any_bands"] else "no"),
        ("wavelength-conditioned", "yes" if meta["wavelength_conditioned"] else "no"),
        ("patch size", str(meta["patch_size"] or "-")),
        ("image size", str(meta["image_size"] or "-")),
        ("multi-temporal", "yes" if meta["multi_temporal"] else "no"),
        ("parameters", _count(meta["parameters"])),
    ]
    if meta.get("family"):
        facts.append(("family", meta["family"]))
    if meta.get("forward_metadata"):
        facts.append(("forward takes", ", ".join(meta["forward_metadata"])))
    width = max(len(k) for k, _ in facts)
    lines = ["metadata:"] + [f"  {k.ljust(width)}  {v}" for k, v in facts]
    weights = meta["weights"]
    if not weights:
        return "\n".join([*lines, "  weight sets: none declared"]) + "\n"
    rows = [("  NAME", "BANDS", "LICENCE", "STATS", "SHA256", "URL")]
    rows += [(f"  {w['name']}", str(len(w["bands"])) if w["bands"] else "?",
              w["license"] or "unknown", "yes" if w["mean"] and w["std"] else "no",
              (w["sha256"][:12] + "...") if len(w["sha256"]) > 12 else (w["sha256"] or "-"),
              w["url"] or "-") for w in weights]
    table = io.StringIO()
    write_table(rows, table)
    return "\n".join([*lines, f"weight sets ({len(weights)}):"]) + "\n" + table.getvalue()


def main(argv: Sequence[str]) -> int:
    """Run ``geofm describe``; returns the exit code."""
    args = _parser().parse_args(list(argv))
    words: list[str] = args.words
    if args.all:
        everything = describe_all()
        if args.json:
            json.dump(everything, sys.stdout, indent=2)
            sys.stdout.write("\n")
        else:
            for entry in everything:
                sys.stdout.write(f"{entry['kind']} {entry['name']}{entry.get('signature', '')}\n")
        return 0
    if not words:
        raise UnknownComponentError("geofm describe needs [KIND] NAME, or --all")
    if len(words) > 2:
        raise UnknownComponentError(
            f"geofm describe takes [KIND] NAME, got {len(words)} words: {' '.join(words)}"
        )
    if len(words) == 1 and _is_class_name(words[0]):
        info = describe_class(words[0])
    else:
        info = _describe_component(words)
    out = sys.stdout
    if args.json:
        json.dump(info, out, indent=2)
        out.write("\n")
        return 0
    out.write(f"{info['kind']} {info['name']}{info['signature']}\n")
    if "distribution" in info:
        out.write(f"  from {info['distribution']} {info['version']} ({info['target']})\n")
    else:
        out.write(f"  {info['target']}\n")
    if info.get("model_factory"):
        out.write(f"  {info['model_factory']}\n")
    if info.get("used_by"):
        out.write(f"  build_model is called by the tasks: {', '.join(info['used_by'])}\n")
    if info.get("inherited_options"):
        out.write("  also takes the shared options: "
                  f"{', '.join(info['inherited_options'])}\n")
    if info.get("metadata"):
        out.write("\n" + metadata_text(info["metadata"]))
    if info["doc"]:
        out.write("\n" + info["doc"] + "\n")
    return 0
