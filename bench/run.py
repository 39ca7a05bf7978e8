"""geofm benchmarks side by side with TerraTorch: one command, one table, one JSON file.

    make bench                      # = .venv/bin/python bench/run.py
    .venv/bin/python bench/run.py --quick
    .venv/bin/python bench/run.py --only startup,throughput

Every figure is a median over several runs next to the same measurement of TerraTorch
(from ``.venv-terratorch``, made by ``make bench-peer``). Model throughput runs in
lockstep (``bench/lockstep.py``): a geofm and a TerraTorch worker process are alive at
once and answer one call each in turn, so the ratio of a row is the median of per-round
ratios, with its quartiles and the load average in the note; a row measured above one
load per core, or with a wide spread, takes its ratio from CPU seconds and says so.
Without the peer venv the TerraTorch column is empty and a note says so.
``import terratorch`` sets ``torch.set_float32_matmul_precision("medium")`` for the whole
process, which on CPUs with AMX-BF16 runs float32 matmuls in bfloat16; the fp32 rows
therefore run TerraTorch with the precision reset to ``highest`` (true fp32, as geofm),
and extra rows show TerraTorch as imported.
Writes ``bench/results/latest.json`` (raw numbers, the table, machine and load) and
prints the table as Markdown (the README's Benchmarks section is this table).

Sections: ``startup`` (CLI start-up), ``throughput`` (models (a), (b), (c) at batch 4,
6 bands, 224x224, fp32, CPU; GFLOP and the fraction of this CPU's fp32 matmul peak; (a)
under bf16 autocast against TerraTorch as imported; (c) with TerraTorch's U-Net
layout), ``int8`` (onnxruntime int8 and torch bf16 of (a): speed and accuracy),
``streaming`` (tiled inference over 1024², 4096², 8192² rasters: Mpx/s and peak RSS,
PyTorch and onnxruntime, and TerraTorch's ``tiled_inference`` on the same model and
rasters where memory allows),
``data`` (data loading chips/s) and ``e2e`` (``geofm fit`` vs ``terratorch fit``, one
epoch on the same folder of chips).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from lockstep import Worker, lockstep, spread_note

ROOT = Path(__file__).resolve().parents[1]
BENCH = ROOT / "bench"
GEOFM_PY = sys.executable
PEER_VENV = ROOT / ".venv-terratorch"
PEER_PY = PEER_VENV / "bin" / "python"
SECTIONS = ("startup", "throughput", "int8", "streaming", "data", "e2e")
CACHE = Path(os.environ.get("GEOFM_BENCH_CACHE",
                            Path(tempfile.gettempdir()) / "geofm-bench-cache"))

Row = dict[str, Any]


def peer_available() -> bool:
    """Whether the TerraTorch venv exists and imports terratorch."""
    if not PEER_PY.exists():
        return False
    probe = subprocess.run([str(PEER_PY), "-c", "import terratorch"], capture_output=True)
    return probe.returncode == 0


def log(message: str) -> None:
    """Progress on stderr (the table goes to stdout)."""
    sys.stderr.write(f"[bench {time.strftime('%H:%M:%S')}] {message}\n")
    sys.stderr.flush()


def loadavg() -> list[float]:
    """The 1, 5 and 15 minute load averages."""
    return [round(v, 2) for v in os.getloadavg()]


def run_json(argv: list[str], timeout: float = 1800) -> dict[str, Any]:
    """Run a driver script and parse the JSON object on its last stdout line."""
    proc = subprocess.run(argv, capture_output=True, text=True, timeout=timeout, cwd=ROOT)
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(argv)} failed ({proc.returncode}):\n{proc.stderr[-3000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])  # type: ignore[no-any-return]


def wall(argv: list[str], env: dict[str, str] | None = None) -> float:
    """Wall seconds of one run of ``argv`` (which must succeed)."""
    start = time.perf_counter()
    proc = subprocess.run(argv, capture_output=True, text=True, cwd=ROOT,
                          env={**os.environ, **(env or {})})
    seconds = time.perf_counter() - start
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(argv)} failed ({proc.returncode}):\n{proc.stderr[-3000:]}")
    return seconds


def row(figure: str, geofm: float | None, peer: float | None, unit: str,
        goal: str = "", met: bool | None = None, note: str = "") -> Row:
    """One table row; the ratio is geofm/TerraTorch."""
    ratio = geofm / peer if geofm is not None and peer else None
    return {"figure": figure, "unit": unit, "geofm": geofm, "terratorch": peer,
            "ratio": ratio, "goal": goal, "met": met, "note": note}


# -- 1. start-up ---------------------------------------------------------------------------

def bench_startup(runs: int, peer: bool) -> tuple[list[Row], dict[str, Any]]:
    """Median wall seconds of the CLI commands, interleaved round by round."""
    geofm = str(Path(GEOFM_PY).parent / "geofm")
    commands: dict[str, list[str]] = {
        "floor": [GEOFM_PY, "-c", "import torch, lightning"],
        "geofm plugins": [geofm, "plugins"],
        "geofm list": [geofm, "list"],
        "geofm fit --help": [geofm, "fit", "--help"],
    }
    if peer:
        terratorch = str(PEER_VENV / "bin" / "terratorch")
        commands["peer floor"] = [str(PEER_PY), "-c", "import torch, lightning"]
        commands["terratorch --help"] = [terratorch, "--help"]
        commands["terratorch fit --help"] = [terratorch, "fit", "--help"]
    for argv in commands.values():  # warm the file cache
        wall(argv)
    times: dict[str, list[float]] = {name: [] for name in commands}
    for _ in range(runs):
        for name, argv in commands.items():
            times[name].append(wall(argv))
    med = {name: statistics.median(t) for name, t in times.items()}
    floor = med["floor"]
    tt_help = med.get("terratorch --help")
    tt_fit = med.get("terratorch fit --help")
    rows = [
        row("start-up: `python -c 'import torch, lightning'` (floor)", floor,
            med.get("peer floor"), "s"),
        row("start-up: `geofm plugins`", med["geofm plugins"], tt_help, "s", "< 0.3 s",
            med["geofm plugins"] < 0.3, "peer: `terratorch --help`"),
        row("start-up: `geofm list`", med["geofm list"], tt_help, "s", "< 0.3 s",
            med["geofm list"] < 0.3, "peer: `terratorch --help`"),
        row("start-up: `geofm fit --help`", med["geofm fit --help"], tt_fit, "s",
            "<= 1.3x floor", med["geofm fit --help"] <= 1.3 * floor,
            f"{med['geofm fit --help'] / floor:.2f}x floor"
            + (f"; terratorch fit --help {tt_fit / floor:.2f}x floor" if tt_fit else "")),
    ]
    return rows, {"runs": runs, "seconds": times, "median_s": med}


# -- 2. model throughput -------------------------------------------------------------------

MATMUL = """
import json, time, torch
n = 2048
a, b = torch.randn(n, n), torch.randn(n, n)
for _ in range(3): torch.mm(a, b)
rates = []
for _ in range({reps}):
    t = time.perf_counter(); torch.mm(a, b); s = time.perf_counter() - t
    rates.append(2 * n**3 / s / 1e9)
