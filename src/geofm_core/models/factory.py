"""``EncoderDecoderFactory`` (``geofm:encoder_decoder``): models composed from registry names.

Every component is named (``timm:resnet18``, ``geofm:select_indices``,
``upernet:upernet``) and built through the registry. Arguments are validated with
pydantic, and every component's keywords against its signature, **before** anything is
built; the channel list is threaded backbone → necks → decoder → head, and a
composition that does not fit fails at build time naming the components on both sides.
"""

from __future__ import annotations

import difflib
import functools
import inspect
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Annotated, Any, Literal, TypeVar

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, ValidationError, validate_call
from torch import nn

from geofm_core.errors import ComponentArgumentError, ConfigurationError
from geofm_core.models.contracts import Backbone, Decoder, Neck

if TYPE_CHECKING:
    from geofm_core.models.pixelwise import AuxiliaryHead
from geofm_core.registry import ComponentSpec, get_registry
from geofm_core.signatures import check_arguments

__all__ = ["AuxDecoderSpec", "EncoderDecoderFactory", "EncoderPlan", "NeckSpec"]

TASKS = ("segmentation", "regression", "classification", "multilabel")
_TASK_ALIASES = {"multi_label": "multilabel", "multi-label": "multilabel",
                 "multilabel_classification": "multilabel", "pixelwise_regression": "regression",
                 "semantic_segmentation": "segmentation"}
_HEADS = {"segmentation": "geofm:segmentation", "regression": "geofm:regression",
          "classification": "geofm:classification", "multilabel": "geofm:classification"}
_DEFAULT_SCALAR_DECODER = "geofm:identity"


class NeckSpec(BaseModel):
    """One neck: its registry ``name`` and its keyword arguments (all other keys)."""

    model_config = ConfigDict(extra="allow")

    name: str

    @property
    def kwargs(self) -> dict[str, Any]:
        """The neck's keyword arguments."""
        return dict(self.model_extra or {})


class AuxDecoderSpec(BaseModel):
    """An auxiliary head: its output ``name``, ``decoder`` (registry name) and kwargs."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1)
    decoder: str
    decoder_kwargs: dict[str, Any] = Field(default_factory=dict)
    head_kwargs: dict[str, Any] = Field(default_factory=dict)


def _known_task(value: str) -> str:
    task = _TASK_ALIASES.get(value, value)
    if task not in TASKS:
        close = difflib.get_close_matches(value, TASKS, n=2, cutoff=0.5)
        hint = f" (did you mean {', '.join(repr(c) for c in close)}?)" if close else ""
        raise ValueError(f"unknown task {value!r}{hint}; choose one of {', '.join(TASKS)}")
    return task


#: A task name (aliases such as ``semantic_segmentation`` accepted).
TaskName = Annotated[str, AfterValidator(_known_task)]
#: A count of at least one.
Positive = Annotated[int, Field(ge=1)]


def _describe_validation_error(exc: ValidationError, positional: Sequence[str] = ()) -> str:
    """``field.path: message`` per error; a positional argument is named, not numbered."""
    parts = []
    for err in exc.errors():
        loc = [positional[p] if isinstance(p, int) and i == 0 and p < len(positional) else p
               for i, p in enumerate(err["loc"])]
        parts.append(f"{'.'.join(str(p) for p in loc) or 'arguments'}: {err['msg']}")
    return "; ".join(parts)


_F = TypeVar("_F", bound=Callable[..., Any])


def validated_arguments(component: str) -> Callable[[_F], _F]:
    """Validate a method's arguments against its own signature (pydantic, lax mode).

    The signature is the one declaration of the arguments: pydantic checks the values
    (and builds :class:`NeckSpec` / :class:`AuxDecoderSpec` from mappings) before the
    body runs; a mistake becomes one :class:`ConfigurationError` naming ``component``
    and the field.

    Args:
        component: How messages name the factory (``"geofm:encoder_decoder"``).
    """

    def decorate(method: _F) -> _F:
        checked = validate_call(config=ConfigDict(arbitrary_types_allowed=True))(method)
        positional = list(inspect.signature(method).parameters)

        @functools.wraps(method)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            try:
                return checked(*args, **kwargs)
            except ValidationError as exc:
                raise ConfigurationError(
                    f"{component} got invalid arguments: "
                    f"{_describe_validation_error(exc, positional)}"
                ) from exc

        return wrapper  # type: ignore[return-value]

    return decorate


class _Planned:
    """A component resolved and argument-checked, not yet built."""

    def __init__(self, kind: str, name: str, kwargs: dict[str, Any]) -> None:
        self.spec: ComponentSpec = get_registry().get(kind, name)
        self.factory: Callable[..., Any] = self.spec.load()
        self.kwargs = kwargs
        self.what = f"{kind} {self.spec.qualified_name!r}"

    def check(self, filled: dict[str, Any]) -> None:
        """Check the user's kwargs, with the arguments the factory fills in."""
        for key in filled:
            if key in self.kwargs:
                raise ComponentArgumentError(
                    f"{self.what}: do not pass {key!r}; the encoder_decoder factory sets it "
                    "from the components before it"
                )
        check_arguments(self.factory, {**filled, **self.kwargs}, self.what)

    def build_on(self, producer: str, channels: list[int], **filled: Any) -> Any:
        """Build it on ``channels`` coming from ``producer``, naming both on failure."""
        required = getattr(self.factory, "required_levels", None)
        if required is not None and len(channels) != required:
            raise ComponentArgumentError(
                f"{producer} outputs {len(channels)} levels but {self.what} needs {required} "
                f"(channels {channels}); add or adjust a neck (e.g. geofm:select_indices) "
                "between them"
            )
        try:
            return self.factory(in_channels=channels, **filled, **self.kwargs)
        except (ComponentArgumentError, ValueError, IndexError) as exc:
            raise ComponentArgumentError(
                f"{self.what} cannot take the output of {producer} (channels {channels}): {exc}"
            ) from exc


