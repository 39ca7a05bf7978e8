"""ONNX export of torchvision detectors (``geofm:detection``), checked in onnxruntime.

The graph takes one ``image`` (1, C, H, W) of the size it was exported at and returns
``boxes`` (N, 4) xyxy pixels, ``labels`` (N,) and ``scores`` (N,) (and ``masks``
(N, 1, H, W) for Mask R-CNN), N varying with the image: torchvision's post-processing
(score threshold, NMS, top-k) is part of the graph. torchvision's detectors export
with the TorchScript-based exporter (``dynamo=False``, opset >= 11, the path its
documentation gives); ``torch.export`` cannot trace their data-dependent
post-processing. Batches and other sizes are run image by image at the exported size
(:class:`OnnxDetectionForward`), as tiled inference does.

Before the file is kept, onnxruntime's detections are compared with PyTorch's on the
given images (real chips) and a random one: every detection must be found with the
same label, its box within ``box_atol`` pixels and its score within ``score_atol``.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from geofm_core.errors import ConfigurationError
from geofm_core.export.onnx import (
    ExportReport,
    ExportVerificationError,
    _session,
    quiet_export,
)
from geofm_core.io.atomic import atomic_output

__all__ = [
    "EXPORTABLE_FRAMEWORKS",
    "OnnxDetectionForward",
    "detection_framework",
    "export_detection_onnx",
]

#: The torchvision frameworks exported (each verified in onnxruntime on export).
EXPORTABLE_FRAMEWORKS = ("faster_rcnn", "mask_rcnn", "retinanet", "fcos")


def detection_framework(model: nn.Module) -> str | None:
    """``faster_rcnn`` / ``mask_rcnn`` / ``retinanet`` / ``fcos`` of a detector, else None.

    A geofm ``DetectionModel`` says so in ``framework``; a bare torchvision detector is
    recognised by its class.
    """
    framework = getattr(model, "framework", None)
    if isinstance(framework, str):
        return framework
    from torchvision.models.detection import FCOS, FasterRCNN, MaskRCNN, RetinaNet

    for module in model.modules():
        for cls, name in ((MaskRCNN, "mask_rcnn"), (FasterRCNN, "faster_rcnn"),
                          (RetinaNet, "retinanet"), (FCOS, "fcos")):
            if isinstance(module, cls):
                return name
    return None


class _Detections(nn.Module):
    """The first image's detections as a tuple of tensors (what the graph returns)."""

    def __init__(self, model: nn.Module, names: Sequence[str]) -> None:
        super().__init__()
        self.model = model
        self.names = list(names)

    def forward(self, image: torch.Tensor) -> tuple[torch.Tensor, ...]:
        out = self.model(image) if _takes_tensor(self.model) else self.model(list(image))
        return tuple(out[0][n] for n in self.names)


def _takes_tensor(model: nn.Module) -> bool:
    """A geofm DetectionModel takes a batch tensor; a bare torchvision detector a list."""
    from torchvision.models.detection import FCOS, RetinaNet
    from torchvision.models.detection.generalized_rcnn import GeneralizedRCNN

    return not isinstance(model, GeneralizedRCNN | RetinaNet | FCOS)


def _compare(got: list[np.ndarray[Any, Any]], want: Sequence[torch.Tensor],
             box_atol: float, score_atol: float) -> tuple[float, int]:
    """Largest box difference (pixels) of matched detections, and the tail left unmatched.

    Detections are matched by label, box and score; one that PyTorch keeps and
    onnxruntime does not (or the reverse) is accepted only at the bottom of the
    ranking, where a score tie at the detections-per-image cap decides which is kept.

    Raises:
        ExportVerificationError: A detection is missing, or differs beyond tolerance.
    """
    boxes, labels, scores = (w.detach().cpu().numpy() for w in want[:3])
    o_boxes, o_labels, o_scores = got[:3]
    if len(boxes) == len(o_boxes) and (labels == o_labels).all():
        box_diff = float(np.abs(boxes - o_boxes).max(initial=0.0))
        score_diff = float(np.abs(scores - o_scores).max(initial=0.0))
        if box_diff <= box_atol and score_diff <= score_atol:
            return box_diff, 0
    worst, unmatched = 0.0, 0
    floor = min(float(scores.min(initial=1.0)), float(o_scores.min(initial=1.0)))
    for a, b, c, d, e, f in ((boxes, labels, scores, o_boxes, o_labels, o_scores),
                             (o_boxes, o_labels, o_scores, boxes, labels, scores)):
        for box, label, score in zip(a, b, c, strict=True):
            diffs = np.abs(d - box).max(axis=1) if len(d) else np.zeros(0)
            ok = (e == label) & (diffs <= box_atol) & (np.abs(f - score) <= score_atol)
            if ok.any():
                worst = max(worst, float(diffs[ok].min()))
            elif score <= floor + score_atol:
                unmatched += 1
            else:
                raise ExportVerificationError(
                    f"onnxruntime does not reproduce PyTorch's detection (label {int(label)}, "
                    f"score {float(score):.4f}, box {np.round(box, 2).tolist()}) within "
                    f"{box_atol} px and score {score_atol}; nothing was written"
                )
    return worst, unmatched


