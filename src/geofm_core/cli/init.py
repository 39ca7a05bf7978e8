"""``geofm init``: a starter config written from the data itself.

Usage::

    geofm init --images chips/ --labels masks/ -o config.yaml     # segmentation / regression
    geofm init --images chips/ -o config.yaml                     # class subfolders

It reads every file's header (bands, dtype, nodata, size, band descriptions) and every
label, and writes a config whose data section is right by construction: the band
names when the files carry them, nodata handling, the classes found in the labels (with
their frequencies as comments), a train/validation split (two id files beside the
config), the training split's means/stds (computed as ``geofm stats`` does), and tiling
for the chip size. The model is a small, safe default to replace (``geofm list
backbone``); the config is checked by building its data module before it is written.
"""

from __future__ import annotations

import argparse
import datetime
import sys
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from geofm_core.cli._common import command_parser
from geofm_core.cli.init_backbone import choose_backbone, data_band_names
from geofm_core.errors import ConfigurationError
from geofm_core.io.atomic import atomic_outputs

__all__ = ["inspect_images", "main", "starter_config"]


def _parser() -> argparse.ArgumentParser:
    parser = command_parser("init", "Write a starter config from a folder of GeoTIFFs.")
    parser.add_argument("--images", required=True, help="folder of image chips (GeoTIFF)")
    parser.add_argument("--labels", help="folder of label rasters paired by name "
                        "(segmentation: integer classes; regression: float values); without "
                        "it, images in class subfolders make a classification config")
    parser.add_argument("--img-pattern", default="*.tif", help="glob of the images")
    parser.add_argument("--label-pattern", default="*.tif", help="glob of the labels")
    parser.add_argument("--val-fraction", type=float, default=0.2,
                        help="share of the chips held out for validation (default 0.2)")
    parser.add_argument("--bands", help="names of the images' bands in file order, comma "
                        "separated (e.g. B1,B2,...,B12 or BLUE,GREEN,RED,NIR_NARROW), when "
                        "the files do not carry them as band descriptions")
    parser.add_argument("-o", "--output", required=True, help="the config file to write")
    parser.add_argument("--overwrite", action="store_true", help="replace existing files")
    return parser


def inspect_images(files: Sequence[Path]) -> dict[str, Any]:
    """Bands, dtype, nodata, size and band names shared by every image (headers only).

    Raises:
        ConfigurationError: A file is not a raster, or the files disagree on bands or dtype.
    """
    import rasterio

    first: dict[str, Any] | None = None
    sizes: Counter[tuple[int, int]] = Counter()
    for path in files:
        try:
            with rasterio.open(path) as src:
                header = {"count": src.count, "dtype": src.dtypes[0], "nodata": src.nodata,
                          "names": list(src.descriptions), "file": path.name}
                sizes[(src.width, src.height)] += 1
        except rasterio.errors.RasterioIOError as exc:
            raise ConfigurationError(f"{path} is not a readable raster ({exc})") from exc
        if first is None:
            first = header
        elif (header["count"], header["dtype"]) != (first["count"], first["dtype"]):
            raise ConfigurationError(
                f"{header['file']} has {header['count']} bands of {header['dtype']} but "
                f"{first['file']} has {first['count']} of {first['dtype']}; one config "
                "needs chips of one layout: move the odd files out"
            )
    assert first is not None
    names = first["names"]
    named = all(names) and len(set(names)) == len(names)
    return {**first, "names": names if named else None, "sizes": sizes}


def _label_summary(files: Sequence[Path]) -> dict[str, Any]:
    import rasterio

    counts: Counter[int] = Counter()
    nodata_seen = False
    kinds = set()
    for path in files:
        with rasterio.open(path) as src:
            values = src.read(1)
            kinds.add(values.dtype.kind)
            valid = np.ones(values.shape, bool) if src.nodata is None else values != src.nodata
            nodata_seen |= not bool(valid.all())
            if values.dtype.kind in "iu":
                found, n = np.unique(values[valid], return_counts=True)
                counts.update({int(v): int(c) for v, c in zip(found, n, strict=True)})
    task = "regression" if kinds & {"f"} else "segmentation"
    return {"task": task, "counts": counts, "nodata": nodata_seen}