def _channel_list(value: Any, what: str) -> list[int]:
    if isinstance(value, int) or value is None:
        raise ComponentArgumentError(
            f"{what} declares out_channels={value!r}; the geofm contract needs a list of "
            "ints, one per returned feature"
        )
    try:
        channels = [int(c) for c in value]
    except (TypeError, ValueError) as exc:
        raise ComponentArgumentError(
            f"{what} declares out_channels={value!r}, not a list of ints"
        ) from exc
    if not channels:
        raise ComponentArgumentError(f"{what} declares no out_channels")
    return channels


class EncoderDecoderFactory:
    """Builds pixel-wise and scalar-output models from component names (``geofm:encoder_decoder``).

    Segmentation and regression give a :class:`~geofm_core.models.pixelwise.PixelWiseModel`;
    classification and multilabel a :class:`~geofm_core.models.scalar.ScalarOutputModel`
    (whose ``decoder`` defaults to ``geofm:identity``). Arguments of ``build_model``
    (a task's ``model_args``)::

        backbone: prithvi:prithvi_eo_v2_300     # or timm:resnet18, smp:resnet34, ...
        backbone_kwargs: {num_frames: 1}
        necks:
          - {name: geofm:select_indices, indices: [5, 11, 17, 23]}
          - {name: geofm:reshape_tokens_to_image}
          - {name: geofm:learned_interpolate_to_pyramidal}
        decoder: upernet:upernet
        decoder_kwargs: {channels: 256}
        head_kwargs: {dropout: 0.1}
        num_classes: 2
        aux_decoders:                         # optional, outputs in auxiliary_heads
          - {name: aux_head, decoder: geofm:fcn, decoder_kwargs: {channels: 64}}
        rescale: true                         # resize outputs to the input size
        pooling: avg                          # classification: avg, max or cls
        input_multiple: null                  # default: the backbone's
        pad_mode: constant                    # or reflect, replicate
        pad_centred: false                    # pad both sides instead of bottom/right
    """

    #: The tasks this factory builds models for.
    tasks = TASKS

    @validated_arguments("geofm:encoder_decoder")
    def build_model(
        self,
        task: TaskName,
        backbone: str | nn.Module,
        decoder: str | None = None,
        num_classes: Positive | None = None,
        backbone_kwargs: dict[str, Any] | None = None,
        necks: list[NeckSpec] | None = None,
        decoder_kwargs: dict[str, Any] | None = None,
        head_kwargs: dict[str, Any] | None = None,
        aux_decoders: list[AuxDecoderSpec] | None = None,
        rescale: bool = True,
        pooling: Literal["avg", "max", "cls", "head_then_avg"] = "avg",
        input_multiple: Positive | None = None,
        pad_mode: Literal["constant", "reflect", "replicate"] = "constant",
        pad_centred: bool = False,
        backbone_weights: str | None = None,
    ) -> nn.Module:
        """Build the model for ``task``.

        Args:
            task: ``segmentation``, ``regression``, ``classification`` or ``multilabel``.
            backbone: A backbone name (``timm:resnet18``, ``prithvi:...``) or a ready module.
            decoder: A decoder name (``upernet:upernet``, ``geofm:fcn``, ``smp:unet``);
                optional for classification (``geofm:identity``).
            num_classes: Classes (segmentation, classification) or labels (multilabel);
                regression predicts one value per pixel.
            backbone_kwargs: Keyword arguments of the backbone.
            necks: Necks in order, each ``{"name": ..., **kwargs}``.
            decoder_kwargs: Keyword arguments of the decoder.
            head_kwargs: Keyword arguments of the task's head (``geofm:segmentation``,
                ``geofm:regression`` or ``geofm:classification``).
            aux_decoders: Auxiliary heads, each ``{"name": <output name>, "decoder":
                <decoder name>, "decoder_kwargs": {...}, "head_kwargs": {...}}``.
            rescale: Resize pixel-wise outputs to the input size.
            pooling: Pooling of scalar-output models (``avg``, ``max``, ``cls``, or
                ``head_then_avg``: the head per position, then averaged).
            input_multiple: Pad inputs to a multiple of this (default: the backbone's).
            pad_mode: What the padding is filled with (zeros by default; TerraTorch
                reflects).
            pad_centred: Split the padding between both sides (TerraTorch) instead of
                padding the bottom and right.
            backbone_weights: A geofm checkpoint (e.g. the ``last.ckpt`` of a
                ``ReconstructionTask`` run) whose encoder is loaded into the built
                backbone, strictly (see :func:`geofm_core.io.weights.load_backbone_weights`).

        Raises:
            ConfigurationError: An argument has the wrong type or value.
            ComponentArgumentError: A component's keywords do not fit its signature, or
                two components do not fit together (the message names both).
            UnknownComponentError: A name no installed plugin provides.
        """
        pixelwise = task in ("segmentation", "regression")
        classes = _class_count(task, num_classes)
        if decoder is None and pixelwise:
            raise ConfigurationError(
                f"geofm:encoder_decoder: task {task!r} needs a decoder (e.g. "
                "'geofm:fcn'; `geofm list decoder` shows the installed ones)"
            )
        plan = _Plan.resolve(task, backbone, backbone_kwargs or {}, necks or [],
                             decoder or _DEFAULT_SCALAR_DECODER, decoder_kwargs or {},
                             head_kwargs or {}, aux_decoders or [])
        parts = plan.build(classes)
        if backbone_weights is not None:
            from geofm_core.io.weights import load_backbone_weights

            load_backbone_weights(parts.modules[0], backbone_weights,
                                  "geofm:encoder_decoder backbone_weights")
        if pixelwise:
            from geofm_core.models.pixelwise import PixelWiseModel

            return PixelWiseModel(task, *parts.modules, necks=parts.necks,
                                  auxiliary_heads=parts.aux_heads, rescale=rescale,
                                  input_multiple=input_multiple, pad_mode=pad_mode,
                                  pad_centred=pad_centred)
        from geofm_core.models.scalar import ScalarOutputModel

        return ScalarOutputModel(task, *parts.modules, necks=parts.necks,
                                 auxiliary_heads=parts.aux_heads, pooling=pooling,
                                 input_multiple=input_multiple, pad_mode=pad_mode,
                                 pad_centred=pad_centred)


