"""Tile a GeoTIFF into a mosaic ``repeat`` times its width and height, written by windows.

For trying inference on a big raster without downloading one::

    python examples/tutorials/make_mosaic.py Spain_7370579_S2Hand.tif big_scene.tif --repeat 4

The mosaic keeps the source's CRS, pixel size, bands and nodata; its origin is the
source's. It is written one copy at a time, so even a large ``repeat`` needs little memory.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import rasterio
from rasterio.windows import Window


def mosaic(source: Path, output: Path, repeat: int) -> tuple[int, int]:
    """Write the mosaic; returns its (width, height)."""
    with rasterio.open(source) as src:
        data = src.read()
        width, height = src.width * repeat, src.height * repeat
        profile = src.profile | {"width": width, "height": height, "tiled": True,
                                 "blockxsize": 256, "blockysize": 256, "compress": "deflate"}
        descriptions = src.descriptions
    with rasterio.open(output, "w", **profile) as dst:
        for row in range(repeat):
            for col in range(repeat):
                window = Window(col * data.shape[2], row * data.shape[1], data.shape[2],
                                data.shape[1])
                dst.write(data, window=window)
        dst.descriptions = descriptions
    return width, height


def main() -> None:
    """Command line: source, output, ``--repeat``."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("source", type=Path, help="a GeoTIFF")
    parser.add_argument("output", type=Path, help="the mosaic to write")
    parser.add_argument("--repeat", type=int, default=4, help="copies along each side")
    args = parser.parse_args()
    width, height = mosaic(args.source, args.output, args.repeat)
    print(f"wrote {args.output} ({width} x {height} px)")


if __name__ == "__main__":
    main()