def _split(keys: Sequence[str], fraction: float) -> tuple[list[str], list[str]]:
    if not 0 < fraction < 1:
        raise ConfigurationError(f"--val-fraction is {fraction}; give a share between 0 and 1")
    if len(keys) < 2:
        raise ConfigurationError(
            f"found {len(keys)} chip; a training and a validation split need at least two")
    order = list(np.random.default_rng(0).permutation(sorted(keys)))
    n_val = min(len(keys) - 1, max(1, round(fraction * len(keys))))
    return sorted(order[n_val:]), sorted(order[:n_val])


def _tiling(sizes: Counter[tuple[int, int]]) -> dict[str, int]:
    width, height = sizes.most_common(1)[0][0]
    crop = max(32, min(width, height) // 32 * 32)
    return {"crop": crop, "stride": crop * 7 // 8, "batch_size": 8}


def starter_config(images: Path, labels: Path | None, img_pattern: str, label_pattern: str,
                   split_files: tuple[Path, Path], fraction: float,
                   split_names: tuple[str, str] = ("train split", "val split"),
                   bands: list[str] | None = None,
                   ) -> tuple[dict[str, Any], list[str]]:
    """The config (a mapping) and its header comments; the split files' ids are written.

    ``split_files`` are written now (temporary files, while the config is made);
    ``split_names`` are their final names, for the comments.

    Raises:
        ConfigurationError: The folders hold nothing usable (named in the message).
    """
    from geofm_core.data.files import find_files, pair_by_key

    if labels is None:
        return _classification_config(images, img_pattern, split_files, fraction,
                                      split_names, bands)
    found = find_files(images, img_pattern, "--images")
    notes: list[str] = []
    init: dict[str, Any] = {"train_data_root": str(images), "img_pattern": img_pattern}
    label_files = find_files(labels, label_pattern, "--labels")
    pairs = pair_by_key(found, label_files)
    header = inspect_images([p[1] for p in pairs])
    summary = _label_summary([p[2] for p in pairs])
    train_ids, val_ids = _split([p[0] for p in pairs], fraction)
    split_files[0].write_text("\n".join(train_ids) + "\n")
    split_files[1].write_text("\n".join(val_ids) + "\n")
    init.update(train_label_data_root=str(labels), label_pattern=label_pattern,
                train_split=str(split_files[0]), val_split=str(split_files[1]))
    notes.append(f"{len(pairs)} chips: {len(train_ids)} for training, {len(val_ids)} for "
                 f"validation ({split_names[0]}, {split_names[1]})")
    notes.append(f"{header['count']} bands of {header['dtype']}, nodata {header['nodata']}; "
                 f"chip sizes (width x height): " + ", ".join(
                     f"{w} x {h} ({n})" for (w, h), n in header["sizes"].most_common()))
    band_names = _band_settings(header, bands, init, notes)
    model: dict[str, Any] = {"model_factory": "geofm:encoder_decoder"}
    task_class = "SemanticSegmentationTask"
    if summary["task"] == "segmentation":
        counts: Counter[int] = summary["counts"]
        negative = sorted(v for v in counts if v < 0)
        if not counts or len(negative) > 1 or max(counts) < 0:
            raise ConfigurationError(
                f"labels under {labels} hold {sorted(counts)[:5]}: classes are 0, 1, 2, ... "
                "and at most one negative value marks pixels without a label")
        if negative:
            # A negative label value is the usual "no label" mark (Sen1Floods11's -1) even
            # where the files declare no nodata value.
            ignored = negative[0]
            init["ignore_index"] = model["ignore_index"] = ignored
            notes.append(f"label value {ignored} ({counts.pop(ignored)} pixels) marks pixels "
                         f"without a label: ignored (ignore_index {ignored})")
        num_classes = max(counts) + 1
        class_names = [f"class_{i}" for i in range(num_classes)]
        total = sum(counts.values())
        notes.append("classes (pixels, share): " + ", ".join(
            f"{i}: {counts.get(i, 0)} ({counts.get(i, 0) / total:.1%})"
            for i in range(num_classes)) + "; rename class_names")
        init.update(num_classes=num_classes, class_names=list(class_names))
        model.update(num_classes=num_classes, class_names=list(class_names), loss="ce")
        if summary["nodata"] and not negative:
            init["ignore_index"] = model["ignore_index"] = -1
            notes.append("label nodata pixels are ignored (ignore_index -1)")
        module = "GeoTiffSegmentationDataModule"
    else:
        task_class, module = "PixelwiseRegressionTask", "GeoTiffRegressionDataModule"
        model["loss"] = "mse"
    choice = choose_backbone(band_names, header["count"])
    notes.append(choice.note + (f"; also fit: {', '.join(choice.alternatives)}"
                                if choice.alternatives else ""))
    if choice.output_bands:
        init["output_bands"] = choice.output_bands
    model["model_args"] = {
        "backbone": choice.backbone, "backbone_kwargs": choice.kwargs,
        "decoder": "geofm:fcn", "decoder_kwargs": {"channels": 128},
    }
    model["tiled_inference"] = _tiling(header["sizes"])
    model["plot_on_val"] = 2  # figures of image, label and prediction in the logger
    init.update(batch_size=8, train_augmentations=["hflip", "vflip"])
    config = {
        "seed_everything": 0,
        "trainer": {"accelerator": "auto", "max_epochs": 50, "logger": {
            "class_path": "lightning.pytorch.loggers.TensorBoardLogger",
            "init_args": {"save_dir": "runs"}}},
        "model": {"class_path": task_class, "init_args": model},
        "data": {"class_path": module, "init_args": init},
    }
    return config, notes


def _band_settings(header: dict[str, Any], bands: list[str] | None, init: dict[str, Any],
                   notes: list[str]) -> list[str] | None:
    """Band names and nodata handling of the data module; returns geofm band names."""
    names = bands or data_band_names(header["names"])
    if bands and len(bands) != header["count"]:
        raise ConfigurationError(
            f"--bands names {len(bands)} bands but the images hold {header['count']}; name "
            "every band of the files, in order")
    if names:
        init["dataset_bands"] = names
    elif header["names"]:
        init["dataset_bands"] = header["names"]
    else:
        notes.append("the files carry no band names: give them with --bands (or "
                     "dataset_bands) to select bands by name and to match a backbone's "
                     "pretrained bands")
    if header["nodata"] is not None:
        init["no_data_replace"] = 0
    return names


def _classification_config(images: Path, img_pattern: str, split_files: tuple[Path, Path],
                           fraction: float, split_names: tuple[str, str],
                           bands: list[str] | None) -> tuple[dict[str, Any], list[str]]:
    """Scene classification from class subfolders (``images/<class>/<chips>``)."""
    from geofm_core.data.files import find_files

    if not images.is_dir():
        raise ConfigurationError(f"--images: {str(images)!r} is not a folder")
    classes = sorted(p.name for p in images.iterdir()
                     if p.is_dir() and any(p.glob(img_pattern)))
    if len(classes) < 2:
        raise ConfigurationError(
            f"--images {images} has {len(classes)} class subfolders holding {img_pattern!r} "
            "files; without --labels, geofm init expects one subfolder per class (at least "
            "two), e.g. images/water/*.tif and images/land/*.tif; give --labels DIR for "
            "label rasters paired by name")
    by_class = {c: find_files(images / c, img_pattern, f"--images {c}/") for c in classes}
    header = inspect_images([p for files in by_class.values() for p in files.values()])
    train_ids: list[str] = []
    val_ids: list[str] = []
    for name, files in by_class.items():  # stratified: each class keeps its share
        keys = [f"{name}/{key}" for key in files]
        if len(keys) == 1:
            train_ids += keys
            continue
        train, val = _split(keys, fraction)
        train_ids, val_ids = train_ids + train, val_ids + val
    if not val_ids:
        raise ConfigurationError(
            f"every class under {images} holds one chip: a validation split needs more")
    split_files[0].write_text("\n".join(train_ids) + "\n")
    split_files[1].write_text("\n".join(val_ids) + "\n")
    total = sum(len(f) for f in by_class.values())
    notes = [f"{total} chips in {len(classes)} class folders: {len(train_ids)} for training, "
             f"{len(val_ids)} for validation, each class split alike ({split_names[0]}, "
             f"{split_names[1]})",
             f"{header['count']} bands of {header['dtype']}, nodata {header['nodata']}; "
             "chip sizes (width x height): " + ", ".join(
                 f"{w} x {h} ({n})" for (w, h), n in header["sizes"].most_common()),
             "classes (chips, share): " + ", ".join(
                 f"{c}: {len(f)} ({len(f) / total:.1%})" for c, f in by_class.items())]
    init: dict[str, Any] = {"train_data_root": str(images), "img_pattern": img_pattern,
                            "train_split": str(split_files[0]),
                            "val_split": str(split_files[1])}
    names = _band_settings(header, bands, init, notes)
    choice = choose_backbone(names, header["count"])
    notes.append(choice.note)
    if choice.output_bands:
        init["output_bands"] = choice.output_bands
    init.update(num_classes=len(classes), class_names=classes, batch_size=8,
                train_augmentations=["hflip", "vflip"])
    model = {"model_factory": "geofm:encoder_decoder", "num_classes": len(classes),
             "class_names": classes, "loss": "ce", "plot_on_val": 2,
             "model_args": {"backbone": choice.backbone, "backbone_kwargs": choice.kwargs}}
    config = {
        "seed_everything": 0,
        "trainer": {"accelerator": "auto", "max_epochs": 50, "logger": {
            "class_path": "lightning.pytorch.loggers.TensorBoardLogger",
            "init_args": {"save_dir": "runs"}}},
        "model": {"class_path": "ClassificationTask", "init_args": model},
        "data": {"class_path": "GeoTiffClassificationDataModule", "init_args": init},
    }
    return config, notes


def _statistics(config: dict[str, Any]) -> tuple[list[float], list[float]]:
    """Means/stds of the training split, by building the data module as `geofm fit` will."""
    import importlib

    from geofm_core.cli.train_config import SHORT_NAMES
    from geofm_core.data.stats import compute_stats

    section = config["data"]
    cls = getattr(importlib.import_module(SHORT_NAMES[section["class_path"]]),
                  section["class_path"])
    stats = compute_stats(cls(**section["init_args"]))
    return ([float(f"{v:.6g}") for v in stats.mean.tolist()],
            [float(f"{v:.6g}") for v in stats.std.tolist()])


def _band_option(text: str | None) -> list[str] | None:
    """``--bands`` as geofm band names; an unknown name is one error listing the valid ones."""
    if not text:
        return None
    from geofm_core.data.bands import check_dataset_bands

    return check_dataset_bands([b for b in text.split(",") if b.strip()], field="--bands")


def main(argv: Sequence[str]) -> int:
    """Run ``geofm init``; returns the exit code."""
    import yaml

    args = _parser().parse_args(list(argv))
    output = Path(args.output)
    splits = (output.with_name(f"{output.stem}.train.txt"),
              output.with_name(f"{output.stem}.val.txt"))
    with atomic_outputs([output, *splits], overwrite=args.overwrite) as temps:
        config, notes = starter_config(
            Path(args.images), Path(args.labels) if args.labels else None, args.img_pattern,
            args.label_pattern, (temps[1], temps[2]), args.val_fraction,
            (splits[0].name, splits[1].name), _band_option(args.bands))
        means, stds = _statistics(config)
        init = config["data"]["init_args"]
        init.update(means=means, stds=stds, train_split=str(splits[0]),
                    val_split=str(splits[1]))
        today = datetime.date.today().isoformat()
        lines = [f"# geofm starter config, written by `geofm init` on {today} from",
                 f"# {args.images}" + (f" and {args.labels}" if args.labels else ""), "#"]
        lines += [f"# {note}" for note in notes]
        lines += ["# means/stds: the training split's, as `geofm stats -c` computes them",
                  "# `geofm list backbone --band NAME` shows other backbones", ""]
        temps[0].write_text("\n".join(lines) + "\n" + yaml.safe_dump(
            config, sort_keys=False, default_flow_style=None, width=88))
    sys.stdout.write(f"wrote {output} ({splits[0].name}, {splits[1].name} beside it); "
                     f"check it with geofm fit -c {output} --trainer.fast_dev_run 1\n")
    return 0
