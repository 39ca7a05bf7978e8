"""Side-by-side timing in lockstep: geofm and TerraTorch alive at once, calls alternating.

    python bench/lockstep.py check --model c --rounds 12 --load 2

Two rounds of separate processes (the first harness) do not cancel a load that changes
within a minute: under a load average of 3 on 2 cores, ratios for the same models ranged
from 0.19 to 5.4. Here each framework runs in a long-lived worker process that has built
its model and waits on stdin; the driver asks them in turn for one call (an inference
batch or a training step) and reads back its seconds. One round is a pair of calls a few
seconds apart, in ABBA order over rounds, so a load that lasts longer than a call slows
both sides of a pair alike; the figure reported is the median of the per-round ratios,
with its quartiles, and the load average around the measurement.

``worker`` is the child side (``python bench/lockstep.py worker --framework geofm
--model a``); ``check`` measures one pair on a quiet machine and again under ``--load``
busy processes and prints both medians: the harness is trusted when they agree within
10 %.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import IO, Any

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
#: OpenMP threads that wait for work sleep instead of spinning: a spinning thread burns
#: CPU time that is not work, which would make CPU seconds depend on the load. Both
#: frameworks get the same environment.
WORKER_ENV = {"OMP_WAIT_POLICY": "PASSIVE"}
#: A wall-clock ratio is trusted when the load stayed within the cores and the
#: interquartile range of the per-round ratios is within this share of the median.
TRUSTED_SPREAD = 0.2


# -- worker (child process) ----------------------------------------------------------------

def worker(framework: str, model_key: str, autocast: str, matmul_precision: str) -> None:
    """Build the model, then answer ``infer`` / ``train`` / ``quit`` lines on stdin."""
    # Results go to the original stdout; anything a library prints goes to stderr.
    out: IO[str] = os.fdopen(os.dup(1), "w")
    os.dup2(2, 1)
    sys.path.insert(0, str(BENCH))
    import contextlib

    import torch
    from throughput import (
        BANDS,
        BATCH,
        CLASSES,
        SIZE,
        build_geofm,
        build_terratorch,
        forward_gflop,
        main_output,
    )

    if framework == "terratorch":
        import terratorch  # noqa: F401  (sets matmul precision 'medium' process-wide)
    if matmul_precision != "as-imported":
        torch.set_float32_matmul_precision(matmul_precision)
    torch.manual_seed(0)
    if framework == "terratorch":  # TerraTorch's (c) is the layout c_layout reproduces
        model = build_terratorch("c" if model_key == "c_layout" else model_key)
    else:
        model = build_geofm(model_key)
    x = torch.randn(BATCH, BANDS, SIZE, SIZE)
    target = torch.randint(0, CLASSES, (BATCH, SIZE, SIZE))
    model.eval()
    gflop = forward_gflop(model, x)
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4)
    loss_fn = torch.nn.CrossEntropyLoss()

    def mixed() -> Any:
        if autocast == "none":
            return contextlib.nullcontext()
        return torch.autocast("cpu", dtype=torch.bfloat16)

    def infer() -> None:
        model.eval()
        with torch.inference_mode(), mixed():
            main_output(model(x))

    def train() -> None:
        model.train()
        optimizer.zero_grad(set_to_none=True)
        with mixed():
            loss = loss_fn(main_output(model(x)).float(), target)
        loss.backward()
        optimizer.step()

    def peak_rss() -> dict[str, float]:
        return {"peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}

    calls = {"infer": infer, "train": train}
    out.write(json.dumps({"ready": True, "gflop_per_sample": gflop, "batch": BATCH,
                          "params": sum(p.numel() for p in model.parameters()),
                          "matmul_precision": torch.get_float32_matmul_precision(),
                          "threads": torch.get_num_threads()}) + "\n")
    out.flush()
    for line in sys.stdin:
        what = line.strip()
        if what == "quit":
            break
        if what == "rss":
            out.write(json.dumps(peak_rss()) + "\n")
            out.flush()
            continue
        start, cpu = time.perf_counter(), time.process_time()
        calls[what]()
        out.write(json.dumps({"s": time.perf_counter() - start,
                              "cpu": time.process_time() - cpu}) + "\n")
        out.flush()
    out.write(json.dumps(peak_rss()) + "\n")
    out.flush()


# -- driver --------------------------------------------------------------------------------

class Worker:
    """A worker process: ``call("infer")`` returns the seconds of one call."""

    def __init__(self, python: str, framework: str, model: str, autocast: str = "none",
                 matmul_precision: str = "highest") -> None:
        """Start the worker and wait until its model is built."""
        self.name = framework if autocast == "none" else f"{framework} {autocast}"
        self._stderr = tempfile.TemporaryFile(mode="w+")
        self.proc = subprocess.Popen(
            [python, str(BENCH / "lockstep.py"), "worker", "--framework", framework,
             "--model", model, "--autocast", autocast, "--matmul-precision",
             matmul_precision],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=self._stderr, text=True,
            cwd=ROOT, env={**os.environ, **WORKER_ENV})
        self.info = self._read()

    def _read(self) -> dict[str, Any]:
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()
        if not line:
            self._stderr.seek(0)
            raise RuntimeError(f"{self.name} worker died:\n{self._stderr.read()[-3000:]}")
        return json.loads(line)  # type: ignore[no-any-return]

    def call(self, what: str) -> tuple[float, float]:
        """Run one ``infer`` or ``train`` call in the worker: wall and CPU seconds."""
        assert self.proc.stdin is not None
        self.proc.stdin.write(what + "\n")
        self.proc.stdin.flush()
        answer = self._read()
        return float(answer["s"]), float(answer["cpu"])

    def peak_rss_mb(self) -> float:
        """The worker's peak RSS so far, MB."""
        assert self.proc.stdin is not None
        self.proc.stdin.write("rss\n")
        self.proc.stdin.flush()
        return float(self._read()["peak_rss_mb"])

    def close(self) -> dict[str, Any]:
        """Stop the worker; its peak RSS."""
        assert self.proc.stdin is not None
        self.proc.stdin.write("quit\n")
        self.proc.stdin.flush()
        stats = self._read()
        self.proc.wait(timeout=60)
        self._stderr.close()
        return stats


