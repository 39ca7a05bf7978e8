"""Atomic outputs: nothing appears at the final path until the file is complete and checked.

Every writer of geofm (rasters, prediction maps, CSV, ONNX, int8, safetensors) writes
through :func:`atomic_outputs`:

1. the final paths are checked first (an existing file needs ``overwrite``, the folder
   must exist and be writable, a folder is not a file, and an output that is one of the
   run's inputs is refused even with ``overwrite``), before any work is done;
2. temporary files of runs that were killed (their process is gone) are removed;
3. the writer writes to hidden temporaries next to the finals, named
   ``.<name>.<tag>-<pid>.partial<suffix>`` (one scheme: the pid says whether the run
   is still alive, the suffix keeps tools that look at extensions working);
4. each temporary is read back (``verify``) and renamed onto its final path; on any
   error the temporaries are deleted and the finals are untouched.
"""

from __future__ import annotations

import contextlib
import glob
import os
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

from geofm_core.errors import ConfigurationError, OutputExistsError, OutputWriteError
from geofm_core.io.locations import is_remote

__all__ = [
    "Verify",
    "atomic_output",
    "atomic_outputs",
    "check_input_file",
    "check_not_an_input",
    "check_output",
    "input_problem",
    "remove_stale_temporaries",
    "temporary_path",
    "verify_raster",
]

#: Reads a finished temporary back (``temp``, ``final``); raises if it is not complete.
Verify = Callable[[Path, Path], None]

_MARK = ".partial"


def temporary_path(final: Path, tag: str = "tmp") -> Path:
    """The hidden temporary of ``final`` for this process (``tag`` tells several apart)."""
    return final.with_name(f".{final.name}.{tag}-{os.getpid()}{_MARK}{final.suffix}")


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # alive, owned by another user
        return True
    return True


def remove_stale_temporaries(final: Path) -> list[Path]:
    """Delete the temporaries of ``final`` left by killed runs; returns what was removed."""
    removed = []
    pattern = f".{glob.escape(final.name)}.*-*{_MARK}{glob.escape(final.suffix)}"
    for stale in final.parent.glob(pattern):
        pid = stale.name[: -len(_MARK + final.suffix) or None].rsplit("-", 1)[-1]
        if pid.isdigit() and int(pid) != os.getpid() and not _pid_alive(int(pid)):
            stale.unlink(missing_ok=True)
            removed.append(stale)
    return removed


def input_problem(path: str | Path) -> str | None:
    """Why ``path`` cannot be read as an input file, in words; None when it is a file.

    Tells a broken symbolic link and a folder apart from a missing file, so that the
    message blames the right thing.
    """
    path = Path(path)
    if path.is_file():
        return None
    if path.is_symlink():
        return f"is a symbolic link to {os.readlink(path)}, which does not exist"
    if path.is_dir():
        return "is a folder, not a file"
    if path.exists():
        return "is not a regular file"
    return "does not exist"


def check_input_file(path: str | Path, what: str, fix: str = "") -> None:
    """Raise one error when the input ``path`` (described as ``what``) is not a file.

    Raises:
        ConfigurationError: ``{what} {path} is a folder, not a file; {fix}`` and alike.
    """
    problem = input_problem(path)
    if problem is not None:
        raise ConfigurationError(f"{what} {path} {problem}" + (f"; {fix}" if fix else ""))


def _same_file(a: Path, b: Path) -> bool:
    """Whether ``a`` and ``b`` name one file (links, ``..`` and hard links included)."""
    try:
        return os.path.samefile(a, b)
    except OSError:  # one of them does not exist (yet): compare where they would be
        return os.path.realpath(a) == os.path.realpath(b)


def check_not_an_input(final: str | Path, inputs: Sequence[str | Path | None]) -> None:
    """Refuse an output path that names one of the run's input files, whatever spelling.

    ``--overwrite`` never applies: writing the output would destroy the input it is
    computed from (a class map replacing its scene, say). An input given by URL
    (:func:`geofm_core.io.locations.is_remote`) is never a local output.

    Raises:
        ConfigurationError: ``final`` is (a link to, or another path of) an input.
    """
    final = Path(final)
    for source in inputs:
        if source is not None and not is_remote(source) and _same_file(final, Path(source)):
            same = "" if str(source) == str(final) else " (another path of the same file)"
            raise ConfigurationError(
                f"the output {final} is the input {source}{same}; writing it would destroy "
                "the input, so it is refused even with --overwrite. Choose another output path"
            )


