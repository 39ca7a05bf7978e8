"""Streaming tiled detection to vector files, on the real rasters of ../shared/data."""

from __future__ import annotations

import math
from pathlib import Path

import pyogrio
import pytest
import rasterio
import shapely
import torch
from rasterio.transform import Affine
from torchvision.ops import batched_nms

from geofm_core.data.preprocessing import Preprocessing
from geofm_core.errors import ConfigurationError
from geofm_core.inference.detection import (
    DetectionMerger,
    Detections,
    box_polygons,
    predict_detections,
)
from geofm_core.testing import shared_data


def read_layer(path: Path):
    import geopandas as gpd

    return gpd.read_file(path, layer="detections")


@pytest.mark.parametrize("ext", ["gpkg", "geojson"])
def test_object_in_a_tile_overlap_is_one_detection(tmp_path, painted, ext):
    scene = painted.scene(tmp_path)
    calls: list[torch.Tensor] = []
    result = predict_detections(painted.forward(calls), scene, tmp_path / f"out.{ext}",
                                crop=256, stride=192, batch_size=3,
                                class_names=["car", "ship"], progress=False)
    with rasterio.open(scene) as src:
        crs, transform = src.crs, src.transform
    df = read_layer(result.output)
    assert len(df) == result.detections == 1  # four tiles saw it whole
    assert df.crs == crs
    assert list(df.class_id) == [2] and list(df.class_name) == ["ship"]
    assert df.score.iloc[0] == pytest.approx(0.9)
    x0, y0, x1, y1 = painted.square
    want = shapely.Polygon([transform @ (x, y) for x, y in
                            [(x0, y0), (x1, y0), (x1, y1), (x0, y1)]])
    assert df.geometry.iloc[0].equals_exact(want, 1e-6) or \
        df.geometry.iloc[0].symmetric_difference(want).area < 1e-6
    # four tiles held the square; the model ran on tiles with data only
    assert sum(bool((t[0] == 255).logical_and(t[1] == 1).any()) for t in calls) == 4
    assert result.tiles == 16 and len(calls) == result.tiles - result.skipped_tiles


def test_object_cut_by_a_tile_edge_is_one_detection(tmp_path, painted):
    """Cut by tile (192, 0) at x = 256, whole in tile (192, 192): IoU 0.5, not above it."""
    square = (236, 300, 276, 330)
    scene = painted.scene(tmp_path, square=square)
    result = predict_detections(painted.forward(), scene, tmp_path / "out.gpkg", crop=256,
                                stride=192, iou_threshold=0.5, progress=False)
    df = read_layer(result.output)
    assert len(df) == 1
    with rasterio.open(scene) as src:
        x0, y0, x1, y1 = square
        whole = shapely.box(*(src.transform @ (x0, y1)), *(src.transform @ (x1, y0)))
    assert df.geometry.iloc[0].symmetric_difference(whole).area < 1e-6 * whole.area


def test_object_larger_than_the_overlap_is_kept(tmp_path, painted):
    """Every tile cuts a 150 px object (tiles of 128 px): its cut parts are all kept."""
    scene = painted.scene(tmp_path, square=(300, 300, 450, 450))
    result = predict_detections(painted.forward(), scene, tmp_path / "out.gpkg", crop=128,
                                stride=96, progress=False)
    df = read_layer(result.output)
    with rasterio.open(scene) as src:
        x0, y0, x1, y1 = 300, 300, 450, 450
        whole = shapely.box(*(src.transform @ (x0, y1)), *(src.transform @ (x1, y0)))
    assert len(df) >= 1
    assert df.geometry.union_all().symmetric_difference(whole).area < 1e-6 * whole.area


def test_rotated_grid_polygons_and_merge(tmp_path, painted):
    rotated = (Affine.translation(500_000, 4_200_000) @ Affine.rotation(30)
               @ Affine.scale(30, -30))
    scene = painted.scene(tmp_path, transform=rotated)
    result = predict_detections(painted.forward(), scene, tmp_path / "out.gpkg", crop=256,
                                stride=192, progress=False)
    df = read_layer(result.output)
    assert len(df) == 1
    x0, y0, x1, y1 = painted.square
    want = shapely.Polygon([rotated @ (x, y) for x, y in
                            [(x0, y0), (x1, y0), (x1, y1), (x0, y1)]])
    got = df.geometry.iloc[0]
    assert got.symmetric_difference(want).area < 1e-3 * want.area
    assert got.area == pytest.approx(40 * 40 * 30 * 30, rel=1e-9)


