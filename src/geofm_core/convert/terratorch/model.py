"""TerraTorch ``EncoderDecoderFactory`` model_args -> ``geofm:encoder_decoder`` model_args.

Also the encoder-decoder style factories that plugins declare (a :class:`FactoryRule`
without a conversion function): their own model arguments are moved into the backbone's
first, then the arguments are converted as ``EncoderDecoderFactory``'s.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from typing import Any

from geofm_core.convert.rules import ComponentRule, FactoryRule, pop_prefixed
from geofm_core.convert.terratorch.names import BackboneMatch, match_backbone
from geofm_core.convert.terratorch.parts import Parts
from geofm_core.convert.terratorch.report import strip_source

__all__ = ["ModelConverter"]


@dataclass
class _Args:
    """The model arguments, sorted into their parts."""

    backbone: Any
    decoder: Any
    necks: Any
    aux: Any
    bk: dict[str, Any]
    dk: dict[str, Any]
    hk: dict[str, Any]
    num_classes: Any = None
    rescale: Any = None


@dataclass
class _Backbone:
    """The converted backbone: its match (None for a non-name) and kwargs."""

    match: BackboneMatch | None
    kwargs: dict[str, Any] = field(default_factory=dict)

    @property
    def rule(self) -> ComponentRule | None:
        return self.match.rule if self.match is not None else None


class ModelConverter(Parts):
    """Converts one model's TerraTorch encoder-decoder arguments."""

    def convert(self, args: dict[str, Any], factory: FactoryRule | None = None,
                aux_heads: Any = None) -> dict[str, Any]:
        """``geofm:encoder_decoder`` model_args for TerraTorch model_args.

        Args:
            args: TerraTorch's model_args.
            factory: The declared factory rule when the model factory is not
                ``EncoderDecoderFactory`` itself.
            aux_heads: The task's ``aux_heads`` (added to ``aux_decoders``).
        """
        parts = self._split(copy.deepcopy(args), factory, aux_heads)
        out: dict[str, Any] = {}
        padding = parts.bk.pop("padding", "reflect")
        backbone = self._backbone(parts.backbone, parts.bk, out)
        self._padding(backbone, padding, out)
        decoder = self._decoder(parts.decoder, parts.dk, out)
        necks = self._neck_list(parts.necks, out, backbone, decoder, factory)
        if necks:
            out["necks"] = necks
        self._tail(parts, out, decoder)
        return out

    def _split(self, args: dict[str, Any], factory: FactoryRule | None,
               aux_heads: Any) -> _Args:
        """Pop every argument into its part; report the ones that belong nowhere."""
        parts = _Args(
            backbone=args.pop("backbone", None), decoder=args.pop("decoder", None),
            necks=args.pop("necks", None), aux=args.pop("aux_decoders", None),
            bk=dict(args.pop("backbone_kwargs", None) or {}),
            dk=dict(args.pop("decoder_kwargs", None) or {}),
            hk=dict(args.pop("head_kwargs", None) or {}),
        )
        if aux_heads is not None:
            parts.aux = [*(parts.aux or []), *aux_heads]
        parts.bk.update(pop_prefixed(args, "backbone_"))
        parts.dk.update(pop_prefixed(args, "decoder_"))
        parts.hk.update(pop_prefixed(args, "head_"))
        if factory is not None:
            self._factory_args(factory, args, parts.bk)
        parts.num_classes = args.pop("num_classes", None)
        parts.rescale = args.pop("rescale", None)
        for key in list(args):
            self.report.drop(f"{self.path}.{key}", args.pop(key),
                             "no geofm:encoder_decoder argument of that name")
        return parts

    def _factory_args(self, factory: FactoryRule, args: dict[str, Any],
                      bk: dict[str, Any]) -> None:
        """A declared factory's own model arguments: into the backbone, or reported."""
        for key in factory.backbone_args:
            if key in args:
                bk[key] = args.pop(key)
            elif key in factory.backbone_defaults:
                bk[key] = factory.backbone_defaults[key]
        for key, why in factory.notes.items():
            value = args.pop(key, None)
            if value is not None:
                self.report.note(f"{self.path}.{key}", f"{value} {why}")
        for key, why in factory.dropped.items():
            value = args.pop(key, None)
            if value is not None:
                self.report.drop(f"{self.path}.{key}", value, why)

    # -- backbone -----------------------------------------------------------------

    def _backbone(self, backbone: Any, bk: dict[str, Any], out: dict[str, Any]) -> _Backbone:
        where = f"{self.path}.backbone"
        if not isinstance(backbone, str):
            self.report.drop(where, backbone, "only backbone names can be converted")
            out["backbone"] = backbone
            result = _Backbone(None, bk)
        else:
            match = match_backbone(backbone, self.book)
            out["backbone"] = match.name
            result = _Backbone(match, self._backbone_kwargs(backbone, match, bk))
        if result.kwargs:
            out["backbone_kwargs"] = result.kwargs
        return result

    def _backbone_kwargs(self, backbone: str, match: BackboneMatch,
                         bk: dict[str, Any]) -> dict[str, Any]:
        where = f"{self.path}.backbone"
        if match.problem:
            self.report.drop(where, backbone, match.problem)
            return dict(bk)
        if match.rule is not None:
            if match.overrides:
                self.report.note(where, (
                    f"TerraTorch's {backbone} is written as {match.name} with "
                    f"{match.overrides} (same layout; geofm registers no {backbone})"))
            for key, value in match.overrides.items():
                bk.setdefault(key, value)
            return self.rule_backbone_kwargs(match.rule, bk)
        if match.family in ("timm", "timm_bare"):
            kwargs = self.timm_backbone_kwargs(bk)
            if match.family == "timm_bare":
                self.report.note(where, (
                    f"{backbone!r} is not a TerraTorch backbone geofm knows; written as the "
                    f"timm model {match.name} (TerraTorch also falls back to timm)"
                    + self.book.missing_hint()))
            return kwargs
        self.report.drop(where, backbone,
                         "a TerraTorch-only backbone with no geofm equivalent; kept as is, "
                         "replace it with a geofm backbone (`geofm list backbone`)"
                         + self.book.missing_hint())
        return dict(bk)

    def _padding(self, backbone: _Backbone, mode: Any, out: dict[str, Any]) -> None:
        """TerraTorch's padding of a patch backbone's input, written out.

        TerraTorch pads the input of a backbone with a patch size to twice the patch,
        split between both sides, with ``backbone_padding`` (reflect by default); geofm
        pads with zeros at the bottom and right to the patch size unless told otherwise.
        """
        rule = backbone.rule
        patch = rule.backbone.patch_size if rule is not None else None
        if patch is None:
            return
        where = f"{self.path}.backbone_padding"
        if mode not in ("constant", "reflect", "replicate"):
            self.report.drop(where, mode, "geofm pads with constant, reflect or replicate")
            return
        out.update(input_multiple=2 * patch, pad_mode=mode, pad_centred=True)
        self.report.note(where, (
            f"TerraTorch pads inputs to a multiple of {2 * patch} ({mode}, both sides); "
            f"written as input_multiple: {2 * patch}, pad_mode: {mode}, pad_centred: true"))

    # -- decoder ------------------------------------------------------------------

    def _decoder(self, decoder: Any, dk: dict[str, Any],
                 out: dict[str, Any]) -> ComponentRule | None:
        where = f"{self.path}.decoder"
        rule = None
        if decoder is not None and not isinstance(decoder, str):
            self.report.drop(where, decoder, "only decoder names can be converted")
            out["decoder"] = decoder
        elif isinstance(decoder, str):
            found = self.book.component("decoder", strip_source(decoder, "terratorch"))
            if found is not None and found.claim is not None:
                rule = found.claim.rule
                out["decoder"] = rule.target
                if rule.note:
                    self.report.note(where, rule.note)
            else:
                self.report.drop(where, decoder, found.problem if found is not None else (
                    "no geofm decoder of that name; kept as is, replace it "
                    "(`geofm list decoder`)" + self.book.missing_hint()))
                out["decoder"] = decoder
        kwargs = self.decoder_kwargs(rule, dk, f"{self.path}.decoder_")
        if kwargs:
            out["decoder_kwargs"] = kwargs
        return rule

    # -- necks --------------------------------------------------------------------

    def _neck_list(self, necks: Any, out: dict[str, Any], backbone: _Backbone,
                   decoder: ComponentRule | None,
                   factory: FactoryRule | None) -> list[dict[str, Any]]:
        """Explicit necks, or the implicit ones written out; then flag and level necks."""
        result = self.necks(necks, out)
        rule = backbone.rule
        if rule is not None and rule.backbone.tokens and not necks:
            result = self._implicit_necks(rule, backbone.kwargs, decoder, factory)
        result.extend({"name": neck} for neck in self.flag_necks)
        facts = decoder.decoder if decoder is not None else None
        widths = out.get("decoder_kwargs", {}).get(facts.levels_from) if facts else None
        if facts is not None and facts.levels_from and isinstance(widths, list):
            indices = list(range(-len(widths), 0))
            result.append({"name": "geofm:select_indices", "indices": indices})
            self.report.note(f"{self.path}.necks", (
                f"{facts.levels_note}; written as select_indices {indices} (one level per "
                "decoder width)"))
        return result

    def _implicit_necks(self, rule: ComponentRule, bkw: dict[str, Any],
                        decoder: ComponentRule | None,
                        factory: FactoryRule | None) -> list[dict[str, Any]]:
        """The neck TerraTorch applies implicitly to a token backbone, written out."""
        facts = rule.backbone
        frames = int(bkw.get("num_frames", 1) or 1)
        reshape: dict[str, Any] = {"name": "geofm:reshape_tokens_to_image"}
        if frames > 1:
            reshape["effective_time_dim"] = frames
        necks = [reshape]
        label = facts.label or f"backbone {rule.target}"
        where = factory.names[0] if factory is not None else f"a {label} without necks"
        self.report.note(f"{self.path}.necks", (
            f"{where}: TerraTorch reshapes the tokens to images implicitly; written as the "
            "neck geofm:reshape_tokens_to_image"))
        levels = decoder.decoder.levels if decoder is not None else None
        if decoder is None or levels is None:
            return necks
        depth = bkw.get("depth") or facts.depth
        out_indices = bkw.get("out_indices")
        count = len(out_indices) if out_indices else int(depth) if depth else None
        if count is None:
            self.report.note(f"{self.path}.necks", (
                f"{decoder.target} takes {levels} levels and the number of blocks of "
                f"{rule.target} is unknown; add geofm:select_indices for {levels} levels"))
        elif count != levels:
            indices = [(i + 1) * count // levels - 1 for i in range(levels)]
            necks.insert(0, {"name": "geofm:select_indices", "indices": indices})
            self.report.note(f"{self.path}.necks", (
                f"TerraTorch's {decoder.names[0]} took all {count} block outputs; geofm's "
                f"{decoder.target} takes {levels} levels, so select_indices {indices} is added"))
        return necks

    # -- head, auxiliary heads, classes, rescaling --------------------------------

    def _tail(self, parts: _Args, out: dict[str, Any], decoder: ComponentRule | None) -> None:
        hkw = self.head_kwargs(parts.hk, f"{self.path}.head_")
        if hkw:
            out["head_kwargs"] = hkw
        if self.task in ("classification", "multilabel") and "pooling" not in out \
                and not parts.hk.get("linear_after_pool"):
            out["pooling"] = "head_then_avg"
            self.report.note(f"{self.path}.head_linear_after_pool", (
                "false (TerraTorch's default): its head runs at every position and is then "
                "averaged; written as pooling: head_then_avg"))
        if parts.aux:
            aux_list = self.aux(parts.aux)
            if aux_list:
                out["aux_decoders"] = aux_list
        if parts.num_classes is not None:
            if self.task == "regression":
                self.report.note(f"{self.path}.num_classes", (
                    f"{parts.num_classes} dropped: geofm regression predicts one value per "
                    "pixel"))
            else:
                out["num_classes"] = parts.num_classes
        if parts.rescale is not None:
            if parts.rescale is False and decoder is not None \
                    and decoder.decoder.upsamples_itself:
                out["rescale"] = True
                self.report.note(f"{self.path}.rescale", (
                    f"false written as true: TerraTorch's {decoder.names[0]} upsamples to the "
                    f"input size itself, {decoder.target} does not"))
            else:
                out["rescale"] = parts.rescale