print(json.dumps({{"gflops": rates, "threads": torch.get_num_threads()}}))
"""


def matmul_peak(reps: int = 20) -> dict[str, Any]:
    """This CPU's fp32 matmul GFLOP/s (torch.mm 2048², best of ``reps``) in a child."""
    out = run_json([GEOFM_PY, "-c", MATMUL.format(reps=reps)])
    out["peak_gflops"] = max(out["gflops"])
    out["median_gflops"] = statistics.median(out["gflops"])
    return out


def _measure_pair(key: str, peer: bool, rounds: int) -> dict[str, Any]:
    """Lockstep rounds of geofm and TerraTorch (fp32) on model ``key``, then bf16 for (a)."""
    geofm = Worker(GEOFM_PY, "geofm", key)
    tt = Worker(str(PEER_PY), "terratorch", key) if peer else None
    out: dict[str, Any] = {"info": {"geofm": geofm.info, "terratorch": tt and tt.info}}
    try:
        log(f"throughput ({key}) inference, {rounds} lockstep rounds")
        out["infer"] = lockstep(geofm, tt, "infer", rounds)
        out["rss_infer"] = {"geofm": geofm.peak_rss_mb(), "terratorch": tt and tt.peak_rss_mb()}
        log(f"throughput ({key}) training, {rounds} lockstep rounds")
        out["train"] = lockstep(geofm, tt, "train", rounds)
        out["rss_train"] = {"geofm": geofm.peak_rss_mb(), "terratorch": tt and tt.peak_rss_mb()}
    finally:
        geofm.close()
        if tt is not None:
            tt.close()
    if key == "a" and not bf16_instructions():
        # emulated bf16 runs a training batch of (a) in minutes: rounds of it would take an
        # hour and say nothing about bf16 on hardware that has it
        out["bf16_skipped"] = ("not measured: this CPU has no bf16 instructions, so torch "
                               "emulates bf16 (40-50x slower than fp32; the int8 section's "
                               "bf16 row times one batch)")
    elif key == "a":
        # geofm's explicit bf16 path (autocast) against TerraTorch as it runs by default
        # (its import sets matmul precision 'medium': bf16 matmuls on this CPU)
        geofm = Worker(GEOFM_PY, "geofm", key, autocast="bf16")
        tt = (Worker(str(PEER_PY), "terratorch", key, matmul_precision="as-imported")
              if peer else None)
        try:
            for what in ("infer", "train"):
                log(f"throughput (a) {what} geofm bf16 vs TerraTorch as imported")
                out[f"bf16_{what}"] = lockstep(geofm, tt, what, rounds)
        finally:
            geofm.close()
            if tt is not None:
                tt.close()
    return out


