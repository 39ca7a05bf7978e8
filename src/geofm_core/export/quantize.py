"""int8 quantization of an exported ONNX model with onnxruntime, checked before it is kept.

Three methods:

* ``dynamic``: weights of ``MatMul``/``Gemm`` (a transformer's linear layers) stored as
  int8, activations quantized on the fly per call; no calibration data; convolutions
  stay float.
* ``static``: weights and activations of ``Conv``, ``MatMul`` and ``Gemm`` quantized
  (QDQ format, per-channel int8 weights, uint8 activations) with ranges calibrated on a
  few real input chips; needs ``calibration`` data.
* ``auto``: ``static`` when calibration data is given, else ``dynamic``.

The quantized model is compared with the float model on the calibration (or random)
inputs: the share of pixels whose class (argmax over dimension 1) agrees and the
largest absolute difference are in the returned report, and a model whose agreement
falls below ``min_agreement`` is not written.
"""

from __future__ import annotations

import logging
import tempfile
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np

from geofm_core.errors import ConfigurationError, GeofmError
from geofm_core.io.atomic import atomic_output

__all__ = [
    "QuantizationReport", "QuantizationVerificationError", "agreement", "cpu_has_vnni",
    "quantize_onnx",
]

Method = Literal["auto", "dynamic", "static"]
_STATIC_OPS = ("Conv", "MatMul", "Gemm")
_DYNAMIC_OPS = ("MatMul", "Gemm")


class QuantizationVerificationError(GeofmError):
    """The int8 model's predictions agree with the float model's less than required."""


@dataclass
class QuantizationReport:
    """What was quantized and how closely it follows the float model."""

    path: Path
    method: str
    agreement: float
    max_abs_diff: float
    size_mb: float
    float_size_mb: float
    notes: list[str] = field(default_factory=list)


class _Chips:
    """onnxruntime's CalibrationDataReader over a list of input arrays."""

    def __init__(self, name: str, arrays: Sequence[np.ndarray[Any, Any]]) -> None:
        self.name = name
        self._arrays = list(arrays)
        self._iter: Iterator[np.ndarray[Any, Any]] = iter(self._arrays)

    def get_next(self) -> dict[str, np.ndarray[Any, Any]] | None:
        item = next(self._iter, None)
        return None if item is None else {self.name: item}

    def rewind(self) -> None:
        self._iter = iter(self._arrays)


def cpu_has_vnni() -> bool:
    """Whether this CPU has int8 dot-product instructions (VNNI, AMX-INT8) or is not x86.

    Read from ``/proc/cpuinfo``; ARM CPUs and machines without that file count as
    having them (the saturation :func:`quantize_onnx`'s ``reduce_range`` avoids is an
    x86 AVX2 matter).
    """
    import platform

    if platform.machine().lower() not in ("x86_64", "amd64", "i386", "i686"):
        return True
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("flags"):
                    flags = set(line.split(":", 1)[1].split())
                    return bool(flags & {"avx512_vnni", "avx_vnni", "amx_int8"})
    except OSError:
        return True
    return True


def _session(path: Path, threads: int | None = None) -> Any:
    from geofm_core.export.onnx import cpu_session

    return cpu_session(path, threads, log_severity=3)


def agreement(a: np.ndarray[Any, Any], b: np.ndarray[Any, Any]) -> float:
    """Share of pixels whose class (argmax over dimension 1) is the same in ``a`` and ``b``.

    Regression outputs (no class dimension, or one channel) count a pixel as agreeing
    when the values are within 1 % of the float output's range.
    """
    if a.shape != b.shape:
        raise ValueError(f"outputs differ in shape: {a.shape} vs {b.shape}")
    if a.ndim >= 3 and a.shape[1] > 1:
        return float((a.argmax(1) == b.argmax(1)).mean())
    scale = float(np.ptp(a)) or 1.0
    return float((np.abs(a - b) <= 0.01 * scale).mean())


def _as_batches(calibration: Iterable[np.ndarray[Any, Any]]) -> list[np.ndarray[Any, Any]]:
    batches = []
    for item in calibration:
        array = np.ascontiguousarray(np.asarray(item, dtype=np.float32))
        if array.ndim < 4:
            raise ConfigurationError(
                f"calibration inputs must be batches (B, C, H, W) or (B, C, T, H, W), got "
                f"shape {array.shape}"
            )
        batches.append(array)
    return batches


def _preprocess(source: Path, target: Path, notes: list[str]) -> Path:
    """Run onnxruntime's recommended pre-processing (shape inference, graph optimisation)."""
    from onnxruntime.quantization import quant_pre_process

    try:
        quant_pre_process(str(source), str(target), skip_symbolic_shape=False)
    except Exception as exc:  # the quantizers also run on the raw graph
        notes.append(f"pre-processing skipped: {type(exc).__name__}: "
                     f"{str(exc).strip().splitlines()[0][:200] if str(exc).strip() else ''}")
        return source
    return target