def _median_and_quartiles(values: list[float]) -> tuple[float, float, float]:
    if len(values) == 1:
        return values[0], values[0], values[0]
    q1, _, q3 = statistics.quantiles(values, n=4)
    return statistics.median(values), q1, q3


def lockstep(first: Worker, second: Worker | None, what: str, rounds: int) -> dict[str, Any]:
    """Alternate calls of two workers; median and quartiles of ``t_second / t_first``.

    ``first`` is geofm, so a ratio is geofm's speed over the peer's: of wall seconds
    (``ratio_wall``) and of process CPU seconds (``ratio_cpu``, all threads; it measures
    the work a call costs and hardly moves with the load). ``ratio`` is the wall ratio
    when it can be trusted (load within the cores, spread within
    :data:`TRUSTED_SPREAD`), else the CPU ratio, and ``ratio_source`` says which.
    Without ``second`` only ``first`` is timed (no ratio).
    """
    workers = [w for w in (first, second) if w is not None]
    for w in workers:  # warm-up: allocator, oneDNN kernels, autograd buffers
        w.call(what)
    loads = [os.getloadavg()[0]]
    times: dict[str, list[float]] = {w.name: [] for w in workers}
    cpu: dict[str, list[float]] = {w.name: [] for w in workers}
    wall_ratios, cpu_ratios = [], []
    for r in range(rounds):
        pair = {}
        for w in workers if r % 2 == 0 else workers[::-1]:
            pair[w.name] = w.call(what)
            times[w.name].append(pair[w.name][0])
            cpu[w.name].append(pair[w.name][1])
        if second is not None:
            wall_ratios.append(pair[second.name][0] / pair[first.name][0])
            cpu_ratios.append(pair[second.name][1] / pair[first.name][1])
        loads.append(os.getloadavg()[0])
    batch = first.info["batch"]
    cores = os.cpu_count() or 1
    result: dict[str, Any] = {
        "what": what, "rounds": rounds, "seconds": times, "cpu_seconds": cpu,
        "samples_per_s": {k: batch / statistics.median(v) for k, v in times.items()},
        "load_max": round(max(loads), 2), "cores": cores,
    }
    if wall_ratios:
        wall, q1, q3 = _median_and_quartiles(wall_ratios)
        cpu_median, c1, c3 = _median_and_quartiles(cpu_ratios)
        trusted = result["load_max"] <= cores and (q3 - q1) <= TRUSTED_SPREAD * wall
        result.update(
            ratios_wall=wall_ratios, ratio_wall=wall, ratio_wall_q1=q1, ratio_wall_q3=q3,
            ratios_cpu=cpu_ratios, ratio_cpu=cpu_median, ratio_cpu_q1=c1, ratio_cpu_q3=c3,
            wall_trusted=trusted, ratio=wall if trusted else cpu_median,
            ratio_source="wall" if trusted else "cpu")
    return result


