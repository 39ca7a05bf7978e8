"""A TerraTorch task checkpoint as a geofm checkpoint: weights renamed by the rules, checked.

The config is converted as ``geofm convert terratorch`` does; each component of the
TerraTorch model is then placed (its ``encoder.`` is geofm's ``backbone.``, its
``neck.N.`` the matching entry of geofm's ``necks``, ...) and its keys renamed by the
:class:`~geofm_core.convert.rules.KeyRule` entries of the rule that converted it
(declared by the plugin that owns the component; the core's for its necks, heads and
timm). The geofm task is built from the converted config and the renamed weights must
fit it exactly: keys no component claims, keys left over, keys the model misses and
shapes that differ are listed in one error. Only tensors a rule drops by name (buffers
geofm recomputes) and state outside the model (loss weights) are left out, and both
are reported.
"""

from __future__ import annotations

import importlib
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from geofm_core.convert.book import RuleBook
from geofm_core.convert.rules import KeyRule, rename_key
from geofm_core.convert.terratorch.entry import convert_file
from geofm_core.convert.terratorch.names import match_backbone, rule_book
from geofm_core.convert.terratorch.report import Conversion, class_name, strip_source
from geofm_core.convert.terratorch.tables import ENCODER_DECODER_FACTORIES, TIMM_KEYS, head_keys
from geofm_core.errors import ConfigurationError
from geofm_core.io.checkpoints import TASK_CLASS_KEY, read_tensors

__all__ = ["CheckpointConversion", "convert_checkpoint", "rename_state_dict"]

_MODEL = "model."
_LISTED = 8
_MAX_STAND_INS = 32


@dataclass(frozen=True)
class _Place:
    """Where one TerraTorch component's weights go, and how they are renamed."""

    foreign: str
    geofm: str
    rules: tuple[KeyRule, ...] = ()
    strict: bool = False  # keys no rule matches are unmapped (whole-model factory rules)


@dataclass
class CheckpointConversion:
    """The geofm checkpoint and what the conversion reports.

    Attributes:
        checkpoint: What to save: ``state_dict``, ``hyper_parameters``, the task class,
            ``datamodule_hyper_parameters`` (the preprocessing) when the config has data.
        config: The config conversion (its unmapped settings and notes).
        dropped: Tensors left out by name, with the reason.
    """

    checkpoint: dict[str, Any]
    config: Conversion
    dropped: list[str] = field(default_factory=list)


def _listing(keys: list[str]) -> str:
    more = f" (+{len(keys) - _LISTED} more)" if len(keys) > _LISTED else ""
    return ", ".join(keys[:_LISTED]) + more


def rename_state_dict(state: dict[str, Any], places: list[_Place]
                      ) -> tuple[dict[str, Any], list[str], list[str]]:
    """Rename model-relative ``state`` by ``places``: (renamed, dropped notes, unmapped keys)."""
    ordered = sorted(places, key=lambda p: len(p.foreign), reverse=True)
    renamed: dict[str, Any] = {}
    dropped: list[str] = []
    unmapped: list[str] = []
    for key, value in state.items():
        place = next((p for p in ordered if key.startswith(p.foreign)), None)
        if place is None:
            unmapped.append(key)
            continue
        new, rule = rename_key(place.rules, key[len(place.foreign):])
        if new is None:
            dropped.append(f"{key} ({rule.why if rule is not None else 'dropped'})")
        elif rule is None and place.strict:
            unmapped.append(key)
        else:
            renamed[place.geofm + new] = value
    return renamed, dropped, unmapped


def _neck_places(tt_necks: Any, geofm_necks: list[dict[str, Any]],
                 book: RuleBook) -> list[_Place]:
    """TerraTorch's ``neck.i.`` -> geofm's ``necks.j.``, matched in order by converted name."""
    places = []
    j = 0
    for i, neck in enumerate(tt_necks or []):
        name = strip_source(str(neck.get("name", "")), "terratorch") \
            if isinstance(neck, dict) else ""
        found = book.component("neck", name)
        rule = found.claim.rule if found is not None and found.claim is not None else None
        if rule is None:
            continue
        while j < len(geofm_necks) and geofm_necks[j].get("name") != rule.target:
            j += 1
        if j == len(geofm_necks):
            break
        places.append(_Place(f"neck.{i}.", f"necks.{j}.", rule.keys))
        j += 1
    return places