def quantize_onnx(
    model_path: str | Path,
    output: str | Path,
    *,
    method: Method = "auto",
    calibration: Iterable[np.ndarray[Any, Any]] | None = None,
    check_inputs: Iterable[np.ndarray[Any, Any]] | None = None,
    per_channel: bool = True,
    min_agreement: float = 0.9,
    seed: int = 0,
    overwrite: bool = False,
    reduce_range: bool | None = None,
) -> QuantizationReport:
    """Quantize the ONNX model at ``model_path`` to int8 and write it to ``output``.

    Args:
        model_path: A float ONNX model (e.g. from :func:`geofm_core.export.onnx.export_onnx`)
            whose single input is the image batch.
        output: Where to write the int8 model; written only if the check passes.
        method: ``dynamic``, ``static`` or ``auto`` (see the module docstring).
        calibration: Input batches for the static ranges: a few real, normalised chips.
        check_inputs: Batches on which int8 and float outputs are compared (default: the
            calibration batches, else two random batches of the input's static shape).
        per_channel: Per-output-channel weight scales (static; slower to calibrate,
            closer to float).
        min_agreement: Smallest share of agreeing pixel classes accepted.
        seed: Seed of the random check inputs.
        overwrite: Replace an existing ``output`` instead of refusing.
        reduce_range: Quantize weights to 7 bits. x86 CPUs without VNNI (AVX2 only)
            multiply uint8 by int8 with 16-bit intermediate sums that saturate on 8-bit
            weights; onnxruntime's documentation recommends 7-bit weights there.
            ``None``: on when the quantizing machine is such a CPU (see
            :func:`cpu_has_vnni`); set it for the machine that will run the model.

    Raises:
        ConfigurationError: ``static`` without calibration data, or bad inputs.
        QuantizationVerificationError: Agreement below ``min_agreement``.
        OutputExistsError: ``output`` exists and ``overwrite`` is False.
    """
    from onnxruntime.quantization import (
        CalibrationMethod,
        QuantFormat,
        QuantType,
        quantize_dynamic,
        quantize_static,
    )

    source, output = Path(model_path), Path(output)
    if not source.is_file():
        raise ConfigurationError(f"ONNX model {source} does not exist; export one first")
    batches = _as_batches(calibration) if calibration is not None else []
    if method == "auto":
        method = "static" if batches else "dynamic"
    if method == "static" and not batches:
        raise ConfigurationError(
            "static int8 quantization needs calibration chips (a few normalised input "
            "batches); pass calibration= or use method='dynamic'"
        )
    if method not in ("dynamic", "static"):
        raise ConfigurationError(f"method must be 'auto', 'dynamic' or 'static', got {method!r}")
    float_session = _session(source)
    input_name = float_session.get_inputs()[0].name
    notes: list[str] = []
    checks = _as_batches(check_inputs) if check_inputs is not None else batches[:4]
    if not checks:
        shape = float_session.get_inputs()[0].shape
        if not all(isinstance(d, int) for d in shape[1:]):
            raise ConfigurationError(
                f"{source} has a dynamic input shape {shape}; pass check_inputs (or "
                "calibration) so the int8 model can be checked"
            )
        rng = np.random.default_rng(seed)
        checks = [rng.standard_normal((2, *shape[1:])).astype(np.float32) for _ in range(2)]

    reduce = (not cpu_has_vnni()) if reduce_range is None else bool(reduce_range)
    if reduce:
        notes.append("weights quantized to 7 bits (reduce_range): "
                     + ("this CPU has no VNNI" if reduce_range is None else "asked"))
    quant_logger = logging.getLogger("root")
    level = quant_logger.level
    quant_logger.setLevel(logging.ERROR)  # the quantizers log every skipped node
    try:
        with atomic_output(output, overwrite=overwrite) as partial, \
                tempfile.TemporaryDirectory() as tmp:
            prepared = _preprocess(source, Path(tmp) / "prepared.onnx", notes)
            if method == "dynamic":
                quantize_dynamic(str(prepared), str(partial), weight_type=QuantType.QInt8,
                                 op_types_to_quantize=list(_DYNAMIC_OPS),
                                 per_channel=per_channel, reduce_range=reduce)
            else:
                quantize_static(
                    str(prepared), str(partial), _Chips(input_name, batches),
                    quant_format=QuantFormat.QDQ, op_types_to_quantize=list(_STATIC_OPS),
                    per_channel=per_channel, reduce_range=reduce,
                    activation_type=QuantType.QUInt8,
                    weight_type=QuantType.QInt8, calibrate_method=CalibrationMethod.MinMax,
                    extra_options={"ActivationSymmetric": False, "WeightSymmetric": True},
                )
            int8_session = _session(partial)
            agreements, diffs = [], []
            for batch in checks:
                want = float_session.run(None, {input_name: batch})[0]
                got = int8_session.run(None, {input_name: batch})[0]
                agreements.append(agreement(want, got))
                diffs.append(float(np.abs(want - got).max()))
            share = float(np.mean(agreements))
            if share < min_agreement:
                raise QuantizationVerificationError(
                    f"{method} int8 quantization of {source} keeps the float model's class on "
                    f"only {share:.1%} of pixels (< {min_agreement:.0%}); try method='static' "
                    "with more representative calibration chips, or keep the float model. "
                    f"Nothing was written to {output}"
                )
    finally:
        quant_logger.setLevel(level)
    return QuantizationReport(
        path=output, method=method, agreement=share, max_abs_diff=max(diffs),
        size_mb=output.stat().st_size / 1e6, float_size_mb=source.stat().st_size / 1e6,
        notes=notes,
    )
