"""LoRA against full fine-tuning on model (a): trainable parameters, peak RSS, samples/s.

    .venv/bin/python bench/lora.py                 # batch 4, 224x224, 3 timed steps
    .venv/bin/python bench/lora.py --batch 2 --iters 2 --out bench/results/lora.json

Model (a) of ``bench/throughput.py`` (prithvi_eo_v1_100 + 4 necks + UperNet(256), 6
bands, fp32, CPU) is trained one way in each of two fresh worker processes, one after
the other, so each peak RSS is that of one way alone: ``full`` (every parameter) and
``lora`` (``peft_config`` LoRA r=8, alpha=16 on qkv, fc1, fc2 of the backbone; decoder,
necks and head trained). A step is forward, cross-entropy, backward and AdamW over the
trainable parameters. Prints one JSON object per way and a Markdown table; ``--out``
writes the JSON.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

BENCH = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH))

LORA = {"method": "LORA", "peft_config_kwargs": {
    "target_modules": ["qkv", "fc1", "fc2"], "r": 8, "lora_alpha": 16}}


def worker(way: str, batch: int, size: int, iters: int) -> dict[str, Any]:
    """Build model (a), add LoRA for ``way == "lora"``, time training steps."""
    import torch
    from throughput import BANDS, CLASSES, build_geofm, main_output, rss_mb, time_calls

    torch.manual_seed(0)
    model = build_geofm("a")
    if way == "lora":
        from geofm_core.models.adapters import apply_peft

        apply_peft(model, LORA)
    params = [p for p in model.parameters() if p.requires_grad]
    x = torch.randn(batch, BANDS, size, size)
    target = torch.randint(0, CLASSES, (batch, size, size))
    optimizer = torch.optim.AdamW(params, lr=1e-4)
    loss_fn = torch.nn.CrossEntropyLoss()
    model.train()

    def step() -> None:
        optimizer.zero_grad(set_to_none=True)
        loss_fn(main_output(model(x)), target).backward()
        optimizer.step()

    times = time_calls(step, iters)
    trainable = {n for n, p in model.named_parameters() if p.requires_grad}
    # what an adapters-only checkpoint keeps: trainable weights and all buffers
    kept = sum(v.numel() * v.element_size() for k, v in model.state_dict().items()
               if k in trainable or k not in dict(model.named_parameters()))
    full = sum(v.numel() * v.element_size() for v in model.state_dict().values())
    return {
        "way": way, "batch": batch, "size": size, "iters": iters,
        "threads": torch.get_num_threads(),
        "params": sum(p.numel() for p in model.parameters()),
        "trainable_params": sum(p.numel() for p in params),
        "adapter_params": sum(p.numel() for n, p in model.named_parameters() if "lora_" in n),
        "loadavg_1min": os.getloadavg()[0],
        "train_s": times, "train_samples_per_s": batch / statistics.median(times),
        "peak_rss_mb": rss_mb(),
        "weights_saved_mb": (kept if way == "lora" else full) / 2**20,
    }


def table(rows: list[dict[str, Any]]) -> str:
    """The rows as a Markdown table."""
    lines = ["| way | trainable params | of all | of which adapters | peak RSS (MB) | "
             "train samples/s | weights saved (MB) |", "|---|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(
            f"| {r['way']} | {r['trainable_params'] / 1e6:.2f} M | "
            f"{100 * r['trainable_params'] / r['params']:.1f} % | "
            f"{r['adapter_params'] / 1e6:.2f} M | {r['peak_rss_mb']:.0f} | "
            f"{r['train_samples_per_s']:.2f} | {r['weights_saved_mb']:.1f} |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--worker", choices=["full", "lora"], help=argparse.SUPPRESS)
    parser.add_argument("--batch", type=int, default=4)
    parser.add_argument("--size", type=int, default=224)
    parser.add_argument("--iters", type=int, default=3)
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    if args.worker:
        json.dump(worker(args.worker, args.batch, args.size, args.iters), sys.stdout)
        return
    rows = []
    for way in ("full", "lora"):
        start = time.perf_counter()
        done = subprocess.run(
            [sys.executable, __file__, "--worker", way, "--batch", str(args.batch),
             "--size", str(args.size), "--iters", str(args.iters)],
            capture_output=True, text=True, check=True)
        rows.append(json.loads(done.stdout.strip().splitlines()[-1]))
        sys.stderr.write(f"[lora bench] {way}: {time.perf_counter() - start:.0f} s\n")
    print(json.dumps(rows, indent=1))
    print(table(rows))
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(rows, indent=1) + "\n")


if __name__ == "__main__":
    main()
