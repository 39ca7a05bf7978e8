"""Lightning checkpoints written atomically in their own folder.

Lightning's own writer stages a local checkpoint in ``$TMPDIR`` and moves it into place;
across file systems that move is a copy, so a full disk leaves a truncated ``last.ckpt``
at the final path and the previous one is gone. :class:`AtomicCheckpointIO` (set by
``geofm fit|validate|test|predict`` unless the config names a ``CheckpointIO``) writes
through :func:`geofm_core.io.atomic.atomic_output` instead: a hidden temporary beside the
final file, flushed to disk (``fsync``), then renamed over it (``os.replace``). A failed
write leaves the previous checkpoint intact and no partial file.
"""

from __future__ import annotations

import io
import os
from pathlib import Path
from typing import Any

import torch
from lightning.pytorch.plugins.io import TorchCheckpointIO
from typing_extensions import override

from geofm_core.errors import GeofmError, OutputWriteError
from geofm_core.io.atomic import atomic_output

__all__ = ["AtomicCheckpointIO"]


def _write(stream: Any, data: memoryview) -> None:
    """Write ``data`` to the open file ``stream`` (where a full disk raises ENOSPC)."""
    stream.write(data)


def _fsync(temp: Path, final: Path) -> None:
    """Flush the finished temporary's data to the disk before it is renamed into place."""
    fd = os.open(temp, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _fsync_folder(folder: Path) -> None:
    """Make the rename itself durable (best effort: not every file system allows it)."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def _is_local(path: Any) -> bool:
    text = str(path)
    return "://" not in text or text.startswith("file://")


class AtomicCheckpointIO(TorchCheckpointIO):
    """``TorchCheckpointIO`` whose local saves are atomic in the checkpoint's own folder.

    Remote paths (``s3://...``) and ``storage_options`` keep Lightning's own writer.
    """

    @override
    def save_checkpoint(self, checkpoint: dict[str, Any], path: Any,
                        storage_options: Any | None = None) -> None:
        """Write ``checkpoint`` to ``path``: completely, or not at all.

        Raises:
            OutputWriteError: The write failed (a full disk, say); ``path`` is unchanged.
        """
        if storage_options is not None or not _is_local(path):
            super().save_checkpoint(checkpoint, path, storage_options)
            return
        final = Path(str(path).removeprefix("file://"))
        final.parent.mkdir(parents=True, exist_ok=True)
        # Serialised in memory first (as Lightning does): torch.save straight into a file
        # reports a full disk as an unrelated "unexpected pos" RuntimeError.
        buffer = io.BytesIO()
        torch.save(checkpoint, buffer)
        try:
            with atomic_output(final, overwrite=True, verify=_fsync) as temp, \
                    temp.open("wb") as stream:
                _write(stream, buffer.getbuffer())
        except GeofmError:
            raise
        except OSError as exc:
            raise OutputWriteError(
                f"saving the checkpoint {final} failed ({exc}); the disk may be full. "
                f"Nothing was written at {final.name} (an earlier file of that name is "
                "intact) and no partial file is left: free space or choose another "
                "trainer.default_root_dir, then resume with --ckpt_path last"
            ) from exc
        _fsync_folder(final.parent)