def _ratio_row(figure: str, result: dict[str, Any], goal: str = "",
               met: Callable[[float], bool] | None = None, note: str = "") -> Row:
    """A row whose ratio is the lockstep median of per-round ratios (not of medians)."""
    names = list(result["samples_per_s"])
    gv = result["samples_per_s"][names[0]]
    pv = result["samples_per_s"][names[1]] if len(names) > 1 else None
    r = row(figure, gv, pv, "samples/s", goal,
            met(result["ratio"]) if met and "ratio" in result else None,
            "; ".join(n for n in (note, spread_note(result)) if n))
    r["ratio"] = result.get("ratio")
    r["load"] = result["load_max"]
    return r


def bench_throughput(rounds: int, peer: bool) -> tuple[list[Row], dict[str, Any]]:
    """Models (a), (b), (c): geofm and TerraTorch workers alive at once, calls alternating.

    See ``bench/lockstep.py``: the ratio of each row is the median of ``rounds`` per-round
    ratios (a round is one call of each, seconds apart), robust to a load that changes.
    """
    raw: dict[str, Any] = {"matmul": [matmul_peak()]}
    results = {key: _measure_pair(key, peer, rounds) for key in ("a", "b", "c")}
    layout = _measure_pair("c_layout", peer, rounds)
    raw["matmul"].append(matmul_peak())
    raw["models"] = {**results, "c_layout": layout}
    peak = max(m["peak_gflops"] for m in raw["matmul"])
    raw["matmul_peak_gflops"] = peak
    rows: list[Row] = []
    for key, res in results.items():
        for what in ("infer", "train"):
            label = "inference" if what == "infer" else "training"
            rows.append(_ratio_row(f"({key}) {label}, samples/s", res[what],
                                   ">= 1.0x TerraTorch", lambda r: r >= 1.0))
        gflop = res["info"]["geofm"]["gflop_per_sample"]
        sps = res["infer"]["samples_per_s"]
        gv = sps["geofm"] * gflop / peak
        tt_info = res["info"]["terratorch"]
        pv = sps["terratorch"] * tt_info["gflop_per_sample"] / peak if tt_info else None
        rows.append(row(f"({key}) inference, fraction of fp32 matmul peak", gv, pv, "",
                        ">= 0.80" if key == "a" else "", gv >= 0.8 if key == "a" else None,
                        f"{gflop:.1f} GFLOP/sample" + (
                            f" (TerraTorch counts {tt_info['gflop_per_sample']:.1f})"
                            if tt_info else "")))
        for phase, label in (("rss_infer", "inference"), ("rss_train", "inference + training")):
            g_rss, p_rss = res[phase]["geofm"], res[phase]["terratorch"]
            goal = key == "a" and phase == "rss_infer"
            rows.append(row(f"({key}) {label} process peak RSS, MB", g_rss, p_rss, "MB",
                            "<= 0.8x TerraTorch" if goal else "",
                            (g_rss / p_rss <= 0.8) if goal and p_rss else None))
        if "bf16_skipped" in res:
            rows.append(row(f"({key}) bf16 autocast geofm vs TerraTorch as imported", None, None,
                            "samples/s", ">= 1.2x TerraTorch as imported", None,
                            res["bf16_skipped"]))
        for what in ("infer", "train"):
            if f"bf16_{what}" not in res:
                continue
            label = "inference" if what == "infer" else "training"
            fp32 = res[what]["samples_per_s"]["geofm"]
            rows.append(_ratio_row(
                f"({key}) {label} bf16 autocast geofm vs TerraTorch as imported, samples/s",
                res[f"bf16_{what}"], ">= 1.2x TerraTorch as imported", lambda r: r >= 1.2,
                f"geofm fp32 {fp32:.3g} samples/s; `import terratorch` sets matmul "
                "precision 'medium' (bf16 matmuls on AMX-BF16 CPUs)" + (
                    "" if bf16_instructions() else "; this CPU has no bf16 instructions: "
                    "bf16 is emulated, slower than fp32")))
    for what in ("infer", "train"):
        label = "inference" if what == "infer" else "training"
        rows.append(_ratio_row(
            f"(c) {label} with TerraTorch's U-Net layout (upsample_last: false), samples/s",
            layout[what], ">= 1.0x TerraTorch", lambda r: r >= 1.0,
            "the option converted TerraTorch checkpoints get; geofm's default runs the last "
            "block at full resolution (about 2x its FLOPs), which is why (c) is slower"))
    return rows, raw


