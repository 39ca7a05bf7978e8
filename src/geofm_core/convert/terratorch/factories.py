"""TerraTorch model factories -> geofm model factories and their model_args.

``EncoderDecoderFactory`` is converted by the core itself; any other factory only when
a rule declares it (a :class:`FactoryRule`): the core's for timm's ``TimmModelFactory``
(:func:`convert_timm`), the plugins' for theirs.
"""

from __future__ import annotations

import copy
from typing import Any

from geofm_core.convert.book import RuleBook, Signatures, load_function
from geofm_core.convert.rules import FactoryRule, pop_prefixed
from geofm_core.convert.terratorch.model import ModelConverter
from geofm_core.convert.terratorch.report import Report, Scoped, class_name
from geofm_core.convert.terratorch.tables import ENCODER_DECODER_FACTORIES

__all__ = ["convert_factory", "convert_timm"]


def convert_factory(args: dict[str, Any], task: str, report: Report, base: str,
                    book: RuleBook, signatures: Signatures) -> dict[str, Any]:
    """Pop the task's model settings from ``args``; return them converted.

    Returns the ``model_factory`` and ``model_args`` (or ``model``) entries of the
    task's init_args.
    """
    factory = args.pop("model_factory", None)
    model_args = args.pop("model_args", None) or {}
    aux_heads = args.pop("aux_heads", None)
    name = class_name(factory)
    path = f"{base}.model_args"
    out: dict[str, Any] = {}
    declared = book.factory(name) if name else None
    rule = declared.claim.rule if declared is not None and declared.claim is not None else None
    if rule is not None and not task_fits(rule, task):
        rule = None
    if name in ENCODER_DECODER_FACTORIES or (rule is not None and not rule.convert):
        out["model_factory"] = rule.target if rule is not None else "geofm:encoder_decoder"
        converter = ModelConverter(task, report, path, book, signatures)
        model_args = dict(model_args)
        peft = model_args.pop("peft_config", None)
        out["model_args"] = converter.convert(model_args, rule, aux_heads=aux_heads)
        if peft is not None:
            out["peft_config"] = peft
            report.note(f"{path}.peft_config", "moved to the task's peft_config (LoRA on the "
                        "backbone; target_modules name the backbone's layers, e.g. qkv, fc1)")
    elif rule is not None:
        out.update(_convert_declared(factory, rule, model_args, Scoped(report, path, task)))
        if aux_heads is not None:
            report.drop(f"{base}.aux_heads", aux_heads, f"not used by {name}")
    elif factory is None and "model" in args:
        out["model"] = args.pop("model")
        report.note(f"{base}.model", "a ready module, copied; geofm calls it as "
                    "model(image, **metadata) and expects a ModelOutput or a tensor")
    else:
        why = declared.problem if declared is not None and declared.claim is None else (
            f"only {_listed(book)} are converted; model_args are kept as they are"
            + book.missing_hint())
        report.drop(f"{base}.model_factory", factory, why)
        out["model_factory"] = factory
        out["model_args"] = model_args
        if aux_heads is not None:
            report.drop(f"{base}.aux_heads", aux_heads, "not converted with this factory")
    if "model" in args:
        report.drop(f"{base}.model", args.pop("model"), "given together with a model_factory")
    return out


def task_fits(rule: FactoryRule, task: str) -> bool:
    """Whether the declared factory converts models of ``task``."""
    return not rule.tasks or task in rule.tasks


def _listed(book: RuleBook) -> str:
    names = [*ENCODER_DECODER_FACTORIES]
    for claim in book.factory_claims():
        tasks = f" ({', '.join(claim.rule.tasks)})" if claim.rule.tasks else ""
        names.append(f"{claim.rule.names[0]}{tasks}")
    return ", ".join(names[:-1]) + " and " + names[-1]


def _convert_declared(factory: Any, rule: FactoryRule, model_args: dict[str, Any],
                      report: Scoped) -> dict[str, Any]:
    """A factory whose plugin converts the whole model with its own function."""
    try:
        convert = load_function(rule.convert)
        converted = convert(copy.deepcopy(model_args), report)
        if not isinstance(converted, dict):
            raise TypeError(f"{rule.convert} returned {type(converted).__name__}, not a dict")
    except Exception as exc:  # a plugin's bug must not lose the user's config
        report.drop("", model_args, f"the plugin's conversion of {class_name(factory)} "
                    f"({rule.convert}) failed: {type(exc).__name__}: {exc}; kept as is")
        return {"model_factory": factory, "model_args": model_args}
    return {"model_factory": rule.target, "model_args": converted}


def convert_timm(args: dict[str, Any], report: Scoped) -> dict[str, Any]:
    """``TimmModelFactory`` args: a whole timm classifier, written as backbone + head."""
    args = copy.deepcopy(args)
    out: dict[str, Any] = {}
    backbone = args.pop("backbone", None)
    out["backbone"] = f"timm:{backbone}" if isinstance(backbone, str) else backbone
    bkw: dict[str, Any] = {}
    pretrained = args.pop("pretrained", True)
    if isinstance(pretrained, bool):
        bkw["pretrained"] = pretrained
    else:
        bkw["pretrained"] = False
        report.drop("pretrained", pretrained, "weights by name or path are not loaded by "
                    "geofm's timm backbone; use checkpoint_path with a timm file")
    if "in_channels" in args:
        bkw["in_chans"] = args.pop("in_channels")
    extra = pop_prefixed(args, "backbone_")
    if extra:
        bkw["model_kwargs"] = extra
    out["backbone_kwargs"] = bkw
    if "num_classes" in args:
        out["num_classes"] = args.pop("num_classes")
    report.note("backbone", (
        f"the timm classifier {backbone} written as the feature backbone "
        f"{out['backbone']}, average pooling of its last level and geofm's "
        "classification head (in place of timm's own classifier)"))
    for key in list(args):
        report.drop(key, args.pop(key), "TimmModelFactory argument geofm has no counterpart for")
    return out