def _places(tt_args: dict[str, Any], factory: str, task: str, geofm_args: dict[str, Any],
            book: RuleBook, aux_decoders: dict[str, Any]) -> list[_Place]:
    """Where every component of a TerraTorch model built by ``factory`` goes.

    ``aux_decoders`` maps TerraTorch's auxiliary head names to their decoder names.
    """
    if factory not in ENCODER_DECODER_FACTORIES:
        made = book.factory(factory)
        rule = made.claim.rule if made is not None and made.claim is not None else None
        if rule is not None and rule.keys:
            return [_Place("", "", rule.keys, strict=True)]
        if rule is None or rule.convert:
            return []  # nothing is claimed: every key is listed as unmapped
    places = []
    backbone = tt_args.get("backbone")
    if isinstance(backbone, str):
        match = match_backbone(backbone, book)
        if match.rule is not None:
            places.append(_Place("encoder.", "backbone.", match.rule.keys))
        elif match.family in ("timm", "timm_bare"):
            places.append(_Place("encoder.", "backbone.", TIMM_KEYS))
    places += _neck_places(tt_args.get("necks"), list(geofm_args.get("necks") or []), book)
    decoder = _decoder_keys(tt_args.get("decoder"), book)
    if decoder is not None:
        places.append(_Place("decoder.", "decoder.", decoder))
    places.append(_Place("head.", "head.", head_keys(task, dict(geofm_args.get("head_kwargs")
                                                                   or {}))))
    # An auxiliary head is Sequential(decoder, head) in TerraTorch, named parts in geofm.
    for aux in geofm_args.get("aux_decoders") or []:
        name = aux.get("name")
        keys = _decoder_keys(aux_decoders.get(name), book)
        if keys is not None:
            places.append(_Place(f"aux_heads.{name}.0.", f"aux_heads.{name}.decoder.", keys))
            places.append(_Place(f"aux_heads.{name}.1.", f"aux_heads.{name}.head.",
                                 head_keys(task, dict(aux.get("head_kwargs") or {}))))
    return places


def _decoder_keys(decoder: Any, book: RuleBook) -> tuple[KeyRule, ...] | None:
    """The key rules of a TerraTorch decoder name, ``None`` when no rule converts it."""
    if not isinstance(decoder, str):
        return None
    found = book.component("decoder", strip_source(decoder, "terratorch"))
    return found.claim.rule.keys if found is not None and found.claim is not None else None


def _task_class(short: str) -> type[Any]:
    import geofm_core.tasks as tasks

    cls = getattr(tasks, short, None)
    if not isinstance(cls, type):
        raise ConfigurationError(f"the converted config names the task {short!r}, which "
                                 "geofm does not have")
    return cls


def _inert(name: str) -> type:
    """A stand-in for a TerraTorch class named in a checkpoint: takes anything, does nothing."""

    def init(self: Any, *args: Any, **kwargs: Any) -> None:
        pass

    def setstate(self: Any, state: Any) -> None:
        pass

    return type(name.rpartition(".")[2], (), {"__init__": init, "__setstate__": setstate})


def _load(path: Path) -> Any:
    """``torch.load(weights_only=True)``, TerraTorch's own classes read as inert stand-ins.

    TerraTorch saves objects of its classes in the hyper-parameters (``AuxiliaryHead``,
    band enums). They are not needed (the config says the same), so each ``terratorch.*``
    global the safe unpickler refuses is replaced by a class that ignores its arguments;
    any other global is still refused, and nothing from the file is ever executed.
    """
    import pickle

    import torch

    stand_ins: list[Any] = []
    for _ in range(_MAX_STAND_INS):
        try:
            with torch.serialization.safe_globals(stand_ins):
                return read_tensors(path)
        except ConfigurationError as exc:
            cause = exc.__cause__
            found = re.search(r"GLOBAL ([\w.]+)", str(cause)) \
                if isinstance(cause, pickle.UnpicklingError) else None
            if found is None or not found.group(1).startswith("terratorch."):
                raise
            stand_ins.append((_inert(found.group(1)), found.group(1)))
    raise ConfigurationError(f"{path} names more than {_MAX_STAND_INS} TerraTorch classes in "
                             "its hyper-parameters; save its state_dict alone")


def _read_state(path: Path) -> tuple[dict[str, Any], list[str]]:
    """The model's tensors of a TerraTorch checkpoint (``model.`` stripped), and the rest."""
    loaded = _load(path)
    state = loaded.get("state_dict") if isinstance(loaded, dict) else None
    if state is None and isinstance(loaded, dict):
        state = loaded
    if not isinstance(state, dict) or not state:
        raise ConfigurationError(f"{path} holds no state dict; give the .ckpt written by "
                                 "`terratorch fit`")
    prefixed = any(k.startswith(_MODEL) for k in state)
    model = {k[len(_MODEL):]: v for k, v in state.items() if k.startswith(_MODEL)} \
        if prefixed else dict(state)
    rest = [k for k in state if prefixed and not k.startswith(_MODEL)]
    return model, rest


def _build_task(cls: type[Any], init_args: dict[str, Any]) -> Any:
    args = dict(init_args)
    model_args = dict(args.get("model_args") or {})
    backbone_kwargs = dict(model_args.get("backbone_kwargs") or {})
    # The weights come from the checkpoint: nothing pretrained is fetched.
    for key in ("pretrained", "weights"):
        if backbone_kwargs.get(key):
            backbone_kwargs[key] = False if key == "pretrained" else None
    if backbone_kwargs:
        model_args["backbone_kwargs"] = backbone_kwargs
    args["model_args"] = model_args
    return cls(**args)