def test_mask_polygons(tmp_path, painted):
    scene = painted.scene(tmp_path)
    result = predict_detections(painted.forward(masks=True), scene, tmp_path / "out.gpkg",
                                crop=256, stride=192, progress=False)
    info = pyogrio.read_info(result.output, layer="detections")
    assert info["geometry_type"] == "MultiPolygon" and info["features"] == 1
    df = read_layer(result.output)
    with rasterio.open(scene) as src:
        pixel = abs(src.transform.a * src.transform.e)
        bounds = shapely.box(*src.bounds)
    assert df.geometry.iloc[0].area == pytest.approx(40 * 40 * pixel)
    assert bounds.contains(df.geometry.iloc[0])


def test_rows_are_read_lazily(tmp_path, painted, monkeypatch):
    """Memory stays flat: strips of at most one tile height, read as the tiles need them."""
    scene = painted.scene(tmp_path)
    windows: list[tuple[int, int, int, int]] = []
    real_read = rasterio.io.DatasetReader.read

    def recording_read(self, indexes=None, window=None, **kwargs):
        if self.name == str(scene):
            windows.append((window.row_off, window.col_off, window.height, window.width))
        return real_read(self, indexes, window=window, **kwargs)

    monkeypatch.setattr(rasterio.io.DatasetReader, "read", recording_read)
    read_before_first_forward: list[int] = []
    inner = painted.forward()

    def forward(tiles):
        if not read_before_first_forward:
            read_before_first_forward.append(sum(w[2] for w in windows))
        return inner(tiles)

    predict_detections(forward, scene, tmp_path / "out.gpkg", crop=128, stride=96,
                       progress=False)
    assert read_before_first_forward == [128]  # the first tile row only
    assert all(h <= 128 for _, _, h, _ in windows)
    assert sum(h for _, _, h, _ in windows) == 718  # every row read once
    assert [r for r, *_ in windows] == sorted(r for r, *_ in windows)


def test_nodata_boxes_dropped_and_all_inside(tmp_path):
    """A box at each tile's top-left corner: kept only where it covers data."""
    scene = shared_data("landsat_rgb", "RGB.byte.tif")

    def corner(tiles):
        return [{"boxes": torch.tensor([[0.0, 0.0, 24.0, 24.0]]), "labels": torch.tensor([1]),
                 "scores": torch.tensor([0.8])} for _ in tiles]

    result = predict_detections(corner, scene, tmp_path / "out.gpkg", crop=128, stride=128,
                                progress=False)
    df = read_layer(result.output)
    with rasterio.open(scene) as src:
        bounds = shapely.box(*src.bounds)
        data = src.read()
        inverse = ~src.transform
        assert df.crs == src.crs
    assert 0 < len(df) < result.tiles - result.skipped_tiles  # some corners are nodata
    for geom in df.geometry:
        assert bounds.buffer(1e-6).contains(geom)
        cx, cy = inverse @ (geom.centroid.x, geom.centroid.y)
        x, y = round(cx) - 12, round(cy) - 12
        assert (data[:, y : y + 24, x : x + 24] != 0).any()


def test_empty_result_is_a_valid_layer(tmp_path):
    scene = shared_data("landsat_rgb", "RGB.byte.tif")

    def nothing(tiles):
        return [{"boxes": torch.zeros(0, 4), "labels": torch.zeros(0, dtype=torch.int64),
                 "scores": torch.zeros(0)} for _ in tiles]

    out = predict_detections(nothing, scene, tmp_path / "none.gpkg", crop=256, stride=256,
                             progress=False).output
    info = pyogrio.read_info(out, layer="detections")
    assert info["features"] == 0 and list(info["fields"]) == ["class_id", "class_name", "score"]
    with rasterio.open(scene) as src:
        assert read_layer(out).crs == src.crs
    geojson = predict_detections(nothing, scene, tmp_path / "none.geojson", crop=256,
                                 stride=256, progress=False).output
    assert pyogrio.read_info(geojson, layer="detections")["features"] == 0


def test_unknown_extension_refused_before_running(tmp_path):
    def never(tiles):
        raise AssertionError("the model must not run")

    scene = shared_data("landsat_rgb", "RGB.byte.tif")
    with pytest.raises(ConfigurationError, match=r"\.gpkg.*\.geojson.*'\.shp'"):
        predict_detections(never, scene, tmp_path / "out.shp", progress=False)
    assert not (tmp_path / "out.shp").exists()
    with pytest.raises(ConfigurationError, match="iou_threshold"):
        predict_detections(never, scene, tmp_path / "out.gpkg", iou_threshold=2.0)


