"""The registered ``clay:`` backbones: :func:`build_clay` with a variant bound.

The input bands' wavelengths come from ``bands`` (geofm band names through
:func:`geofm_core.data.bands.wavelength_of`; Sentinel-1 ``VV``/``VH`` take the values
Clay was pre-trained with) or from an explicit ``wavelengths`` list in micrometres.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from pathlib import Path

from geofm_clay.constants import PATCH_SIZE, VARIANTS
from geofm_clay.encoder import ClayEncoder
from geofm_clay.weights import find_pretrained_file, load_checkpoint
from geofm_core.data.bands import canonical_band, wavelength_of
from geofm_core.errors import ConfigurationError

__all__ = ["CLAY_BAND_NAMES", "CLAY_RADAR_WAVELENGTHS", "FACTORIES", "build_clay",
           "resolve_wavelengths", *VARIANTS]

#: The stand-in wavelengths (µm) Clay's pre-training metadata gives Sentinel-1 RTC.
CLAY_RADAR_WAVELENGTHS: dict[str, float] = {"VV": 3.5, "VH": 4.0}

#: Clay's own Sentinel-2 band names (its metadata.yaml, TerraTorch's defaults) -> geofm's.
CLAY_BAND_NAMES: dict[str, str] = {
    "BLUE": "BLUE", "GREEN": "GREEN", "RED": "RED", "REDEDGE1": "RED_EDGE_1",
    "REDEDGE2": "RED_EDGE_2", "REDEDGE3": "RED_EDGE_3", "NIR": "NIR_BROAD",
    "NIR08": "NIR_NARROW", "SWIR16": "SWIR_1", "SWIR22": "SWIR_2",
}


def resolve_wavelengths(bands: Sequence[str] | None, wavelengths: Sequence[float] | None,
                        what: str = "Clay") -> tuple[list[str], list[float]]:
    """Band names and centre wavelengths (µm) of the input, one per band.

    Args:
        bands: The data's band names in order (``BLUE``, ``B8A``, ``VV``, ...).
        wavelengths: Explicit wavelengths (µm); win over the names' wavelengths.
        what: The component, for messages.

    Raises:
        ConfigurationError: Neither is given, their lengths differ, or a band has no
            known wavelength (the message names it and the ``wavelengths`` fix).
    """
    if isinstance(bands, str) or isinstance(wavelengths, (str, int, float)):
        raise ConfigurationError(f"{what}: bands and wavelengths are lists, one entry per band")
    if wavelengths is not None:
        values = [float(w) for w in wavelengths]
        if not values or any(not w > 0 for w in values):
            raise ConfigurationError(
                f"{what}: wavelengths must be positive centre wavelengths in micrometres, "
                f"one per input band (e.g. [0.49, 0.56, 0.665]), got {list(wavelengths)}")
        if bands is not None and len(bands) != len(values):
            raise ConfigurationError(
                f"{what}: {len(bands)} bands but {len(values)} wavelengths; give one per band")
        names = [str(b) for b in bands] if bands is not None else [
            f"BAND_{i}" for i in range(len(values))]
        return names, values
    if not bands:
        raise ConfigurationError(
            f"{what} is wavelength-conditioned: pass bands (the data's band names, e.g. "
            "[BLUE, GREEN, RED, NIR_NARROW]) or wavelengths (µm, one per input band)")
    names, values = [], []
    for band in bands:
        upper = str(band).strip().upper()
        name = canonical_band(upper) or CLAY_BAND_NAMES.get(upper, upper)
        value = CLAY_RADAR_WAVELENGTHS.get(name) or wavelength_of(name)
        if value is None:
            raise ConfigurationError(
                f"{what}: band {band!r} has no known centre wavelength; pass wavelengths= "
                "the centre wavelength of every input band in micrometres, in order (e.g. "
                "[0.49, 0.56, 0.665] for blue, green, red), instead of relying on the names")
        names.append(name)
        values.append(value)
    return names, values


def build_clay(
    variant: str,
    *,
    bands: Sequence[str] | None = None,
    wavelengths: Sequence[float] | None = None,
    gsd: float = 10.0,
    out_indices: Sequence[int] | None = None,
    pretrained: bool = False,
    ckpt_path: str | None = None,
    dim: int | None = None,
    depth: int | None = None,
    heads: int | None = None,
    dim_head: int | None = None,
    mlp_ratio: float | None = None,
    encode_metadata: bool = True,
) -> ClayEncoder:
    """Build the Clay encoder ``variant``; every ``clay:<name>`` factory calls this.

    Args:
        variant: A key of ``VARIANTS`` (bound by each registered factory).
        bands: The data's band names in order (geofm's, Sentinel-2's such as ``B8A``, or
            Clay's such as ``swir16``); their wavelengths condition the patch embedding.
        wavelengths: Centre wavelength (µm) of each band, in order; wins over ``bands``.
        gsd: Ground sample distance of the data in metres (Clay's Sentinel-2 value is 10).
        out_indices: Blocks whose tokens are returned (default all; negative from the end).
        pretrained: Load the official weights via huggingface_hub (cache and
            HF_HUB_OFFLINE respected; $GEOFM_CLAY_WEIGHTS_DIR checked first).
        ckpt_path: A local checkpoint in the official layout (Lightning ``model.encoder.*``
            or a bare encoder state dict); wins over ``pretrained``.
        dim: Architecture override for small models (not with pretrained).
        depth: Architecture override for small models (not with pretrained).
        heads: Architecture override for small models (not with pretrained).
        dim_head: Architecture override for small models (not with pretrained).
        mlp_ratio: Architecture override for small models (not with pretrained).
        encode_metadata: Encode the batch's ``temporal_coords`` / ``location_coords``
            as Clay's time and location channels (zeros when absent); ``False`` keeps
            them zero (TerraTorch's Clay backbone).

    Raises:
        ConfigurationError: An unknown variant, pretrained weights the variant does not
            have, architecture overrides with official weights, or bands that resolve to
            no wavelength.
    """
    if variant not in VARIANTS:
        raise ConfigurationError(f"unknown Clay variant {variant!r}; known: {list(VARIANTS)}")
    spec = VARIANTS[variant]
    what = f"backbone 'clay:{variant}'"
    overrides = {k: v for k, v in {"dim": dim, "depth": depth, "heads": heads,
                                   "dim_head": dim_head, "mlp_ratio": mlp_ratio}.items()
                 if v is not None}
    if pretrained and ckpt_path is None:
        if spec.weights is None:
            with_weights = [n for n, s in VARIANTS.items() if s.weights is not None]
            raise ConfigurationError(
                f"{what} has no published weights (only {', '.join(with_weights)} do); use "
                "pretrained=False or ckpt_path= your own checkpoint")
        if overrides:
            raise ConfigurationError(
                f"{what}: {sorted(overrides)} change the architecture, so the official "
                "weights cannot load; drop them or use pretrained=False")
    names, values = resolve_wavelengths(bands, wavelengths, what)
    path: str | Path | None = ckpt_path
    if path is None and pretrained and spec.weights is not None:
        path = find_pretrained_file(spec.weights, what)  # before building: fail fast
    model = ClayEncoder(
        values,
        dim=int(overrides.get("dim", spec.dim)),
        depth=int(overrides.get("depth", spec.depth)),
        heads=int(overrides.get("heads", spec.heads)),
        dim_head=int(overrides.get("dim_head", spec.dim_head)),
        mlp_ratio=float(overrides.get("mlp_ratio", spec.mlp_ratio)),
        gsd=gsd,
        patch_size=PATCH_SIZE,
        out_indices=out_indices,
        encode_metadata=encode_metadata,
    )
    model.bands = names
    model.variant = variant
    if path is not None:
        load_checkpoint(model, path, what)
    return model


def _shared_args() -> str:
    """:func:`build_clay`'s docstring after its summary, without ``variant`` (bound)."""
    text = (build_clay.__doc__ or "").split("\n\n", 1)[1]
    return "\n".join(line for line in text.splitlines()
                     if "variant: A key of" not in line and "(bound by each" not in line)


def _factories() -> dict[str, functools.partial[ClayEncoder]]:
    factories = {}
    for name, spec in VARIANTS.items():
        factory = functools.partial(build_clay, name)
        weights = (f"Weights: {spec.weights.repo_id} ({spec.weights.filename})."
                   if spec.weights else "No published weights (random init).")
        # geofm describe shows a partial's own docstring
        factory.__doc__ = (
            f"{spec.description}: dim {spec.dim}, depth {spec.depth}, {spec.heads} heads of "
            f"{spec.dim_head}, MLP x{spec.mlp_ratio:g}, patch {PATCH_SIZE}. {weights}\n\n"
            + _shared_args())
        factories[name] = factory
    return factories


#: The registered factories by variant name: :func:`build_clay` with the variant bound.
FACTORIES: dict[str, functools.partial[ClayEncoder]] = _factories()


def __getattr__(name: str) -> functools.partial[ClayEncoder]:
    # ``geofm_clay.backbones:<variant>`` targets resolve here
    if name in FACTORIES:
        return FACTORIES[name]
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