def export_detection_onnx(
    model: nn.Module,
    output: str | Path,
    *,
    in_channels: int,
    image_size: tuple[int, int] = (512, 512),
    opset: int = 17,
    box_atol: float = 1e-2,
    score_atol: float = 1e-3,
    examples: Sequence[torch.Tensor] = (),
    seed: int = 0,
    overwrite: bool = False,
) -> ExportReport:
    """Export a torchvision detector at a fixed input size, verified in onnxruntime.

    Args:
        model: A geofm ``DetectionModel`` or a torchvision ``FasterRCNN``, ``MaskRCNN``,
            ``RetinaNet`` or ``FCOS``.
        output: The ``.onnx`` file; written only if verification passes.
        in_channels: Bands of the input.
        image_size: (H, W) of the graph's input (the tile or chip size).
        opset: ONNX opset (11 or later).
        box_atol: Largest allowed box difference to PyTorch, in pixels.
        score_atol: Largest allowed score difference.
        examples: Images (C, H, W) to verify on, e.g. preprocessed real chips; a random
            image is always checked too.
        seed: Seed of the random example.
        overwrite: Replace an existing ``output`` instead of refusing.

    Raises:
        ConfigurationError: Not one of :data:`EXPORTABLE_FRAMEWORKS`, an opset below 11
            or an example of another shape.
        ExportVerificationError: onnxruntime's detections differ from PyTorch's.
    """
    framework = detection_framework(model)
    if framework not in EXPORTABLE_FRAMEWORKS:
        raise ConfigurationError(
            f"ONNX export of {type(model).__name__} as a detector is not supported: it is "
            "no torchvision Faster R-CNN, Mask R-CNN, RetinaNet or FCOS (nor a geofm "
            "DetectionModel of one), whose post-processing the exporter knows; run it "
            "with --backend torch"
        )
    if opset < 11:
        raise ConfigurationError(f"ONNX export of detectors needs opset >= 11; got {opset}")
    output = Path(output)
    model = model.eval()
    names = ["boxes", "labels", "scores"] + (["masks"] if framework == "mask_rcnn" else [])
    wrapper = _Detections(model, names).eval()
    h, w = image_size
    generator = torch.Generator().manual_seed(seed)
    example = torch.randn(1, in_channels, h, w, generator=generator)
    checks = [x.unsqueeze(0) if x.ndim == 3 else x for x in examples]
    for x in checks:
        if tuple(x.shape) != tuple(example.shape):
            raise ConfigurationError(
                f"an example image has shape {tuple(x.shape)}; the export is at "
                f"{tuple(example.shape)} (--image-size and the bands of the checkpoint)"
            )
    with torch.inference_mode():
        wrapper(example)  # a first forward settles lazily fitted anchors
    notes: list[str] = []
    with atomic_output(output, overwrite=overwrite) as partial:
        _export_legacy(wrapper, example, partial, opset, names)
        session = _session(partial)
        worst = 0.0
        for x in [*checks, example]:
            got = session.run(None, {"image": x.float().numpy()})
            with torch.inference_mode():
                want = wrapper(x.float())
            diff, unmatched = _compare(got, want, box_atol, score_atol)
            worst = max(worst, diff)
            if unmatched:
                notes.append(f"{unmatched} lowest-ranked detection(s) differ (a score tie "
                             "at the per-image cap)")
    notes.append(f"fixed input (1, {in_channels}, {h}, {w}); outputs {', '.join(names)}; "
                 f"checked on {len(checks)} given image(s) and a random one")
    return ExportReport(output, False, False, worst, [tuple(example.shape)], notes)


def _export_legacy(wrapper: nn.Module, example: torch.Tensor, path: Path, opset: int,
                   names: Sequence[str]) -> None:
    # The TorchScript exporter (see the module docstring: torch.export cannot trace them).
    with quiet_export():
        torch.onnx.export(
            wrapper, (example,), str(path), dynamo=False, opset_version=opset,
            input_names=["image"], output_names=list(names),
            dynamic_axes={n: {0: "detections"} for n in names},
        )


class OnnxDetectionForward:
    """A detection ``forward`` for tiled inference running an exported detector.

    Args:
        path: The ``.onnx`` file of :func:`export_detection_onnx`.
        threads: Intra-op threads (default: onnxruntime's choice).
    """

    def __init__(self, path: str | Path, threads: int | None = None) -> None:
        from geofm_core.export.onnx import cpu_session

        self.session = cpu_session(path, threads)
        self.names = [o.name for o in self.session.get_outputs()]

    def __call__(self, tiles: torch.Tensor) -> list[dict[str, torch.Tensor]]:
        """One dict of detections per tile (the graph runs one image at a time)."""
        out = []
        for tile in tiles:
            array = np.ascontiguousarray(tile[None].detach().cpu().numpy(), dtype=np.float32)
            values = self.session.run(None, {"image": array})
            out.append({n: torch.from_numpy(v) for n, v in zip(self.names, values, strict=True)})
        return out
