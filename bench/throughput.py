"""Model throughput driver: one framework, one architecture, in this process.

    python bench/throughput.py --framework geofm --model a
    .venv-terratorch/bin/python bench/throughput.py --framework terratorch --model a

Builds the same architecture through geofm's registry or TerraTorch's public API
(``EncoderDecoderFactory``), then times, on random inputs (batch 4, 6 bands, 224x224,
fp32 or, with ``--autocast bf16``, under ``torch.autocast`` as ``geofm infer --precision
bf16`` and ``--trainer.precision bf16-mixed`` run, CPU): inference (``eval`` +
``torch.inference_mode``) and a training step
(forward, cross-entropy, backward, AdamW step). The timing code is shared, so only the
model differs. Prints one JSON object: samples/s (median over the timed iterations),
forward GFLOP per sample (``torch.utils.flop_counter.FlopCounterMode``), the peak RSS
after inference (before any training) and at the end, import and build seconds.

Models: (a) prithvi_eo_v1_100 + select_indices [2,5,8,11] + reshape_tokens_to_image +
learned_interpolate_to_pyramidal + upernet (256 channels); (b) prithvi_eo_v2_tiny_tl
with the same necks and decoder; (c) timm resnet18 + smp unet.
"""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import sys
import time
from collections.abc import Callable
from importlib.metadata import version
from typing import Any

BATCH, BANDS, SIZE, CLASSES = 4, 6, 224, 2
MODELS = {
    "a": "prithvi_eo_v1_100 + 4 necks + upernet(256)",
    "b": "prithvi_eo_v2_tiny_tl + 4 necks + upernet(256)",
    "c": "timm resnet18 + smp unet",
    # geofm's option for TerraTorch's U-Net layout (its last block at half resolution,
    # then upsampled); TerraTorch's side is (c) itself
    "c_layout": "timm resnet18 + smp unet with upsample_last: false",
}
PRITHVI = {"a": "prithvi_eo_v1_100", "b": "prithvi_eo_v2_tiny_tl"}


def rss_mb() -> float:
    """Peak resident set size of this process so far, in MB (Linux ru_maxrss is KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def build_geofm(model: str) -> Any:
    """The architecture through geofm's registry (``geofm:encoder_decoder``)."""
    from geofm_core.models.factory import EncoderDecoderFactory

    factory = EncoderDecoderFactory()
    if model in PRITHVI:
        return factory.build_model(
            task="segmentation", backbone=f"prithvi:{PRITHVI[model]}", num_classes=CLASSES,
            necks=[{"name": "geofm:select_indices", "indices": [2, 5, 8, 11]},
                   {"name": "geofm:reshape_tokens_to_image"},
                   {"name": "geofm:learned_interpolate_to_pyramidal"}],
            decoder="upernet:upernet", decoder_kwargs={"channels": 256},
        )
    return factory.build_model(
        task="segmentation", backbone="timm:resnet18", backbone_kwargs={"in_chans": BANDS},
        decoder="smp:unet", num_classes=CLASSES,
        decoder_kwargs={"upsample_last": False} if model == "c_layout" else None,
    )


def build_terratorch(model: str) -> Any:
    """The same architecture through TerraTorch's ``EncoderDecoderFactory``.

    For (c) TerraTorch's ``UNetDecoder`` wraps the same smp ``UnetDecoder`` with smp's
    default widths, as geofm's ``smp:unet`` does.
    """
    from terratorch.models import EncoderDecoderFactory

    factory = EncoderDecoderFactory()
    if model in PRITHVI:
        return factory.build_model(
            task="segmentation", backbone=PRITHVI[model], backbone_pretrained=False,
            num_classes=CLASSES,
            necks=[{"name": "SelectIndices", "indices": [2, 5, 8, 11]},
                   {"name": "ReshapeTokensToImage"},
                   {"name": "LearnedInterpolateToPyramidal"}],
            decoder="UperNetDecoder", decoder_channels=256,
        )
    return factory.build_model(
        task="segmentation", backbone="timm_resnet18", backbone_pretrained=False,
        backbone_in_chans=BANDS, decoder="UNetDecoder",
        decoder_channels=[256, 128, 64, 32, 16], num_classes=CLASSES,
    )


def main_output(out: Any) -> Any:
    """The main output tensor of a geofm or TerraTorch ``ModelOutput``."""
    return out.output if hasattr(out, "output") else out


def time_calls(fn: Callable[[], None], iters: int, warmup: int = 1) -> list[float]:
    """Seconds of each of ``iters`` calls of ``fn`` after ``warmup`` untimed ones."""
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(iters):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return times


def forward_gflop(model: Any, x: Any) -> float:
    """Forward GFLOP per sample counted by ``FlopCounterMode`` (matmuls, convs, attention)."""
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    counter = FlopCounterMode(display=False)
    with torch.no_grad(), counter:
        model(x)
    return counter.get_total_flops() / x.shape[0] / 1e9


