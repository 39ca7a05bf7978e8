"""Numerical precision of inference: fp32, or a forward pass under ``torch.autocast``.

Spelled as Lightning spells ``trainer.precision`` (``32``, ``bf16-mixed``, ``16-mixed``)
or short (``fp32``, ``bf16``, ``fp16``), so `geofm infer --precision` and
`geofm predict --trainer.precision` read the same. Autocast keeps the weights in fp32
and runs matmuls and convolutions in the lower precision; what comes out is cast back
to fp32 before it is blended and written.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from geofm_core.errors import ConfigurationError

__all__ = ["PRECISIONS", "autocast_forward", "parse_precision"]

#: Accepted spellings -> canonical name.
PRECISIONS = {
    "32": "32", "32-true": "32", "fp32": "32", "float32": "32",
    "bf16": "bf16", "bf16-mixed": "bf16", "bfloat16": "bf16",
    "16": "16", "16-mixed": "16", "fp16": "16", "float16": "16",
}


def parse_precision(name: str) -> str:
    """The canonical precision (``"32"``, ``"bf16"`` or ``"16"``) of a spelling.

    Raises:
        ConfigurationError: For a spelling not in :data:`PRECISIONS`.
    """
    canonical = PRECISIONS.get(str(name).strip().lower())
    if canonical is None:
        raise ConfigurationError(
            f"--precision {name!r} is not a precision; use 32 (fp32, the default), "
            "bf16 (bf16-mixed) or 16 (16-mixed, fp16)"
        )
    return canonical


def autocast_forward(forward: Callable[[Any], Any], device_type: str,
                     precision: str) -> Callable[[Any], Any]:
    """``forward`` run under autocast at ``precision`` on ``device_type``; fp32 out.

    ``precision`` ``"32"`` returns ``forward`` itself: an fp32 run is not touched.
    """
    precision = parse_precision(precision)
    if precision == "32":
        return forward

    import torch

    dtype = torch.bfloat16 if precision == "bf16" else torch.float16

    def run(tiles: Any) -> Any:
        with torch.autocast(device_type=device_type, dtype=dtype):
            out = forward(tiles)
        return out.float()

    return run