# -- int8 ----------------------------------------------------------------------------------

def bench_int8(iters: int, peer: bool) -> tuple[list[Row], dict[str, Any]]:
    """onnxruntime int8 of model (a) against fp32 and TerraTorch fp32 (a) run just before."""
    peer_a_infer = None
    peer_run = None
    if peer:
        log("int8: TerraTorch fp32 inference of (a), right before the int8 process")
        peer_run = run_json([str(PEER_PY), str(BENCH / "throughput.py"), "--framework",
                             "terratorch", "--model", "a", "--infer-iters", str(iters),
                             "--train-iters", "0", "--matmul-precision", "highest"])
        peer_a_infer = peer_run["infer_samples_per_s"]
    log("int8 (a): export, quantize (cached), time, accuracy")
    # emulated bf16 (no bf16 instructions) is 40-50x slower: one timed batch is enough
    bf16_iters = [] if bf16_instructions() else ["--bf16-iters", "1"]
    raw = run_json([GEOFM_PY, str(BENCH / "int8.py"), "--iters", str(iters),
                    "--cache", str(CACHE), *bf16_iters])
    raw["terratorch_fp32"] = peer_run
    sps, acc, miou = raw["samples_per_s"], raw["agreement_with_fp32"], raw["miou"]
    best = max(("int8_dynamic", "int8_static"), key=lambda k: sps[k])
    rows = [row("(a) inference fp32 geofm eager (same process as int8), samples/s",
                sps["torch_fp32"], peer_a_infer, "samples/s"),
            row("(a) inference fp32 onnxruntime, samples/s", sps["onnx_fp32"], peer_a_infer,
                "samples/s")]
    for name in ("int8_dynamic", "int8_static"):
        ratio_ok = sps[name] / peer_a_infer >= 1.5 if peer_a_infer else None
        drop = (miou["torch_fp32"] - miou[name]) * 100
        ok = (ratio_ok is not False) and acc[name] >= 0.98 and abs(drop) <= 1.0
        rows.append(row(f"(a) inference {name.replace('_', ' ')} onnxruntime, samples/s",
                        sps[name], peer_a_infer, "samples/s",
                        ">= 1.5x TT fp32, agreement >= 98%, mIoU within 1 pt" if name == best
                        else "", (ok if peer_a_infer else None) if name == best else None,
                        f"agreement {acc[name]:.2%}, mIoU {miou[name]:.3f} vs fp32 "
                        f"{miou['torch_fp32']:.3f} ({-drop:+.2f} pt)"))
    drop = (miou["torch_fp32"] - miou["torch_bf16"]) * 100
    rows.append(row("(a) inference bf16 autocast geofm eager (same process), samples/s",
                    sps["torch_bf16"], peer_a_infer, "samples/s",
                    "agreement with fp32 >= 99%", acc["torch_bf16"] >= 0.99,
                    f"agreement {acc['torch_bf16']:.2%}, mIoU {miou['torch_bf16']:.3f} vs "
                    f"fp32 {miou['torch_fp32']:.3f} ({-drop:+.2f} pt)" + (
                        "" if bf16_instructions() else "; no bf16 instructions on this CPU: "
                        "speed is of emulated bf16")))
    return rows, raw


