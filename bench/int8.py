"""int8 (onnxruntime) and bf16 (torch autocast) inference of model (a) against fp32.

    python bench/int8.py [--iters 5] [--cache DIR]

Model (a): prithvi_eo_v1_100 + select_indices [2,5,8,11] + reshape_tokens_to_image +
learned_interpolate_to_pyramidal + upernet (256 channels), 2 classes. No pretrained
weights are available offline, so the encoder, necks and decoder keep fixed-seed
random weights and only the 1x1 classifier of the head is fitted (Adam on cached decoder
features) to the water mask of the real Sentinel-2 Sen1Floods11 chip in
``../shared/data`` (Prithvi's six HLS bands; training crops from the top half, the
validation crops from the bottom half; pixels labelled -1 are ignored). Without that
folder, synthetic chips whose class follows a band threshold stand in (the JSON says
which).

The fitted model is exported (:func:`geofm_core.export.onnx.export_onnx`) and
quantized (:func:`geofm_core.export.quantize.quantize_onnx`) dynamically and statically
(calibrated on the training crops); model files are cached. Timed on batch 4 of
224x224 chips: PyTorch eager fp32, PyTorch under bf16 autocast (what
``geofm infer --precision bf16`` runs), onnxruntime fp32 and both int8 models. Accuracy
on the validation crops: pixel agreement of each with PyTorch fp32 and the mIoU (over
land and water) of each against the labels. Prints one JSON object.
"""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

BATCH, BANDS, SIZE, CLASSES = 4, 6, 224, 2
DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "sen1floods11"
HLS_BANDS = [1, 2, 3, 8, 11, 12]  # B2, B3, B4, B8A, B11, B12 of the 13-band chip
FIT_STEPS = 150


def load_chips() -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, str]:
    """Normalised train/val crops (N, 6, 224, 224) and labels (N, 224, 224), and the source."""
    image_path = DATA / "Spain_7370579_S2Hand.tif"
    if image_path.exists():
        import rasterio

        with rasterio.open(image_path) as src:
            image = src.read([b + 1 for b in HLS_BANDS]).astype(np.float32)
        with rasterio.open(DATA / "Spain_7370579_LabelHand.tif") as src:
            label = src.read(1).astype(np.int64)
        source = "Sen1Floods11 Spain_7370579 (real Sentinel-2, hand-labelled water)"
    else:
        rng = np.random.default_rng(0)
        image = rng.normal(1000, 300, (BANDS, 512, 512)).astype(np.float32)
        label = (np.arange(512)[None, :] + np.arange(512)[:, None] > 512).astype(np.int64)
        image[3] -= 600 * label
        source = "synthetic chips (../shared/data absent)"
    valid = label >= 0
    means = image[:, valid].mean(1)[:, None, None]
    stds = image[:, valid].std(1)[:, None, None] + 1e-6
    image = (image - means) / stds
    xs = [0, 96, 192, 288]

    def crops(ys: list[int]) -> tuple[np.ndarray, np.ndarray]:
        imgs = [image[:, y:y + SIZE, x:x + SIZE] for y in ys for x in xs]
        labs = [label[y:y + SIZE, x:x + SIZE] for y in ys for x in xs]
        return np.stack(imgs).astype(np.float32), np.stack(labs)

    train_x, train_y = crops([0, 32])
    val_x, val_y = crops([256, 288])
    return train_x, train_y, val_x, val_y, source


def build_model() -> Any:
    """Model (a) with fixed-seed random weights."""
    import torch

    from geofm_core.models.factory import EncoderDecoderFactory

    torch.manual_seed(0)
    return EncoderDecoderFactory().build_model(
        task="segmentation", backbone="prithvi:prithvi_eo_v1_100", num_classes=CLASSES,
        necks=[{"name": "geofm:select_indices", "indices": [2, 5, 8, 11]},
               {"name": "geofm:reshape_tokens_to_image"},
               {"name": "geofm:learned_interpolate_to_pyramidal"}],
        decoder="upernet:upernet", decoder_kwargs={"channels": 256},
    ).eval()


def fit_head(model: Any, train_x: np.ndarray, train_y: np.ndarray) -> None:
    """Fit the head's classifier on the decoder features of the training crops."""
    import torch
    import torch.nn.functional as F

    from geofm_core.models.pixelwise import run_encoder

    with torch.inference_mode():
        feats = []
        for i in range(0, len(train_x), BATCH):
            x = torch.from_numpy(train_x[i:i + BATCH])
            features = run_encoder(model.backbone, model.necks, x, {}, None)
            feats.append(model.decoder(features))
        decoded = torch.cat(feats)
    decoded = decoded.clone()
    target = torch.from_numpy(train_y)
    head = model.head
    optimizer = torch.optim.Adam(head.parameters(), lr=0.05)
    for _ in range(FIT_STEPS):
        optimizer.zero_grad()
        logits = F.interpolate(head(decoded), size=(SIZE, SIZE), mode="bilinear",
                               align_corners=False)
        loss = F.cross_entropy(logits, target, ignore_index=-1)
        loss.backward()
        optimizer.step()


