"""Checks run by ``geofm fit|validate|test|predict`` before Lightning starts working.

* ``--ckpt_path``: a missing file is an error naming the option; ``last`` finds the
  newest ``last*.ckpt`` of *earlier* runs too (Lightning looks only in the current run's
  checkpoint folder, which with a logger is a new ``version_N`` each run, so a plain
  ``--ckpt_path last`` would silently start from scratch).
* The checkpoint is read (memory-mapped, ``weights_only=True``) and its weights are
  compared with the model this config builds before Lightning starts: an unsafe pickle,
  a truncated file or the weights of another model give one error naming the file
  (:mod:`geofm_core.io.checkpoints`). Lightning then loads it with ``weights_only=True``.
* Outputs: folders that cannot be written stop the run before training; ``geofm fit``
  refuses to write into a checkpoint folder that already holds checkpoints of an
  earlier run unless it resumes (``--ckpt_path``) or ``--overwrite`` is given; with
  ``--overwrite`` they are moved to ``checkpoints-replaced-<time>/``, so the new run's files
  keep their documented names (``last.ckpt``, not ``last-v1.ckpt``). A
  ``fast_dev_run`` writes no checkpoint, so it is never refused.
"""

from __future__ import annotations

import os
import time
import warnings
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from geofm_core.errors import ConfigurationError
from geofm_core.io.checkpoints import check_state_dict, checkpoint_error, read_checkpoint

__all__ = ["check_checkpoint_fits", "prepare_run", "resolve_last_checkpoint"]

#: ``--ckpt_path`` values Lightning resolves itself.
_SPECIAL = ("best", "hpc")


def _checkpoint_dirs(trainer: Any) -> list[Path]:
    """The folders the trainer's ModelCheckpoint callbacks write to in this run."""
    from lightning.pytorch.callbacks import ModelCheckpoint

    dirs = []
    for callback in trainer.checkpoint_callbacks:
        if isinstance(callback, ModelCheckpoint):
            resolve = getattr(callback, "_ModelCheckpoint__resolve_ckpt_dir", None)
            if callback.dirpath is not None:
                dirs.append(Path(callback.dirpath))
            elif callable(resolve):
                dirs.append(Path(resolve(trainer)))
    return dirs


def _search_dirs(trainer: Any) -> list[Path]:
    """Checkpoint folders of this run and of earlier runs with the same logger settings."""
    dirs = _checkpoint_dirs(trainer)
    for logger in trainer.loggers[:1]:
        save_dir = logger.save_dir if logger.save_dir is not None else trainer.default_root_dir
        base = Path(save_dir) / str(logger.name or "")
        if base.is_dir():
            dirs += [p / "checkpoints" for p in base.iterdir() if p.is_dir()]
    dirs.append(Path(trainer.default_root_dir) / "checkpoints")
    return list(dict.fromkeys(dirs))


def resolve_last_checkpoint(trainer: Any) -> Path | None:
    """The newest ``last*.ckpt`` of this run's or earlier runs' checkpoint folders."""
    found = [p for d in _search_dirs(trainer) if d.is_dir()
             for p in d.glob("last*.ckpt") if p.is_file()]
    return max(found, key=lambda p: p.stat().st_mtime_ns) if found else None


def _writable(path: Path, what: str) -> None:
    probe = path
    while not probe.exists() and probe != probe.parent:
        probe = probe.parent
    if not probe.is_dir():
        raise ConfigurationError(
            f"{what}: {path} cannot be created because {probe} is a file, not a folder; "
            "choose another folder"
        )
    if not os.access(probe, os.W_OK | os.X_OK):
        raise ConfigurationError(
            f"{what}: {path} is not writable ({probe} does not allow writing); choose a "
            "folder you can write to"
        )


def _output_dirs(trainer: Any, subcommand: str) -> Iterable[tuple[Path, str]]:
    for logger in trainer.loggers:
        save_dir = getattr(logger, "save_dir", None)
        if save_dir is not None:
            yield Path(save_dir), "trainer.logger save_dir"
    if subcommand == "fit":
        yield Path(trainer.default_root_dir), "trainer.default_root_dir"
        for path in _checkpoint_dirs(trainer):
            yield path, "checkpoint folder (trainer.default_root_dir or ModelCheckpoint dirpath)"


