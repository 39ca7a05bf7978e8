"""Callbacks the fault tests put into `geofm fit` configs (importable through PYTHONPATH)."""

from __future__ import annotations

import json
import os
import signal
from pathlib import Path
from typing import Any

from lightning.pytorch import Callback


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