def miou(pred: np.ndarray, label: np.ndarray) -> float:
    """Mean IoU over the classes present in labels or predictions (label -1 ignored)."""
    keep = label >= 0
    ious = []
    for c in range(CLASSES):
        p, t = (pred == c) & keep, (label == c) & keep
        union = (p | t).sum()
        if union:
            ious.append((p & t).sum() / union)
    return float(np.mean(ious))


def timed(fn: Any, iters: int) -> float:
    """Median seconds per call after one warm-up call."""
    fn()
    times = []
    for _ in range(iters):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def run(iters: int, cache: Path, bf16_iters: int | None = None) -> dict[str, Any]:
    """The int8 benchmark; see the module docstring."""
    import torch

    from geofm_core.export.onnx import OnnxForward, export_onnx
    from geofm_core.export.quantize import agreement, quantize_onnx

    cache.mkdir(parents=True, exist_ok=True)
    train_x, train_y, val_x, val_y, source = load_chips()
    model = build_model()
    weights = cache / "int8_model_a.pt"
    if weights.exists():
        model.load_state_dict(torch.load(weights, weights_only=True))
    else:
        fit_head(model, train_x, train_y)
        torch.save(model.state_dict(), weights)
    fp32_path = cache / "model_a.onnx"
    if not fp32_path.exists():
        export_onnx(model, fp32_path, in_channels=BANDS, image_size=(SIZE, SIZE))
    reports = {}
    for method in ("dynamic", "static"):
        path = cache / f"model_a_int8_{method}.onnx"
        if not path.exists():
            calib = [train_x[i:i + 2] for i in range(0, len(train_x), 2)]
            report = quantize_onnx(fp32_path, path, method=method,  # type: ignore[arg-type]
                                   calibration=calib if method == "static" else None,
                                   check_inputs=[val_x[:2]], min_agreement=0.0)
            reports[method] = {"size_mb": report.size_mb, "notes": report.notes}

    with torch.inference_mode():
        fp32 = np.concatenate([model(torch.from_numpy(val_x[i:i + BATCH])).output.numpy()
                               for i in range(0, len(val_x), BATCH)])
    backends: dict[str, Any] = {"onnx_fp32": OnnxForward(fp32_path)}
    for method in ("dynamic", "static"):
        backends[f"int8_{method}"] = OnnxForward(cache / f"model_a_int8_{method}.onnx")
    x = torch.from_numpy(val_x[:BATCH]).contiguous()

    def eager() -> None:
        with torch.inference_mode():
            model(x)

    result: dict[str, Any] = {
        "data": source, "fit": f"head classifier only, {FIT_STEPS} Adam steps",
        "val_chips": len(val_x), "batch": BATCH,
        "samples_per_s": {"torch_fp32": BATCH / timed(eager, iters)},
        "miou": {"torch_fp32": miou(fp32.argmax(1), val_y)},
        "agreement_with_fp32": {}, "quantize": reports,
        "sizes_mb": {p.stem: p.stat().st_size / 1e6 for p in sorted(cache.glob("model_a*.onnx"))},
    }
    from geofm_core.inference.precision import autocast_forward

    def model_forward(tiles: Any) -> Any:
        return model(tiles).output

    bf16 = autocast_forward(model_forward, "cpu", "bf16")

    def eager_bf16() -> None:
        with torch.inference_mode():
            bf16(x)

    with torch.inference_mode():
        out = np.concatenate([bf16(torch.from_numpy(val_x[i:i + BATCH])).numpy()
                              for i in range(0, len(val_x), BATCH)])
    result["samples_per_s"]["torch_bf16"] = BATCH / timed(
        eager_bf16, iters if bf16_iters is None else bf16_iters)
    result["miou"]["torch_bf16"] = miou(out.argmax(1), val_y)
    result["agreement_with_fp32"]["torch_bf16"] = agreement(fp32, out)
    for name, forward in backends.items():
        out = np.concatenate([forward(torch.from_numpy(val_x[i:i + BATCH])).numpy()
                              for i in range(0, len(val_x), BATCH)])
        result["samples_per_s"][name] = BATCH / timed(lambda f=forward: f(x), iters)
        result["miou"][name] = miou(out.argmax(1), val_y)
        result["agreement_with_fp32"][name] = agreement(fp32, out)
    result["peak_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--iters", type=int, default=5)
    # where bf16 is emulated (no bf16 instructions) one timed batch takes minutes
    parser.add_argument("--bf16-iters", type=int, default=None,
                        help="timed batches under bf16 autocast (default: --iters)")
    parser.add_argument("--cache", type=Path,
                        default=Path(tempfile.gettempdir()) / "geofm-bench-cache")
    args = parser.parse_args()
    json.dump(run(args.iters, args.cache, args.bf16_iters), sys.stdout)
    sys.stdout.write("\n")


if __name__ == "__main__":
    main()
