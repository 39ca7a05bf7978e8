"""Writing ``geofm predict`` embeddings: a GeoParquet file, and per-chip dense GeoTIFFs.

With :class:`~geofm_core.tasks.embedding.EmbeddingTask`, ``geofm predict`` writes
``<output_dir>/embeddings.parquet`` (one row per chip: its id, file, pooled vector and
footprint, read from the chip's header) and, when the task has ``dense: true``, each
chip's per-patch embeddings as ``<output_dir>/<stem>_emb.tif`` (one band per channel,
one pixel per patch, the chip's transform scaled by the patch size). Every file is
written to a temporary name and renamed when complete. On several processes the rows
are gathered and written once, by rank 0.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import rasterio
from affine import Affine
from lightning.pytorch import LightningModule, Trainer
from lightning.pytorch.callbacks import BasePredictionWriter

from geofm_core.errors import ConfigurationError
from geofm_core.inference.embedding import RASTER_SUFFIXES
from geofm_core.inference.writer import _gather
from geofm_core.io.atomic import atomic_output, check_output, verify_raster
from geofm_core.io.geoparquet import EmbeddingRow, write_embeddings

__all__ = ["EmbeddingWriter"]

_HINT = "overwrite: true to the prediction writer (--overwrite), or another output_dir"


class EmbeddingWriter(BasePredictionWriter):
    """Write the embeddings of ``geofm predict`` (an ``EmbeddingTask``) as GeoParquet.

    Args:
        output_dir: Folder of the outputs (created if missing).
        filename: Name of the GeoParquet file in it.
        overwrite: Replace existing outputs instead of refusing.
        crs: CRS of the footprints (default: the chips', which must then share one).
        dtype: ``float32`` or ``float16`` for the dense GeoTIFFs.

    Attributes:
        written: The files written in the last ``predict``.
    """

    def __init__(self, output_dir: str, filename: str = "embeddings.parquet",
                 overwrite: bool = False, crs: str | None = None,
                 dtype: str = "float32") -> None:
        super().__init__(write_interval="batch")
        if dtype not in ("float32", "float16"):
            raise ConfigurationError(f"EmbeddingWriter dtype must be float32 or float16, "
                                     f"got {dtype!r}")
        if not filename.endswith((".parquet", ".geoparquet")):
            raise ConfigurationError(
                f"EmbeddingWriter filename {filename!r} should end in .parquet (GeoParquet)"
            )
        self.output_dir = Path(output_dir)
        self.filename = filename
        self.overwrite = overwrite
        self.crs = crs
        self.dtype = dtype
        self.written: list[Path] = []
        self._rows: list[tuple[str, list[float]]] = []

    @property
    def target(self) -> Path:
        """The GeoParquet file."""
        return self.output_dir / self.filename

    def setup(self, trainer: Trainer, pl_module: LightningModule, stage: str) -> None:
        """Refuse an existing output before anything is embedded."""
        if stage != "predict":
            return
        self.written, self._rows = [], []
        check_output(self.target, overwrite=self.overwrite, hint=_HINT, folder=False)
        if trainer.is_global_zero:
            self.output_dir.mkdir(parents=True, exist_ok=True)
        trainer.strategy.barrier("geofm_embedding_writer")

    def write_on_batch_end(
        self, trainer: Trainer, pl_module: LightningModule, prediction: Any,
        batch_indices: Sequence[int] | None, batch: Any, batch_idx: int, dataloader_idx: int,
    ) -> None:
        """Keep the batch's vectors; write its dense embeddings, if any."""
        vectors = prediction["embedding"].detach().float().cpu().numpy()
        names = prediction.get("filename") or [f"sample_{batch_idx}_{i}"
                                                for i in range(len(vectors))]
        dense = prediction.get("dense")
        for i, name in enumerate(names):
            self._rows.append((str(name), vectors[i].tolist()))
            if dense is not None:
                self._write_dense(str(name), dense[i].detach().float().cpu().numpy(),
                                  int(prediction["patch"]))

    def _write_dense(self, filename: str, values: np.ndarray[Any, Any], patch: int) -> None:
        target = self.output_dir / f"{Path(filename).stem}_emb.tif"
        profile: dict[str, Any] = {
            "driver": "GTiff", "count": values.shape[0], "height": values.shape[1],
            "width": values.shape[2], "dtype": "float32", "nodata": math.nan,
            "compress": "deflate", **({"NBITS": 16} if self.dtype == "float16" else {}),
        }
        if Path(filename).is_file():
            with rasterio.open(filename) as src:
                profile.update(crs=src.crs, transform=src.transform @ Affine.scale(patch))
        if self.dtype == "float16":
            values = values.astype(np.float16).astype(np.float32)
        with atomic_output(target, overwrite=self.overwrite, hint=_HINT,
                           verify=verify_raster) as partial:
            with rasterio.open(partial, "w", **profile) as dst:
                dst.write(values)
                dst.update_tags(patch_size=str(patch))
                dst.descriptions = tuple(f"emb_{i}" for i in range(values.shape[0]))
        self.written.append(target)

    def on_predict_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        """Write the GeoParquet file of every rank's rows (rank 0)."""
        rows: list[Any] = _gather(trainer, self._rows)  # type: ignore[arg-type]
        if not rows or not trainer.is_global_zero:
            return
        out: list[EmbeddingRow] = []
        crs, first = (None, None)
        for name, vector in rows:
            corners, window, file_crs = _footprint(name)
            if self.crs is None:
                if first is None:
                    first, crs = name, file_crs
                elif file_crs != crs:
                    raise ConfigurationError(
                        f"{name} is in {file_crs} but {first} in {crs}; one GeoParquet file "
                        "has one CRS: set the writer's crs (e.g. EPSG:4326)"
                    )
            elif file_crs is not None:
                from geofm_core.inference.embedding import reproject_points

                corners = reproject_points(corners, file_crs, self.crs)
            out.append(EmbeddingRow(Path(name).stem, name, window, corners,
                                    np.asarray(vector, np.float32)))
        write_embeddings(self.target, out, self.crs or crs, overwrite=self.overwrite,
                         metadata={"task": type(pl_module).__name__})
        self.written.append(self.target)


def _footprint(name: str) -> tuple[list[tuple[float, float]], tuple[int, int, int, int], Any]:
    """A chip's corners, window (the whole file) and CRS, from its header."""
    from geofm_core.inference.embedding import window_corners

    path = Path(name)
    if not (path.is_file() and path.suffix.lower() in RASTER_SUFFIXES):
        raise ConfigurationError(
            f"cannot locate the chip {name!r}: EmbeddingWriter reads each chip's footprint "
            "from its GeoTIFF header, so the data module must give existing file names "
            "(batch key 'filename')"
        )
    with rasterio.open(path) as src:
        window = (0, 0, src.height, src.width)
        return window_corners(src.transform, window), window, src.crs
