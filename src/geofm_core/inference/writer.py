"""Writing ``geofm predict`` results: one georeferenced GeoTIFF per input, or a CSV.

Pixel-wise predictions are written next to nothing else: each input ``a/b/x.tif`` under
the predict root becomes ``<output_dir>/a/b/x_pred.tif`` with the input's CRS and
transform (read from the input's header, not its pixels), so names never collide.
Classification predictions go to ``<output_dir>/predictions.csv``. Every file is
written to a temporary name and renamed when complete.
"""

from __future__ import annotations

import csv
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import rasterio
import torch
from lightning.pytorch import LightningModule, Trainer
from lightning.pytorch.callbacks import BasePredictionWriter

from geofm_core.inference.raster import CLASS_NODATA
from geofm_core.io.atomic import atomic_output, check_output, verify_raster
from geofm_core.io.gis import OutputLabels

__all__ = ["GeoTiffPredictionWriter"]

_HINT = "overwrite: true to the prediction writer (or choose another output_dir)"


def _file_id(path: Path) -> tuple[int, int] | None:
    """(device, inode) of an existing file: equal for every path of one file."""
    try:
        stat = path.stat()
    except OSError:
        return None
    return stat.st_dev, stat.st_ino


class GeoTiffPredictionWriter(BasePredictionWriter):
    """Write each prediction of ``geofm predict`` as it comes (pixel maps or a CSV).

    Args:
        output_dir: Folder of the outputs (created if missing).
        overwrite: Replace existing outputs instead of refusing.
        probabilities: Also write per-class probabilities (``*_probabilities.tif``).
        suffix: Appended to each input's stem.
    """

    def __init__(self, output_dir: str, overwrite: bool = False, probabilities: bool = False,
                 suffix: str = "_pred") -> None:
        super().__init__(write_interval="batch")
        self.output_dir = Path(output_dir)
        self.overwrite = overwrite
        self.probabilities = probabilities
        self.suffix = suffix
        self._written: set[Path] = set()
        self._rows: list[list[str]] = []
        self._root: Path | None = None
        self._inputs: dict[tuple[int, int] | None, str] = {}

    def on_predict_start(self, trainer: Trainer, pl_module: LightningModule) -> None:
        """Find the predict root (outputs mirror the inputs' folders below it)."""
        self._written.clear()
        self._rows.clear()
        datamodule = getattr(trainer, "datamodule", None)
        root = getattr(datamodule, "data_root", None)
        self._root = Path(root("predict")) if callable(root) and root("predict") else None
        self.output_dir.mkdir(parents=True, exist_ok=True)
        # Refuse before predicting anything, rather than after half the outputs.
        dataset = getattr(datamodule, "dataset", None)
        if callable(dataset) and getattr(pl_module, "pixelwise", True):
            names = [str(n) for n in getattr(dataset("predict"), "filenames", [])]
            # an output that is an input (output_dir over the inputs, suffix "") is refused
            self._inputs = {_file_id(Path(n)): n for n in names} if names else {}
            self._inputs.pop(None, None)
            for name in names:
                self._target(name, self.suffix)
            self._written.clear()

    def _target(self, filename: str, suffix: str) -> Path:
        source = Path(filename)
        try:
            relative = source.relative_to(self._root) if self._root else Path(source.name)
        except ValueError:
            relative = Path(source.name)
        target = self.output_dir / relative.with_name(f"{relative.stem}{suffix}.tif")
        stem, n = target.stem, 2
        while target in self._written:  # two inputs with one name: never overwrite
            target = target.with_name(f"{stem}_{n}.tif")
            n += 1
        source_of = self._inputs.get(_file_id(target)) if self._inputs else None
        check_output(target, overwrite=self.overwrite, hint=_HINT, folder=False,
                     inputs=[source_of])
        self._written.add(target)
        return target

    def write_on_batch_end(
        self, trainer: Trainer, pl_module: LightningModule, prediction: Any,
        batch_indices: Sequence[int] | None, batch: Any, batch_idx: int, dataloader_idx: int,
    ) -> None:
        """Write the batch's predictions."""
        filenames = prediction.get("filename") or [f"sample_{batch_idx}_{i}"
                                                   for i in range(len(prediction["prediction"]))]
        values = prediction["prediction"].detach().cpu()
        probs = prediction.get("probabilities")
        if not getattr(pl_module, "pixelwise", True):
            for i, name in enumerate(filenames):
                row = [str(name), " ".join(map(str, np.atleast_1d(values[i].numpy()).tolist()))]
                if probs is not None:
                    row += [f"{p:.6f}" for p in probs[i].detach().cpu().float().tolist()]
                self._rows.append(row)
            return
        for i, name in enumerate(filenames):
            self._write_map(str(name), values[i], pl_module)
            if self.probabilities and probs is not None:
                self._write_map(str(name), probs[i].detach().cpu(), pl_module, "_probabilities")

    def _write_map(self, filename: str, value: torch.Tensor, pl_module: LightningModule,
                   extra: str = "") -> None:
        target = self._target(filename, self.suffix + extra)
        array = value.numpy()
        array = array[None] if array.ndim == 2 else array
        profile: dict[str, Any] = {"driver": "GTiff", "count": array.shape[0],
                                   "height": array.shape[1], "width": array.shape[2]}
        valid = None
        if Path(filename).is_file():
            with rasterio.open(filename) as src:  # header only: pixels were read once
                profile.update(crs=src.crs, transform=src.transform)
                if (src.height, src.width) == array.shape[1:] and src.nodata is not None:
                    valid = src.read_masks(1) > 0
        dtype: np.dtype[Any] = np.dtype("float32")
        nodata: float = math.nan
        if array.dtype.kind in "iu":
            num_classes = int(getattr(pl_module, "num_classes", 0) or 0)
            dtype = np.dtype("uint8") if num_classes < 255 else np.dtype("uint16")
            nodata = CLASS_NODATA[dtype]
        out = array.astype(dtype)
        if valid is not None:
            out[:, ~valid] = nodata
        profile.update(dtype=dtype.name, nodata=nodata, compress="deflate")
        target.parent.mkdir(parents=True, exist_ok=True)
        with atomic_output(target, overwrite=self.overwrite, hint=_HINT,
                           verify=verify_raster) as partial:
            with rasterio.open(partial, "w", **profile) as dst:
                dst.write(out)
            num_classes = int(getattr(pl_module, "num_classes", 0) or 0)
            if num_classes:  # class maps and probabilities carry the class names
                labels = OutputLabels.for_classes(getattr(pl_module, "class_names", None),
                                                  num_classes)
                if array.dtype.kind in "iu":
                    labels.describe_class_map(partial)
                elif extra:
                    labels.describe_probabilities(partial)

    def on_predict_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        """Write the CSV of classification predictions, if any."""
        if not self._rows:
            return
        target = self.output_dir / "predictions.csv"
        names = list(getattr(pl_module, "class_names", []) or [])
        width = max(len(r) for r in self._rows) - 2
        header = ["filename", "prediction", *[f"p_{n}" for n in names][:width]]
        with atomic_output(target, overwrite=self.overwrite, hint=_HINT) as partial, \
                open(partial, "w", newline="") as f:
            writer = csv.writer(f)
            writer.writerow(header)
            writer.writerows(self._rows)
