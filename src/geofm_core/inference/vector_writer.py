"""Writing ``geofm predict`` results of detection tasks: one vector file per input image.

Each input ``a/b/x.tif`` under the predict root becomes ``<output_dir>/a/b/x_pred.gpkg``
(or ``.geojson``) with the layer of :mod:`geofm_core.io.vectors`, in the input's CRS.
A batch carries each chip's ``filename`` and ``window`` (row_off, col_off, height,
width in the source image), so the chips' boxes are put on the source's pixel grid,
merged across chip overlaps by class-wise NMS (as ``geofm infer`` merges tiles) and
moved to the map with the source's transform (read from its header). Files are written
when the loop ends (after gathering every rank's chips, by rank 0), each to a temporary
name renamed when complete; an image without detections gets an empty layer.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import rasterio
import torch
from lightning.pytorch import LightningModule, Trainer
from lightning.pytorch.callbacks import BasePredictionWriter

from geofm_core.errors import ConfigurationError
from geofm_core.inference.detection import (
    DetectionMerger,
    Detections,
    tile_detections,
    write_detections,
)
from geofm_core.inference.writer import _gather
from geofm_core.io.atomic import atomic_output, check_output
from geofm_core.io.vectors import VectorWriter, check_vector_crs, vector_format, verify_vector

__all__ = ["VectorPredictionWriter", "for_vectors"]

_HINT = ("overwrite: true to the prediction writer (--overwrite) to replace them, "
         "skip_existing: true (--skip_existing) to keep them, or choose another output_dir")


class VectorPredictionWriter(BasePredictionWriter):
    """Write the detections of ``geofm predict`` as one vector file per input image.

    Args:
        output_dir: Folder of the outputs (created if missing).
        overwrite: Replace existing outputs instead of refusing.
        suffix: Appended to each input's stem.
        format: ``"gpkg"`` (GeoPackage) or ``"geojson"``.
        score_threshold: Lowest score written.
        iou_threshold: Class-wise NMS across overlapping chips of one image.
        skip_existing: Leave the files of inputs whose output exists alone (they are
            still predicted). Excludes ``overwrite``.

    Attributes:
        written: The files this process wrote in the last ``predict``.
    """

    def __init__(self, output_dir: str, overwrite: bool = False, suffix: str = "_pred",
                 format: str = "gpkg", score_threshold: float = 0.5,
                 iou_threshold: float = 0.5, skip_existing: bool = False) -> None:
        super().__init__(write_interval="batch")
        self.extension = "." + format.lower().lstrip(".")
        vector_format(f"x{self.extension}")  # an unknown format: refused here
        self.output_dir = Path(output_dir)
        self.overwrite = overwrite
        self.suffix = suffix
        self.score_threshold = score_threshold
        self.iou_threshold = iou_threshold
        self.skip_existing = skip_existing
        self.written: list[Path] = []
        self._found: dict[str, list[Detections]] = {}
        self._headers: dict[str, tuple[int, int, Any, Any]] = {}
        self._root: Path | None = None

    def setup(self, trainer: Trainer, pl_module: LightningModule, stage: str) -> None:
        """Check every planned output before the predict loop (none is half written)."""
        if stage != "predict":
            return
        if self.overwrite and self.skip_existing:
            raise ConfigurationError(
                "the prediction writer got both overwrite (--overwrite) and skip_existing "
                "(--skip_existing): choose one"
            )
        self.written, self._found, self._headers = [], {}, {}
        datamodule = getattr(trainer, "datamodule", None)
        root = getattr(datamodule, "data_root", None)
        self._root = Path(root("predict")) if callable(root) and root("predict") else None
        dataset_of = getattr(datamodule, "dataset", None)
        dataset = dataset_of("predict") if callable(dataset_of) else None
        for name in getattr(dataset, "filenames", []):
            target = self.target(str(name))
            if not (self.skip_existing and target.is_file()):
                check_output(target, overwrite=self.overwrite, hint=_HINT, folder=False,
                             inputs=[str(name)])
        if trainer.is_global_zero:
            self.output_dir.mkdir(parents=True, exist_ok=True)
        trainer.strategy.barrier("geofm_vector_prediction_writer")

    def target(self, filename: str) -> Path:
        """The output file of the input ``filename``."""
        source = Path(filename)
        try:
            relative = source.relative_to(self._root) if self._root else Path(source.name)
        except ValueError:
            relative = Path(source.name)
        return self.output_dir / relative.with_name(
            f"{relative.stem}{self.suffix}{self.extension}")

    def _header(self, filename: str, chip: tuple[int, int]) -> tuple[int, int, Any, Any]:
        """(height, width, transform, crs) of a source image, read once from its header."""
        if filename not in self._headers:
            if Path(filename).is_file():
                with rasterio.open(filename) as src:
                    self._headers[filename] = (src.height, src.width, src.transform, src.crs)
            else:  # no source to georeference with: pixel coordinates, no CRS
                from affine import Affine

                self._headers[filename] = (*chip, Affine.identity(), None)
        return self._headers[filename]

    def write_on_batch_end(
        self, trainer: Trainer, pl_module: LightningModule, prediction: Any,
        batch_indices: Sequence[int] | None, batch: Any, batch_idx: int, dataloader_idx: int,
    ) -> None:
        """Put the batch's chip detections on their images' grids (written at the end)."""
        boxes = prediction["prediction_bbox_xyxy"]
        filenames = prediction.get("filename")
        if filenames is None:
            raise ConfigurationError(
                f"{type(self).__name__}: the predict batches carry no 'filename'; the "
                "detections cannot be put on a map. Use a geofm detection data module (its "
                "batches name each chip's image and window)"
            )
        windows = prediction.get("window")
        masks = prediction.get("prediction_mask")
        size = tuple(batch["image"].shape[-2:]) if isinstance(batch, dict) else (0, 0)
        for i, name in enumerate(filenames):
            row, col, chip_h, chip_w = (0, 0, *size) if windows is None else (
                int(v) for v in windows[i][:4])
            height, width, transform, _ = self._header(str(name), (size[0], size[1]))
            out = {"boxes": boxes[i], "labels": prediction["prediction_label"][i],
                   "scores": prediction["prediction_score"][i]}
            if masks is not None:
                out["masks"] = torch.as_tensor(masks[i]).float()
            self._found.setdefault(str(name), []).append(tile_detections(
                out, row=row, col=col, height=height, width=width, transform=transform,
                score_threshold=self.score_threshold, mask_threshold=0.5,
                tile_size=(chip_h, chip_w)))

    def on_predict_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        """Merge each image's chips and write its file (rank 0, all ranks' chips)."""
        gathered: list[Any] = _gather(trainer, list(self._found.items()))  # type: ignore[arg-type]
        parts: list[tuple[str, list[Detections]]] = gathered
        if not trainer.is_global_zero:
            return
        found: dict[str, list[Detections]] = {}
        for name, detections in parts:
            found.setdefault(name, []).extend(detections)
        class_names = list(getattr(pl_module, "class_names", None) or [])
        for name, detections in found.items():
            target = self.target(name)
            if self.skip_existing and target.is_file():
                continue
            merger = DetectionMerger(self.iou_threshold)
            merger.add(Detections.cat(detections))
            final = merger.flush(None)
            _, _, transform, crs = self._header(name, (0, 0))
            check_vector_crs(target, crs, name)
            target.parent.mkdir(parents=True, exist_ok=True)
            with atomic_output(target, overwrite=self.overwrite, hint=_HINT,
                               verify=verify_vector, inputs=[name]) as partial, \
                    VectorWriter(partial, vector_format(target), crs,
                                 "MultiPolygon" if final.geometries is not None else
                                 "Polygon") as writer:
                write_detections(writer, final, transform, class_names)
            self.written.append(target)


def for_vectors(callbacks: Sequence[Any]) -> list[Any]:
    """``callbacks`` with each GeoTIFF prediction writer replaced by a vector writer.

    The replacement keeps the writer's ``output_dir``, ``suffix``, ``overwrite`` and
    ``skip_existing``; a line on stderr says so.
    """
    import sys

    from geofm_core.inference.writer import GeoTiffPredictionWriter

    out: list[Any] = []
    for callback in callbacks:
        if type(callback) is GeoTiffPredictionWriter:
            sys.stderr.write(
                f"the task writes detections: GeoTiffPredictionWriter(output_dir="
                f"{callback.output_dir}) is replaced by VectorPredictionWriter with the same "
                "output_dir (one GeoPackage per image)\n")
            callback = VectorPredictionWriter(
                str(callback.output_dir), overwrite=callback.overwrite,
                suffix=callback.suffix, skip_existing=callback.skip_existing)
        out.append(callback)
    return out

