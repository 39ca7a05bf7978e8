"""``EncoderDecoderFactory`` (``geofm:encoder_decoder``): models composed from registry names.

Every component is named (``timm:resnet18``, ``geofm:select_indices``,
``upernet:upernet``) and built through the registry. Arguments are validated with
pydantic, and every component's keywords against its signature, **before** anything is
built; the channel list is threaded backbone → necks → decoder → head, and a
composition that does not fit fails at build time naming the components on both sides.
"""

from __future__ import annotations

import difflib
from collections.abc import Callable
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator
from torch import nn

from geofm_core.errors import ComponentArgumentError, ConfigurationError
from geofm_core.registry import ComponentSpec, get_registry
from geofm_core.signatures import check_arguments

__all__ = ["AuxDecoderSpec", "EncoderDecoderArgs", "EncoderDecoderFactory", "NeckSpec"]

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


class EncoderDecoderArgs(BaseModel):
    """The validated arguments of :meth:`EncoderDecoderFactory.build_model`."""

    model_config = ConfigDict(extra="forbid", arbitrary_types_allowed=True)

    task: str
    backbone: str | nn.Module
    decoder: str | None = None
    num_classes: int | None = Field(default=None, ge=1)
    backbone_kwargs: dict[str, Any] = Field(default_factory=dict)
    necks: list[NeckSpec] = Field(default_factory=list)
    decoder_kwargs: dict[str, Any] = Field(default_factory=dict)
    head_kwargs: dict[str, Any] = Field(default_factory=dict)
    aux_decoders: list[AuxDecoderSpec] = Field(default_factory=list)
    rescale: bool = True
    pooling: str = "avg"
    input_multiple: int | None = Field(default=None, ge=1)

    @field_validator("task")
    @classmethod
    def _known_task(cls, value: str) -> str:
        task = _TASK_ALIASES.get(value, value)
        if task not in TASKS:
            close = difflib.get_close_matches(value, TASKS, n=2, cutoff=0.5)
            hint = f" (did you mean {', '.join(repr(c) for c in close)}?)" if close else ""
            raise ValueError(f"unknown task {value!r}{hint}; choose one of {', '.join(TASKS)}")
        return task

    @field_validator("pooling")
    @classmethod
    def _known_pooling(cls, value: str) -> str:
        if value not in ("avg", "max", "cls"):
            raise ValueError(f"pooling must be 'avg', 'max' or 'cls', got {value!r}")
        return value


