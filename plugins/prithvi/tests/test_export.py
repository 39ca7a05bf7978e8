"""Prithvi exports with dynamic batch and size; onnxruntime reproduces PyTorch."""

from __future__ import annotations

import pytest
import torch
from geofm_prithvi import configs


@pytest.mark.slow
def test_onnx_export_with_dynamic_batch_and_size(tmp_path):
    ort = pytest.importorskip("onnxruntime")
    torch.manual_seed(0)
    model = configs.prithvi_eo_v1_100(embed_dim=32, depth=2, num_heads=2, out_indices=[-1]).eval()
    batch, height, width = (torch.export.Dim(n, min=1, max=64) for n in ("B", "H", "W"))
    path = tmp_path / "prithvi.onnx"
    torch.onnx.export(model, (torch.randn(2, 6, 32, 48),), str(path), dynamo=True,
                      dynamic_shapes={"x": {0: batch, 2: 16 * height, 3: 16 * width}})
    session = ort.InferenceSession(str(path))
    name = session.get_inputs()[0].name
    for shape in [(1, 6, 64, 32), (3, 6, 32, 32)]:
        x = torch.randn(*shape)
        got = session.run(None, {name: x.numpy()})[0]
        with torch.no_grad():
            expected = model(x)[0].numpy()
        assert got.shape == expected.shape == (shape[0], 1 + (shape[2] // 16) * (shape[3] // 16),
                                               32)
        assert abs(got - expected).max() < 1e-4
