"""Stack one GeoTIFF per date into one multi-temporal GeoTIFF, frame after frame.

geofm's data modules read a time series from one file per sample whose bands are the
frames one after another (``expand_temporal_dimension: true``): with six bands per date
and three dates, bands 1-6 are the first date, 7-12 the second, 13-18 the third. This
script writes such a file from the single-date files::

    python examples/tutorials/stack_dates.py 2024-05.tif 2024-07.tif 2024-09.tif -o stack.tif

The dates must share CRS, transform, size, band count and data type (checked; the
first file that differs is named). Band descriptions are kept with the date's position.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import rasterio


def stack(dates: list[Path], output: Path) -> None:
    """Write ``output`` with the bands of every file of ``dates``, in that order."""
    with rasterio.open(dates[0]) as first:
        profile = first.profile
        grid = (first.crs, first.transform, first.width, first.height, first.count,
                first.dtypes[0])
        names = [d or f"band_{i + 1}" for i, d in enumerate(first.descriptions)]
    for path in dates[1:]:
        with rasterio.open(path) as src:
            other = (src.crs, src.transform, src.width, src.height, src.count, src.dtypes[0])
            if other != grid:
                sys.exit(f"error: {path} does not share CRS, transform, size, band count and "
                         f"dtype with {dates[0]}: {other} vs {grid}; resample it first")
    profile.update(count=grid[4] * len(dates))
    with rasterio.open(output, "w", **profile) as dst:
        for t, path in enumerate(dates):
            with rasterio.open(path) as src:
                for b in range(src.count):
                    dst.write(src.read(b + 1), t * src.count + b + 1)
        dst.descriptions = tuple(f"{n} (date {t + 1})" for t in range(len(dates))
                                 for n in names)


def main() -> None:
    """Command line: the dates in order, then ``-o`` the stack to write."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("dates", nargs="+", type=Path, help="one GeoTIFF per date, in order")
    parser.add_argument("-o", "--output", type=Path, required=True, help="the stack to write")
    args = parser.parse_args()
    stack(args.dates, args.output)
    print(f"wrote {args.output}: {len(args.dates)} dates")


if __name__ == "__main__":
    main()
