"""What ``geofm fit`` does while it runs, so that its exit status and checkpoints tell the truth.

* **SIGTERM** (a scheduler pre-empting the job): Lightning stops the loop at the end of
  the batch and raises ``SIGTERMException``, a ``SystemExit`` whose status is 0, so a
  scheduler would see success. :class:`RunGuard` then saves a resumable ``last.ckpt``
  (where the checkpoint callbacks keep theirs) and the command stops with
  :class:`~geofm_core.errors.TrainingInterruptedError` (exit status 143), naming the
  checkpoint and ``--ckpt_path last``.
* **fast_dev_run**: Lightning suppresses checkpoints then, except the ``last.ckpt`` that
  ``ModelCheckpoint(save_last=True)`` still writes when training ends. The guard turns
  ``save_last`` off for such a run, so a dry run writes no checkpoint at all (and the
  next run does not find an "earlier run" to refuse).
* **last.ckpt is the last state**: :class:`LastCheckpoint`, the default checkpoint
  callback, writes it after every validation, also when the monitored metric did not
  improve.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from lightning.pytorch import Callback, LightningModule, Trainer
from lightning.pytorch.callbacks import ModelCheckpoint
from lightning.pytorch.utilities.exceptions import SIGTERMException

from geofm_core.errors import TrainingInterruptedError

__all__ = ["LastCheckpoint", "RunGuard", "interrupted_error"]


class LastCheckpoint(ModelCheckpoint):
    """``ModelCheckpoint`` whose ``last.ckpt`` is always the newest state (geofm's default).

    Lightning 2.6 writes ``last.ckpt`` only at a step where it also writes a top-k
    checkpoint: with ``monitor`` set, an epoch that does not improve the metric leaves
    ``last.ckpt`` at the best epoch, so ``geofm infer --ckpt .../last.ckpt`` would use an
    older model and ``--ckpt_path last`` would resume from it. This subclass writes it
    after each validation (or training epoch end) regardless.
    """

    _last_step: int | None = None

    def _save_last_checkpoint(self, trainer: Trainer, monitor_candidates: dict[str, Any]
                              ) -> None:
        super()._save_last_checkpoint(trainer, monitor_candidates)
        if self.save_last:
            self._last_step = int(trainer.global_step)

    def _catch_up(self, trainer: Trainer) -> None:
        if self.save_last and self._last_step != trainer.global_step and \
                not self._should_skip_saving_checkpoint(trainer):
            self._save_last_checkpoint(trainer, self._monitor_candidates(trainer))

    def on_validation_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        """Lightning's saves, then ``last.ckpt`` if they left it behind."""
        super().on_validation_end(trainer, pl_module)
        if not self._should_save_on_train_epoch_end(trainer):
            self._catch_up(trainer)

    def on_train_epoch_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        """Lightning's saves, then ``last.ckpt`` if they left it behind."""
        super().on_train_epoch_end(trainer, pl_module)
        if self._should_save_on_train_epoch_end(trainer):
            self._catch_up(trainer)


class RunGuard(Callback):
    """Save a resumable checkpoint on SIGTERM; keep fast_dev_run free of checkpoints."""

    def __init__(self) -> None:
        #: Where the checkpoint of an interrupted run was saved (None: not saved).
        self.saved: Path | None = None
        #: The optimizer step the run was interrupted after.
        self.step: int | None = None
        #: Why saving that checkpoint failed (None: it did not).
        self.error: str | None = None

    def setup(self, trainer: Trainer, pl_module: LightningModule, stage: str) -> None:
        """Turn off ``save_last`` for a fast_dev_run (Lightning saves it regardless)."""
        if getattr(trainer, "fast_dev_run", False):
            for callback in trainer.checkpoint_callbacks:
                if isinstance(callback, ModelCheckpoint):
                    callback.save_last = None

    def on_exception(self, trainer: Trainer, pl_module: LightningModule,
                     exception: BaseException) -> None:
        """After SIGTERM: save ``last.ckpt`` where the checkpoint callbacks keep it."""
        if not isinstance(exception, SIGTERMException) or getattr(trainer, "fast_dev_run", False):
            return
        self.step = int(trainer.global_step)
        path = self._last_path(trainer)
        if path is None:
            return
        try:  # every rank takes part; rank 0 writes
            trainer.save_checkpoint(path, weights_only=False)
        except Exception as exc:  # the run still ends as interrupted, saying what failed
            self.error = f"{type(exc).__name__}: {exc}"
            return
        self.saved = Path(path)

    @staticmethod
    def _last_path(trainer: Trainer) -> str | None:
        callbacks = [c for c in trainer.checkpoint_callbacks
                     if isinstance(c, ModelCheckpoint) and c.dirpath is not None]
        chosen = next((c for c in callbacks if c.save_last), callbacks[0] if callbacks else None)
        if chosen is None:
            return None
        name = chosen.format_checkpoint_name({}, chosen.CHECKPOINT_NAME_LAST)
        chosen.last_model_path = name  # a resumed run continues to write it
        return name


def interrupted_error(guard: RunGuard | None) -> TrainingInterruptedError:
    """The message of a run stopped by SIGTERM: where it stopped and how to resume."""
    step = f" after step {guard.step}" if guard is not None and guard.step is not None else ""
    if guard is not None and guard.saved is not None:
        return TrainingInterruptedError(
            f"training stopped by SIGTERM{step}; a resumable checkpoint is saved at "
            f"{guard.saved}. Resume with the same command and --ckpt_path last"
        )
    if guard is not None and guard.error is not None:
        return TrainingInterruptedError(
            f"training stopped by SIGTERM{step}; saving a checkpoint failed ({guard.error}). "
            "Resume from the newest checkpoint there is with --ckpt_path last"
        )
    return TrainingInterruptedError(
        f"training stopped by SIGTERM{step}; no checkpoint was saved (checkpointing is off "
        "in this config). Rerun it, or enable checkpointing to make it resumable"
    )
