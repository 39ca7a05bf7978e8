"""Real change pairs for tests: two dates made from the shared Landsat RGB scene.

The before image is a window of ``landsat_rgb/RGB.byte.tif`` (written with its own
georeferencing); the after image is the same window with square blocks replaced by real
pixels from another part of the scene; the label marks those blocks (1) and the rest (0).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from geofm_core.testing._real_data import shared_data

__all__ = ["RGB_SCENE", "change_pairs", "write_change_pair"]

#: The shared Landsat RGB scene (3 bands, uint8, 791 x 718 pixels, nodata 0).
RGB_SCENE = ("landsat_rgb", "RGB.byte.tif")


def write_change_pair(
    folder: Path, key: str, row: int, col: int, size: int | tuple[int, int], *,
    blocks: int = 2, block: int = 12, seed: int = 0,
) -> dict[str, Path]:
    """Write ``<key>_before.tif``, ``<key>_after.tif`` and ``<key>_label.tif`` into ``folder``.

    Args:
        folder: Where the files go (created).
        key: The files' shared name part.
        row: Top row of the window in the scene.
        col: Left column of the window.
        size: Window size (square, or (height, width)).
        blocks: How many changed blocks.
        block: Side of each changed block in pixels.
        seed: Where the blocks lie and where their new pixels come from.

    Returns:
        ``{"before": ..., "after": ..., "label": ...}`` paths.
    """
    import rasterio
    from rasterio.windows import Window

    height, width = (size, size) if isinstance(size, int) else size
    rng = np.random.default_rng(seed)
    with rasterio.open(shared_data(*RGB_SCENE)) as src:
        window = Window(col, row, width, height)
        before = src.read(window=window)
        profile: dict[str, Any] = {
            "driver": "GTiff", "height": height, "width": width, "count": src.count,
            "dtype": "uint8", "crs": src.crs, "transform": src.window_transform(window),
        }
        after = before.copy()
        label = np.zeros((height, width), np.uint8)
        for _ in range(blocks):
            r, c = (int(rng.integers(0, n - block)) for n in (height, width))
            # Real pixels from elsewhere in the scene's valid centre.
            sr, sc = int(rng.integers(150, 550)), int(rng.integers(150, 600))
            patch = src.read(window=Window(sc, sr, block, block))
            after[:, r : r + block, c : c + block] = patch
            label[r : r + block, c : c + block] = 1
    folder.mkdir(parents=True, exist_ok=True)
    paths = {name: folder / f"{key}_{name}.tif" for name in ("before", "after", "label")}
    for name, data in (("before", before), ("after", after)):
        with rasterio.open(paths[name], "w", **profile) as dst:
            dst.write(data)
    with rasterio.open(paths["label"], "w", **{**profile, "count": 1}) as dst:
        dst.write(label, 1)
    return paths


def change_pairs(folder: Path, count: int = 4, size: int = 48) -> Path:
    """``count`` change pairs of ``size`` pixels from the scene's valid centre, in ``folder``."""
    for i in range(count):
        write_change_pair(folder, f"pair{i}", 200 + 60 * (i % 4), 220 + 70 * (i // 4), size,
                          seed=i)
    return folder
