"""Callbacks the fault tests put into `geofm fit` and `predict` configs (on PYTHONPATH)."""

from __future__ import annotations

import json
import os
import signal
from pathlib import Path
from typing import Any

from lightning.pytorch import Callback

from geofm_core.inference.writer import GeoTiffPredictionWriter


class KillAtStep(Callback):
    """SIGKILL this process once the trainer has taken ``step`` optimizer steps.

    Lightning runs ModelCheckpoint callbacks last, so the checkpoint of ``step`` is never
    written: the newest checkpoint is the one of ``step - 1``.
    """

    def __init__(self, step: int) -> None:
        self.step = step

    def on_train_batch_end(self, trainer: Any, *args: Any) -> None:
        if trainer.global_step >= self.step:
            os.kill(os.getpid(), signal.SIGKILL)


class DumpMetrics(Callback):
    """Write ``trainer.callback_metrics`` of each rank to ``<folder>/metrics_rank<N>.json``."""

    def __init__(self, folder: str) -> None:
        self.folder = folder

    def on_fit_end(self, trainer: Any, pl_module: Any) -> None:
        Path(self.folder).mkdir(parents=True, exist_ok=True)
        metrics = {k: float(v) for k, v in trainer.callback_metrics.items()}
        metrics["global_step"] = float(trainer.global_step)
        path = Path(self.folder) / f"metrics_rank{trainer.global_rank}.json"
        path.write_text(json.dumps(metrics, sort_keys=True))


class TermAtStep(Callback):
    """Send SIGTERM to this process (as a scheduler does) after ``step`` optimizer steps."""

    def __init__(self, step: int) -> None:
        self.step = step

    def on_train_batch_end(self, trainer: Any, *args: Any) -> None:
        if trainer.global_step == self.step and not trainer.received_sigterm:
            os.kill(os.getpid(), signal.SIGTERM)


class WorseningValLoss(Callback):
    """Report a ``val/loss`` that grows each epoch, so the best checkpoint stays epoch 0.

    Lightning runs checkpoint callbacks after the others, so they see this value.
    """

    def on_validation_end(self, trainer: Any, pl_module: Any) -> None:
        import torch

        trainer.callback_metrics["val/loss"] = torch.tensor(float(trainer.current_epoch))


class RecordingWriter(GeoTiffPredictionWriter):
    """The prediction writer, also listing per rank the inputs it saw and the files it wrote.

    Each rank writes ``<record_dir>/writes_rank<N>.json``: ``{"seen": [...], "written": [...]}``.
    """

    def __init__(self, record_dir: str, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.record_dir = record_dir
        self.seen: list[str] = []

    def write_on_batch_end(self, trainer: Any, pl_module: Any, prediction: Any,
                           *args: Any) -> None:
        self.seen += [str(n) for n in prediction.get("filename") or []]
        super().write_on_batch_end(trainer, pl_module, prediction, *args)

    def on_predict_end(self, trainer: Any, pl_module: Any) -> None:
        super().on_predict_end(trainer, pl_module)
        Path(self.record_dir).mkdir(parents=True, exist_ok=True)
        record = {"seen": self.seen, "written": [str(p) for p in self.written]}
        path = Path(self.record_dir) / f"writes_rank{trainer.global_rank}.json"
        path.write_text(json.dumps(record))
