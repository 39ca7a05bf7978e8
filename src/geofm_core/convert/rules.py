"""Conversion rules: how another framework names a plugin's components and their arguments.

A plugin returns :class:`ConversionRules` from its ``geofm_conversion_rules`` hook
(see :mod:`geofm_core.hookspecs`); the converters (``geofm convert``) read them, so the
core names no plugin. Everything here is plain data: declaring rules imports nothing
heavy, and a plugin's ``_plugin.py`` stays as light as ``geofm list`` needs it.

Keywords are written in two vocabularies: *foreign* keywords are the other framework's
(TerraTorch's ``drop_path``), *geofm* keywords the registered component's
(``drop_path_rate``). A foreign keyword that no rule field mentions is kept under its
own name when the component's real signature accepts it, and reported as not converted
otherwise; so a rule lists only what differs.

Weights are renamed the same way: a rule's :class:`KeyRule` entries say how the other
framework names the component's tensors, relative to the component (the converter
places each component: TerraTorch's ``encoder.`` is geofm's ``backbone.``, ...). A key
no rule mentions keeps its name.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

__all__ = [
    "BackboneFacts",
    "ComponentRule",
    "ConversionRules",
    "DecoderFacts",
    "FactoryRule",
    "Fixed",
    "KeyRule",
    "Report",
    "Unconvertible",
    "pop_prefixed",
    "rename_key",
]

#: Kinds a :class:`ComponentRule` may convert (model factories have :class:`FactoryRule`).
RULE_KINDS: tuple[str, ...] = ("backbone", "neck", "decoder")


@dataclass(frozen=True)
class Fixed:
    """A foreign keyword whose value the geofm component has built in.

    Attributes:
        value: The built-in value; a foreign value equal to it is dropped with a note.
        what: What the value is, for the note (``"encoding"`` gives
            ``dropped: the variant's own encoding``).
        otherwise: Why another value cannot be converted (reported as not converted);
            empty for the usual "takes no such argument".
        unordered: Compare as sets, ``None`` as empty (lists of flags).
    """

    value: Any
    what: str
    otherwise: str = ""
    unordered: bool = False

    def agrees(self, value: Any) -> bool:
        """Whether a foreign ``value`` is the built-in one."""
        if not self.unordered:
            return bool(value == self.value)
        try:
            return sorted(value or []) == sorted(self.value or [])
        except TypeError:  # unsortable mixtures are not the built-in value
            return False


@dataclass(frozen=True)
class KeyRule:
    r"""A rename of state-dict keys, relative to the component that owns them.

    Attributes:
        foreign: A regular expression the whole foreign key must match
            (``re.fullmatch``), e.g. ``(.+)\.conv\.(\w+)``.
        geofm: The geofm key, a ``re`` template of the match (``.0.``); ``None``
            drops the tensor (a buffer geofm recomputes), which is reported with ``why``.
        why: Why a dropped tensor is not needed, for the report.
    """

    foreign: str
    geofm: str | None
    why: str = ""

    def apply(self, key: str) -> str | bool | None:
        """The renamed key, ``None`` to drop it, ``False`` when the rule does not match."""
        found = re.fullmatch(self.foreign, key)
        if found is None:
            return False
        return None if self.geofm is None else found.expand(self.geofm)


def rename_key(rules: tuple[KeyRule, ...], key: str) -> tuple[str | None, KeyRule | None]:
    """``key`` renamed by the first rule that matches (``None``: dropped), and that rule."""
    for rule in rules:
        result = rule.apply(key)
        if result is not False:
            return (result if isinstance(result, str) else None), rule
    return key, None


@dataclass(frozen=True)
class BackboneFacts:
    """What the converter must know about a backbone to write what the framework left implicit.

    Attributes:
        tokens: The backbone returns token sequences; without explicit necks the
            converter adds ``geofm:reshape_tokens_to_image`` (the framework reshapes
            implicitly).
        depth: Number of blocks (levels returned when no ``out_indices`` is given).
        patch_size: The patch size built in; a foreign ``patch_size`` equal to it is
            dropped with a note.
        takes_bands: The backbone takes band names (``bands``) and derives its input
            channels from them; foreign channel counts are checked against the bands and
            dropped.
        channels_arg: The keyword that takes the number of input channels; foreign
            ``bands`` are written as their count there.
        label: How messages name the backbone family (``"Prithvi backbone"``).
        new_int_bands: The framework takes integers in ``bands`` (and ``[a, b]`` ranges)
            as new bands, without pretrained weights, where geofm takes them as indices
            into the pretrained bands; they are written as new-band names (``BAND_<i>``).
        bands_from_data: Without ``bands`` in the config, the backbone's bands are
            written as the data module's ``output_bands`` (by name): the framework's
            default bands would not be the channels the data gives.
    """

    tokens: bool = False
    depth: int | None = None
    patch_size: int | None = None
    takes_bands: bool = False
    channels_arg: str = ""
    label: str = ""
    new_int_bands: bool = False
    bands_from_data: bool = False


@dataclass(frozen=True)
class DecoderFacts:
    """What the converter must know about a decoder to match the levels it is given.

    Attributes:
        levels: The decoder needs exactly this many levels; evenly spaced blocks of a
            token backbone are selected for it.
        levels_from: A geofm keyword holding one entry per level the decoder uses (its
            widths); the last that many levels are selected for it.
        levels_note: Why ``levels_from`` levels are selected (the note's first part).
        upsamples_itself: The foreign decoder resizes its output to the input size, the
            geofm one does not; ``rescale: false`` is written as ``true``.
    """

    levels: int | None = None
    levels_from: str = ""
    levels_note: str = ""
    upsamples_itself: bool = False


@dataclass(frozen=True)
class ComponentRule:
    """One foreign backbone, neck or decoder (and its aliases) as a registered geofm component.

    Attributes:
        kind: ``backbone``, ``neck`` or ``decoder``.
        names: The foreign names, the usual one first (messages use it), aliases after.
        target: The geofm registry name. A bare name is stamped with the declaring
            plugin's source, as ``register`` does; a qualified one must be of that
            source or ``geofm``.
        args: Foreign keyword -> geofm keyword, where the two differ.
        defaults: geofm keyword -> value written when the config leaves it out, where
            the framework's default differs from geofm's.
        overrides: Keywords added unless the config sets them: the architecture of a
            foreign variant written as a registered one with the same layout.
        values: geofm keyword -> ``(foreign value, geofm value)`` pairs, matched by type
            and value (``use_norm``: ``True`` -> ``"batchnorm"``).
        activations: geofm keywords whose value names a torch activation
            (``torch.nn.GELU`` -> ``gelu``).
        fixed: Foreign keywords whose value the component has built in.
        ignored: Foreign keywords the framework's component takes and ignores -> why;
            dropped with a note (``<value> dropped: <why>``).
        ignored_unless: geofm keyword -> boolean geofm keyword: the framework ignores the
            first unless the second is true, geofm would use it, so it is dropped then.
        neck_flags: Foreign boolean keyword -> geofm neck appended when it is true.
        note: A difference in behaviour, reported whenever the rule is used.
        facts: Backbone or decoder facts (see :class:`BackboneFacts`, :class:`DecoderFacts`).
        keys: How the framework names the component's weights, relative to the
            component (first match wins; unmatched keys keep their names).
    """

    kind: str
    names: tuple[str, ...]
    target: str
    args: Mapping[str, str] = field(default_factory=dict)
    defaults: Mapping[str, Any] = field(default_factory=dict)
    overrides: Mapping[str, Any] = field(default_factory=dict)
    values: Mapping[str, tuple[tuple[Any, Any], ...]] = field(default_factory=dict)
    activations: tuple[str, ...] = ()
    fixed: Mapping[str, Fixed] = field(default_factory=dict)
    ignored: Mapping[str, str] = field(default_factory=dict)
    ignored_unless: Mapping[str, str] = field(default_factory=dict)
    neck_flags: Mapping[str, str] = field(default_factory=dict)
    note: str = ""
    facts: BackboneFacts | DecoderFacts | None = None
    keys: tuple[KeyRule, ...] = ()

    @property
    def backbone(self) -> BackboneFacts:
        """The backbone facts (empty ones when none are declared)."""
        return self.facts if isinstance(self.facts, BackboneFacts) else BackboneFacts()

    @property
    def decoder(self) -> DecoderFacts:
        """The decoder facts (empty ones when none are declared)."""
        return self.facts if isinstance(self.facts, DecoderFacts) else DecoderFacts()

    def declared_keywords(self) -> set[str]:
        """Every geofm keyword the rule itself may write (checked by the plugin's tests)."""
        words = {*self.args.values(), *self.defaults, *self.overrides, *self.values,
                 *self.activations, *self.ignored_unless, *self.ignored_unless.values()}
        facts = self.facts
        if isinstance(facts, BackboneFacts) and facts.channels_arg:
            words.add(facts.channels_arg)
        if isinstance(facts, BackboneFacts) and facts.takes_bands:
            words.add("bands")
        if isinstance(facts, DecoderFacts) and facts.levels_from:
            words.add(facts.levels_from)
        return words


@dataclass(frozen=True)
class FactoryRule:
    """A foreign model factory, converted to a geofm model factory's arguments.

    Two forms. Without ``convert``, the foreign factory is an encoder-decoder factory
    with a few model arguments of its own (TerraTorch's legacy per-model factories):
    ``backbone_args`` move into the backbone's arguments, ``notes`` and ``dropped``
    are reported. With ``convert``, a function of the plugin converts the whole model
    arguments (a complete foreign model written as backbone + decoder, say).

    Attributes:
        names: The foreign factory names (class names), the usual one first.
        target: The geofm model factory; a bare name is stamped with the plugin's source.
        tasks: The geofm tasks it converts for (``segmentation``, ``regression``,
            ``classification``, ``multilabel``); empty for all.
        convert: ``"module:attr"`` of a function in a light module of the plugin, called
            as ``convert(model_args, report)`` (see :class:`Report`) and returning the
            target's model arguments.
        backbone_args: Model arguments that belong to the backbone, in order.
        backbone_defaults: Values of ``backbone_args`` the foreign factory defaults to.
        notes: Model arguments dropped because geofm needs no such setting -> why; the
            note reads ``<value> <why>``.
        dropped: Model arguments without a geofm counterpart -> why (reported as not
            converted).
        keys: How the foreign model names its weights, relative to the model (keys no
            rule matches are reported as unmapped): for factories whose model is not
            laid out as encoder, necks, decoder and head.
    """

    names: tuple[str, ...]
    target: str = "geofm:encoder_decoder"
    tasks: tuple[str, ...] = ()
    convert: str = ""
    backbone_args: tuple[str, ...] = ()
    backbone_defaults: Mapping[str, Any] = field(default_factory=dict)
    notes: Mapping[str, str] = field(default_factory=dict)
    dropped: Mapping[str, str] = field(default_factory=dict)
    keys: tuple[KeyRule, ...] = ()


@dataclass(frozen=True)
class Unconvertible:
    """Foreign component names the plugin's family has but geofm does not convert.

    They are reported as having no geofm equivalent instead of being taken for names
    of a dynamic source (a TerraTorch backbone name can look like a timm name).

    Attributes:
        kind: ``backbone``, ``neck`` or ``decoder``.
        prefixes: Lower-case name prefixes.
    """

    kind: str
    prefixes: tuple[str, ...]


@dataclass(frozen=True)
class ConversionRules:
    """Everything one plugin declares for one framework.

    Attributes:
        components: Backbone, neck and decoder rules.
        factories: Model factory rules.
        unconvertible: Names with no geofm equivalent.
        published: Models the framework's authors publish for the plugin's components:
            Hugging Face repo id -> (config file, checkpoint file) in that repository.
    """

    components: tuple[ComponentRule, ...] = ()
    factories: tuple[FactoryRule, ...] = ()
    unconvertible: tuple[Unconvertible, ...] = ()
    published: Mapping[str, tuple[str, str]] = field(default_factory=dict)


class Report(Protocol):
    """What a :attr:`FactoryRule.convert` function reports to.

    Keys are relative to the converted section: ``report.drop("bogus", 3, why)``
    is listed as ``model.init_args.model_args.bogus: 3 (why)``.
    """

    @property
    def task(self) -> str:
        """The geofm task the model is for (``segmentation``, ``regression``, ...)."""

    def drop(self, key: str, value: Any, why: str) -> None:
        """Record a setting that is not converted, with the reason."""

    def note(self, key: str, text: str) -> None:
        """Record a setting converted with a difference, or a default written out."""


def pop_prefixed(kwargs: dict[str, Any], prefix: str) -> dict[str, Any]:
    """Pop the keys of ``kwargs`` that start with ``prefix``, returned without it, in order."""
    return {k[len(prefix):]: kwargs.pop(k) for k in list(kwargs) if k.startswith(prefix)}