# -- 3. streaming --------------------------------------------------------------------------

def _mem_available_mb() -> float:
    with open("/proc/meminfo") as f:
        for line in f:
            if line.startswith("MemAvailable"):
                return int(line.split()[1]) / 1024
    return 0.0


def _streaming_peer(size: int, raw: dict[str, Any]) -> dict[str, Any] | None:
    """TerraTorch's tiled inference on the same raster, when memory allows it."""
    smaller = [r for k, r in raw.items() if k.endswith("_terratorch") and r]
    if smaller:  # it holds the raster and its accumulators: memory grows with the area
        last = max(smaller, key=lambda r: r["size"])
        need = last["peak_rss_mb"] * (size / last["size"]) ** 2
        if need > 0.8 * _mem_available_mb():
            log(f"streaming {size}² terratorch skipped: needs about {need:.0f} MB")
            return {"skipped": f"needs about {need / 1024:.1f} GB ({size / last['size']:.0f}"
                    f"² x its {last['size']}² peak), {_mem_available_mb() / 1024:.1f} GB "
                    "available"}
    log(f"streaming {size}² terratorch")
    return run_json([str(PEER_PY), str(BENCH / "streaming_terratorch.py"), "--size",
                     str(size), "--cache", str(CACHE)])


def bench_streaming(sizes: list[int], onnx_sizes: list[int],
                    peer: bool) -> tuple[list[Row], dict[str, Any]]:
    """Mpx/s and child peak RSS of predict_raster per size and backend, and TerraTorch's."""
    raw: dict[str, Any] = {}
    for size in sizes:
        log(f"streaming: preparing the {size}² raster (cached)")
        subprocess.run([GEOFM_PY, str(BENCH / "streaming.py"), "--size", str(size), "--cache",
                        str(CACHE), "--prepare", "--backend",
                        "onnx" if size in onnx_sizes else "torch"], check=True, cwd=ROOT)
    rows: list[Row] = []
    for size in sizes:
        for backend in ("torch", "onnx") if size in onnx_sizes else ("torch",):
            log(f"streaming {size}² {backend}")
            raw[f"{size}_{backend}"] = run_json(
                [GEOFM_PY, str(BENCH / "streaming.py"), "--size", str(size), "--backend",
                 backend, "--cache", str(CACHE)])
        peer_run = _streaming_peer(size, raw) if peer else None
        raw[f"{size}_terratorch"] = peer_run if peer_run and "skipped" not in peer_run else None
        tt = raw[f"{size}_terratorch"]
        torch_run = raw[f"{size}_torch"]
        skipped = f"; TerraTorch {peer_run['skipped']}" if peer_run and not tt else ""
        rows.append(row(f"streaming {size}² PyTorch eager, Mpx/s",
                        torch_run["megapixels_per_s"], tt and tt["megapixels_per_s"], "Mpx/s",
                        ">= 1.5x TerraTorch" if peer else "",
                        torch_run["megapixels_per_s"] / tt["megapixels_per_s"] >= 1.5
                        if tt else None,
                        "same model; TerraTorch: raster read whole, terratorch.tasks."
                        f"tiled_inference{skipped}" if peer else ""))
        goal = size == max(sizes) and peer
        rows.append(row(f"streaming {size}² peak RSS, MB", torch_run["peak_rss_mb"],
                        tt and tt["peak_rss_mb"], "MB", "<= 0.3x TerraTorch" if goal else "",
                        torch_run["peak_rss_mb"] / tt["peak_rss_mb"] <= 0.3
                        if goal and tt else None,
                        f"model loaded: {torch_run['peak_rss_before_mb']:.0f} MB" + (
                            f" (TerraTorch {tt['peak_rss_before_mb']:.0f} MB)" if tt else "")))
        if size in onnx_sizes:
            onnx_run = raw[f"{size}_onnx"]
            speedup = onnx_run["megapixels_per_s"] / torch_run["megapixels_per_s"]
            rows.append(row(f"streaming {size}² onnxruntime, Mpx/s",
                            onnx_run["megapixels_per_s"], tt and tt["megapixels_per_s"],
                            "Mpx/s", note=f"{speedup:.2f}x eager; peak RSS "
                            f"{onnx_run['peak_rss_mb']:.0f} MB"))
    return rows, raw


