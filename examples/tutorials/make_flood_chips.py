"""Cut a Sen1Floods11 scene and its label into a folder of GeoTIFF chips, paired by name.

The tutorials use it to make "your own folder" from a public scene::

    python examples/tutorials/make_flood_chips.py S2Hand.tif LabelHand.tif my_data --size 128

writes ``my_data/images/chip_RR_CC.tif`` (all bands, band descriptions B1..B12 with B8A)
and ``my_data/labels/chip_RR_CC.tif`` (-1 no label, 0 land, 1 water), each chip
georeferenced by its own window. Nothing geofm-specific happens here: any folder of
GeoTIFF chips with labels of the same names works the same way.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import rasterio
from rasterio.windows import Window

#: Sentinel-2 L1C band names in the order a Sen1Floods11 S2Hand file stores them.
S2_BANDS = ("B1", "B2", "B3", "B4", "B5", "B6", "B7", "B8", "B8A", "B9", "B10", "B11",
            "B12")


def cut(image: Path, label: Path, out: Path, size: int) -> int:
    """Write ``size`` x ``size`` chips of ``image`` and ``label``; returns how many."""
    (out / "images").mkdir(parents=True, exist_ok=True)
    (out / "labels").mkdir(parents=True, exist_ok=True)
    written = 0
    with rasterio.open(image) as img, rasterio.open(label) as lab:
        for row in range(0, img.height - size + 1, size):
            for col in range(0, img.width - size + 1, size):
                window = Window(col, row, size, size)
                name = f"chip_{row // size:02d}_{col // size:02d}.tif"
                for src, folder in ((img, "images"), (lab, "labels")):
                    profile = src.profile | {"width": size, "height": size,
                                             "transform": src.window_transform(window)}
                    with rasterio.open(out / folder / name, "w", **profile) as dst:
                        dst.write(src.read(window=window))
                        if folder == "images" and src.count == len(S2_BANDS):
                            dst.descriptions = S2_BANDS
                written += 1
    return written


def main() -> None:
    """Command line: scene, label, output folder, chip size."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("image", type=Path, help="Sentinel-2 scene (S2Hand.tif)")
    parser.add_argument("label", type=Path, help="its label raster (LabelHand.tif)")
    parser.add_argument("out", type=Path, help="folder to write images/ and labels/ into")
    parser.add_argument("--size", type=int, default=128, help="chip size in pixels")
    args = parser.parse_args()
    count = cut(args.image, args.label, args.out, args.size)
    print(f"wrote {count} chips under {args.out}/images and {args.out}/labels")


if __name__ == "__main__":
    main()
