"""Fixed class colours, shared by figures (``plot_on_val``) and class-map colour tables.

The same class has the same colour in every figure of a run and in the GeoTIFF that
``geofm infer`` writes, so a map opened in QGIS reads like the training figures.
"""

from __future__ import annotations

__all__ = ["class_colors"]

# A qualitative palette (distinct hues, then lighter variants), RGB 0-255.
_PALETTE: tuple[tuple[int, int, int], ...] = (
    (31, 119, 180), (255, 127, 14), (44, 160, 44), (214, 39, 40), (148, 103, 189),
    (140, 86, 75), (227, 119, 194), (127, 127, 127), (188, 189, 34), (23, 190, 207),
    (174, 199, 232), (255, 187, 120), (152, 223, 138), (255, 152, 150), (197, 176, 213),
    (196, 156, 148), (247, 182, 210), (199, 199, 199), (219, 219, 141), (158, 218, 229),
)


def class_colors(num_classes: int) -> list[tuple[int, int, int]]:
    """One RGB colour (0-255) per class; beyond 20 classes the hues repeat darker."""
    colors = []
    for index in range(num_classes):
        r, g, b = _PALETTE[index % len(_PALETTE)]
        shade = 0.75 ** (index // len(_PALETTE))
        colors.append((int(r * shade), int(g * shade), int(b * shade)))
    return colors
