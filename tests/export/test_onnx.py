"""ONNX export verified in onnxruntime, for the architectures the issue names."""

from __future__ import annotations

import numpy as np
import pytest
import rasterio
import torch
from rasterio.transform import from_origin

from geofm_core import get_registry
from geofm_core.export.onnx import ExportVerificationError, OnnxForward, export_onnx
from geofm_core.inference.raster import predict_raster


def factory():
    return get_registry().get("model_factory", "geofm:encoder_decoder").load()()


def tiny_prithvi_upernet():
    return factory().build_model(
        "segmentation", backbone="prithvi:prithvi_eo_v2_tiny_tl", decoder="upernet:upernet",
        num_classes=3, backbone_kwargs={"depth": 4, "embed_dim": 48, "num_heads": 3},
        necks=[{"name": "geofm:select_indices", "indices": [0, 1, 2, 3]},
               {"name": "geofm:reshape_tokens_to_image", "patch_size": 16},
               {"name": "geofm:learned_interpolate_to_pyramidal"}],
        decoder_kwargs={"channels": 16},
    )


def timm_classifier():
    return factory().build_model(
        "classification", backbone="timm:resnet18", decoder="geofm:identity", num_classes=4,
        backbone_kwargs={"in_chans": 6},
    )


@pytest.fixture(scope="module")
def prithvi_export(tmp_path_factory):
    """One export of a tiny Prithvi + necks + UperNet, shared by the tests below."""
    torch.manual_seed(0)
    model = tiny_prithvi_upernet().eval()
    path = tmp_path_factory.mktemp("prithvi") / "m.onnx"
    return model, export_onnx(model, path, in_channels=6, image_size=(32, 32))


@pytest.fixture(scope="module")
def classifier_export(tmp_path_factory):
    torch.manual_seed(0)
    model = timm_classifier().eval()
    path = tmp_path_factory.mktemp("classifier") / "m.onnx"
    return model, export_onnx(model, path, in_channels=6, image_size=(32, 32))


@pytest.mark.parametrize("exported", ["prithvi_export", "classifier_export"])
def test_export_matches_pytorch(request, exported):
    model, report = request.getfixturevalue(exported)
    assert report.path.exists() and report.max_abs_diff <= 1e-4
    assert report.dynamic_batch  # UperNet's adaptive pooling keeps H, W fixed in ONNX
    x = torch.randn(2, 6, 32, 32)
    got = OnnxForward(report.path)(x)
    with torch.inference_mode():
        want = model.eval()(x).output
    assert (got - want).abs().max() <= 1e-4


def test_cnn_export_has_dynamic_spatial_size(tmp_path):
    model = factory().build_model("segmentation", backbone="timm:resnet18", decoder="geofm:fcn",
                                  num_classes=2, backbone_kwargs={"in_chans": 3})
    report = export_onnx(model, tmp_path / "m.onnx", in_channels=3, image_size=(64, 64))
    assert report.dynamic_spatial, report.notes
    out = OnnxForward(report.path)(torch.randn(1, 3, 96, 160))
    assert out.shape == (1, 2, 96, 160)


def test_failed_verification_writes_nothing(tmp_path):
    class Drifting(torch.nn.Module):
        """Differs between runs: eager and exported outputs cannot agree."""

        def forward(self, x):
            return x + torch.rand(1)

    with pytest.raises(ExportVerificationError, match="Nothing was written"):
        export_onnx(Drifting(), tmp_path / "m.onnx", in_channels=2, image_size=(8, 8),
                    dynamic=False)
    assert list(tmp_path.iterdir()) == []


def test_onnx_backend_gives_the_same_raster(tmp_path, prithvi_export):
    model, report = prithvi_export
    data = np.random.default_rng(0).normal(size=(6, 70, 90)).astype(np.float32)
    with rasterio.open(tmp_path / "in.tif", "w", driver="GTiff", height=70, width=90, count=6,
                       dtype="float32", crs="EPSG:4326",
                       transform=from_origin(0, 0, 1e-4, 1e-4)) as dst:
        dst.write(data)
    options = dict(num_classes=3, crop=32, stride=24, batch_size=4, probabilities=True,
                   progress=False)
    eager = predict_raster(lambda t: model(t).output, tmp_path / "in.tif", tmp_path / "a.tif",
                           **options)
    onnx = predict_raster(OnnxForward(report.path), tmp_path / "in.tif", tmp_path / "b.tif",
                          **options)
    with rasterio.open(eager.probabilities) as a, rasterio.open(onnx.probabilities) as b:
        np.testing.assert_allclose(a.read(), b.read(), atol=1e-4)
