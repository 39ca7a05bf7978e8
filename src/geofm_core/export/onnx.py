"""ONNX export of a geofm model, checked with onnxruntime before the file is kept.

The exported graph takes ``image`` (B, C, H, W) or (B, C, T, H, W) and returns
``output`` (the model's main output). Batch and spatial size are dynamic where the
model allows it (spatial sizes then must be multiples of the model's
``input_multiple``); otherwise the export falls back to a dynamic batch, then to a
fixed shape, and says so in the returned report.
"""

from __future__ import annotations

import contextlib
import io
import logging
import warnings
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from geofm_core.errors import GeofmError
from geofm_core.io.atomic import atomic_output

__all__ = [
    "ExportReport", "ExportVerificationError", "OnnxForward", "export_onnx", "input_channels_of",
]


class ExportVerificationError(GeofmError):
    """onnxruntime's output differs from PyTorch's beyond the tolerance."""


@dataclass
class ExportReport:
    """What was exported and how well onnxruntime reproduces PyTorch."""

    path: Path
    dynamic_batch: bool
    dynamic_spatial: bool
    max_abs_diff: float
    checked_shapes: list[tuple[int, ...]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


class _MainOutput(nn.Module):
    """Wraps a geofm model so the graph returns a tensor, not a ModelOutput."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        out = self.model(image)
        return out.output if hasattr(out, "output") else out  # type: ignore[no-any-return]


def _dynamic_shapes(ndim: int, multiple: int, spatial: bool) -> dict[str, dict[int, Any]]:
    dims: dict[int, Any] = {0: torch.export.Dim("batch", min=1, max=4096)}
    if spatial:
        # Sizes as multiples of the patch/stride keep padding out of the graph.
        dims[ndim - 2] = multiple * torch.export.Dim("height_blocks", min=1, max=1024)
        dims[ndim - 1] = multiple * torch.export.Dim("width_blocks", min=1, max=1024)
    return {"image": dims}


@contextlib.contextmanager
def quiet_export() -> Iterator[None]:
    """Silence torch's logger, Python warnings and stdout around ``torch.onnx.export``.

    The exporters log and print what geofm reports itself (a failed dynamic attempt, in
    the notes) and warn about every traced Python branch (torchvision's detectors).
    """
    torch_logger = logging.getLogger("torch")
    level = torch_logger.level
    torch_logger.setLevel(logging.CRITICAL)
    try:
        with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
            warnings.simplefilter("ignore")
            yield
    finally:
        torch_logger.setLevel(level)


def _export(wrapper: nn.Module, example: torch.Tensor, path: Path, opset: int,
            dynamic_shapes: dict[str, Any] | None) -> None:
    with quiet_export():
        _export_quietly(wrapper, example, path, opset, dynamic_shapes)


def _export_quietly(wrapper: nn.Module, example: torch.Tensor, path: Path, opset: int,
                    dynamic_shapes: dict[str, Any] | None) -> None:
    program = torch.onnx.export(
        wrapper, (example,), dynamo=True, opset_version=opset, input_names=["image"],
        output_names=["output"], dynamic_shapes=dynamic_shapes, verbose=False,
    )
    assert program is not None
    program.save(str(path))


def _session(path: Path) -> Any:
    # fatal only: a failed dynamic attempt raises, is caught and is reported in the notes;
    # onnxruntime would also print it as an error
    return cpu_session(path, log_severity=4)


def _max_diff(session: Any, wrapper: nn.Module, x: torch.Tensor) -> float:
    got = session.run(None, {"image": x.numpy()})[0]
    with torch.inference_mode():
        want = wrapper(x).numpy()
    if got.shape != want.shape:
        return float("inf")
    return float(np.abs(got - want).max())


def export_onnx(
    model: nn.Module,
    output: str | Path,
    *,
    in_channels: int,
    image_size: tuple[int, int] = (224, 224),
    num_frames: int | None = None,
    dynamic: bool = True,
    opset: int = 18,
    atol: float = 1e-4,
    seed: int = 0,
    overwrite: bool = False,
) -> ExportReport:
    """Export ``model`` to ONNX and verify it with onnxruntime.

    Args:
        model: A geofm model (returns ``ModelOutput``) or any module returning a tensor.
        output: Path of the ``.onnx`` file; written only if verification passes.
        in_channels: Bands of the input.
        image_size: (H, W) of the example input (rounded up to the model's multiple).
        num_frames: Frames of a multi-temporal input (B, C, T, H, W); ``None`` for 4-D.
        dynamic: Try dynamic batch and spatial sizes.
        opset: ONNX opset.
        atol: Largest allowed absolute difference between onnxruntime and PyTorch.
        seed: Seed of the random verification inputs.
        overwrite: Replace an existing ``output`` instead of refusing.

    Raises:
        ExportVerificationError: onnxruntime disagrees with PyTorch beyond ``atol``.
        OutputExistsError: ``output`` exists and ``overwrite`` is False.
    """
    output = Path(output)
    model = model.eval()
    wrapper = _MainOutput(model).eval()
    multiple = int(getattr(model, "input_multiple", 1) or 1)
    h, w = (-(-s // multiple) * multiple for s in image_size)
    lead = (in_channels,) if num_frames is None else (in_channels, num_frames)
    generator = torch.Generator().manual_seed(seed)
    # Batch 2: torch.export specialises dimensions of size 1.
    example = torch.randn(2, *lead, h, w, generator=generator)
    notes: list[str] = []
    attempts = [(True, True), (True, False)] if dynamic else []
    attempts.append((False, False))
    with atomic_output(output, overwrite=overwrite) as partial:
        for batch_dyn, spatial_dyn in attempts:
            shapes = [tuple(example.shape)]
            if batch_dyn:
                shapes.append((3, *example.shape[1:]))
            if spatial_dyn:
                shapes.append((2, *lead, h + multiple, w + 2 * multiple))
            label = ("dynamic batch and size" if spatial_dyn else
                     "dynamic batch" if batch_dyn else "fixed shape")
            try:
                _export(wrapper, example, partial, opset,
                        _dynamic_shapes(example.ndim, multiple, spatial_dyn) if batch_dyn
                        else None)
                session = _session(partial)
                diffs = [_max_diff(session, wrapper, torch.randn(*shape, generator=generator))
                         for shape in shapes]
            except Exception as exc:  # a less dynamic attempt may still work
                if not batch_dyn:
                    raise
                notes.append(f"{label}: {type(exc).__name__}: "
                             f"{str(exc).strip().splitlines()[0][:200]}")
                continue
            if float("inf") in diffs and batch_dyn:
                notes.append(f"{label}: the exported graph fixed a dimension")
                continue
            worst = max(diffs)
            if not worst <= atol:
                raise ExportVerificationError(
                    f"ONNX export of {type(model).__name__} does not reproduce PyTorch: max "
                    f"abs difference {worst:.3g} > {atol:g} on shapes {shapes}; the model "
                    "uses an operation onnxruntime computes differently. Nothing was "
                    f"written to {output}"
                )
            report = ExportReport(output, batch_dyn, spatial_dyn, worst, shapes, notes)
            break
    return report


def input_channels_of(model: nn.Module) -> int | None:
    """Input bands of a model: the input channels of its first convolution, if any."""
    for module in model.modules():
        if isinstance(module, nn.Conv2d | nn.Conv3d):
            return int(module.in_channels)
    return None


def cpu_session(path: str | Path, threads: int | None = None,
                log_severity: int | None = None) -> Any:
    """An onnxruntime ``InferenceSession`` of ``path`` on the CPU provider.

    Args:
        path: The ``.onnx`` file.
        threads: Intra-op threads (default: onnxruntime's choice).
        log_severity: onnxruntime's ``log_severity_level`` (3 errors, 4 fatal only).
    """
    import onnxruntime as ort

    options = ort.SessionOptions()
    if log_severity is not None:
        options.log_severity_level = log_severity
    if threads:
        options.intra_op_num_threads = threads
    return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


class OnnxForward:
    """A tiled-inference ``forward`` running an exported model in onnxruntime.

    Args:
        path: The ``.onnx`` file written by :func:`export_onnx`.
        threads: Intra-op threads (default: onnxruntime's choice).
    """

    def __init__(self, path: str | Path, threads: int | None = None) -> None:
        self.session = cpu_session(path, threads)

    def __call__(self, tiles: torch.Tensor) -> torch.Tensor:
        """Run a batch of tiles and return the output as a tensor."""
        array = np.ascontiguousarray(tiles.detach().cpu().numpy(), dtype=np.float32)
        return torch.from_numpy(self.session.run(None, {"image": array})[0])
