"""Component arguments: TerraTorch backbone, neck, decoder and head kwargs as geofm kwargs.

Driven by the rules (core or plugin): a keyword a rule renames is written under its
new name; any other is kept under its own name when the component's real signature
accepts it (read through the registry, which imports that component's module), and
reported as not converted otherwise, naming the component.
"""

from __future__ import annotations

from typing import Any

from geofm_core.convert.book import RuleBook, Signatures
from geofm_core.convert.rules import ComponentRule, pop_prefixed
from geofm_core.convert.terratorch.report import Report, short, strip_source
from geofm_core.convert.terratorch.tables import (
    ACTIVATIONS,
    CHANNEL_KEYWORDS,
    FACTORY_FILLED,
    HEAD_ARGS,
    TIMM_ARGS,
)

__all__ = ["Parts", "activation"]


def activation(value: Any) -> str | None:
    """The geofm activation name of a torch activation class (path), or None."""
    if not isinstance(value, str):
        return None
    key = value.rpartition(".")[2].lower().replace("_", "")
    return ACTIVATIONS.get(key)


def _patch(value: Any) -> int | None:
    if isinstance(value, int):
        return value
    if isinstance(value, list | tuple) and value and all(isinstance(v, int) for v in value):
        return int(value[-1]) if len(set(value[-2:])) == 1 else None
    return None