# -- 4. data loading -----------------------------------------------------------------------

def bench_data(epochs: int) -> tuple[list[Row], dict[str, Any]]:
    """Chips/s of the GeoTIFF segmentation data module (bench/data_loading.run)."""
    sys.path.insert(0, str(BENCH))
    from data_loading import run  # type: ignore[import-not-found]

    log("data loading")
    raw = run(epochs=epochs)
    rows = [row(f"data loading, {w} workers, chips/s", v, None, "chips/s",
                f">= {raw['goal_chips_per_s']}", v >= raw["goal_chips_per_s"])
            for w, v in raw["chips_per_s"].items()]
    return rows, raw


# -- 5. end to end -------------------------------------------------------------------------

E2E_CHIPS, E2E_VAL, E2E_SIZE, E2E_BANDS = 16, 8, 224, 6
NECKS_GEOFM = [{"name": "geofm:select_indices", "indices": [2, 5, 8, 11]},
               {"name": "geofm:reshape_tokens_to_image"},
               {"name": "geofm:learned_interpolate_to_pyramidal"}]
NECKS_TT = [{"name": "SelectIndices", "indices": [2, 5, 8, 11]},
            {"name": "ReshapeTokensToImage"}, {"name": "LearnedInterpolateToPyramidal"}]


def e2e_data(root: Path) -> None:
    """16 training and 8 validation six-band int16 chips whose class follows band 4."""
    import numpy as np
    import rasterio
    from rasterio.transform import from_origin

    rng = np.random.default_rng(0)
    for split, count in (("train", E2E_CHIPS), ("val", E2E_VAL)):
        for sub in ("img", "lbl"):
            (root / split / sub).mkdir(parents=True, exist_ok=True)
        for i in range(count):
            yy, xx = np.mgrid[:E2E_SIZE, :E2E_SIZE]
            mask = (np.sin(xx / rng.uniform(10, 40)) + np.cos(yy / rng.uniform(10, 40)) > 0)
            image = rng.normal(1500, 300, (E2E_BANDS, E2E_SIZE, E2E_SIZE))
            image[3] += 1500 * mask
            profile = {"driver": "GTiff", "height": E2E_SIZE, "width": E2E_SIZE,
                       "crs": "EPSG:32633", "transform": from_origin(500_000, 4_000_000, 30, 30)}
            with rasterio.open(root / split / "img" / f"c{i:03d}.tif", "w", count=E2E_BANDS,
                               dtype="int16", **profile) as dst:
                dst.write(image.astype(np.int16))
            with rasterio.open(root / split / "lbl" / f"c{i:03d}.tif", "w", count=1,
                               dtype="uint8", **profile) as dst:
                dst.write(mask.astype(np.uint8)[None])


def e2e_configs(root: Path) -> tuple[Path, Path]:
    """The geofm and TerraTorch YAML configs of the same run (model (b), upernet 64)."""
    import yaml

    trainer = {"max_epochs": 1, "accelerator": "cpu", "devices": 1, "logger": False,
               "enable_checkpointing": False, "enable_progress_bar": False,
               "num_sanity_val_steps": 0, "default_root_dir": str(root / "runs")}
    means, stds = [1500.0, 1500.0, 1500.0, 2250.0, 1500.0, 1500.0], [300.0] * 6
    data = {"batch_size": 8, "num_workers": 0, "num_classes": 2, "means": means, "stds": stds,
            "train_data_root": str(root / "train" / "img"),
            "train_label_data_root": str(root / "train" / "lbl"),
            "val_data_root": str(root / "val" / "img"),
            "val_label_data_root": str(root / "val" / "lbl")}
    geofm = {
        "seed_everything": 0, "trainer": trainer,
        "model": {"class_path": "SemanticSegmentationTask", "init_args": {
            "num_classes": 2, "lr": 1e-4,
            "model_args": {"backbone": "prithvi:prithvi_eo_v2_tiny_tl", "necks": NECKS_GEOFM,
                           "decoder": "upernet:upernet", "decoder_kwargs": {"channels": 64}}}},
        "data": {"class_path": "GeoTiffSegmentationDataModule", "init_args": {
            **data, "img_pattern": "*.tif", "label_pattern": "*.tif"}},
    }
    terratorch = {
        "seed_everything": 0, "trainer": trainer,
        "model": {"class_path": "terratorch.tasks.SemanticSegmentationTask", "init_args": {
            "model_factory": "EncoderDecoderFactory", "loss": "ce", "lr": 1e-4,
            "ignore_index": -1,  # no pixel has it; TerraTorch's ce needs an int
            "model_args": {"backbone": "prithvi_eo_v2_tiny_tl", "backbone_pretrained": False,
                           "necks": NECKS_TT, "decoder": "UperNetDecoder",
                           "decoder_channels": 64, "num_classes": 2}}},
        "data": {"class_path": "terratorch.datamodules.GenericNonGeoSegmentationDataModule",
                 "init_args": {**data, "img_grep": "*.tif", "label_grep": "*.tif",
                               "drop_last": False}},
    }
    paths = root / "geofm.yaml", root / "terratorch.yaml"
    paths[0].write_text(yaml.safe_dump(geofm, sort_keys=False))
    paths[1].write_text(yaml.safe_dump(terratorch, sort_keys=False))
    return paths


