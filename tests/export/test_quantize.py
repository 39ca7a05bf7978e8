"""int8 quantization of an exported tiny Prithvi + UperNet with onnxruntime."""

from __future__ import annotations

import numpy as np
import onnx
import pytest
import torch

from geofm_core import get_registry
from geofm_core.errors import ConfigurationError
from geofm_core.export.onnx import OnnxForward, export_onnx
from geofm_core.export.quantize import (
    QuantizationVerificationError,
    agreement,
    quantize_onnx,
)


def tiny_model() -> torch.nn.Module:
    factory = get_registry().get("model_factory", "geofm:encoder_decoder").load()()
    return factory.build_model(
        "segmentation", backbone="prithvi:prithvi_eo_v2_tiny_tl", decoder="upernet:upernet",
        num_classes=3, backbone_kwargs={"depth": 2, "embed_dim": 48, "num_heads": 3},
        necks=[{"name": "geofm:select_indices", "indices": [0, 1, 1, 1]},
               {"name": "geofm:reshape_tokens_to_image"},
               {"name": "geofm:learned_interpolate_to_pyramidal"}],
        decoder_kwargs={"channels": 16},
    )


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    torch.manual_seed(0)
    model = tiny_model().eval()
    path = tmp_path_factory.mktemp("quant") / "float.onnx"
    export_onnx(model, path, in_channels=6, image_size=(32, 32), dynamic=False)
    rng = np.random.default_rng(0)
    chips = [rng.standard_normal((2, 6, 32, 32)).astype(np.float32) for _ in range(4)]
    return path, chips


def op_types(path) -> set[str]:
    return {node.op_type for node in onnx.load(str(path)).graph.node}


@pytest.mark.parametrize("method", ["dynamic", "static"])
def test_int8_model_follows_the_float_model(exported, tmp_path, method):
    path, chips = exported
    out = tmp_path / f"{method}.onnx"
    report = quantize_onnx(path, out, method=method,
                           calibration=chips if method == "static" else None,
                           check_inputs=chips[:2])
    assert report.path == out and out.exists() and report.method == method
    ops = op_types(out)
    if method == "dynamic":  # linear layers run as integer matmuls, convolutions stay float
        assert "MatMulInteger" in ops or "DynamicQuantizeMatMul" in ops
        assert "Conv" in ops
    else:  # QDQ: quantize/dequantize pairs around convolutions and matmuls
        assert {"QuantizeLinear", "DequantizeLinear"} <= ops
    # the int8 model keeps the float model's class on (nearly) every pixel
    float_out = OnnxForward(path)(torch.from_numpy(chips[3])).numpy()
    int8_out = OnnxForward(out)(torch.from_numpy(chips[3])).numpy()
    assert agreement(float_out, int8_out) >= 0.9
    assert report.agreement >= 0.9
    relative = np.abs(float_out - int8_out).mean() / np.abs(float_out).mean()
    assert relative < 0.2
    if method == "dynamic":
        assert report.size_mb < report.float_size_mb


def test_static_needs_calibration(exported, tmp_path):
    path, _ = exported
    with pytest.raises(ConfigurationError, match="calibration"):
        quantize_onnx(path, tmp_path / "x.onnx", method="static")


def test_auto_picks_static_with_calibration(exported, tmp_path):
    path, chips = exported
    report = quantize_onnx(path, tmp_path / "auto.onnx", calibration=chips[:2])
    assert report.method == "static"


def test_an_unmet_agreement_writes_nothing(exported, tmp_path):
    path, chips = exported
    out = tmp_path / "strict.onnx"
    with pytest.raises(QuantizationVerificationError, match="Nothing was written"):
        quantize_onnx(path, out, method="dynamic", check_inputs=chips[:1],
                      min_agreement=1.01)
    assert not out.exists() and not list(tmp_path.glob(".strict.onnx.*"))


def test_missing_model_is_a_clear_error(tmp_path):
    with pytest.raises(ConfigurationError, match="does not exist"):
        quantize_onnx(tmp_path / "nope.onnx", tmp_path / "out.onnx")


def test_agreement_counts_matching_classes():
    a = np.zeros((1, 2, 2, 2), np.float32)
    a[0, 1, 0, 0] = 1.0  # pixel (0, 0) is class 1, the rest class 0
    b = np.zeros_like(a)
    assert agreement(a, b) == 0.75
    with pytest.raises(ValueError, match="shape"):
        agreement(a, b[:, :1])


@pytest.mark.parametrize("reduce_range", [True, False])
def test_reduce_range_gives_7_bit_weights_and_says_so(exported, tmp_path, reduce_range):
    path, chips = exported
    out = tmp_path / f"rr_{reduce_range}.onnx"
    report = quantize_onnx(path, out, method="static", calibration=chips,
                           check_inputs=chips[:2], reduce_range=reduce_range)
    noted = any("7 bits" in n for n in report.notes)
    assert noted is reduce_range
    weights = [onnx.numpy_helper.to_array(t) for t in onnx.load(str(out)).graph.initializer
               if t.data_type == onnx.TensorProto.INT8 and t.dims and len(t.dims) > 1]
    assert weights
    largest = max(int(np.abs(w.astype(np.int32)).max()) for w in weights)
    # 7-bit weights stay within [-64, 63]; 8-bit ones use the full int8 range
    assert (largest <= 64) is reduce_range


def test_reduce_range_defaults_to_this_cpu():
    import os

    from geofm_core.export.quantize import cpu_has_vnni

    if not os.path.exists("/proc/cpuinfo"):
        pytest.skip("no /proc/cpuinfo on this system")
    with open("/proc/cpuinfo") as f:
        flags = next((line for line in f if line.startswith("flags")), "")
    expected = any(v in flags.split() for v in ("avx512_vnni", "avx_vnni", "amx_int8"))
    import platform

    if platform.machine() == "x86_64":
        assert cpu_has_vnni() is expected