def _class_count(task: str, num_classes: int | None) -> int:
    """Outputs per pixel or sample: one for regression, else ``num_classes`` (required)."""
    if task == "regression":
        if num_classes not in (None, 1):
            raise ConfigurationError(
                f"geofm:encoder_decoder: regression predicts one value per pixel; "
                f"num_classes={num_classes} is not supported (leave it unset)"
            )
        return 1
    if num_classes is None:
        raise ConfigurationError(
            f"geofm:encoder_decoder: task {task!r} needs num_classes (the number of "
            f"{'labels' if task == 'multilabel' else 'classes'})"
        )
    return num_classes


@dataclass
class EncoderPlan:
    """A backbone and its necks, looked up and argument-checked, not built yet.

    Every factory that puts a registry backbone and necks in front of its own parts
    (``geofm:encoder_decoder``, ``geofm:change_detection``, ``geofm:detection``) resolves
    them here, so a mistake is named before anything heavy is built.
    """

    backbone: _Planned | nn.Module
    necks: list[_Planned]

    @classmethod
    def resolve(cls, component: str, backbone: str | nn.Module,
                backbone_kwargs: dict[str, Any] | None,
                necks: Sequence[NeckSpec] | None) -> EncoderPlan:
        """Look up the backbone (a name, or a ready module) and the necks; check their keywords.

        Args:
            component: The factory, as messages name it (``"geofm:detection"``).
            backbone: A registry backbone name or a ready module.
            backbone_kwargs: The backbone's keyword arguments (none with a ready module).
            necks: The necks in order.
        """
        planned: _Planned | nn.Module
        if isinstance(backbone, str):
            planned = _Planned("backbone", backbone, dict(backbone_kwargs or {}))
            planned.check({})
        elif backbone_kwargs:
            raise ConfigurationError(
                f"{component}: backbone_kwargs given with a ready backbone module"
            )
        else:
            planned = backbone
        neck_plans = [_Planned("neck", n.name, n.kwargs) for n in necks or []]
        for plan in neck_plans:
            plan.check({"in_channels": [1]})
        return cls(planned, neck_plans)

    def build(self) -> tuple[nn.Module, list[nn.Module], list[int], str]:
        """Build the backbone and the necks on its output, threading the channel list.

        Returns:
            The backbone, the necks, the channels of the last output, and what produced
            that output (for messages of the components built on it).
        """
        if isinstance(self.backbone, _Planned):
            backbone = self.backbone.factory(**self.backbone.kwargs)
            producer = self.backbone.what
        else:
            backbone = self.backbone
            producer = f"backbone {type(backbone).__name__}"
        channels = _feature_channels(backbone, Backbone, producer)
        built_necks = []
        for plan in self.necks:
            neck = plan.build_on(producer, channels)
            channels = _feature_channels(neck, Neck, plan.what)
            producer = plan.what
            built_necks.append(neck)
        return backbone, built_necks, channels, producer


