"""Band names and the resolver that turns band specifications into file band indices.

A band specification is a list whose entries are

* a band name (case-insensitive), looked up in ``dataset_bands``, the names of the
  bands stored in each file, in order: an HLS name (``"BLUE"``, ``"NIR_NARROW"``, ...),
  a Sentinel-2 name (``"B8A"``, ``"B02"``: the HLS name of that band), a radar
  polarisation (``"VV"``, ``"VH"``, ``"HH"``, ``"HV"``) or ``"PANCHROMATIC"``, ``"DEM"``;
* a 0-based integer index into the file's bands;
* an inclusive range of indices, written ``"0-5"`` or ``[0, 5]``.

So ``output_bands: [1, 2, 3, 8, 11, 12]``, ``output_bands: ["1-3", 8, [11, 12]]`` and
``output_bands: [BLUE, GREEN, RED, NIR_NARROW, SWIR_1, SWIR_2]`` (with ``dataset_bands``
naming the file's bands) select the same six bands of a Sentinel-2 L1C chip.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from enum import Enum

from geofm_core.errors import ConfigurationError

__all__ = [
    "OTHER_BANDS",
    "SENTINEL2_ALIASES",
    "SENTINEL2_L1C_BANDS",
    "WAVELENGTHS",
    "BandSpec",
    "HLSBands",
    "band_names",
    "canonical_band",
    "check_dataset_bands",
    "resolve_bands",
    "wavelength_of",
]


class HLSBands(str, Enum):
    """Names of Harmonized Landsat Sentinel-2 (and Sentinel-2) spectral bands."""

    COASTAL_AEROSOL = "COASTAL_AEROSOL"
    BLUE = "BLUE"
    GREEN = "GREEN"
    RED = "RED"
    RED_EDGE_1 = "RED_EDGE_1"
    RED_EDGE_2 = "RED_EDGE_2"
    RED_EDGE_3 = "RED_EDGE_3"
    NIR_BROAD = "NIR_BROAD"
    NIR_NARROW = "NIR_NARROW"
    SWIR_1 = "SWIR_1"
    SWIR_2 = "SWIR_2"
    WATER_VAPOR = "WATER_VAPOR"
    CIRRUS = "CIRRUS"
    THERMAL_INFRARED_1 = "THERMAL_INFRARED_1"
    THERMAL_INFRARED_2 = "THERMAL_INFRARED_2"


#: The 13 Sentinel-2 L1C bands B1..B12 (with B8A after B8) under their HLS names.
SENTINEL2_L1C_BANDS: tuple[str, ...] = (
    "COASTAL_AEROSOL", "BLUE", "GREEN", "RED", "RED_EDGE_1", "RED_EDGE_2", "RED_EDGE_3",
    "NIR_BROAD", "NIR_NARROW", "WATER_VAPOR", "CIRRUS", "SWIR_1", "SWIR_2",
)

#: Bands that are not HLS spectral bands: radar polarisations, panchromatic, elevation.
OTHER_BANDS: tuple[str, ...] = ("VV", "VH", "HH", "HV", "PANCHROMATIC", "DEM")

#: Sentinel-2 band names (with and without the leading zero) -> their HLS names.
SENTINEL2_ALIASES: dict[str, str] = {
    **{f"B{i}": name for i, name in enumerate(SENTINEL2_L1C_BANDS[:8], start=1)},
    **{f"B0{i}": name for i, name in enumerate(SENTINEL2_L1C_BANDS[:8], start=1)},
    "B8A": "NIR_NARROW", "B9": "WATER_VAPOR", "B09": "WATER_VAPOR", "B10": "CIRRUS",
    "B11": "SWIR_1", "B12": "SWIR_2",
}

#: Centre wavelengths in micrometres (Sentinel-2 MSI's for the bands it has, Landsat 8's
#: for panchromatic and thermal): what wavelength-conditioned models take per band.
WAVELENGTHS: dict[str, float] = {
    "COASTAL_AEROSOL": 0.443, "BLUE": 0.490, "GREEN": 0.560, "RED": 0.665,
    "RED_EDGE_1": 0.705, "RED_EDGE_2": 0.740, "RED_EDGE_3": 0.783, "NIR_BROAD": 0.842,
    "NIR_NARROW": 0.865, "WATER_VAPOR": 0.945, "CIRRUS": 1.375, "SWIR_1": 1.610,
    "SWIR_2": 2.190, "PANCHROMATIC": 0.590, "THERMAL_INFRARED_1": 10.895,
    "THERMAL_INFRARED_2": 12.005,
}

#: What a band specification entry may be (see the module docstring).
BandSpec = str | int | list[int]

_RANGE = re.compile(r"^\s*(\d+)\s*-\s*(\d+)\s*$")


def band_names() -> list[str]:
    """All known band names (Sentinel-2 aliases such as ``B8A`` are accepted as well)."""
    return [b.value for b in HLSBands] + list(OTHER_BANDS)


def canonical_band(name: str) -> str | None:
    """The geofm name of a band (``"b8a"`` -> ``"NIR_NARROW"``), or ``None`` if unknown."""
    upper = name.strip().upper()
    if upper in HLSBands.__members__ or upper in OTHER_BANDS:
        return upper
    return SENTINEL2_ALIASES.get(upper)


def wavelength_of(name: str) -> float | None:
    """Centre wavelength (micrometres) of a band, or ``None`` (radar, elevation, unknown)."""
    canonical = canonical_band(name)
    return WAVELENGTHS.get(canonical) if canonical else None


def _normalise_name(name: str, field: str) -> str:
    canonical = canonical_band(name)
    if canonical is None:
        raise ConfigurationError(
            f"{field}: unknown band name {name!r}; valid names are {', '.join(band_names())} "
            "(or Sentinel-2 names such as B02, B8A), or give 0-based integer indices / "
            "inclusive ranges such as '0-5'"
        )
    return canonical


def check_dataset_bands(dataset_bands: Sequence[str] | None, field: str = "dataset_bands") -> (
    list[str] | None
):
    """Validate ``dataset_bands`` (band names, one per band stored in the file)."""
    if dataset_bands is None:
        return None
    names = []
    for entry in dataset_bands:
        if not isinstance(entry, str):
            raise ConfigurationError(
                f"{field}: entries name the bands stored in each file, in order, so they must be "
                f"band names ({', '.join(band_names())}); got {entry!r}"
            )
        names.append(_normalise_name(entry, field))
    dupes = sorted({n for n in names if names.count(n) > 1})
    if dupes:
        raise ConfigurationError(f"{field}: band names repeated: {', '.join(dupes)}")
    return names


def _index(value: int, count: int | None, field: str, names: Sequence[str] | None) -> int:
    if isinstance(value, bool) or value < 0 or (count is not None and value >= count):
        valid = f"0..{count - 1}" if count is not None else "non-negative integers"
        extra = f" ({', '.join(f'{i}={n}' for i, n in enumerate(names))})" if names else ""
        raise ConfigurationError(
            f"{field}: band index {value!r} is out of range; valid indices are {valid}{extra}"
        )
    return value


def resolve_bands(
    spec: Sequence[BandSpec] | None,
    *,
    dataset_bands: Sequence[str] | None = None,
    band_count: int | None = None,
    field: str = "output_bands",
) -> list[int] | None:
    """Turn a band specification into 0-based indices of the file's bands.

    Args:
        spec: names, integer indices and inclusive ranges (see the module docstring); ``None``
            means all bands and is returned unchanged.
        dataset_bands: names of the bands stored in the file, in order; needed for names.
        band_count: number of bands in the file, when known; bounds the indices.
        field: name of the configuration field, used in error messages.

    Returns:
        The indices in the order given, or ``None`` for ``spec=None``.

    Raises:
        ConfigurationError: an unknown name, an index out of range or a malformed range.
    """
    if spec is None:
        return None
    names = check_dataset_bands(dataset_bands)
    if band_count is None and names is not None:
        band_count = len(names)
    if isinstance(spec, str | int):
        spec = [spec]
    out: list[int] = []
    for entry in spec:
        if isinstance(entry, bool):
            raise ConfigurationError(f"{field}: {entry!r} is not a band name, index or range")
        if isinstance(entry, int):
            out.append(_index(entry, band_count, field, names))
            continue
        bounds: tuple[int, int] | None = None
        if isinstance(entry, list | tuple):
            if len(entry) != 2 or not all(
                isinstance(v, int) and not isinstance(v, bool) for v in entry
            ):
                raise ConfigurationError(
                    f"{field}: a range is two integers [first, last] (inclusive); got {entry!r}"
                )
            bounds = (entry[0], entry[1])
        elif isinstance(entry, str):
            match = _RANGE.match(entry)
            if match:
                bounds = (int(match.group(1)), int(match.group(2)))
            elif entry.strip().isdigit():
                out.append(_index(int(entry), band_count, field, names))
                continue
            else:
                name = _normalise_name(entry, field)
                if names is None:
                    raise ConfigurationError(
                        f"{field}: band name {entry!r} needs dataset_bands, the names of the "
                        "bands stored in each file in order (e.g. dataset_bands: [BLUE, GREEN, "
                        "RED, NIR_NARROW, SWIR_1, SWIR_2]); or select bands by 0-based index"
                    )
                if name not in names:
                    raise ConfigurationError(
                        f"{field}: band {name} is not in dataset_bands ({', '.join(names)})"
                    )
                out.append(names.index(name))
                continue
        else:
            raise ConfigurationError(f"{field}: {entry!r} is not a band name, index or range")
        first, last = bounds
        if first > last:
            raise ConfigurationError(
                f"{field}: range {entry!r} runs backwards; write it as first-last with first <= "
                "last (both inclusive)"
            )
        out.extend(_index(i, band_count, field, names) for i in range(first, last + 1))
    if not out:
        raise ConfigurationError(f"{field}: selects no bands; list at least one")
    return out