@pytest.mark.parametrize("with_edges", [False, True])
def test_streamed_merge_equals_one_merge(with_edges):
    """Flushing row by row decides exactly as deciding on all boxes at once (chains too)."""
    generator = torch.Generator().manual_seed(0)
    n = 400
    xy = torch.rand(n, 2, generator=generator) * 500
    wh = 5 + torch.rand(n, 2, generator=generator) * 60
    boxes = torch.cat([xy, xy + wh], 1).double()
    scores = torch.rand(n, generator=generator)
    labels = torch.randint(1, 3, (n,), generator=generator)
    edge = (torch.rand(n, generator=generator) < 0.3) if with_edges else None
    everything = Detections(boxes, scores, labels, None, edge)
    order = boxes[:, 1].argsort()  # boxes arrive by rows, as tile rows find them
    merger = DetectionMerger(0.3)
    kept = []
    starts = list(range(0, 500, 50))
    for i, start in enumerate(starts):
        top = starts[i + 1] if i + 1 < len(starts) else None
        index = order[(boxes[order, 1] >= start) & (boxes[order, 1] < (top or math.inf))]
        merger.add(everything.select(index))
        kept.append(merger.flush(top))
    streamed = Detections.cat(kept)
    once = DetectionMerger(0.3)
    once.add(everything)
    whole = once.flush(None)
    if with_edges:
        assert len(whole) < len(batched_nms(boxes.float(), scores, labels, 0.3))
    assert sorted(map(tuple, streamed.boxes.tolist())) == \
        sorted(map(tuple, whole.boxes.tolist()))


def test_box_polygons_follow_the_affine():
    transform = Affine(10.0, 2.0, 100.0, 1.0, -10.0, 50.0)
    polygon = box_polygons(torch.tensor([[1.0, 2.0, 4.0, 6.0]]), transform)[0]
    corners = {transform @ (x, y) for x, y in [(1, 2), (4, 2), (4, 6), (1, 6)]}
    assert set(polygon.exterior.coords[:-1]) == corners
    assert polygon.exterior.is_ccw


def _faster_rcnn(size: int, masks: bool = False):
    from torchvision.models.detection import FasterRCNN, MaskRCNN
    from torchvision.models.detection.backbone_utils import resnet_fpn_backbone

    torch.manual_seed(0)
    backbone = resnet_fpn_backbone(backbone_name="resnet18", weights=None,
                                   trainable_layers=5)
    cls = MaskRCNN if masks else FasterRCNN
    return cls(backbone, num_classes=2, min_size=size, max_size=size, image_mean=[0.0] * 3,
               image_std=[1.0] * 3, box_score_thresh=0.0, box_detections_per_img=20).eval()


@pytest.mark.parametrize("masks", [False, True])
def test_torchvision_detector_on_sen1floods11(tmp_path, masks):
    """A real torchvision Faster / Mask R-CNN over the real S2 chip, 4 x 4 tiles of 160 px."""
    scene = shared_data("sen1floods11", "Spain_7370579_S2Hand.tif")
    model = _faster_rcnn(160, masks)
    prep = Preprocessing(bands=[3, 2, 1], constant_scale=1e-4)

    def forward(tiles):
        return model(list(tiles))

    out = tmp_path / ("masks.geojson" if masks else "boxes.gpkg")
    result = predict_detections(forward, scene, out, preprocessing=prep, crop=160, stride=118,
                                batch_size=4, class_names=["water"], score_threshold=0.0,
                                iou_threshold=0.5, progress=False)
    df = read_layer(result.output)
    with rasterio.open(scene) as src:
        assert df.crs == src.crs
        bounds = shapely.box(*src.bounds).buffer(1e-9)
    assert result.tiles == 16 and len(df) == result.detections > 0
    assert set(df.class_name) == {"water"} and df.score.between(0, 1).all()
    assert all(bounds.contains(g) for g in df.geometry)
    want = "MultiPolygon" if masks else "Polygon"
    assert set(df.geometry.geom_type) == {want}


def test_missing_vector_packages_named_before_running(tmp_path, monkeypatch):
    import sys

    def never(tiles):
        raise AssertionError("the model must not run")

    monkeypatch.setitem(sys.modules, "pyogrio", None)
    scene = shared_data("landsat_rgb", "RGB.byte.tif")
    with pytest.raises(ConfigurationError, match=r"pip install geofm-core\[vector\]"):
        predict_detections(never, scene, tmp_path / "out.gpkg", progress=False)