def convert_checkpoint(ckpt: str | Path, config: str | Path) -> CheckpointConversion:
    """Convert the TerraTorch checkpoint ``ckpt`` of the model that ``config`` describes.

    Raises:
        ConfigurationError: An unreadable file, a config that is not TerraTorch's, a
            model section that cannot be converted, or weights that do not fit the geofm
            model (every unmapped, leftover, missing and mismatched key is listed).
    """
    ckpt = Path(ckpt)
    conversion = convert_file(config)
    raw = _raw_model(Path(config))
    model = conversion.config.get("model") or {}
    init_args = dict(model.get("init_args") or {})
    if "model_args" not in init_args:
        raise ConfigurationError(f"{config}: the model section could not be converted; see "
                                 "`geofm convert terratorch` for what is missing")
    if init_args.get("model_factory") == "geofm:detection":
        # Checked before the task is built: its torchvision parts are laid out differently.
        raise ConfigurationError(
            f"{ckpt}: TerraTorch object detection checkpoints are not converted: "
            "geofm:detection builds its own anchors, heads and RoI pooling, so the weights "
            "do not map one to one. Fine-tune from the backbone's pretrained weights with "
            "the converted config instead (`geofm convert terratorch` writes it)")
    cls = _task_class(str(model.get("class_path")))
    book = rule_book()
    tt_args = dict(raw.get("model_args") or {})
    aux = {}
    for item in [*(tt_args.get("aux_decoders") or []), *(raw.get("aux_heads") or [])]:
        spec = item.get("init_args", item) if isinstance(item, dict) else {}
        if isinstance(spec, dict) and "name" in spec:
            aux[spec["name"]] = spec.get("decoder")
    places = _places(tt_args, class_name(raw.get("model_factory")), cls.task_name,
                     init_args["model_args"], book, aux)
    state, rest = _read_state(ckpt)
    renamed, dropped, unmapped = rename_state_dict(state, places)
    dropped += [f"{k} (task state outside the model, rebuilt from the config)" for k in rest]
    task = _build_task(cls, init_args)
    given = {_MODEL + k: v for k, v in renamed.items()}
    _check(task.state_dict(), given, unmapped, ckpt, config)
    task.load_state_dict(given, strict=True)
    checkpoint: dict[str, Any] = {
        "state_dict": task.state_dict(),
        "hyper_parameters": dict(task.hparams),
        TASK_CLASS_KEY: f"{cls.__module__}.{cls.__qualname__}",
        "epoch": 0, "global_step": 0,
        "pytorch-lightning_version": _lightning_version(),
        "geofm_converted_from": f"terratorch:{ckpt.name}",
    }
    data = conversion.config.get("data")
    if isinstance(data, dict) and isinstance(data.get("init_args"), dict):
        checkpoint["datamodule_hyper_parameters"] = dict(data["init_args"])
    return CheckpointConversion(checkpoint, conversion, dropped)


def _raw_model(config: Path) -> dict[str, Any]:
    """The TerraTorch task's init_args (read again: the conversion keeps only geofm's)."""
    import yaml

    parsed = yaml.safe_load(config.read_text(encoding="utf-8"))
    model = parsed.get("model") if isinstance(parsed, dict) else None
    args = model.get("init_args") if isinstance(model, dict) else None
    return dict(args) if isinstance(args, dict) else {}


def _check(own: dict[str, Any], given: dict[str, Any], unmapped: list[str], ckpt: Path,
           config: str | Path) -> None:
    missing = [k for k in own if k not in given]
    leftover = [k for k in given if k not in own]
    wrong = [f"{k} {tuple(v.shape)} vs {tuple(own[k].shape)}" for k, v in given.items()
             if k in own and tuple(v.shape) != tuple(own[k].shape)]
    problems = []
    if unmapped:
        problems.append(f"{len(unmapped)} TerraTorch key(s) no conversion rule places: "
                        f"{_listing(unmapped)}")
    if leftover:
        problems.append(f"{len(leftover)} renamed key(s) the geofm model does not have: "
                        f"{_listing(leftover)}")
    if missing:
        problems.append(f"{len(missing)} geofm key(s) the checkpoint does not provide: "
                        f"{_listing(missing)}")
    if wrong:
        problems.append(f"{len(wrong)} shape mismatch(es) (file vs model): {_listing(wrong)}")
    if problems:
        raise ConfigurationError(
            f"{ckpt} does not fit the geofm model converted from {config}: "
            + "; ".join(problems) + ". Check that the config is the one the checkpoint was "
            "trained with; a component whose weights no rule places needs a conversion rule "
            "in the plugin that provides it"
        )


def _lightning_version() -> str:
    try:
        return str(importlib.import_module("lightning").__version__)
    except ImportError:  # the task still loads; Lightning only reads this when it migrates
        return "2.0.0"