def spread_note(result: dict[str, Any]) -> str:
    """How the ratio was measured: rounds, spread, load, and which clock it is from."""
    if "ratio" not in result:
        return f"load {result['load_max']}"
    note = (f"median of {result['rounds']} lockstep rounds; wall {result['ratio_wall']:.2f} "
            f"(IQR {result['ratio_wall_q1']:.2f}-{result['ratio_wall_q3']:.2f}), CPU "
            f"{result['ratio_cpu']:.2f} (IQR {result['ratio_cpu_q1']:.2f}-"
            f"{result['ratio_cpu_q3']:.2f}); load {result['load_max']}")
    if result["load_max"] > result["cores"]:
        note += f" LOADED (above {result['cores']} cores)"
    if result["ratio_source"] == "cpu":
        note += "; wall ratio not trusted, the ratio is CPU seconds"
    return note


def _spin(stop_at: float) -> None:
    while time.time() < stop_at:
        pass


def check(model: str, rounds: int, load: int, peer_python: str, what: str) -> dict[str, Any]:
    """The same pair quiet and under ``load`` busy processes: do the medians agree?"""
    out: dict[str, Any] = {"model": model, "what": what}
    for label, busy in (("quiet", 0), ("loaded", load)):
        geofm = Worker(sys.executable, "geofm", model)
        peer = Worker(peer_python, "terratorch", model)
        procs = [multiprocessing.Process(target=_spin, args=(time.time() + 3600,))
                 for _ in range(busy)]
        for p in procs:
            p.start()
        try:
            out[label] = lockstep(geofm, peer, what, rounds)
        finally:
            for p in procs:
                p.terminate()
            geofm.close()
            peer.close()
    for clock in ("wall", "cpu"):
        diff = out["loaded"][f"ratio_{clock}"] / out["quiet"][f"ratio_{clock}"] - 1
        out[f"difference_{clock}"] = diff
    # what `make bench` reports: the quiet run's ratio against the loaded run's
    out["difference"] = out["loaded"]["ratio"] / out["quiet"]["ratio"] - 1
    out["within_10_percent"] = abs(out["difference"]) <= 0.10
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    w = sub.add_parser("worker")
    w.add_argument("--framework", choices=["geofm", "terratorch"], required=True)
    w.add_argument("--model", required=True)
    w.add_argument("--autocast", default="none", choices=["none", "bf16"])
    w.add_argument("--matmul-precision", default="highest",
                   choices=["as-imported", "highest", "high", "medium"])
    c = sub.add_parser("check")
    c.add_argument("--model", default="c")
    c.add_argument("--what", default="infer", choices=["infer", "train"])
    c.add_argument("--rounds", type=int, default=12)
    c.add_argument("--load", type=int, default=2, help="busy processes in the loaded run")
    c.add_argument("--peer-python", default=str(ROOT / ".venv-terratorch" / "bin" / "python"))
    args = parser.parse_args()
    if args.command == "worker":
        worker(args.framework, args.model, args.autocast, args.matmul_precision)
        return
    json.dump(check(args.model, args.rounds, args.load, args.peer_python, args.what),
              sys.stdout)
    sys.stdout.write("\n")


if __name__ == "__main__":
    main()
