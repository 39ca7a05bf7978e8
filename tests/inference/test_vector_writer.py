"""VectorPredictionWriter in a real Lightning predict loop over chips of a real scene."""

from __future__ import annotations

from typing import ClassVar

import pyogrio
import pytest
import rasterio
import shapely
import torch
from lightning.pytorch import LightningModule, Trainer
from rasterio.windows import Window
from torch.utils.data import DataLoader, Dataset

from geofm_core.errors import ConfigurationError, OutputExistsError
from geofm_core.inference.vector_writer import VectorPredictionWriter

CHIP = 256


class Chips(Dataset):
    """Overlapping chips of the scenes, with the batch keys of the detection spec."""

    def __init__(self, paths, starts):
        self.items = [(str(p), r, c) for p in paths for r in starts for c in starts]

    def __len__(self):
        return len(self.items)

    def __getitem__(self, i):
        path, row, col = self.items[i]
        with rasterio.open(path) as src:
            image = src.read(window=Window(col, row, CHIP, CHIP)).astype("float32")
        return {"image": torch.from_numpy(image), "filename": path,
                "window": torch.tensor([row, col, CHIP, CHIP])}


class MarkerDetector(LightningModule):
    """Predicts the painted square, as a detection task's predict_step returns it."""

    vector_output = True
    class_names: ClassVar[list[str]] = ["car", "ship"]

    def __init__(self, forward, masks: bool = False):
        super().__init__()
        self.masks = masks
        self.forward_fn = forward

    def predict_step(self, batch, batch_idx, dataloader_idx=0):
        found = self.forward_fn(batch["image"])
        out = {"prediction_bbox_xyxy": [f["boxes"] for f in found],
               "prediction_label": [f["labels"] for f in found],
               "prediction_score": [f["scores"] for f in found],
               "filename": batch["filename"], "window": batch["window"]}
        if self.masks:
            out["prediction_mask"] = [(f["masks"][:, 0] > 0.5).to(torch.uint8) for f in found]
        return out


def run(tmp_path, painted, writer, masks=False):
    scene = painted.scene(tmp_path)
    loader = DataLoader(Chips([scene], [0, 192, 384]), batch_size=4)
    trainer = Trainer(accelerator="cpu", logger=False, callbacks=[writer],
                      enable_progress_bar=False, enable_model_summary=False)
    trainer.predict(MarkerDetector(painted.forward(masks=masks), masks), loader,
                    return_predictions=False)
    return scene


@pytest.mark.parametrize(("fmt", "masks"), [("gpkg", False), ("geojson", True)])
def test_one_vector_file_per_image_in_map_coordinates(tmp_path, painted, fmt, masks):
    writer = VectorPredictionWriter(str(tmp_path / "pred"), format=fmt)
    scene = run(tmp_path, painted, writer, masks)
    assert writer.written == [tmp_path / "pred" / f"scene_pred.{fmt}"]
    import geopandas as gpd

    df = gpd.read_file(writer.written[0])
    with rasterio.open(scene) as src:
        transform, crs = src.transform, src.crs
    assert df.crs == crs and len(df) == 1  # four overlapping chips held it
    assert list(df.class_name) == ["ship"]
    x0, y0, x1, y1 = painted.square
    want = shapely.box(*(transform @ (x0, y1)), *(transform @ (x1, y0)))
    assert df.geometry.iloc[0].symmetric_difference(want).area < 1e-6 * want.area
    kind = pyogrio.read_info(writer.written[0])["geometry_type"]
    assert kind == ("MultiPolygon" if masks else "Polygon")


def test_existing_output_refused_and_format_checked(tmp_path, painted):
    with pytest.raises(ConfigurationError, match=r"\.gpkg"):
        VectorPredictionWriter(str(tmp_path), format="shp")
    writer = VectorPredictionWriter(str(tmp_path / "pred"))
    run(tmp_path, painted, writer)
    again = VectorPredictionWriter(str(tmp_path / "pred"))
    with pytest.raises(OutputExistsError, match="overwrite"):
        run(tmp_path, painted, again)
    replace = VectorPredictionWriter(str(tmp_path / "pred"), overwrite=True)
    run(tmp_path, painted, replace)
    assert replace.written == writer.written
