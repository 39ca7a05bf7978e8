"""Writing ``geofm predict`` results: one georeferenced GeoTIFF per input, or a CSV.

Pixel-wise predictions are written next to nothing else: each input ``a/b/x.tif`` under
the predict root becomes ``<output_dir>/a/b/x_pred.tif`` with the input's CRS and
transform (read from the input's header, not its pixels), so names never collide.
Classification predictions go to ``<output_dir>/predictions.csv``. Every file is
written to a temporary name and renamed when complete.

On several processes (DDP) every rank computes the same input-to-output plan from the
whole file list, checks it before a barrier (so no rank sees another's fresh outputs),
and writes only the maps of the inputs its sampler gave it; the CSV rows are gathered
and written once, by rank 0. With ``skip_existing`` the inputs whose outputs are all
complete are dropped from the predict dataset before the loop, so the model does not
run on them; a killed run's hidden ``.partial`` temporary is not an output, so its input
is predicted again.
"""

from __future__ import annotations

import csv
import math
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import rasterio
import torch
from lightning.pytorch import LightningModule, Trainer
from lightning.pytorch.callbacks import BasePredictionWriter

from geofm_core.errors import ConfigurationError
from geofm_core.inference.raster import CLASS_NODATA
from geofm_core.io.atomic import atomic_output, check_not_an_input, check_output, verify_raster
from geofm_core.io.gis import OutputLabels

__all__ = ["GeoTiffPredictionWriter"]

