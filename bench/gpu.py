"""GPU benchmarks in one prepared run: (a) and (b) in fp32, bf16-mixed and fp16-mixed, streaming.

    bench/gpu.sh            # = .venv/bin/python bench/gpu.py, on a machine with a CUDA GPU

For models (a) and (b) (see ``bench/throughput.py``): inference and a training step at
batch 4, 224x224, in fp32, under bf16 autocast and under fp16 autocast with a
``GradScaler`` (what ``--trainer.precision bf16-mixed`` / ``16-mixed`` run), geofm and
TerraTorch (from ``.venv-terratorch`` when it exists) in turn on the same GPU; then
streaming inference of an 8192² raster (``bench/streaming.py --device cuda``, fp32 and
bf16) and TerraTorch's tiled inference on the same raster. Sized to finish within
8 minutes on one recent GPU. Writes ``bench/results/gpu.json`` (raw numbers and the
table) and prints the table as Markdown, in the format of ``bench/run.py``.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from run import (  # bench/ is not a package: run.py is found through sys.path
    BENCH,
    CACHE,
    GEOFM_PY,
    PEER_PY,
    Row,
    log,
    machine,
    markdown,
    peer_available,
    row,
    run_json,
)

PRECISIONS = (("none", "fp32"), ("bf16", "bf16-mixed"), ("fp16", "16-mixed"))


def throughput_rows(peer: bool, infer_iters: int, train_iters: int, models: list[str],
                    device: str) -> tuple[list[Row], Any]:
    """The models on ``device`` at three precisions, geofm then TerraTorch."""
    rows: list[Row] = []
    raw: dict[str, Any] = {}
    for key in models:
        for autocast, label in PRECISIONS:
            common = ["--model", key, "--device", device, "--autocast", autocast,
                      "--infer-iters", str(infer_iters), "--train-iters", str(train_iters)]
            log(f"gpu ({key}) {label} geofm")
            g = run_json([GEOFM_PY, str(BENCH / "throughput.py"), "--framework", "geofm",
                          *common])
            p = None
            if peer:
                log(f"gpu ({key}) {label} terratorch")
                p = run_json([str(PEER_PY), str(BENCH / "throughput.py"), "--framework",
                              "terratorch", "--matmul-precision", "highest", *common])
            raw[f"{key}_{label}"] = {"geofm": g, "terratorch": p}
            for what, name in (("infer", "inference"), ("train", "training")):
                rows.append(row(f"GPU ({key}) {name} {label}, samples/s",
                                g[f"{what}_samples_per_s"],
                                p[f"{what}_samples_per_s"] if p else None, "samples/s"))
    return rows, raw


def streaming_rows(peer: bool, size: int, device: str) -> tuple[list[Row], Any]:
    """Streaming inference of a ``size``² raster on ``device``, and TerraTorch's."""
    import subprocess

    subprocess.run([GEOFM_PY, str(BENCH / "streaming.py"), "--size", str(size), "--cache",
                    str(CACHE), "--prepare"], check=True)
    rows: list[Row] = []
    raw: dict[str, Any] = {}
    tt = None
    if peer:
        log(f"gpu streaming {size}² terratorch")
        tt = run_json([str(PEER_PY), str(BENCH / "streaming_terratorch.py"), "--size",
                       str(size), "--cache", str(CACHE), "--device", device])
    raw["terratorch"] = tt
    for precision in ("32", "bf16"):
        log(f"gpu streaming {size}² geofm {precision}")
        g = run_json([GEOFM_PY, str(BENCH / "streaming.py"), "--size", str(size), "--cache",
                      str(CACHE), "--device", device, "--precision", precision])
        raw[f"geofm_{precision}"] = g
        rows.append(row(f"GPU streaming {size}² {precision}, Mpx/s", g["megapixels_per_s"],
                        tt["megapixels_per_s"] if tt else None, "Mpx/s",
                        note=f"peak RSS {g['peak_rss_mb']:.0f} MB" + (
                            f" (TerraTorch fp32 {tt['peak_rss_mb']:.0f} MB)" if tt else "")))
    return rows, raw


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=8192, help="streaming raster size")
    parser.add_argument("--infer-iters", type=int, default=20)
    parser.add_argument("--train-iters", type=int, default=10)
    parser.add_argument("--output", type=Path, default=BENCH / "results" / "gpu.json")
    parser.add_argument("--models", default="a,b")
    parser.add_argument("--no-peer", action="store_true", help="skip TerraTorch")
    parser.add_argument("--device", default="cuda",
                        help="cuda; cpu only to try the script's wiring on small sizes")
    args = parser.parse_args()
    import torch

    if args.device.startswith("cuda") and not torch.cuda.is_available():
        raise SystemExit("bench/gpu.py needs a CUDA GPU (torch.cuda.is_available() is False); "
                         "run `make bench` for the CPU benchmarks")
    peer = not args.no_peer and peer_available()
    started = time.time()
    rows, raw_t = throughput_rows(peer, args.infer_iters, args.train_iters,
                                  args.models.split(","), args.device)
    srows, raw_s = streaming_rows(peer, args.size, args.device)
    rows += srows
    gpu = torch.cuda.get_device_name(0) if args.device.startswith("cuda") else None
    result = {"machine": {**machine(), "gpu": gpu, "device": args.device},
              "terratorch_measured": peer, "seconds": time.time() - started,
              "rows": rows, "raw": {"throughput": raw_t, "streaming": raw_s}}
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(result, indent=1))
    sys.stdout.write(markdown(rows) + "\n")


if __name__ == "__main__":
    main()