@dataclass
class _Parts:
    """The built components, in the order the model classes take them."""

    modules: tuple[nn.Module, nn.Module, nn.Module]  # backbone, decoder, head
    necks: list[nn.Module]
    aux_heads: dict[str, AuxiliaryHead]


@dataclass
class _Plan:
    """Every component of a model resolved and argument-checked, none built yet."""

    head_name: str
    encoder: EncoderPlan
    decoder: _Planned
    head: _Planned
    aux: list[tuple[str, _Planned, _Planned]]

    @classmethod
    def resolve(cls, task: str, backbone: str | nn.Module, backbone_kwargs: dict[str, Any],
                necks: list[NeckSpec], decoder: str, decoder_kwargs: dict[str, Any],
                head_kwargs: dict[str, Any], aux_decoders: list[AuxDecoderSpec]) -> _Plan:
        """Look every name up and check every component's keywords, before building any."""
        names = [a.name for a in aux_decoders]
        if len(set(names)) != len(names):
            raise ConfigurationError(
                f"geofm:encoder_decoder: aux_decoders names must be unique, got {names}"
            )
        encoder = EncoderPlan.resolve("geofm:encoder_decoder", backbone, backbone_kwargs, necks)
        decoder_plan = _Planned("decoder", decoder, decoder_kwargs)
        decoder_plan.check({"in_channels": [1]})
        head_name = _HEADS[task]
        head_plan = _Planned("head", head_name, head_kwargs)
        head_plan.check({"in_channels": 1, "num_classes": 1})
        aux_plans = []
        for aux in aux_decoders:
            aux_decoder = _Planned("decoder", aux.decoder, aux.decoder_kwargs)
            aux_decoder.what = f"aux decoder {aux.name!r} ({aux_decoder.what})"
            aux_decoder.check({"in_channels": [1]})
            aux_head = _Planned("head", head_name, aux.head_kwargs)
            aux_head.what = f"aux decoder {aux.name!r} ({aux_head.what})"
            aux_head.check({"in_channels": 1, "num_classes": 1})
            aux_plans.append((aux.name, aux_decoder, aux_head))
        return cls(head_name, encoder, decoder_plan, head_plan, aux_plans)

    def build(self, num_classes: int) -> _Parts:
        """Build the components, threading the channel list backbone → necks → decoders."""
        backbone, built_necks, channels, producer = self.encoder.build()
        decoder = self.decoder.build_on(producer, channels)
        head = self.head.factory(in_channels=_decoder_channels(decoder, self.decoder.what),
                                 num_classes=num_classes, **self.head.kwargs)
        from geofm_core.models.pixelwise import AuxiliaryHead

        aux_heads: dict[str, AuxiliaryHead] = {}
        for name, dec_plan, head_plan in self.aux:
            aux_decoder = dec_plan.build_on(producer, channels)
            aux_heads[name] = AuxiliaryHead(aux_decoder, head_plan.factory(
                in_channels=_decoder_channels(aux_decoder, dec_plan.what),
                num_classes=num_classes, **head_plan.kwargs,
            ))
        return _Parts((backbone, decoder, head), built_necks, aux_heads)


def _feature_channels(module: Any, contract: type[Backbone] | type[Neck], what: str) -> list[int]:
    """The ``out_channels`` list a backbone or neck declares (its contract), checked."""
    value = module.out_channels if isinstance(module, contract) else None
    return _channel_list(value, what)


def _decoder_channels(decoder: Any, what: str) -> int:
    value = decoder.out_channels if isinstance(decoder, Decoder) else None
    if isinstance(value, bool) or not isinstance(value, int):
        raise ComponentArgumentError(
            f"{what} declares out_channels={value!r}; the geofm decoder contract needs "
            "one int"
        )
    return value