def bench_e2e(runs: int, peer: bool) -> tuple[list[Row], dict[str, Any]]:
    """Wall seconds of one `fit` epoch from the command line, geofm and TerraTorch in turn."""
    root = CACHE / "e2e"
    counts = [len(list((root / split / "lbl").glob("*.tif"))) for split in ("train", "val")]
    if counts != [E2E_CHIPS, E2E_VAL]:
        shutil.rmtree(root, ignore_errors=True)
        e2e_data(root)
    geofm_cfg, tt_cfg = e2e_configs(root)
    commands = {"geofm": [str(Path(GEOFM_PY).parent / "geofm"), "fit", "-c", str(geofm_cfg)]}
    if peer:
        commands["terratorch"] = [str(PEER_VENV / "bin" / "terratorch"), "fit", "-c",
                                  str(tt_cfg)]
    times: dict[str, list[float]] = {k: [] for k in commands}
    for r in range(runs):
        for name in list(commands) if r % 2 == 0 else list(commands)[::-1]:
            log(f"e2e {name} fit, run {r + 1}/{runs}")
            times[name].append(wall(commands[name]))
    g = statistics.median(times["geofm"])
    p = statistics.median(times["terratorch"]) if peer else None
    rows = [row(f"end to end: `fit` 1 epoch ({E2E_CHIPS} train + {E2E_VAL} val chips), s",
                g, p, "s", note="model (b) with upernet 64 channels, batch 8, CLI start included")]
    return rows, {"runs": runs, "seconds": times, "configs": [str(geofm_cfg), str(tt_cfg)]}


# -- table ---------------------------------------------------------------------------------

def fmt(value: float | None, unit: str) -> str:
    """A number for the table."""
    if value is None:
        return "—"
    if unit == "":
        return f"{value:.0%}"
    if unit == "MB":
        return f"{value:.0f}"
    return f"{value:.3g}" if value < 100 else f"{value:.0f}"


def markdown(rows: list[Row]) -> str:
    """The table in Markdown: figure, geofm, TerraTorch, ratio, goal, note."""
    lines = ["| figure | geofm | TerraTorch | geofm/TT | goal | note |",
             "|---|---:|---:|---:|---|---|"]
    for r in rows:
        ratio = ("—" if r["ratio"] is None else f"{r['ratio']:.2f}" if r["ratio"] >= 0.1
                 else f"{r['ratio']:.1g}")
        goal = r["goal"]
        if goal and r["met"] is not None:
            goal = f"{goal}: {'met' if r['met'] else 'missed'}"
        lines.append(f"| {r['figure']} | {fmt(r['geofm'], r['unit'])} | "
                     f"{fmt(r['terratorch'], r['unit'])} | {ratio} | {goal} | {r['note']} |")
    return "\n".join(lines)


def machine() -> dict[str, Any]:
    """CPU model, cores and memory of this machine."""
    model = ""
    with open("/proc/cpuinfo") as f:
        for line in f:
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    with open("/proc/meminfo") as f:
        mem_kb = int(f.readline().split()[1])
    return {"cpu": model, "cores": os.cpu_count(), "memory_gb": round(mem_kb / 2**20, 1),
            "python": platform.python_version(), "bf16_instructions": bf16_instructions()}


