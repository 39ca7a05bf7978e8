"""geofm from Python, without the CLI: data, model by name, training, a map.

The tutorial docs/tutorials/python_api.md walks through it. Run it on a folder made by
``make_flood_chips.py`` (``images/`` and ``labels/`` paired by name) and a scene::

    python examples/tutorials/python_api.py my_data Spain_7370579_S2Hand.tif flood_map.tif

``--backbone``, ``--epochs`` and ``--no-pretrained`` change the model and the length
of the run (the tests use a tiny backbone and one epoch).
"""

from __future__ import annotations

import argparse
from pathlib import Path

from lightning.pytorch import Trainer, seed_everything

from geofm_core import get_registry
from geofm_core.data import GeoTiffSegmentationDataModule
from geofm_core.data.preprocessing import Preprocessing
from geofm_core.data.stats import compute_stats
from geofm_core.inference.checkpoint import load_task
from geofm_core.inference.raster import predict_raster
from geofm_core.io.checkpoints import read_checkpoint
from geofm_core.io.gis import OutputLabels
from geofm_core.tasks import SemanticSegmentationTask

S2_BANDS = ["B1", "B2", "B3", "B4", "B5", "B6", "B7", "B8", "B8A", "B9", "B10", "B11", "B12"]


def main() -> None:
    """Train on a chip folder, save a checkpoint, predict a scene."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("folder", type=Path, help="folder with images/ and labels/")
    parser.add_argument("scene", type=Path, help="a GeoTIFF to predict")
    parser.add_argument("output", type=Path, help="the class map to write")
    parser.add_argument("--backbone", default="timm:resnet18", help="a registry backbone")
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--no-pretrained", action="store_true", help="random initialisation")
    args = parser.parse_args()
    seed_everything(0)

    # 1. Components are found by name, as in a YAML config.
    registry = get_registry()
    print("backbone:", registry.get("backbone", args.backbone).qualified_name)

    # 2. The data: a folder of chips, described by options (no dataset class to write).
    options = {
        "train_data_root": str(args.folder / "images"),
        "train_label_data_root": str(args.folder / "labels"),
        "val_data_root": str(args.folder / "images"),
        "val_label_data_root": str(args.folder / "labels"),
        "dataset_bands": S2_BANDS,
        "output_bands": ["RED", "GREEN", "BLUE"],  # ImageNet weights take R, G, B
        "no_data_replace": 0, "num_classes": 2, "class_names": ["land", "water"],
        "ignore_index": -1, "batch_size": 4, "train_augmentations": ["hflip", "vflip"],
    }
    # Normalisation statistics of the training images, as `geofm stats` computes them.
    stats = compute_stats(GeoTiffSegmentationDataModule(**options))
    datamodule = GeoTiffSegmentationDataModule(
        **options, means=stats.mean.tolist(), stds=stats.std.tolist())

    # 3. The task: a model composed from registry names by the encoder_decoder factory.
    task = SemanticSegmentationTask(
        model_factory="geofm:encoder_decoder",
        model_args={
            "backbone": args.backbone,
            "backbone_kwargs": {"in_chans": 3, "pretrained": not args.no_pretrained},
            "decoder": "geofm:fcn", "decoder_kwargs": {"channels": 64},
            "num_classes": 2,
        },
        num_classes=2, class_names=["land", "water"], ignore_index=-1, loss="ce", lr=1e-3,
        tiled_inference={"crop": 128, "stride": 112, "batch_size": 4},
    )

    # 4. A plain Lightning Trainer: callbacks, loggers and strategies work as usual.
    trainer = Trainer(max_epochs=args.epochs, accelerator="auto", logger=False,
                      enable_checkpointing=False, enable_progress_bar=False,
                      default_root_dir="runs_python")
    trainer.fit(task, datamodule=datamodule)
    checkpoint_path = Path("runs_python/flood.ckpt")
    trainer.save_checkpoint(checkpoint_path)

    # 5. A map of a whole scene, streamed tile by tile, with the training preprocessing.
    checkpoint = read_checkpoint(checkpoint_path)
    trained = load_task(checkpoint_path, checkpoint=checkpoint).eval()
    result = predict_raster(
        lambda tiles: trained(tiles).output, args.scene, args.output,
        num_classes=2, preprocessing=Preprocessing.from_checkpoint(checkpoint),
        crop=128, stride=112, batch_size=4, progress=False,
        labels=OutputLabels(("land", "water")),
    )
    print(f"wrote {result.output} ({result.shape[1]} x {result.shape[0]} px)")


if __name__ == "__main__":
    main()