def _is_rank_zero(trainer: Any) -> bool:
    return int(os.environ.get("LOCAL_RANK", "0")) == 0 and int(trainer.global_rank) == 0


def check_checkpoint_fits(path: str | Path, model: Any) -> None:
    """Read the checkpoint at ``path`` and check its weights fit ``model`` (a LightningModule).

    Raises:
        ConfigurationError: The file is missing, unreadable or unsafe, or holds the
            weights of another model (missing/unexpected keys, other shapes).
    """
    checkpoint = read_checkpoint(path, mmap=True)
    if model is None:
        return
    from geofm_core.tasks.adapter_checkpoints import complete_state

    check_state_dict(
        model.state_dict(), complete_state(model, checkpoint, path), path,
        strict=bool(getattr(model, "strict_loading", True)),
        fix="use the checkpoint written with this config, or fix model.init_args to match it",
    )


def prepare_run(trainer: Any, subcommand: str, kwargs: dict[str, Any],
                overwrite: bool = False, model: Any = None) -> dict[str, Any]:
    """Check outputs and ``ckpt_path`` of a subcommand; returns its keyword arguments.

    Raises:
        ConfigurationError: A missing, unreadable or unsafe checkpoint, one of another
            model than ``model``, an unwritable output folder, or (``fit``) a checkpoint
            folder holding an earlier run's checkpoints without ``--overwrite``.
    """
    kwargs = dict(kwargs)
    kwargs["weights_only"] = True
    ckpt = kwargs.get("ckpt_path")
    if ckpt == "last":
        found = resolve_last_checkpoint(trainer)
        if found is None:
            searched = ", ".join(str(d) for d in _search_dirs(trainer)[:3])
            if subcommand != "fit":
                raise ConfigurationError(
                    f"--ckpt_path last: no last*.ckpt found (searched {searched}); give the "
                    "checkpoint's path"
                )
            warnings.warn(
                f"--ckpt_path last: no last*.ckpt found yet (searched {searched}); training "
                "starts from scratch", stacklevel=2,
            )
            kwargs["ckpt_path"] = None
        else:
            kwargs["ckpt_path"] = str(found)
    elif isinstance(ckpt, str | Path) and str(ckpt) not in _SPECIAL and "://" not in str(ckpt):
        if not Path(ckpt).is_file():
            raise checkpoint_error(ckpt, FileNotFoundError(ckpt))
    if kwargs.get("ckpt_path") is not None and Path(str(kwargs["ckpt_path"])).is_file():
        check_checkpoint_fits(kwargs["ckpt_path"], model)
    if not _is_rank_zero(trainer):
        return kwargs
    for path, what in _output_dirs(trainer, subcommand):
        _writable(path, what)
    if subcommand != "fit" or kwargs.get("ckpt_path") is not None or trainer.fast_dev_run:
        return kwargs  # a fast_dev_run writes no checkpoint (geofm_core.cli.run_guard)
    for folder in _checkpoint_dirs(trainer):
        existing = sorted(folder.glob("*.ckpt")) if folder.is_dir() else []
        if existing and not overwrite:
            raise ConfigurationError(
                f"{folder} already holds checkpoints of an earlier run "
                f"({', '.join(p.name for p in existing[:3])}); resume it with "
                "--ckpt_path last, pass --overwrite to replace them, or choose another "
                "trainer.default_root_dir"
            )
        if existing:
            _move_aside(folder, existing)
    return kwargs


def _move_aside(folder: Path, existing: list[Path]) -> Path:
    """Move an earlier run's checkpoints to ``<folder>-replaced-<time>/`` (``--overwrite``).

    Left in place, Lightning would name the new run's files ``last-v1.ckpt`` and the
    documented ``last.ckpt`` would stay the earlier model's.
    """
    stamp = time.strftime("%Y%m%dT%H%M%S")
    target = folder.with_name(f"{folder.name}-replaced-{stamp}")
    n = 2
    while target.exists():
        target = folder.with_name(f"{folder.name}-replaced-{stamp}-{n}")
        n += 1
    target.mkdir()
    for path in existing:
        os.replace(path, target / path.name)
    warnings.warn(
        f"--overwrite: moved {len(existing)} checkpoint(s) of an earlier run from {folder} "
        f"to {target}; delete that folder once it is no longer needed", stacklevel=2,
    )
    return target