class Parts:
    """Converts the kwargs of one model's components; shared state of one model conversion.

    Attributes:
        flag_necks: Necks that decoder flags asked for (neck -> the flag's keyword).
    """

    def __init__(self, task: str, report: Report, path: str, book: RuleBook,
                 signatures: Signatures) -> None:
        self.task = task
        self.report = report
        self.path = path
        self.book = book
        self.signatures = signatures
        self.flag_necks: dict[str, str] = {}

    # -- one keyword --------------------------------------------------------------

    def _put(self, out: dict[str, Any], rule: ComponentRule, key: str, value: Any,
             where: str) -> None:
        """Write ``key`` with ``value`` translated as the rule says (activations, values)."""
        if key in rule.activations:
            act = activation(value)
            if act is None:
                self.report.drop(where, value, "no geofm activation of that name")
                return
            value = act
        for foreign, geofm in rule.values.get(key, ()):
            if type(value) is type(foreign) and value == foreign:
                value = geofm
                break
        out[key] = value

    def _pass(self, out: dict[str, Any], rule: ComponentRule, key: str, value: Any,
              where: str, why: str) -> None:
        """Keep a keyword no rule mentions when the component's signature accepts it."""
        accepted = self.signatures.accepted(rule.kind, rule.target)
        if isinstance(accepted, str):
            self._put(out, rule, key, value, where)
            self.report.note(where, f"kept unchecked: the arguments of {rule.target} cannot be "
                             f"read ({accepted})")
        elif key not in FACTORY_FILLED[rule.kind] and accepted.accepts(key):
            self._put(out, rule, key, value, where)
        else:
            self.report.drop(where, value, why)

    # -- backbones ----------------------------------------------------------------

    def rule_backbone_kwargs(self, rule: ComponentRule, bk: dict[str, Any]) -> dict[str, Any]:
        """The kwargs of a backbone a rule converts."""
        path, facts, target = f"{self.path}.backbone_", rule.backbone, rule.target
        bands = bk.get("bands")
        pretrained = bool(bk.get("pretrained"))
        counted: Any = None
        out: dict[str, Any] = {}
        for key in list(bk):
            value, where = bk.pop(key), f"{path}{key}"
            fixed = rule.fixed.get(key)
            if key in rule.args:
                self._put(out, rule, rule.args[key], value, where)
            elif key in rule.ignored:
                self.report.note(where, f"{short(value)} dropped: {rule.ignored[key]}")
            elif key == "bands" and facts.new_int_bands and isinstance(value, list):
                self._put(out, rule, key, self._new_bands(value, where, pretrained, target), where)
            elif fixed is not None and fixed.agrees(value):
                self.report.note(where, f"{value} dropped: the variant's own {fixed.what}")
            elif fixed is not None and fixed.otherwise:
                self.report.drop(where, value, fixed.otherwise)
            elif facts.takes_bands and key in CHANNEL_KEYWORDS:
                if bands is not None and value != len(bands):
                    self.report.drop(where, value, f"differs from the {len(bands)} bands; geofm "
                                     "takes the channels from bands")
                else:
                    self.report.note(where, f"{value} dropped: the {facts.label or target} takes "
                                     "its input channels from its bands")
            elif key == "patch_size" and facts.patch_size is not None \
                    and _patch(value) == facts.patch_size:
                self.report.note(where, f"{value} dropped: the variant's own patch size")
            elif key == "bands" and facts.channels_arg:
                counted = value
            else:
                self._pass(out, rule, key, value, where, f"{target} takes no such argument "
                           f"(`geofm describe backbone {target}`)")
        for key, flag in rule.ignored_unless.items():
            if out.get(key) is not None and not out.get(flag, False):
                self.report.note(f"{path}{key}", (
                    f"{out.pop(key)} dropped: TerraTorch ignores {key} unless {flag} is true "
                    "(geofm would use it)"))
        if isinstance(counted, list):
            out.setdefault(facts.channels_arg, len(counted))
            self.report.note(f"{path}bands", (
                f"{target} takes no band names; written as {facts.channels_arg}: "
                f"{out[facts.channels_arg]}"))
        elif counted is not None:
            self.report.drop(f"{path}bands", counted, "expected a list of bands")
        self._defaults(rule, out, path)
        return out

    def _new_bands(self, bands: list[Any], where: str, pretrained: bool,
                   target: str) -> list[Any]:
        """Integer bands (and ``[a, b]`` ranges) as new-band names, keeping TerraTorch's meaning."""
        out: list[Any] = []
        for band in bands:
            if isinstance(band, list | tuple) and len(band) == 2 and all(
                    isinstance(v, int) and not isinstance(v, bool) for v in band):
                out.extend(f"BAND_{i}" for i in range(band[0], band[1] + 1))
            elif isinstance(band, int) and not isinstance(band, bool):
                out.append(f"BAND_{band}")
            else:
                out.append(band)
        if out != bands:
            weights = (" TerraTorch starts them from random weights, geofm from the mean of "
                       "the pretrained bands' weights." if pretrained else "")
            self.report.note(where, (
                f"{short(bands)} written as {short(out)}: TerraTorch takes integer bands as "
                f"new bands, without pretrained weights; {target} would take them as indices "
                f"into its pretrained bands.{weights}"))
        return out

    def _defaults(self, rule: ComponentRule, out: dict[str, Any], where: str) -> None:
        """Write the rule's defaults the config leaves out, each with a note."""
        written = {k: v for k, v in rule.defaults.items() if k not in out}
        out.update(written)
        if written:
            listed = ", ".join(f"{k}: {v}" for k, v in written.items())
            self.report.note(f"{where}*", f"TerraTorch's behaviour written out for "
                             f"{rule.target}: {listed}")

    def timm_backbone_kwargs(self, bk: dict[str, Any]) -> dict[str, Any]:
        """The kwargs of a ``timm:`` backbone (the rest goes to timm through model_kwargs)."""
        path = f"{self.path}.backbone_"
        out: dict[str, Any] = {}
        extra: dict[str, Any] = {}
        bands = bk.pop("bands", None)
        for key in list(bk):
            value = bk.pop(key)
            if key in TIMM_ARGS:
                out[key] = value
            elif key == "features_only":
                self.report.note(f"{path}{key}", f"{value} dropped: geofm timm backbones always "
                                 "return feature maps")
            elif key == "model_kwargs" and isinstance(value, dict):
                extra.update(value)
            else:
                extra[key] = value
        if bands is not None:
            if "in_chans" not in out:
                out["in_chans"] = len(bands)
            self.report.note(f"{path}bands", (
                f"a timm backbone takes no band names; written as in_chans: {out['in_chans']}"))
        if extra:
            out["model_kwargs"] = extra
            self.report.note(f"{path}*", (
                f"{sorted(extra)} passed to timm.create_model through model_kwargs"))
        return out

    # -- decoders -----------------------------------------------------------------

    def decoder_kwargs(self, rule: ComponentRule | None, dk: dict[str, Any],
                       where: str) -> dict[str, Any]:
        """The kwargs of a decoder (unchanged when no rule converts it)."""
        if rule is None:
            return dict(dk)
        target = rule.target
        out: dict[str, Any] = {}
        for key, value in dk.items():
            neck = rule.neck_flags.get(key)
            if key in rule.args:
                self._put(out, rule, rule.args[key], value, f"{where}{key}")
            elif neck is not None:
                if value:
                    self.flag_necks.setdefault(neck, key)
                    self.report.note(f"{where}{key}", f"true written as the neck {neck} (the "
                                     "same layers)")
                else:
                    self.report.note(f"{where}{key}", "false dropped (the default)")
            elif key == "num_classes":
                self.report.note(f"{where}{key}", "dropped: geofm's head takes num_classes")
            else:
                self._pass(out, rule, key, value, f"{where}{key}", f"{target} takes no such "
                           f"argument (`geofm describe decoder {target}`)")
        self._defaults(rule, out, where)
        return out

    def decoder_rule(self, name: str, where: str, item: Any) -> ComponentRule | None:
        """The rule of decoder ``name``, or None with the reason reported at ``where``."""
        found = self.book.component("decoder", strip_source(name, "terratorch"))
        if found is not None and found.claim is not None:
            return found.claim.rule
        why = found.problem if found is not None else (
            "no geofm decoder of that name" + self.book.missing_hint())
        self.report.drop(where, item, why)
        return None

    # -- necks --------------------------------------------------------------------

    def necks(self, necks: Any, out: dict[str, Any]) -> list[dict[str, Any]]:
        """Explicit TerraTorch necks as geofm neck entries."""
        if not necks:
            return []
        if not isinstance(necks, list):
            self.report.drop(f"{self.path}.necks", necks, "necks must be a list of {name: ...}")
            return []
        result: list[dict[str, Any]] = []
        for i, neck in enumerate(necks):
            where = f"{self.path}.necks[{i}]"
            if not isinstance(neck, dict) or "name" not in neck:
                self.report.drop(where, neck, "a neck is a mapping with a name")
                continue
            kwargs = dict(neck)
            name = strip_source(str(kwargs.pop("name")), "terratorch")
            if name == "AggregateTokens":
                result.extend(self._aggregate_tokens(kwargs, where, out))
                continue
            found = self.book.component("neck", name)
            if found is None or found.claim is None:
                self.report.drop(where, neck, found.problem if found is not None else (
                    "no geofm neck of that name (`geofm list neck`)" + self.book.missing_hint()))
                continue
            result.append(self._neck_entry(found.claim.rule, kwargs, where))
        return result

    def _neck_entry(self, rule: ComponentRule, kwargs: dict[str, Any],
                    where: str) -> dict[str, Any]:
        entry: dict[str, Any] = {"name": rule.target}
        for key, value in kwargs.items():
            if key in rule.args:
                self._put(entry, rule, rule.args[key], value, f"{where}.{key}")
            elif key == "h" and value is None:  # TerraTorch's unset token-grid height
                continue
            else:
                self._pass(entry, rule, key, value, f"{where}.{key}", f"{rule.target} takes no "
                           "such argument; geofm finds the token grid from the image size")
        for key, default in rule.defaults.items():
            entry.setdefault(key, default)
        return entry

    def _aggregate_tokens(self, kwargs: dict[str, Any], where: str,
                          out: dict[str, Any]) -> list[dict[str, Any]]:
        pooling = kwargs.pop("pooling", "mean")
        index = kwargs.pop("index", -1)
        for key, value in kwargs.items():
            self.report.drop(f"{where}.{key}", value, "AggregateTokens takes no such argument")
        mapped = {"mean": "avg", "max": "max", "CLS": "cls"}.get(pooling) \
            if isinstance(pooling, str) else None
        if self.task not in ("classification", "multilabel") or mapped is None:
            self.report.drop(where, {"name": "AggregateTokens", "pooling": pooling},
                             "geofm pools tokens only in classification models, with "
                             "pooling avg, max or cls")
            return []
        out["pooling"] = mapped
        self.report.note(where, (
            f"AggregateTokens (pooling {pooling}, index {index}) written as select_indices "
            f"[{index}] and the classification model's pooling: {mapped}"))
        return [{"name": "geofm:select_indices", "indices": [index]}]

    # -- heads and auxiliary heads ------------------------------------------------

    def head_kwargs(self, hk: dict[str, Any], where: str) -> dict[str, Any]:
        """The kwargs of the task's geofm head."""
        renames = HEAD_ARGS[self.task]
        out: dict[str, Any] = {}
        for key, value in hk.items():
            if key in renames:
                if key == "final_act":
                    if value is None:
                        continue
                    act = activation(value)
                    if act is None:
                        self.report.drop(f"{where}{key}", value, "no geofm activation of that "
                                         "name")
                        continue
                    value = act
                out[renames[key]] = value
                # TerraTorch's regression head blocks are conv-BN-ReLU, as geofm's are.
                if key == "channel_list" and value and self.task == "segmentation":
                    out["conv_block"] = "conv_bias_relu"
                    self.report.note(f"{where}{key}", (
                        "TerraTorch's segmentation head blocks are conv (with bias) + ReLU; "
                        "written as conv_block: conv_bias_relu (geofm's default adds batch "
                        "norm)"))
            elif key == "batch_norm" and value is True:
                self.report.note(f"{where}{key}", "true dropped (geofm's head blocks always use "
                                 "batch norm)")
            elif key == "linear_after_pool":
                self.report.note(f"{where}{key}", (
                    f"{value}: written as the model's pooling (avg when true: pool, then "
                    "the head; head_then_avg when false)"))
            else:
                self.report.drop(f"{where}{key}", value, "the geofm head takes no such argument")
        return out

    def aux(self, aux: Any) -> list[dict[str, Any]]:
        """TerraTorch auxiliary heads as ``aux_decoders`` entries."""
        if not isinstance(aux, list):
            self.report.drop(f"{self.path}.aux_decoders", aux, "expected a list")
            return []
        result = []
        for i, item in enumerate(aux):
            where = f"{self.path}.aux_decoders[{i}]"
            spec = item.get("init_args", item) if isinstance(item, dict) else None
            if not isinstance(spec, dict) or "name" not in spec or "decoder" not in spec:
                self.report.drop(where, item, "an auxiliary head needs a name and a decoder")
                continue
            dec = spec["decoder"]
            rule = self.decoder_rule(dec, where, item) if isinstance(dec, str) else None
            if rule is None:
                if not isinstance(dec, str):
                    self.report.drop(where, item, "no geofm decoder of that name")
                continue
            result.append(self._aux_entry(spec, rule, where))
        return result

    def _aux_entry(self, spec: dict[str, Any], rule: ComponentRule,
                   where: str) -> dict[str, Any]:
        args = dict(spec.get("decoder_args") or {})
        dk = pop_prefixed(args, "decoder_")
        hk = pop_prefixed(args, "head_")
        for key, value in args.items():
            self.report.drop(f"{where}.decoder_args.{key}", value, "not a decoder_ or head_ key")
        entry: dict[str, Any] = {"name": spec["name"], "decoder": rule.target}
        main_necks = dict(self.flag_necks)
        dkw = self.decoder_kwargs(rule, dk, f"{where}.decoder_args.decoder_")
        for neck, key in self.flag_necks.items():
            if neck not in main_necks:
                self.report.drop(f"{where}.decoder_args.decoder_{key}", True,
                                 "geofm's auxiliary heads share the main necks; add "
                                 f"{neck} to the necks instead")
        self.flag_necks = main_necks
        if dkw:
            entry["decoder_kwargs"] = dkw
        hkw = self.head_kwargs(hk, f"{where}.decoder_args.head_")
        if hkw:
            entry["head_kwargs"] = hkw
        return entry
