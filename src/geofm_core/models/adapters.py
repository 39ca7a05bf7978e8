"""Parameter-efficient fine-tuning: LoRA adapters on a backbone through the ``peft`` library.

The configuration is TerraTorch's ``peft_config`` (so converted configs keep it)::

    peft_config:
      method: LORA
      replace_qkv: qkv            # optional: split fused qkv Linears into q/k/v
      peft_config_kwargs: {target_modules: [qkv, fc1, fc2], r: 8, lora_alpha: 16}

:func:`apply_peft` injects the adapters into the backbone in place and freezes the
backbone's own weights (decoder, necks and heads stay trainable); :func:`merge_adapters`
folds them into the base weights for export and inference. ``peft`` is imported on
first use only.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from geofm_core.errors import ConfigurationError

__all__ = [
    "PeftSpec",
    "SplitQKV",
    "adapter_modules",
    "apply_peft",
    "backbone_of",
    "merge_adapters",
    "parse_peft_config",
]

#: Methods geofm applies and merges.
METHODS = ("LORA",)
_FIELD = "peft_config"
_LISTED = 12


@dataclass(frozen=True)
class PeftSpec:
    """A validated ``peft_config``.

    Attributes:
        method: The PEFT method (``LORA``).
        replace_qkv: Name (last part) of fused qkv ``nn.Linear`` modules to split first.
        kwargs: Keyword arguments of peft's ``LoraConfig`` (``target_modules``, ``r``, ...).
    """

    method: str
    replace_qkv: str | None = None
    kwargs: dict[str, Any] = field(default_factory=dict)


def parse_peft_config(config: Mapping[str, Any]) -> PeftSpec:
    """Check a ``peft_config`` mapping (TerraTorch's keys); raise one error naming the field."""
    if not isinstance(config, Mapping):
        raise ConfigurationError(
            f"{_FIELD} must be a mapping like {{method: LORA, peft_config_kwargs: "
            f"{{target_modules: [qkv], r: 8}}}}, not {type(config).__name__}"
        )
    unknown = sorted(set(config) - {"method", "replace_qkv", "peft_config_kwargs"})
    if unknown:
        raise ConfigurationError(
            f"{_FIELD} has unknown keys {unknown}; it takes method, replace_qkv and "
            "peft_config_kwargs (LoRA's r, lora_alpha, target_modules go into "
            "peft_config_kwargs)"
        )
    method = str(config.get("method", "LORA")).upper()
    if method not in METHODS:
        raise ConfigurationError(
            f"{_FIELD}.method {config.get('method')!r} is not supported; geofm applies "
            f"{', '.join(METHODS)}"
        )
    kwargs = dict(config.get("peft_config_kwargs") or {})
    if not kwargs.get("target_modules"):
        raise ConfigurationError(
            f"{_FIELD}.peft_config_kwargs.target_modules is missing; name the backbone's "
            "layers to adapt, e.g. [qkv, proj, fc1, fc2] for a ViT"
        )
    replace = config.get("replace_qkv")
    return PeftSpec(method, str(replace) if replace is not None else None, kwargs)


def backbone_of(model: nn.Module) -> tuple[str, nn.Module]:
    """The model's backbone (``backbone`` or ``encoder`` submodule) and its attribute name."""
    for name in ("backbone", "encoder"):
        module = getattr(model, name, None)
        if isinstance(module, nn.Module):
            return name, module
    raise ConfigurationError(
        f"{_FIELD}: the model ({type(model).__name__}) has no backbone or encoder submodule "
        "to put adapters on; use a geofm:encoder_decoder model or remove peft_config"
    )


class SplitQKV(nn.Module):
    """A fused ``qkv`` Linear as three Linears (``q_linear``, ``k_linear``, ``v_linear``).

    The output is the same (the three concatenated), but LoRA can then adapt q, k and v
    one by one. Names follow TerraTorch's ``replace_qkv``.
    """

    def __init__(self, fused: nn.Linear) -> None:
        super().__init__()
        width = fused.in_features
        if fused.out_features != 3 * width:
            raise ConfigurationError(
                f"{_FIELD}.replace_qkv: a Linear with {fused.out_features} outputs is not a "
                f"fused qkv of width {width} (needs {3 * width} outputs)"
            )
        bias = fused.bias is not None
        parts = []
        for i in range(3):
            linear = nn.Linear(width, width, bias=bias, device=fused.weight.device,
                               dtype=fused.weight.dtype)
            with torch.no_grad():
                linear.weight.copy_(fused.weight[i * width:(i + 1) * width])
                if fused.bias is not None and linear.bias is not None:
                    linear.bias.copy_(fused.bias[i * width:(i + 1) * width])
            parts.append(linear)
        self.q_linear, self.k_linear, self.v_linear = parts
        self.in_features, self.out_features = width, 3 * width

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``cat(q(x), k(x), v(x))`` on the last dimension, as the fused Linear."""
        return torch.cat([self.q_linear(x), self.k_linear(x), self.v_linear(x)], dim=-1)


def _split_qkv(backbone: nn.Module, suffix: str) -> int:
    found = [name for name, m in backbone.named_modules()
             if name.split(".")[-1] == suffix and isinstance(m, nn.Linear)]
    for name in found:
        parent_name, _, attr = name.rpartition(".")
        parent = backbone.get_submodule(parent_name) if parent_name else backbone
        setattr(parent, attr, SplitQKV(getattr(parent, attr)))
    return len(found)


def _matches(name: str, targets: str | Iterable[str]) -> bool:
    """The peft rule: a string is a regex over the full name, a list matches name endings."""
    if isinstance(targets, str):
        return re.fullmatch(targets, name) is not None
    return any(name == t or name.endswith(f".{t}") for t in targets)


def _layer_names(backbone: nn.Module) -> list[str]:
    """Distinct last names of the backbone's adaptable layers (Linear and Conv)."""
    kinds = (nn.Linear, nn.Conv1d, nn.Conv2d, nn.Conv3d)
    names = {n.split(".")[-1] for n, m in backbone.named_modules() if isinstance(m, kinds)}
    return sorted(names)


def _lora_config(spec: PeftSpec) -> Any:
    try:
        from peft import LoraConfig
    except ImportError as exc:
        raise ConfigurationError(
            f"{_FIELD} needs the peft library: pip install 'geofm-core[peft]'"
        ) from exc
    try:
        return LoraConfig(**spec.kwargs)
    except (TypeError, ValueError) as exc:
        raise ConfigurationError(
            f"{_FIELD}.peft_config_kwargs are not valid LoraConfig arguments: {exc}"
        ) from exc


def apply_peft(model: nn.Module, config: Mapping[str, Any] | PeftSpec) -> list[str]:
    """Put adapters on ``model``'s backbone in place; freeze the backbone's own weights.

    Returns:
        The names (in ``model``) of the frozen base parameters of the backbone.

    Raises:
        ConfigurationError: Unsupported method, invalid LoRA arguments, peft missing, or
            ``target_modules`` matching none of the backbone's layers (their names listed).
    """
    spec = config if isinstance(config, PeftSpec) else parse_peft_config(config)
    lora = _lora_config(spec)
    attr, backbone = backbone_of(model)
    if spec.replace_qkv is not None and _split_qkv(backbone, spec.replace_qkv) == 0:
        raise ConfigurationError(
            f"{_FIELD}.replace_qkv {spec.replace_qkv!r} names no Linear of the backbone; "
            f"its layers are named {', '.join(_layer_names(backbone)[:_LISTED])}"
        )
    targets = spec.kwargs["target_modules"]
    if not any(_matches(n, targets) for n, _ in backbone.named_modules()):
        names = _layer_names(backbone)
        more = f" (+{len(names) - _LISTED} more)" if len(names) > _LISTED else ""
        raise ConfigurationError(
            f"{_FIELD}.peft_config_kwargs.target_modules {targets!r} match no layer of the "
            f"backbone ({type(backbone).__name__}); its layers are named "
            f"{', '.join(names[:_LISTED])}{more}"
        )
    from peft import inject_adapter_in_model

    try:
        inject_adapter_in_model(lora, backbone)
    except ValueError as exc:
        raise ConfigurationError(f"{_FIELD}: peft could not adapt the backbone: {exc}") from exc
    layers = adapter_modules(backbone)
    backbone.requires_grad_(False)
    for layer in layers:
        for name in layer.adapter_layer_names:
            getattr(layer, name).requires_grad_(True)
    return [f"{attr}.{n}" for n, p in backbone.named_parameters() if not p.requires_grad]


def _tuner_layer() -> Any:
    try:
        from peft.tuners.tuners_utils import BaseTunerLayer
    except ImportError:
        return None
    return BaseTunerLayer


def adapter_modules(module: nn.Module) -> list[Any]:
    """The peft adapter layers (``BaseTunerLayer``) inside ``module``; empty without peft."""
    layer = _tuner_layer()
    return [] if layer is None else [m for m in module.modules() if isinstance(m, layer)]


def merge_adapters(model: nn.Module) -> int:
    """Fold the adapters into the base layers and put those back in their place.

    After this the model holds no peft module (ONNX export and inference see plain
    Linears). Returns the number of layers merged (0 for a model without adapters).
    """
    layer = _tuner_layer()
    if layer is None:
        return 0
    merged = 0
    for name, module in list(model.named_modules()):
        if not isinstance(module, layer):
            continue
        module.merge(safe_merge=True)
        parent_name, _, attr = name.rpartition(".")
        parent = model.get_submodule(parent_name) if parent_name else model
        setattr(parent, attr, module.get_base_layer())
        merged += 1
    return merged