def check_output(final: Path, *, overwrite: bool, hint: str = "--overwrite",
                 folder: bool = True, inputs: Sequence[str | Path | None] = ()) -> None:
    """Refuse an output that exists (unless ``overwrite``) or whose folder cannot take it.

    Args:
        final: The output path.
        overwrite: Whether an existing file may be replaced.
        hint: How the user asks for overwriting, quoted in the message.
        folder: Check the folder too (False for outputs whose folder is made later).
        inputs: The run's input files; an output that is one of them is always refused.

    Raises:
        OutputExistsError: ``final`` exists and ``overwrite`` is False.
        ConfigurationError: ``final`` is an input or a folder, or its folder is missing or
            not writable.
    """
    final = Path(final)
    check_not_an_input(final, inputs)
    if final.is_dir():
        raise ConfigurationError(
            f"the output {final} is a folder; give a file path (e.g. {final / 'out'}"
            f"{final.suffix or '.<ext>'})"
        )
    if final.exists() and not overwrite:
        raise OutputExistsError(
            f"{final} exists; pass {hint} to replace it or choose another output path"
        )
    if not folder:
        return
    if final.parent.exists() and not final.parent.is_dir():
        raise ConfigurationError(
            f"the output {final} cannot be written: {final.parent} is a file, not a folder"
        )
    if not final.parent.is_dir():
        raise ConfigurationError(f"output folder {final.parent} does not exist; create it")
    if not os.access(final.parent, os.W_OK):
        raise ConfigurationError(
            f"output folder {final.parent} is not writable; choose another output path"
        )


def _written(temp: Path, final: Path) -> None:
    if not temp.is_file():
        raise OutputWriteError(f"writing {final} failed: nothing was written")


@contextlib.contextmanager
def atomic_outputs(
    finals: Sequence[str | Path], *, overwrite: bool = False, hint: str = "--overwrite",
    verify: Verify | None = None, inputs: Sequence[str | Path | None] = (),
) -> Iterator[list[Path]]:
    """Write several files at once: all of them appear, or none.

    Args:
        finals: The output paths.
        overwrite: Replace existing files instead of refusing.
        hint: How the user asks for overwriting (in the message of a refusal).
        verify: Reads each finished temporary back before it is renamed (e.g.
            :func:`verify_raster`); by default only its existence is checked.
        inputs: The files the outputs are computed from: never overwritten.

    Yields:
        The temporary paths to write, in the order of ``finals``.

    Raises:
        OutputExistsError: A final path exists and ``overwrite`` is False.
        ConfigurationError: An output is an input or a folder, or its folder is missing
            or not writable.
        OutputWriteError: A temporary was not written or does not read back.
    """
    paths = [Path(f) for f in finals]
    for final in paths:
        check_output(final, overwrite=overwrite, hint=hint, inputs=inputs)
    for final in paths:
        remove_stale_temporaries(final)
    temps = [temporary_path(f) for f in paths]
    try:
        yield temps
        for temp, final in zip(temps, paths, strict=True):
            _written(temp, final)
            if verify is not None:
                verify(temp, final)
        for temp, final in zip(temps, paths, strict=True):
            os.replace(temp, final)
    finally:
        for temp in temps:
            temp.unlink(missing_ok=True)


@contextlib.contextmanager
def atomic_output(
    final: str | Path, *, overwrite: bool = False, hint: str = "--overwrite",
    verify: Verify | None = None, inputs: Sequence[str | Path | None] = (),
) -> Iterator[Path]:
    """:func:`atomic_outputs` for one file: yields its temporary path."""
    with atomic_outputs([final], overwrite=overwrite, hint=hint, verify=verify,
                        inputs=inputs) as temps:
        yield temps[0]


def verify_raster(temp: Path, final: Path) -> None:
    """Read every block of a finished raster back before it is renamed into place.

    GDAL reports a full disk only on stderr (``_tiffWriteProc: No space left on device``)
    while it flushes blocks, without an error rasterio could raise, so a truncated file
    would otherwise be renamed to the final path and reported as written.

    Raises:
        OutputWriteError: A block cannot be read back.
    """
    import rasterio

    try:
        with rasterio.open(temp) as check:
            for _, window in check.block_windows(1):
                check.read(window=window)
    except (rasterio.errors.RasterioError, OSError) as exc:
        raise OutputWriteError(
            f"writing {final} failed ({exc}); the disk may be full. Nothing was written "
            "at the output path: free space or choose another output folder, and run again"
        ) from exc