def _describe_validation_error(exc: ValidationError) -> str:
    parts = []
    for err in exc.errors():
        loc = ".".join(str(p) for p in err["loc"]) or "arguments"
        parts.append(f"{loc}: {err['msg']}")
    return "; ".join(parts)


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
    """

    def build_model(
        self,
        task: str,
        backbone: str | nn.Module,
        decoder: str | None = None,
        num_classes: int | None = None,
        backbone_kwargs: dict[str, Any] | None = None,
        necks: list[dict[str, Any]] | None = None,
        decoder_kwargs: dict[str, Any] | None = None,
        head_kwargs: dict[str, Any] | None = None,
        aux_decoders: list[dict[str, Any]] | None = None,
        rescale: bool = True,
        pooling: str = "avg",
        input_multiple: int | None = None,
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
            pooling: Pooling of scalar-output models (``avg``, ``max``, ``cls``).
            input_multiple: Pad inputs to a multiple of this (default: the backbone's).

        Raises:
            ConfigurationError: An argument has the wrong type or value.
            ComponentArgumentError: A component's keywords do not fit its signature, or
                two components do not fit together (the message names both).
            UnknownComponentError: A name no installed plugin provides.
        """
        try:
            args = EncoderDecoderArgs.model_validate({
                "task": task, "backbone": backbone, "decoder": decoder,
                "num_classes": num_classes, "backbone_kwargs": backbone_kwargs or {},
                "necks": necks or [], "decoder_kwargs": decoder_kwargs or {},
                "head_kwargs": head_kwargs or {}, "aux_decoders": aux_decoders or [],
                "rescale": rescale, "pooling": pooling, "input_multiple": input_multiple,
            })
        except ValidationError as exc:
            raise ConfigurationError(
                f"geofm:encoder_decoder got invalid arguments: {_describe_validation_error(exc)}"
            ) from exc
        return self._build(args)

    def _build(self, args: EncoderDecoderArgs) -> nn.Module:
        task = args.task
        pixelwise = task in ("segmentation", "regression")
        if task == "regression":
            if args.num_classes not in (None, 1):
                raise ConfigurationError(
                    f"geofm:encoder_decoder: regression predicts one value per pixel; "
                    f"num_classes={args.num_classes} is not supported (leave it unset)"
                )
            num_classes = 1
        elif args.num_classes is None:
            raise ConfigurationError(
                f"geofm:encoder_decoder: task {task!r} needs num_classes (the number of "
                f"{'labels' if task == 'multilabel' else 'classes'})"
            )
        else:
            num_classes = args.num_classes
        decoder_name = args.decoder
        if decoder_name is None:
            if pixelwise:
                raise ConfigurationError(
                    f"geofm:encoder_decoder: task {task!r} needs a decoder (e.g. "
                    "'geofm:fcn'; `geofm list decoder` shows the installed ones)"
                )
            decoder_name = _DEFAULT_SCALAR_DECODER
        names = {a.name for a in args.aux_decoders}
        if len(names) != len(args.aux_decoders):
            raise ConfigurationError(
                "geofm:encoder_decoder: aux_decoders names must be unique, got "
                f"{[a.name for a in args.aux_decoders]}"
            )

        # resolve and check every component before building any of them
        backbone_plan = None
        if isinstance(args.backbone, str):
            backbone_plan = _Planned("backbone", args.backbone, args.backbone_kwargs)
            backbone_plan.check({})
        elif args.backbone_kwargs:
            raise ConfigurationError(
                "geofm:encoder_decoder: backbone_kwargs given with a ready backbone module"
            )
        neck_plans = [_Planned("neck", n.name, n.kwargs) for n in args.necks]
        for plan in neck_plans:
            plan.check({"in_channels": [1]})
        decoder_plan = _Planned("decoder", decoder_name, args.decoder_kwargs)
        decoder_plan.check({"in_channels": [1]})
        head_name = _HEADS[task]
        head_plan = _Planned("head", head_name, args.head_kwargs)
        head_plan.check({"in_channels": 1, "num_classes": 1})
        aux_plans = []
        for aux in args.aux_decoders:
            aux_decoder = _Planned("decoder", aux.decoder, aux.decoder_kwargs)
            aux_decoder.what = f"aux decoder {aux.name!r} ({aux_decoder.what})"
            aux_decoder.check({"in_channels": [1]})
            aux_head = _Planned("head", head_name, aux.head_kwargs)
            aux_head.what = f"aux decoder {aux.name!r} ({aux_head.what})"
            aux_head.check({"in_channels": 1, "num_classes": 1})
            aux_plans.append((aux.name, aux_decoder, aux_head))

        # build, threading the channels
        if backbone_plan is not None:
            backbone = backbone_plan.factory(**backbone_plan.kwargs)
            producer = backbone_plan.what
        else:
            assert isinstance(args.backbone, nn.Module)
            backbone = args.backbone
            producer = f"backbone {type(backbone).__name__}"
        channels = _channel_list(getattr(backbone, "out_channels", None), producer)
        built_necks = []
        for plan in neck_plans:
            neck = plan.build_on(producer, channels)
            channels = _channel_list(getattr(neck, "out_channels", None), plan.what)
            producer = plan.what
            built_necks.append(neck)
        main_decoder = decoder_plan.build_on(producer, channels)
        head = head_plan.factory(
            in_channels=self._decoder_channels(main_decoder, decoder_plan.what),
            num_classes=num_classes, **head_plan.kwargs,
        )
        from geofm_core.models.pixelwise import AuxiliaryHead

        aux_heads = {}
        for name, dec_plan, aux_head_plan in aux_plans:
            aux_decoder = dec_plan.build_on(producer, channels)
            aux_heads[name] = AuxiliaryHead(aux_decoder, aux_head_plan.factory(
                in_channels=self._decoder_channels(aux_decoder, dec_plan.what),
                num_classes=num_classes, **aux_head_plan.kwargs,
            ))
        if pixelwise:
            from geofm_core.models.pixelwise import PixelWiseModel

            return PixelWiseModel(
                task, backbone, main_decoder, head, necks=built_necks,
                auxiliary_heads=aux_heads, rescale=args.rescale,
                input_multiple=args.input_multiple,
            )
        from geofm_core.models.scalar import ScalarOutputModel

        return ScalarOutputModel(
            task, backbone, main_decoder, head, necks=built_necks, auxiliary_heads=aux_heads,
            pooling=args.pooling, input_multiple=args.input_multiple,
        )

    @staticmethod
    def _decoder_channels(decoder: Any, what: str) -> int:
        value = getattr(decoder, "out_channels", None)
        if isinstance(value, bool) or not isinstance(value, int):
            raise ComponentArgumentError(
                f"{what} declares out_channels={value!r}; the geofm decoder contract needs "
                "one int"
            )
        return value
