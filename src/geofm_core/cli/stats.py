"""``geofm stats``: per-band means/stds (and class frequencies) of a training split.

Usage::

    geofm stats -c config.yaml            # the data: section of a geofm fit config
    geofm stats --data-root DIR --img-pattern '*.tif' [--bands 1 2 3 8 11 12]
    geofm stats -c config.yaml -o stats.yaml   # then ``means: stats.yaml`` in the config

The plain output is itself a YAML file (the tables are comments), so
``geofm stats -c config.yaml > stats.yaml`` gives a file that ``means:``/``stds:`` read.

The numbers come from :mod:`geofm_core.data.stats`; this module parses the command line
and prints them.
"""

from __future__ import annotations

import argparse
import io
import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any, TextIO

import numpy as np

from geofm_core.cli._common import command_parser, write_table
from geofm_core.data.stats import (
    BandStats,
    compute_stats,
    datamodule_from_config,
    stats_from_dataset,
)
from geofm_core.errors import ConfigurationError
from geofm_core.io.atomic import atomic_output

__all__ = ["main"]


def _round(values: np.ndarray) -> list[float]:
    return [float(f"{v:.6g}") for v in values.tolist()]


def band_labels(dataset: Any, count: int) -> list[str]:
    """The selected bands as the user knows them: names, else their index in the file.

    Position 0 of the statistics is not band 0 of the file when ``output_bands`` or
    ``--bands`` select a subset, so unnamed bands are labelled by the file index.
    """
    names = getattr(dataset, "output_band_names", None)
    if names:
        return [str(n) for n in names]
    indices = getattr(dataset, "band_indices", None) or range(count)
    return [f"index {i}" for i in indices]


def _report(stats: BandStats, bands: Sequence[str], class_names: Sequence[str] | None,
            ignore_index: int | None, as_json: bool, out: TextIO) -> None:
    result: dict[str, Any] = {
        "files": stats.files,
        "bands": list(bands),
        "means": _round(stats.mean),
        "stds": _round(stats.std),
        "min": _round(stats.minimum),
        "max": _round(stats.maximum),
        "valid_pixels": stats.count.tolist(),
    }
    if stats.class_counts:
        total = sum(c for k, c in stats.class_counts.items() if k != ignore_index)
        result["class_counts"] = {str(k): v for k, v in sorted(stats.class_counts.items())}
        result["class_frequencies"] = {
            str(k): (v / total if total else 0.0)
            for k, v in sorted(stats.class_counts.items()) if k != ignore_index
        }
    if as_json:
        json.dump(result, out, indent=2)
        out.write("\n")
        return
    # The tables are YAML comments so that the whole output is a valid statistics file.
    tables = io.StringIO()
    tables.write(f"{stats.files} files\n")
    rows: list[tuple[str, ...]] = [
        ("BAND", "NAME", "MEAN", "STD", "MIN", "MAX", "VALID PIXELS")
    ]
    for i in range(stats.bands):
        rows.append((str(i), result["bands"][i], f"{result['means'][i]:.6g}",
                     f"{result['stds'][i]:.6g}", f"{result['min'][i]:.6g}",
                     f"{result['max'][i]:.6g}", str(result["valid_pixels"][i])))
    write_table(rows, tables)
    if stats.class_counts:
        tables.write("\n")
        rows = [("CLASS", "NAME", "PIXELS", "FREQUENCY")]
        for key, count in sorted(stats.class_counts.items()):
            name = "(ignored)" if key == ignore_index else (
                class_names[key] if class_names and 0 <= key < len(class_names) else "")
            freq = result["class_frequencies"].get(str(key))
            rows.append((str(key), name, str(count), "-" if freq is None else f"{freq:.4f}"))
        write_table(rows, tables)
    for line in tables.getvalue().splitlines():
        out.write(f"# {line}".rstrip() + "\n")
    out.write("\n# paste into the data module's init_args, or give this file as "
              "means: FILE and stds: FILE\n")
    out.write(f"bands: {json.dumps(result['bands'])}\n")
    out.write(f"means: {json.dumps(result['means'])}\nstds: {json.dumps(result['stds'])}\n")


def _parse_band(token: str) -> str | int:
    return int(token) if token.isdigit() else token


def _parser() -> argparse.ArgumentParser:
    parser = command_parser(
        "stats", "Per-band means/stds (and class frequencies) of a training split.",
        json_output=True)
    parser.add_argument("-c", "--config", help="YAML with a data: section (class_path, "
                        "init_args) of a geofm_core.data data module")
    parser.add_argument("--data-root", help="a plain folder of images (instead of -c)")
    parser.add_argument("--img-pattern", default="*.tif", help="glob of the images (--data-root)")
    parser.add_argument("--bands", nargs="+", type=_parse_band,
                        help="bands by index, range '0-5' or name (with --dataset-bands)")
    parser.add_argument("--dataset-bands", nargs="+", help="names of the bands in each file")
    parser.add_argument("--constant-scale", type=float, default=1.0)
    parser.add_argument("-o", "--output", help="write the statistics to this YAML (or, "
                        "with --json, JSON) file instead of printing them")
    parser.add_argument("--overwrite", action="store_true",
                        help="replace an existing --output file")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``geofm stats``; returns the exit code."""
    args = _parser().parse_args(list(sys.argv[1:] if argv is None else argv))
    if (args.config is None) == (args.data_root is None):
        raise ConfigurationError("geofm stats: give either -c CONFIG or --data-root DIR")
    class_names: list[str] | None = None
    ignore_index: int | None = None
    if args.config is not None:
        dm = datamodule_from_config(args.config)
        stats = compute_stats(dm)
        reference = dm.datasets.get("train") if hasattr(dm, "datasets") else None
        bands = band_labels(reference, stats.bands)
        if getattr(dm, "task", "") == "segmentation":
            class_names = list(dm.class_names)
            ignore_index = dm.ignore_index
    else:
        from geofm_core.data.datasets import GeoTiffImageDataset

        dataset = GeoTiffImageDataset(
            args.data_root, img_pattern=args.img_pattern, output_bands=args.bands,
            dataset_bands=args.dataset_bands, constant_scale=args.constant_scale,
        )
        stats = stats_from_dataset(dataset, with_labels=False)
        bands = band_labels(dataset, stats.bands)
    if args.output is None:
        _report(stats, bands, class_names, ignore_index, args.json, sys.stdout)
        return 0
    with atomic_output(args.output, overwrite=args.overwrite) as temp:
        with Path(temp).open("w") as handle:
            _report(stats, bands, class_names, ignore_index, args.json, handle)
    print(f"wrote {args.output}", file=sys.stderr)
    return 0