_HINT = ("overwrite: true to the prediction writer (--overwrite) to replace them, "
         "skip_existing: true (--skip_existing) to predict only the inputs without outputs, "
         "or choose another output_dir")


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
        skip_existing: Leave inputs whose outputs all exist alone (a rerun after an
            interruption): they are not predicted again and their files are not touched.
            Excludes ``overwrite``.

    Attributes:
        written: The files this process wrote in the last ``predict`` (maps, the CSV).
        skipped: The inputs left out because their outputs existed (``skip_existing``).
    """

    def __init__(self, output_dir: str, overwrite: bool = False, probabilities: bool = False,
                 suffix: str = "_pred", skip_existing: bool = False) -> None:
        super().__init__(write_interval="batch")
        _check_modes(overwrite, skip_existing)
        self.output_dir = Path(output_dir)
        self.overwrite = overwrite
        self.probabilities = probabilities
        self.suffix = suffix
        self.skip_existing = skip_existing
        self.written: list[Path] = []
        self.skipped: list[str] = []
        self._names: list[str] = []
        self._plan: dict[str, Path] = {}
        self._taken: set[Path] = set()
        self._rows: list[list[str]] = []
        self._root: Path | None = None
        self._inputs: dict[tuple[int, int] | None, str] = {}

    def setup(self, trainer: Trainer, pl_module: LightningModule, stage: str) -> None:
        """Plan and check every output, and drop finished inputs, before the predict loop.

        Lightning calls this after the data module's ``setup`` and before it builds the
        dataloaders (and their distributed samplers), so the predict dataset can still
        shrink here.
        """
        if stage != "predict":
            return
        _check_modes(self.overwrite, self.skip_existing)  # the CLI's flags set them too
        self.written, self.skipped, self._rows = [], [], []
        self._plan, self._taken = {}, set()
        datamodule = getattr(trainer, "datamodule", None)
        root = getattr(datamodule, "data_root", None)
        self._root = Path(root("predict")) if callable(root) and root("predict") else None
        dataset_of = getattr(datamodule, "dataset", None)
        dataset = dataset_of("predict") if callable(dataset_of) else None
        names = self._names = [str(n) for n in getattr(dataset, "filenames", [])]
        if not getattr(pl_module, "pixelwise", True):
            check_output(self.output_dir / "predictions.csv", overwrite=self.overwrite,
                         hint=_HINT, folder=False)
        else:
            # The same plan on every rank: from the whole list, in its order.
            for name in names:
                self._plan[name] = self._target(name, self.suffix)
            # an output that is an input (output_dir over the inputs, suffix "") is refused,
            # also by skip_existing (that "output" exists, but it is the input)
            self._inputs = {_file_id(Path(n)): n for n in names}
            self._inputs.pop(None, None)
            for name in names:
                for path in self._outputs(name):
                    check_not_an_input(path, [self._inputs.get(_file_id(path))])
            done = [n for n in names if self.skip_existing and
                    all(p.is_file() for p in self._outputs(n))]
            # Refuse before predicting anything, rather than after half the outputs.
            for name in names:
                if name not in done:
                    for path in self._outputs(name):
                        check_output(path, overwrite=self.overwrite, hint=_HINT, folder=False)
            exclude = getattr(dataset, "exclude", None)
            if done and callable(exclude):
                exclude(done)
                self.skipped = done
                if trainer.is_global_zero:
                    sys.stderr.write(
                        f"skip_existing: skipped {len(done)} of {len(names)} inputs whose "
                        f"outputs exist in {self.output_dir}\n")
        if trainer.is_global_zero:
            self.output_dir.mkdir(parents=True, exist_ok=True)
        # No rank writes before every rank has checked (and skipped) the same files.
        trainer.strategy.barrier("geofm_prediction_writer")

    def _outputs(self, filename: str) -> list[Path]:
        """The files written for one input."""
        if filename not in self._plan:  # no data module told the file list up front
            self._plan[filename] = self._target(filename, self.suffix)
        target = self._plan[filename]
        if not self.probabilities:
            return [target]
        return [target, target.with_name(f"{target.stem}_probabilities.tif")]

    def _target(self, filename: str, suffix: str) -> Path:
        source = Path(filename)
        try:
            relative = source.relative_to(self._root) if self._root else Path(source.name)
        except ValueError:
            relative = Path(source.name)
        target = self.output_dir / relative.with_name(f"{relative.stem}{suffix}.tif")
        stem, n = target.stem, 2
        while target in self._taken:  # two inputs with one name: never overwrite
            target = target.with_name(f"{stem}_{n}.tif")
            n += 1
        self._taken.add(target)
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
            outputs = self._outputs(str(name))
            if self.skip_existing and all(p.is_file() for p in outputs):
                continue  # a dataset that cannot drop finished inputs: at least no rewrite
            self._write_map(str(name), values[i], pl_module, outputs[0])
            if self.probabilities and probs is not None:
                self._write_map(str(name), probs[i].detach().cpu(), pl_module,
                                outputs[0].with_name(f"{outputs[0].stem}_probabilities.tif"))

    def _write_map(self, filename: str, value: torch.Tensor, pl_module: LightningModule,
                   target: Path) -> None:
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
                elif array.shape[0] == num_classes:  # the probabilities, one band per class
                    labels.describe_probabilities(partial)
        self.written.append(target)

    def on_predict_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        """Write the CSV of classification predictions, if any (rank 0, all ranks' rows)."""
        if getattr(pl_module, "pixelwise", True):
            return
        rows = _gather(trainer, self._rows)
        if not rows or not trainer.is_global_zero:
            return
        order = {name: i for i, name in enumerate(self._names)}
        self._rows = sorted(rows, key=lambda r: order.get(r[0], len(order)))
        target = self.output_dir / "predictions.csv"
        names = list(getattr(pl_module, "class_names", []) or [])
        width = max(len(r) for r in self._rows) - 2
        header = ["filename", "prediction", *[f"p_{n}" for n in names][:width]]
        with atomic_output(target, overwrite=self.overwrite, hint=_HINT) as partial, \
                open(partial, "w", newline="") as f:
            writer = csv.writer(f)
            writer.writerow(header)
            writer.writerows(self._rows)
        self.written.append(target)


def _check_modes(overwrite: bool, skip_existing: bool) -> None:
    if overwrite and skip_existing:
        raise ConfigurationError(
            "the prediction writer got both overwrite (--overwrite) and skip_existing "
            "(--skip_existing): overwrite replaces existing outputs, skip_existing keeps "
            "them; choose one"
        )


def _gather(trainer: Trainer, rows: list[list[str]]) -> list[list[str]]:
    """Every rank's rows (on every rank); ``rows`` itself on one process."""
    import torch.distributed as dist

    if trainer.world_size <= 1 or not (dist.is_available() and dist.is_initialized()):
        return rows
    gathered: list[Any] = [None] * trainer.world_size
    dist.all_gather_object(gathered, rows)
    return [row for part in gathered for row in part or []]
