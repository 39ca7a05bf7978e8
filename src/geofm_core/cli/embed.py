"""``geofm embed``: a backbone's embeddings of rasters, as GeoParquet vectors or a dense GeoTIFF.

::

    geofm embed CHIPS/ --backbone timm:resnet18 --chips chips.parquet
    geofm embed scene.tif --ckpt model.ckpt --tile 224 --chips tiles.parquet
    geofm embed scene.tif --ckpt model.ckpt --dense patches.tif --dtype float16

The backbone comes by registry name (``--backbone``, ``--backbone-kwargs``) or from a
checkpoint of ``geofm fit`` (``--ckpt``: its backbone, and the band selection and
normalisation it was trained with); band options given here win over the checkpoint's.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from geofm_core.cli._common import command_parser
from geofm_core.errors import ConfigurationError

__all__ = ["main"]


def _parser() -> argparse.ArgumentParser:
    parser = command_parser(
        "embed", "Embed rasters with a backbone: one pooled vector per chip (or per tile) "
        "in a GeoParquet file, and/or per-patch embeddings of one raster as a GeoTIFF, "
        "streamed with flat memory.")
    parser.add_argument("input", help="a GeoTIFF, or a folder of GeoTIFF chips (--chips)")
    parser.add_argument("--chips", type=Path, help="write pooled vectors with footprints to "
                        "this GeoParquet file (.parquet)")
    parser.add_argument("--dense", type=Path, help="write per-patch embeddings of the input "
                        "raster to this GeoTIFF (.tif): one band per channel, one pixel per "
                        "patch")
    model = parser.add_argument_group("backbone (one of)")
    model.add_argument("--backbone", help="registry name, e.g. timm:resnet18 "
                       "(`geofm list backbone` shows them)")
    model.add_argument("--backbone-kwargs", default="{}", metavar="JSON",
                       help='its keyword arguments as JSON, e.g. \'{"pretrained": true}\'')
    model.add_argument("--ckpt", type=Path, help="a checkpoint of geofm fit: embed with its "
                       "backbone and its training's band selection and normalisation")
    parser.add_argument("--layer", type=int, default=-1,
                        help="which returned feature of the backbone (default -1, the last)")
    parser.add_argument("--pooling", choices=["mean", "max", "cls"], default="mean",
                        help="pooling of the patches into one vector per chip (default mean)")
    bands = parser.add_argument_group("bands and normalisation (as the data modules')")
    bands.add_argument("--bands", help="bands to read, 0-based indices or names (with "
                       "--dataset-bands), comma-separated, e.g. 1,2,3,8,11,12")
    bands.add_argument("--dataset-bands", help="names of the bands in each file, "
                       "comma-separated")
    bands.add_argument("--means", help="per selected band, comma-separated, or a file")
    bands.add_argument("--stds", help="per selected band, comma-separated, or a file")
    bands.add_argument("--scale", type=float, help="constant_scale of the raw values")
    parser.add_argument("--tile", type=int, help="--chips of a large raster: one row per "
                        "TILE x TILE window instead of one per file")
    parser.add_argument("--crop", type=int, help="--dense: tile size in pixels, a multiple "
                        "of the patch (default 224 rounded down to one)")
    parser.add_argument("--stride", type=int, help="--dense: step between tiles (default "
                        "--crop; a smaller one averages shared patches)")
    parser.add_argument("--dtype", choices=["float32", "float16"], default="float32",
                        help="--dense: value type of the GeoTIFF (default float32)")
    parser.add_argument("--crs", help="--chips: CRS of the footprints (default the "
                        "rasters'; needed when chips are in several CRSs), e.g. EPSG:4326")
    parser.add_argument("--batch-size", type=int, default=8, help="tiles per forward pass")
    parser.add_argument("--seed", type=int, help="seed torch before building the backbone "
                        "(reproducible embeddings of a backbone without pretrained weights)")
    parser.add_argument("--device", default="cpu", help="torch device, e.g. cuda")
    parser.add_argument("--overwrite", action="store_true", help="replace existing outputs")
    parser.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    return parser


def _csv(value: str | None) -> list[str] | None:
    return None if value is None else [v.strip() for v in value.split(",") if v.strip()]


def _numbers(value: str | None, option: str) -> list[float] | str | None:
    if value is None:
        return None
    if Path(value).is_file():
        return value
    try:
        return [float(v) for v in _csv(value) or []]
    except ValueError:
        raise ConfigurationError(
            f"{option} {value!r} is neither comma-separated numbers nor a file; give one "
            "value per selected band, e.g. 0.1,0.2,0.3"
        ) from None


def _bands(value: str | None) -> list[int | str] | None:
    items = _csv(value)
    if items is None:
        return None
    return [int(v) if v.lstrip("-").isdigit() else v for v in items]


def _check_args(args: argparse.Namespace) -> None:
    """Everything that can be checked before torch is imported."""
    from geofm_core.io.atomic import check_input_file, check_output

    if args.chips is None and args.dense is None:
        raise ConfigurationError(
            "geofm embed writes nothing without an output: give --chips OUT.parquet "
            "(pooled vectors) and/or --dense OUT.tif (per-patch embeddings)"
        )
    if (args.backbone is None) == (args.ckpt is None):
        raise ConfigurationError(
            "geofm embed needs one backbone: --backbone NAME (a registry name, "
            "`geofm list backbone` shows them) or --ckpt CKPT (a checkpoint of geofm fit)"
        )
    for option, path, suffixes in (("--chips", args.chips, (".parquet", ".geoparquet")),
                                   ("--dense", args.dense, (".tif", ".tiff"))):
        if path is not None and path.suffix.lower() not in suffixes:
            raise ConfigurationError(
                f"{option} {path}: the file should end in {' or '.join(suffixes)} "
                f"({'GeoParquet' if option == '--chips' else 'GeoTIFF'}); e.g. "
                f"{option} {path.with_suffix(suffixes[0]).name}"
            )
        if path is not None:
            check_output(path, overwrite=args.overwrite, inputs=[args.input])
    source = Path(args.input)
    if not source.exists():
        raise ConfigurationError(
            f"input {source} does not exist; give a GeoTIFF or a folder of GeoTIFF chips"
        )
    if args.dense is not None and source.is_dir():
        raise ConfigurationError(
            f"--dense embeds one raster, but {source} is a folder; give one GeoTIFF, or "
            "use --chips for a folder of chips"
        )
    if args.ckpt is not None:
        check_input_file(args.ckpt, "--ckpt", "give the .ckpt file written by `geofm fit`")
    try:
        kwargs = json.loads(args.backbone_kwargs)
    except json.JSONDecodeError as exc:
        raise ConfigurationError(
            f"--backbone-kwargs is not JSON ({exc}); e.g. '{{\"pretrained\": true}}'"
        ) from None
    if not isinstance(kwargs, dict):
        raise ConfigurationError("--backbone-kwargs must be a JSON object, e.g. '{\"depth\": 4}'")
    args.backbone_kwargs = kwargs


def _preprocessing(args: argparse.Namespace, saved: dict[str, Any]) -> Any:
    from geofm_core.data.preprocessing import Preprocessing

    settings = dict(saved)
    given = {"output_bands": _bands(args.bands), "dataset_bands": _csv(args.dataset_bands),
             "means": _numbers(args.means, "--means"), "stds": _numbers(args.stds, "--stds"),
             "constant_scale": args.scale}
    if given["output_bands"] is not None and given["means"] is None:
        settings.pop("means", None)  # the saved statistics belong to the saved bands
        settings.pop("stds", None)
    settings.update({k: v for k, v in given.items() if v is not None})
    return Preprocessing.from_settings(settings)


def _task(args: argparse.Namespace) -> tuple[Any, dict[str, Any]]:
    """The EmbeddingTask to run and the preprocessing settings it was trained with."""
    from geofm_core.tasks.embedding import EmbeddingTask

    if args.ckpt is None:
        return EmbeddingTask(backbone=args.backbone, backbone_kwargs=args.backbone_kwargs,
                             layer=args.layer, pooling=args.pooling), {}
    from geofm_core.inference.checkpoint import load_task
    from geofm_core.io.checkpoints import read_checkpoint

    checkpoint = read_checkpoint(args.ckpt)
    task = load_task(args.ckpt, checkpoint=checkpoint)
    saved = dict(checkpoint.get("datamodule_hyper_parameters") or {})
    backbone = task.model.backbone if isinstance(task, EmbeddingTask) else getattr(
        task.model, "backbone", None)
    if backbone is None:
        raise ConfigurationError(
            f"{args.ckpt}: its model ({type(task.model).__name__}) has no backbone "
            "submodule to embed with; give --backbone instead"
        )
    return EmbeddingTask(model=backbone, layer=args.layer, pooling=args.pooling), saved


def _check_bands(model: Any, prep: Any, path: Path) -> None:
    """The bands read from ``path`` are as many as the backbone takes, before any forward."""
    import rasterio

    from geofm_core.tasks.guards import model_input_bands

    built = model_input_bands(model)
    with rasterio.open(path) as src:
        plan = prep.plan(path, src.count, src.dtypes)
    if built is not None and built[0] != plan.bands:
        raise ConfigurationError(
            f"the backbone takes {built[0]} input bands ({built[1]}) but {plan.bands} are "
            f"read from {path}; select {built[0]} bands with --bands (0-based, e.g. "
            f"--bands {','.join(str(i) for i in range(built[0]))}) or build the backbone "
            "for these bands (--backbone-kwargs, e.g. in_chans or bands)"
        )


def main(argv: Sequence[str]) -> int:
    """Run ``geofm embed``; returns the exit code."""
    args = _parser().parse_args(list(argv))
    _check_args(args)
    from geofm_core.cli._common import torch_device

    device = torch_device(args.device)
    from geofm_core.inference.embedding import embed_chips, embed_dense, raster_files

    files = raster_files(args.input)
    if args.seed is not None:
        import torch

        torch.manual_seed(args.seed)
    task, saved = _task(args)
    prep = _preprocessing(args, saved)
    _check_bands(task.model, prep, files[0])
    task.eval().to(device)
    model = task.model

    def embed(tiles: Any) -> Any:
        return model(tiles.to(device))

    progress = not args.no_progress
    described = {"backbone": args.backbone or str(args.ckpt), "layer": str(args.layer),
                 "pooling": args.pooling}
    if args.chips is not None:
        from geofm_core.io.geoparquet import write_embeddings

        rows, crs = embed_chips(embed, files, prep, tile=args.tile,
                                batch_size=args.batch_size, crs=args.crs, progress=progress)
        write_embeddings(args.chips, rows, crs, overwrite=args.overwrite, inputs=files,
                         metadata=described)
        sys.stdout.write(f"wrote {args.chips} ({len(rows)} rows of {rows[0].vector.shape[-1]} "
                         f"values, CRS {crs})\n")
    if args.dense is not None:
        result = embed_dense(embed, files[0], args.dense, prep, crop=args.crop,
                             stride=args.stride, batch_size=args.batch_size, dtype=args.dtype,
                             overwrite=args.overwrite, progress=progress, tags=described)
        height, width = result.shape
        sys.stdout.write(f"wrote {result.output} ({width} x {height} patches of "
                         f"{result.patch} px, {result.channels} bands {args.dtype}, "
                         f"{result.tiles} tiles)\n")
    return 0
