"""`geofm infer` and `geofm export onnx` of an ObjectDetectionTask trained a few steps."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyogrio
import pytest
import rasterio
import shapely
import torch
from lightning.pytorch import Trainer
from rasterio.windows import Window
from torch.utils.data import DataLoader

from geofm_core.cli import main
from geofm_core.testing import shared_data

CHIP = 128


def _chips(scene: Path, count: int = 4) -> list[dict]:
    """Chips of the real Landsat scene with a painted square each: the objects."""
    rng = np.random.default_rng(0)
    samples = []
    with rasterio.open(scene) as src:
        for i in range(count):
            row, col = 200 + 64 * i, 250 + 32 * i
            image = src.read(window=Window(col, row, CHIP, CHIP)).astype(np.float32)
            x0, y0 = (int(v) for v in rng.integers(10, 80, 2))
            image[:, y0 : y0 + 30, x0 : x0 + 30] = [[[255.0]], [[1.0]], [[255.0]]]
            mask = torch.zeros(1, CHIP, CHIP, dtype=torch.uint8)
            mask[0, y0 : y0 + 30, x0 : x0 + 30] = 1
            samples.append({"image": torch.from_numpy(image),
                            "bbox_xyxy": torch.tensor([[x0, y0, x0 + 30, y0 + 30]],
                                                      dtype=torch.float32),
                            "label": torch.tensor([1]), "mask": mask})
    return samples


def _collate(samples: list[dict]) -> dict:
    return {"image": torch.stack([s["image"] for s in samples]),
            "bbox_xyxy": [s["bbox_xyxy"] for s in samples],
            "label": [s["label"] for s in samples], "mask": [s["mask"] for s in samples]}


def _fit(root: Path, name: str, **options) -> dict[str, Path]:
    """A detection task on resnet18 fitted 2 steps on the painted chips, as a checkpoint."""
    import geofm_core.tasks.detection as detection
    scene = shared_data("landsat_rgb", "RGB.byte.tif")
    torch.manual_seed(0)
    task = getattr(detection, name)(
        model_args={"backbone": "timm:resnet18", "backbone_kwargs": {"in_chans": 3},
                    "necks": [{"name": "geofm:select_indices", "indices": [2, 3, 4]}],
                    "fpn_channels": 32, **options},
        class_names=["square"], lr=1e-4,
    )
    trainer = Trainer(max_steps=2, accelerator="cpu", logger=False, enable_checkpointing=False,
                      enable_progress_bar=False, enable_model_summary=False,
                      num_sanity_val_steps=0, limit_val_batches=0)
    trainer.fit(task, DataLoader(_chips(scene), batch_size=2, collate_fn=_collate))
    ckpt = root / f"{name}.ckpt"
    trainer.save_checkpoint(ckpt)
    return {"ckpt": ckpt, "scene": scene}


@pytest.fixture(scope="module")
def trained(tmp_path_factory) -> dict[str, Path]:
    """An ObjectDetectionTask (Faster R-CNN), fitted 2 steps."""
    return _fit(tmp_path_factory.mktemp("det"), "ObjectDetectionTask",
                framework_kwargs={"box_score_thresh": 0.0})


def test_instance_segmentation_writes_mask_polygons(tmp_path_factory, tmp_path):
    fitted = _fit(tmp_path_factory.mktemp("inst"), "InstanceSegmentationTask",
                  framework="mask_rcnn",
                  framework_kwargs={"box_score_thresh": 0.0, "box_detections_per_img": 10})
    out = tmp_path / "masks.gpkg"
    assert main(["infer", "--ckpt", str(fitted["ckpt"]), str(fitted["scene"]), str(out),
                 "--crop", str(CHIP), "--stride", "96", "--score-threshold", "0",
                 "--no-progress"]) == 0
    info = pyogrio.read_info(out, layer="detections")
    assert info["geometry_type"] == "MultiPolygon" and info["features"] > 0
    with rasterio.open(fitted["scene"]) as src:
        bounds = shapely.box(*src.bounds).buffer(1e-6)
        assert info["crs"] == f"EPSG:{src.crs.to_epsg()}"
    df = pyogrio.read_dataframe(out)
    assert all(bounds.contains(g) for g in df.geometry)
    onnx_path = tmp_path / "masks.onnx"
    assert main(["export", "onnx", "--ckpt", str(fitted["ckpt"]), "--output", str(onnx_path),
                 "--image-size", str(CHIP), "--in-channels", "3"]) == 0
    import onnxruntime as ort

    outputs = ort.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"])
    assert [o.name for o in outputs.get_outputs()] == ["boxes", "labels", "scores", "masks"]


def test_infer_writes_detections_in_the_raster_crs(trained, tmp_path, capsys):
    out = tmp_path / "det.gpkg"
    assert main(["infer", "--ckpt", str(trained["ckpt"]), str(trained["scene"]), str(out),
                 "--crop", str(CHIP), "--stride", "96", "--score-threshold", "0",
                 "--no-progress"]) == 0
    assert "detections" in capsys.readouterr().out
    import geopandas as gpd

    df = gpd.read_file(out, layer="detections")
    with rasterio.open(trained["scene"]) as src:
        assert df.crs == src.crs
        bounds = shapely.box(*src.bounds).buffer(1e-6)
    assert len(df) > 0 and set(df.class_name) <= {"square"}
    assert all(bounds.contains(g) for g in df.geometry)


@pytest.mark.parametrize(("extra", "message"), [
    (["--probabilities"], "--probabilities does not apply"),
    (["--blend", "ramp"], "--blend does not apply"),
])
def test_raster_options_refused_for_detection(trained, tmp_path, capsys, extra, message):
    out = tmp_path / "det.gpkg"
    assert main(["infer", "--ckpt", str(trained["ckpt"]), str(trained["scene"]), str(out),
                 "--no-progress", *extra]) == 1
    assert message in capsys.readouterr().err and not out.exists()


def test_raster_output_refused_for_detection(trained, tmp_path, capsys):
    assert main(["infer", "--ckpt", str(trained["ckpt"]), str(trained["scene"]),
                 str(tmp_path / "det.tif"), "--no-progress"]) == 1
    assert ".gpkg" in capsys.readouterr().err and not (tmp_path / "det.tif").exists()


def test_export_onnx_and_onnx_backend_match_pytorch(trained, tmp_path, capsys):
    onnx_path = tmp_path / "det.onnx"
    assert main(["export", "onnx", "--ckpt", str(trained["ckpt"]), "--output", str(onnx_path),
                 "--image-size", str(CHIP), "--in-channels", "3",
                 "--check-images", str(trained["scene"])]) == 0
    assert "faster_rcnn at a fixed input size" in capsys.readouterr().out
    import onnxruntime as ort

    session = ort.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"])
    assert [o.name for o in session.get_outputs()] == ["boxes", "labels", "scores"]
    # The scene's interior: tiles of nodata fill give many exactly tied scores, whose
    # order (so which of them the top-k keeps) differs between the two runtimes.
    interior = tmp_path / "interior.tif"
    with rasterio.open(trained["scene"]) as src:
        window = Window(200, 200, 384, 256)
        profile = {**src.profile, "width": 384, "height": 256,
                   "transform": src.window_transform(window)}
        with rasterio.open(interior, "w", **profile) as dst:
            dst.write(src.read(window=window))
    layers = {}
    for backend in ("torch", "onnx"):
        out = tmp_path / f"{backend}.gpkg"
        assert main(["infer", "--ckpt", str(trained["ckpt"]), str(interior), str(out),
                     "--crop", str(CHIP), "--stride", "96", "--score-threshold", "0.05",
                     "--backend", backend, "--no-progress"]) == 0
        layers[backend] = pyogrio.read_dataframe(out).sort_values("score", ignore_index=True)
    assert len(layers["onnx"]) == len(layers["torch"]) > 50
    np.testing.assert_allclose(layers["onnx"].score, layers["torch"].score, atol=1e-4)
    distance = layers["onnx"].geometry.hausdorff_distance(layers["torch"].geometry)
    assert distance.max() < 0.01 * 30  # a hundredth of a 30 m pixel
