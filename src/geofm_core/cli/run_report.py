"""What ``geofm fit|validate|test`` prints around a run: a lean start, a summary at the end.

* Lightning's model summary without the FLOPs column (it reads 0 unless the model has an
  ``example_input_array``, which says nothing), no litlogger advertisement, and no
  ``LeafSpec`` deprecation warning from inside Lightning.
* At the end of ``fit``: the best and last checkpoint paths, the monitored metric's best
  value and its epoch, and the per-class table of the last validation; at the end of
  ``validate``/``test``: the per-class table and the confusion matrix (the task keeps
  it in ``confusion_matrices``).
"""

from __future__ import annotations

import logging
import re
import sys
import warnings
from collections.abc import Mapping, Sequence
from typing import Any, TextIO

from lightning.pytorch import Callback, LightningModule, Trainer
from lightning.pytorch.callbacks import ModelCheckpoint, ModelSummary

from geofm_core.cli._common import write_table

__all__ = ["LeanModelSummary", "RunSummary", "class_table", "quiet_lightning"]

#: Per-class metrics a task logs as ``<stage>/<metric>_<class name>``, in table order.
CLASS_METRICS = ("IoU", "precision", "recall", "F1")


#: Lightning's messages that say nothing to a geofm user: an advertisement, and the note
#: that geofm's own model summary replaces Lightning's.
_DROPPED = ("litlogger", "Trainer already configured with model summary callbacks")


class _DropTips(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        message = str(record.getMessage())
        return not any(d in message for d in _DROPPED)


def quiet_lightning() -> None:
    """Silence what Lightning prints that is no help to a geofm user (idempotent)."""
    for name in ("lightning.pytorch.utilities.rank_zero", "lightning.fabric.utilities.rank_zero"):
        logger = logging.getLogger(name)
        if not any(isinstance(f, _DropTips) for f in logger.filters):
            logger.addFilter(_DropTips())
    # Raised by Lightning's own pytree helper under torch >= 2.9; nothing a user can change.
    warnings.filterwarnings("ignore", message=r".*isinstance\(treespec, LeafSpec\).*")


class LeanModelSummary(ModelSummary):
    """Lightning's model summary without the FLOPs column and total."""

    @staticmethod
    def summarize(summary_data: list[tuple[str, list[str]]], total_parameters: int,
                  trainable_parameters: int, model_size: float,
                  total_training_modes: dict[str, int], total_flops: int = 0,
                  **summarize_kwargs: Any) -> None:
        """Log the summary table; the FLOPs column and line are left out."""
        from lightning.pytorch.utilities.model_summary.model_summary import (
            _format_summary_table,
        )

        columns = [c for c in summary_data if c[0] != "FLOPs"]
        table = _format_summary_table(total_parameters, trainable_parameters, model_size,
                                      total_training_modes, total_flops, *columns)
        lines = [ln for ln in table.splitlines() if not ln.rstrip().endswith("Total Flops")]
        logging.getLogger("lightning.pytorch.callbacks.model_summary").info(
            "\n" + "\n".join(lines))


def _value(metric: Any) -> float:
    return float(metric.item() if hasattr(metric, "item") else metric)


def class_table(metrics: Mapping[str, Any], stage: str,
                class_names: Sequence[str]) -> list[tuple[str, ...]]:
    """Rows (header first) of the per-class metrics logged for ``stage``; empty when none."""
    present = [m for m in CLASS_METRICS
               if any(f"{stage}/{m}_{c}" in metrics for c in class_names)]
    if not present:
        return []
    rows: list[tuple[str, ...]] = [("CLASS", *(m.upper() for m in present))]
    for name in class_names:
        cells = [metrics.get(f"{stage}/{m}_{name}") for m in present]
        rows.append((name, *("-" if c is None else f"{_value(c):.4f}" for c in cells)))
    return rows


def confusion_rows(matrix: Any, class_names: Sequence[str]) -> list[tuple[str, ...]]:
    """Rows of a confusion matrix (true classes down, predicted across)."""
    values = matrix.tolist()
    names = list(class_names) or [str(i) for i in range(len(values))]
    rows: list[tuple[str, ...]] = [("TRUE \\ PREDICTED", *names)]
    rows += [(names[i], *(str(int(v)) for v in row)) for i, row in enumerate(values)]
    return rows


def _epoch_of(path: str) -> str:
    found = re.search(r"best-(\d+)-", path)
    return found.group(1) if found else "?"


class RunSummary(Callback):
    """Print what a user looks for when a run ends (rank zero only)."""

    def __init__(self, out: TextIO | None = None) -> None:
        self.out = out

    def _write(self, trainer: Trainer, text: str) -> None:
        if trainer.is_global_zero:
            (self.out or sys.stdout).write(text)

    def _tables(self, trainer: Trainer, module: LightningModule, stage: str) -> str:
        names = list(getattr(module, "class_names", None) or [])
        lines: list[str] = []
        rows = class_table(trainer.callback_metrics, stage, names)
        if rows:
            import io

            buffer = io.StringIO()
            write_table(rows, buffer)
            lines.append(f"per-class {stage} metrics:\n" + buffer.getvalue())
        matrix = getattr(module, "confusion_matrices", {}).get(stage)
        if matrix is not None:
            import io

            buffer = io.StringIO()
            write_table(confusion_rows(matrix, names), buffer)
            lines.append(f"{stage} confusion matrix (pixels or samples):\n" + buffer.getvalue())
        return "\n".join(lines)

    def on_fit_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        """The checkpoints written, the best monitored value and the per-class table."""
        if trainer.sanity_checking or getattr(trainer, "fast_dev_run", False):
            return
        lines = [f"\nfinished: {trainer.current_epoch} epoch(s), {trainer.global_step} steps"]
        for callback in trainer.checkpoint_callbacks:
            if not isinstance(callback, ModelCheckpoint):
                continue
            if callback.best_model_path and callback.monitor:
                score = callback.best_model_score
                best = "-" if score is None else f"{_value(score):.4f}"
                lines.append(f"  best {callback.monitor}: {best} (epoch "
                             f"{_epoch_of(callback.best_model_path)}) -> "
                             f"{callback.best_model_path}")
            if callback.last_model_path:
                lines.append(f"  last checkpoint: {callback.last_model_path}")
        tables = self._tables(trainer, pl_module, "val")
        self._write(trainer, "\n".join(lines) + "\n" + (f"\n{tables}" if tables else ""))

    def on_validation_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        """After ``geofm validate``: the per-class table and confusion matrix."""
        if trainer.state.fn == "validate":
            tables = self._tables(trainer, pl_module, "val")
            if tables:
                self._write(trainer, "\n" + tables)

    def on_test_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        """After ``geofm test``: the per-class table and confusion matrix."""
        tables = self._tables(trainer, pl_module, "test")
        if tables:
            self._write(trainer, "\n" + tables)
