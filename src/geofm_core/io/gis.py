"""What makes an output raster read well in a GIS: colours, names, descriptions, a style.

A class map gets a colour table (the colours of the training figures,
:func:`~geofm_core.data.palette.class_colors`), the band description ``class`` and the
class names as band tags (``class_0=water`` ..., and ``class_names`` as JSON); QGIS reads
the colour table and opens the map with a *Paletted/Unique values* style, and the QGIS
style file written next to it (``<name>.qml``, loaded by QGIS as the layer's default
style) names the classes in the legend. Probability bands are described by their class
name; a regression band by its description and units when given.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from xml.sax.saxutils import quoteattr

from geofm_core.data.palette import class_colors

__all__ = ["OutputLabels", "qgis_style"]


@dataclass(frozen=True)
class OutputLabels:
    """Names and descriptions written into prediction rasters.

    Attributes:
        class_names: One name per class (segmentation), index order.
        description: What a regression band holds (e.g. ``"canopy height"``).
        units: Its units (e.g. ``"m"``).
    """

    class_names: tuple[str, ...] = ()
    description: str | None = None
    units: str | None = None

    @classmethod
    def for_classes(cls, class_names: Sequence[str] | None, num_classes: int) -> OutputLabels:
        """Labels of a class map: the given names, else the class indices."""
        names = list(class_names or [])
        if len(names) != num_classes:
            names = [str(i) for i in range(num_classes)]
        return cls(tuple(names))

    def describe_class_map(self, path: Path) -> None:
        """Colour table, band description and class-name tags of a finished class map."""
        import rasterio

        colors = class_colors(len(self.class_names))
        with rasterio.open(path, "r+") as dst:
            dst.write_colormap(1, {i: (*rgb, 255) for i, rgb in enumerate(colors)})
            dst.set_band_description(1, "class")
            dst.update_tags(1, class_names=json.dumps(list(self.class_names)),
                            **{f"class_{i}": n for i, n in enumerate(self.class_names)})

    def describe_probabilities(self, path: Path) -> None:
        """Band descriptions of a finished probability raster: one class name per band."""
        import rasterio

        with rasterio.open(path, "r+") as dst:
            for band, name in enumerate(self.class_names[: dst.count], start=1):
                dst.set_band_description(band, f"probability of {name}")

    def describe_values(self, path: Path) -> None:
        """Description and units of a finished regression raster, when given."""
        if self.description is None and self.units is None:
            return
        import rasterio

        with rasterio.open(path, "r+") as dst:
            if self.description is not None:
                dst.set_band_description(1, self.description)
            if self.units is not None:
                dst.units = (self.units,)


def qgis_style(class_names: Sequence[str], nodata: int) -> str:
    """A QGIS layer style (``.qml``): paletted renderer with the class colours and names."""
    colors = class_colors(len(class_names))
    entries = "\n".join(
        f'        <paletteEntry value="{i}" color="#{r:02x}{g:02x}{b:02x}" alpha="255" '
        f"label={quoteattr(name)}/>"
        for i, (name, (r, g, b)) in enumerate(zip(class_names, colors, strict=True))
    )
    return (
        "<!DOCTYPE qgis PUBLIC 'http://mrcc.com/qgis.dtd' 'SYSTEM'>\n"
        '<qgis styleCategories="Symbology">\n  <pipe>\n'
        '    <rasterrenderer type="paletted" band="1" opacity="1" nodataColor="">\n'
        "      <colorPalette>\n"
        f"{entries}\n"
        "      </colorPalette>\n    </rasterrenderer>\n  </pipe>\n"
        f"  <!-- nodata value {nodata}: no prediction -->\n</qgis>\n"
    )
