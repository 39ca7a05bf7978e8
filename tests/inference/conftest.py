"""Fixtures of the detection tests: a real scene with a painted object and its detector."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import rasterio
import torch
from rasterio.transform import Affine

from geofm_core.testing import shared_data


class PaintedScene:
    """The real Landsat RGB scene with one painted square, and a detector that finds it."""

    mark = (255, 1, 255)  # a colour the Landsat scene does not hold: the painted object
    square = (200, 200, 240, 240)  # x0, y0, x1, y1: inside the overlap of four 256 px tiles

    def scene(self, directory: Path, transform: Affine | None = None,
              square: tuple[int, int, int, int] | None = None) -> Path:
        """A copy of the scene in ``directory`` with the square painted (and ``transform``)."""
        path = directory / "scene.tif"
        shutil.copy(shared_data("landsat_rgb", "RGB.byte.tif"), path)
        with rasterio.open(path, "r+") as dst:
            data = dst.read()
            x0, y0, x1, y1 = square or self.square
            for band, value in enumerate(self.mark):
                data[band, y0:y1, x0:x1] = value
            dst.write(data)
            if transform is not None:
                dst.transform = transform
        return path

    def forward(self, calls: list[torch.Tensor] | None = None, masks: bool = False):
        """A deterministic detector: the box of the painted pixels in each tile, score 0.9."""
        def forward(tiles: torch.Tensor) -> list[dict[str, torch.Tensor]]:
            out = []
            for tile in tiles:
                if calls is not None:
                    calls.append(tile)
                hit = torch.ones(tile.shape[-2:], dtype=torch.bool)
                for band, value in enumerate(self.mark):
                    hit &= tile[band] == value
                ys, xs = hit.nonzero(as_tuple=True)
                found = {"boxes": torch.zeros(0, 4), "labels": torch.zeros(0, dtype=torch.int64),
                         "scores": torch.zeros(0)}
                if len(xs):
                    found = {"boxes": torch.tensor([[xs.min(), ys.min(), xs.max() + 1,
                                                     ys.max() + 1]], dtype=torch.float32),
                             "labels": torch.tensor([2]), "scores": torch.tensor([0.9])}
                if masks:
                    found["masks"] = hit.float()[None, None][: int(len(xs) > 0)]
                out.append(found)
            return out
        return forward


@pytest.fixture
def painted() -> PaintedScene:
    """Builds painted scenes and their deterministic detectors."""
    return PaintedScene()