def bf16_instructions() -> list[str]:
    """This CPU's bfloat16 instruction sets (AMX-BF16, AVX512-BF16); empty: emulated.

    Without them torch runs bf16 matmuls and convolutions through slow reference
    kernels (measured here on an AVX2-only AMD EPYC: 40x slower than fp32), and
    ``import terratorch``'s matmul precision 'medium' changes nothing.
    """
    with open("/proc/cpuinfo") as f:
        for line in f:
            if line.startswith("flags"):
                flags = set(line.split(":", 1)[1].split())
                return sorted(flags & {"amx_bf16", "avx512_bf16"})
    return []


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true",
                        help="fewer runs, no 8192² raster, one round (about 5 minutes)")
    parser.add_argument("--only", default=",".join(SECTIONS),
                        help=f"comma-separated sections of {', '.join(SECTIONS)}")
    parser.add_argument("--no-peer", action="store_true", help="skip TerraTorch")
    parser.add_argument("--output", type=Path, default=BENCH / "results" / "latest.json")
    args = parser.parse_args()
    only = [s.strip() for s in args.only.split(",") if s.strip()]
    unknown = sorted(set(only) - set(SECTIONS))
    if unknown:
        parser.error(f"unknown sections {unknown}; choose from {', '.join(SECTIONS)}")
    peer = not args.no_peer and peer_available()
    notes = []
    if not peer:
        notes.append("TerraTorch not measured: " + (
            "--no-peer given" if args.no_peer else
            f"{PEER_VENV} missing or `import terratorch` fails; run `make bench-peer`"))
        log(notes[-1])
    CACHE.mkdir(parents=True, exist_ok=True)
    started = time.time()
    load_start = loadavg()
    rows: list[Row] = []
    raw: dict[str, Any] = {}
    quick = args.quick
    steps: dict[str, Callable[[], tuple[list[Row], dict[str, Any]]]] = {
        "startup": lambda: bench_startup(1 if quick else 3, peer),
        "throughput": lambda: bench_throughput(4 if quick else 10, peer),
        "int8": lambda: bench_int8(2 if quick else 5, peer),
        "streaming": lambda: bench_streaming([1024, 4096] if quick else [1024, 4096, 8192],
                                             [1024] if quick else [1024, 4096], peer),
        "data": lambda: bench_data(2 if quick else 5),
        "e2e": lambda: bench_e2e(1, peer),
    }
    loads = {}
    for name in SECTIONS:
        if name in only:
            log(f"section {name} (load {loadavg()})")
            try:
                section_rows, raw[name] = steps[name]()
            except Exception as exc:  # one failed section leaves the others' numbers
                notes.append(f"section {name} failed: {type(exc).__name__}: "
                             f"{str(exc).strip()[-1500:]}")
                log(notes[-1])
                continue
            loads[name] = loadavg()
            rows.extend(section_rows)
            log(f"section {name} done:\n{markdown(section_rows)}")
    result = {
        "machine": machine(), "terratorch": _peer_version(raw) if peer else None,
        "quick": quick, "sections": only, "started": time.strftime(
            "%Y-%m-%d %H:%M:%S UTC", time.gmtime(started)),
        "minutes": round((time.time() - started) / 60, 1), "load_start": load_start,
        "load_after_section": loads, "load_end": loadavg(), "notes": notes, "rows": rows,
        "raw": raw,
    }
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(result, indent=2))
    m = result["machine"]
    print(f"\nMachine: {m['cpu']}, {m['cores']} cores, {m['memory_gb']} GB; torch threads as "
          f"default; TerraTorch {result['terratorch'] or 'absent'}; {result['minutes']} min; "
          f"load average {load_start} at start, {result['load_end']} at end.\n")
    print(markdown(rows))
    for note in notes:
        print(f"\nNote: {note}")
    print(f"\nWrote {args.output}")


def _peer_version(raw: dict[str, Any]) -> str | None:
    for per in raw.get("throughput", {}).get("models", {}).values():
        for run in per.get("terratorch", []):
            return str(run.get("terratorch"))
    proc = subprocess.run([str(PEER_PY), "-c", "import importlib.metadata as m; "
                           "print(m.version('terratorch'))"], capture_output=True, text=True)
    return proc.stdout.strip() or None


if __name__ == "__main__":
    main()
