"""ONNX export of torchvision detectors, run in onnxruntime on a real Sentinel-2 chip."""

from __future__ import annotations

import numpy as np
import pytest
import rasterio
import torch
from rasterio.windows import Window

from geofm_core.data.preprocessing import Preprocessing
from geofm_core.errors import ConfigurationError
from geofm_core.export.onnx_detection import OnnxDetectionForward, export_detection_onnx
from geofm_core.testing import shared_data

pytest.importorskip("onnxruntime")
SIZE = 128
PREP = Preprocessing(bands=[3, 2, 1], constant_scale=1e-4)


def s2_crop(row: int = 192, col: int = 192) -> torch.Tensor:
    """A real 3-band tile (C, SIZE, SIZE) of the Sen1Floods11 S2 chip, preprocessed."""
    path = shared_data("sen1floods11", "Spain_7370579_S2Hand.tif")
    with rasterio.open(path) as src:
        raw = src.read(PREP.plan(path, src.count, src.dtypes).indexes,
                       window=Window(col, row, SIZE, SIZE))
        return PREP(raw, src.nodata)


def detector(framework: str):
    from torchvision.models.detection import FCOS, FasterRCNN, MaskRCNN, RetinaNet
    from torchvision.models.detection.anchor_utils import AnchorGenerator
    from torchvision.models.detection.backbone_utils import resnet_fpn_backbone
    from torchvision.ops.feature_pyramid_network import LastLevelP6P7

    torch.manual_seed(0)
    dense = framework in ("retinanet", "fcos")
    extra = {"extra_blocks": LastLevelP6P7(256, 256), "returned_layers": [2, 3, 4]} \
        if dense else {}
    backbone = resnet_fpn_backbone(backbone_name="resnet18", weights=None, trainable_layers=5,
                                   **extra)
    common = {"min_size": SIZE, "max_size": SIZE, "image_mean": [0.0] * 3,
              "image_std": [1.0] * 3}
    if framework == "retinanet":
        sizes = tuple((s, int(s * 2 ** (1 / 3)), int(s * 2 ** (2 / 3)))
                      for s in (32, 64, 128, 256, 512))
        return RetinaNet(backbone, 3, anchor_generator=AnchorGenerator(
            sizes, ((0.5, 1.0, 2.0),) * 5), score_thresh=0.0, **common).eval()
    if framework == "fcos":
        return FCOS(backbone, 3, anchor_generator=AnchorGenerator(
            ((8,), (16,), (32,), (64,), (128,)), ((1.0,),) * 5), score_thresh=0.0,
            **common).eval()
    cls = MaskRCNN if framework == "mask_rcnn" else FasterRCNN
    return cls(backbone, 3, box_score_thresh=0.0, **common).eval()


@pytest.mark.parametrize("framework", ["faster_rcnn", "mask_rcnn", "retinanet", "fcos"])
def test_export_runs_in_onnxruntime_like_pytorch(tmp_path, framework):
    model = detector(framework)
    real = s2_crop()
    report = export_detection_onnx(model, tmp_path / "det.onnx", in_channels=3,
                                   image_size=(SIZE, SIZE), examples=[real])
    assert report.path.is_file() and report.max_abs_diff <= 1e-2
    # an independent check on another real tile, through the inference forward
    other = s2_crop(320, 64)
    got = OnnxDetectionForward(report.path)(other[None])[0]
    with torch.inference_mode():
        want = model([other])[0]
    assert len(want["boxes"]) > 0
    keys = ["boxes", "labels", "scores"] + (["masks"] if framework == "mask_rcnn" else [])
    assert sorted(got) == sorted(keys)
    top = want["scores"] > want["scores"].min() + 1e-3  # the cap's score ties aside
    for box, label in zip(want["boxes"][top], want["labels"][top], strict=True):
        close = (got["boxes"] - box).abs().max(1).values < 1e-2
        assert (close & (got["labels"] == label)).any()


def test_onnx_forward_in_streaming_detection(tmp_path):
    from geofm_core.inference.detection import predict_detections

    model = detector("faster_rcnn")
    report = export_detection_onnx(model, tmp_path / "det.onnx", in_channels=3,
                                   image_size=(SIZE, SIZE))
    scene = shared_data("sen1floods11", "Spain_7370579_S2Hand.tif")
    runs = {}
    for name, forward in (("onnx", OnnxDetectionForward(report.path)),
                          ("torch", lambda tiles: model(list(tiles)))):
        result = predict_detections(forward, scene, tmp_path / f"{name}.gpkg",
                                    preprocessing=PREP, crop=SIZE, stride=SIZE,
                                    score_threshold=0.3, progress=False)
        import geopandas as gpd

        runs[name] = gpd.read_file(result.output).sort_values("score", ignore_index=True)
    assert len(runs["onnx"]) == len(runs["torch"]) > 0
    np.testing.assert_allclose(runs["onnx"].score, runs["torch"].score, atol=1e-3)


def test_non_detector_refused(tmp_path):
    with pytest.raises(ConfigurationError, match="Faster R-CNN, Mask R-CNN, RetinaNet or FCOS"):
        export_detection_onnx(torch.nn.Conv2d(3, 3, 1), tmp_path / "x.onnx", in_channels=3)
    assert not (tmp_path / "x.onnx").exists()