def measure(framework: str, model_key: str, infer_iters: int, train_iters: int,
            seed: int = 0, matmul_precision: str = "as-imported",
            autocast: str = "none", device: str = "cpu") -> dict[str, Any]:
    """Build and time one model; see the module docstring.

    ``matmul_precision`` other than ``as-imported`` is set with
    ``torch.set_float32_matmul_precision`` after the imports: ``import terratorch``
    sets ``medium`` process-wide (its clay_v15 module does), which on CPUs with AMX-BF16
    runs float32 matmuls in bfloat16; ``highest`` restores true fp32. ``autocast``
    ``bf16`` / ``fp16`` runs the timed calls under ``torch.autocast`` (fp16 training with
    a ``GradScaler``, as Lightning's ``16-mixed``). ``device`` ``cuda`` synchronises
    before each clock read.
    """
    import contextlib

    start = time.perf_counter()
    import torch

    if framework == "terratorch":
        import terratorch  # noqa: F401  (its import is part of the cost)
    else:
        import geofm_core.models.factory  # noqa: F401
    import_s = time.perf_counter() - start
    precision_after_import = torch.get_float32_matmul_precision()
    if matmul_precision != "as-imported":
        torch.set_float32_matmul_precision(matmul_precision)
    torch.manual_seed(seed)
    start = time.perf_counter()
    if framework == "terratorch":  # TerraTorch's (c) is the layout c_layout reproduces
        model = build_terratorch("c" if model_key == "c_layout" else model_key)
    else:
        model = build_geofm(model_key)
    model = model.to(device)
    build_s = time.perf_counter() - start
    x = torch.randn(BATCH, BANDS, SIZE, SIZE, device=device)
    target = torch.randint(0, CLASSES, (BATCH, SIZE, SIZE), device=device)
    sync = torch.cuda.synchronize if device.startswith("cuda") else (lambda: None)
    params = sum(p.numel() for p in model.parameters())

    model.eval()
    gflop = forward_gflop(model, x)

    def mixed() -> Any:
        if autocast == "none":
            return contextlib.nullcontext()
        dtype = torch.bfloat16 if autocast == "bf16" else torch.float16
        return torch.autocast(torch.device(device).type, dtype=dtype)

    def infer() -> None:
        with torch.inference_mode(), mixed():
            main_output(model(x))
        sync()

    infer_times = time_calls(infer, infer_iters)
    rss_infer = rss_mb()

    result: dict[str, Any] = {
        "framework": framework, "model": model_key, "description": MODELS[model_key],
        "torch": torch.__version__, "threads": torch.get_num_threads(), "params": params,
        "matmul_precision_after_import": precision_after_import,
        "matmul_precision": torch.get_float32_matmul_precision(), "autocast": autocast,
        "device": device,
        "import_s": import_s, "build_s": build_s, "gflop_per_sample": gflop,
        "infer_s": infer_times, "infer_samples_per_s": BATCH / statistics.median(infer_times),
        "peak_rss_infer_mb": rss_infer,
    }
    if framework == "terratorch":
        result["terratorch"] = version("terratorch")
    if train_iters:
        model.train()
        optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4)
        loss_fn = torch.nn.CrossEntropyLoss()
        scaler = torch.amp.GradScaler(enabled=autocast == "fp16")

        def train_step() -> None:
            optimizer.zero_grad(set_to_none=True)
            with mixed():
                loss = loss_fn(main_output(model(x)).float(), target)
            scaler.scale(loss).backward()
            scaler.step(optimizer)
            scaler.update()
            sync()

        train_times = time_calls(train_step, train_iters)
        result.update({"train_s": train_times,
                       "train_samples_per_s": BATCH / statistics.median(train_times),
                       "peak_rss_train_mb": rss_mb()})
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--framework", choices=["geofm", "terratorch"], required=True)
    parser.add_argument("--model", choices=sorted(MODELS), required=True)
    parser.add_argument("--infer-iters", type=int, default=5)
    parser.add_argument("--train-iters", type=int, default=3)
    parser.add_argument("--matmul-precision", default="as-imported",
                        choices=["as-imported", "highest", "high", "medium"])
    parser.add_argument("--autocast", default="none", choices=["none", "bf16", "fp16"])
    parser.add_argument("--device", default="cpu", help="cpu or cuda")
    args = parser.parse_args()
    result = measure(args.framework, args.model, args.infer_iters, args.train_iters,
                     matmul_precision=args.matmul_precision, autocast=args.autocast,
                     device=args.device)
    json.dump(result, sys.stdout)
    sys.stdout.write("\n")


if __name__ == "__main__":
    main()
