"""The registered Prithvi EO backbones (``prithvi:<name>``), one factory per official model.

Every factory takes the same arguments:

* ``bands``: the input's bands, in order: HLS names (``BLUE``, ``RED_EDGE_1``, ...),
  other names (new bands) or ints (positions in the six pre-trained bands). Default:
  the six pre-trained bands ``BLUE, GREEN, RED, NIR_NARROW, SWIR_1, SWIR_2``. With
  weights, matching bands get their pre-trained channels and new bands are initialised
  from the mean of the pre-trained channels (with a warning naming them).
* ``num_frames``: frames per sample; ``out_channels`` is ``embed_dim * num_frames``.
* ``img_size``: default input size (any multiple of the patch size works at run time).
* ``out_indices``: which blocks' tokens to return (default all).
* ``pretrained``: load the official weights through ``huggingface_hub``.
* ``ckpt_path``: load a local ``.pt``/``.pth``/``.safetensors`` file (official layout)
  instead; it wins over ``pretrained``.
* ``pretrained_bands``: the bands of the checkpoint's patch embedding, in order
  (default the six pre-trained bands); only for a non-official file.
* ``drop_path_rate``: stochastic depth of the last block.
* ``embed_dim``, ``depth``, ``num_heads``: architecture overrides for small test
  models; not allowed with ``pretrained=True`` (the official file would not fit).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from geofm_core.errors import ConfigurationError
from geofm_prithvi.constants import PRETRAINED_BANDS, VARIANTS
from geofm_prithvi.vit import PrithviViT
from geofm_prithvi.weights import find_pretrained_file, load_checkpoint, resolve_bands

__all__ = [
    "build_prithvi",
    "prithvi_eo_v1_100",
    "prithvi_eo_v2_100_tl",
    "prithvi_eo_v2_300",
    "prithvi_eo_v2_300_tl",
    "prithvi_eo_v2_600",
    "prithvi_eo_v2_600_tl",
    "prithvi_eo_v2_tiny_tl",
]

Bands = Sequence[str | int] | None


def build_prithvi(
    variant: str,
    *,
    bands: Bands = None,
    num_frames: int = 1,
    img_size: int | Sequence[int] = 224,
    out_indices: Sequence[int] | None = None,
    pretrained: bool = False,
    ckpt_path: str | None = None,
    pretrained_bands: Sequence[str] | None = None,
    drop_path_rate: float = 0.0,
    embed_dim: int | None = None,
    depth: int | None = None,
    num_heads: int | None = None,
) -> PrithviViT:
    """Build the Prithvi variant ``variant`` (a key of ``VARIANTS``); see the module docstring."""
    if variant not in VARIANTS:
        raise ConfigurationError(f"unknown Prithvi variant {variant!r}; known: {list(VARIANTS)}")
    spec = VARIANTS[variant]
    what = f"backbone 'prithvi:{variant}'"
    overrides = {k: v for k, v in
                 {"embed_dim": embed_dim, "depth": depth, "num_heads": num_heads}.items()
                 if v is not None}
    if overrides and pretrained and ckpt_path is None:
        raise ConfigurationError(
            f"{what}: {sorted(overrides)} change the architecture, so the official weights "
            "cannot load; drop them or use pretrained=False (or ckpt_path= a matching file)"
        )
    resolved = resolve_bands(bands, tuple(pretrained_bands or PRETRAINED_BANDS))
    path: str | Path | None = ckpt_path
    if path is None and pretrained:  # before building: a missing file fails fast
        path = find_pretrained_file(spec.weights, what)
    model = PrithviViT(
        in_chans=len(resolved),
        img_size=img_size,
        patch_size=spec.patch_size,
        num_frames=num_frames,
        embed_dim=overrides.get("embed_dim", spec.embed_dim),
        depth=overrides.get("depth", spec.depth),
        num_heads=overrides.get("num_heads", spec.num_heads),
        drop_path_rate=drop_path_rate,
        coords_encoding=spec.coords_encoding,
        coords_scale_learn=True,
        out_indices=out_indices,
    )
    model.bands = [name for name, _ in resolved]
    model.variant = variant
    if path is not None:
        load_checkpoint(model, path, [s for _, s in resolved], model.bands, what)
    return model


def prithvi_eo_v1_100(
    bands: Bands = None, num_frames: int = 1, img_size: int | Sequence[int] = 224,
    out_indices: Sequence[int] | None = None, pretrained: bool = False,
    ckpt_path: str | None = None, pretrained_bands: Sequence[str] | None = None,
    drop_path_rate: float = 0.0, embed_dim: int | None = None, depth: int | None = None,
    num_heads: int | None = None,
) -> PrithviViT:
    """Prithvi-EO-1.0 100M: embed 768, depth 12, 12 heads, patch 16 (HLS, US).

    Weights: ibm-nasa-geospatial/Prithvi-EO-1.0-100M. Normalise inputs with
    ``PRITHVI_V1_MEAN`` / ``PRITHVI_V1_STD``.
    """
    return build_prithvi("prithvi_eo_v1_100", **_args(locals()))


def prithvi_eo_v2_tiny_tl(
    bands: Bands = None, num_frames: int = 1, img_size: int | Sequence[int] = 224,
    out_indices: Sequence[int] | None = None, pretrained: bool = False,
    ckpt_path: str | None = None, pretrained_bands: Sequence[str] | None = None,
    drop_path_rate: float = 0.0, embed_dim: int | None = None, depth: int | None = None,
    num_heads: int | None = None,
) -> PrithviViT:
    """Prithvi-EO-2.0 tiny TL: embed 192, depth 12, 3 heads, patch 16, time + location.

    Weights: ibm-nasa-geospatial/Prithvi-EO-2.0-tiny-TL. Normalise inputs with
    ``PRITHVI_V2_MEAN`` / ``PRITHVI_V2_STD``. ``forward`` takes ``temporal_coords``
    (B, T, 2) and ``location_coords`` (B, 2).
    """
    return build_prithvi("prithvi_eo_v2_tiny_tl", **_args(locals()))


def prithvi_eo_v2_100_tl(
    bands: Bands = None, num_frames: int = 1, img_size: int | Sequence[int] = 224,
    out_indices: Sequence[int] | None = None, pretrained: bool = False,
    ckpt_path: str | None = None, pretrained_bands: Sequence[str] | None = None,
    drop_path_rate: float = 0.0, embed_dim: int | None = None, depth: int | None = None,
    num_heads: int | None = None,
) -> PrithviViT:
    """Prithvi-EO-2.0 100M TL: embed 768, depth 12, 12 heads, patch 16, time + location.

    Weights: ibm-nasa-geospatial/Prithvi-EO-2.0-100M-TL. Normalise inputs with
    ``PRITHVI_V2_MEAN`` / ``PRITHVI_V2_STD``. ``forward`` takes ``temporal_coords``
    (B, T, 2) and ``location_coords`` (B, 2).
    """
    return build_prithvi("prithvi_eo_v2_100_tl", **_args(locals()))


def prithvi_eo_v2_300(
    bands: Bands = None, num_frames: int = 1, img_size: int | Sequence[int] = 224,
    out_indices: Sequence[int] | None = None, pretrained: bool = False,
    ckpt_path: str | None = None, pretrained_bands: Sequence[str] | None = None,
    drop_path_rate: float = 0.0, embed_dim: int | None = None, depth: int | None = None,
    num_heads: int | None = None,
) -> PrithviViT:
    """Prithvi-EO-2.0 300M: embed 1024, depth 24, 16 heads, patch 16.

    Weights: ibm-nasa-geospatial/Prithvi-EO-2.0-300M. Normalise inputs with
    ``PRITHVI_V2_MEAN`` / ``PRITHVI_V2_STD``.
    """
    return build_prithvi("prithvi_eo_v2_300", **_args(locals()))


def prithvi_eo_v2_300_tl(
    bands: Bands = None, num_frames: int = 1, img_size: int | Sequence[int] = 224,
    out_indices: Sequence[int] | None = None, pretrained: bool = False,
    ckpt_path: str | None = None, pretrained_bands: Sequence[str] | None = None,
    drop_path_rate: float = 0.0, embed_dim: int | None = None, depth: int | None = None,
    num_heads: int | None = None,
) -> PrithviViT:
    """Prithvi-EO-2.0 300M TL: embed 1024, depth 24, 16 heads, patch 16, time + location.

    Weights: ibm-nasa-geospatial/Prithvi-EO-2.0-300M-TL. Normalise inputs with
    ``PRITHVI_V2_MEAN`` / ``PRITHVI_V2_STD``. ``forward`` takes ``temporal_coords``
    (B, T, 2) and ``location_coords`` (B, 2).
    """
    return build_prithvi("prithvi_eo_v2_300_tl", **_args(locals()))


def prithvi_eo_v2_600(
    bands: Bands = None, num_frames: int = 1, img_size: int | Sequence[int] = 224,
    out_indices: Sequence[int] | None = None, pretrained: bool = False,
    ckpt_path: str | None = None, pretrained_bands: Sequence[str] | None = None,
    drop_path_rate: float = 0.0, embed_dim: int | None = None, depth: int | None = None,
    num_heads: int | None = None,
) -> PrithviViT:
    """Prithvi-EO-2.0 600M: embed 1280, depth 32, 16 heads, patch 14.

    Weights: ibm-nasa-geospatial/Prithvi-EO-2.0-600M. Normalise inputs with
    ``PRITHVI_V2_MEAN`` / ``PRITHVI_V2_STD``.
    """
    return build_prithvi("prithvi_eo_v2_600", **_args(locals()))


def prithvi_eo_v2_600_tl(
    bands: Bands = None, num_frames: int = 1, img_size: int | Sequence[int] = 224,
    out_indices: Sequence[int] | None = None, pretrained: bool = False,
    ckpt_path: str | None = None, pretrained_bands: Sequence[str] | None = None,
    drop_path_rate: float = 0.0, embed_dim: int | None = None, depth: int | None = None,
    num_heads: int | None = None,
) -> PrithviViT:
    """Prithvi-EO-2.0 600M TL: embed 1280, depth 32, 16 heads, patch 14, time + location.

    Weights: ibm-nasa-geospatial/Prithvi-EO-2.0-600M-TL. Normalise inputs with
    ``PRITHVI_V2_MEAN`` / ``PRITHVI_V2_STD``. ``forward`` takes ``temporal_coords``
    (B, T, 2) and ``location_coords`` (B, 2).
    """
    return build_prithvi("prithvi_eo_v2_600_tl", **_args(locals()))


_ARGS_DOC = """
    Args:
        bands: Input bands in order: HLS names, other names (new bands) or indices into
            the six pre-trained bands. Default: BLUE, GREEN, RED, NIR_NARROW, SWIR_1,
            SWIR_2. New bands get the mean pre-trained weights and a warning.
        num_frames: Frames per sample; out_channels is embed_dim * num_frames.
        img_size: Default input size; any multiple of the patch size works.
        out_indices: Blocks whose tokens are returned (default all; negative from the end).
        pretrained: Load the official weights via huggingface_hub (cache and
            HF_HUB_OFFLINE respected; $GEOFM_PRITHVI_WEIGHTS_DIR checked first).
        ckpt_path: Local .pt/.pth/.safetensors file in an official layout; wins over
            pretrained.
        pretrained_bands: Bands of the checkpoint's patch embedding (default the six
            pre-trained bands); only for non-official files.
        drop_path_rate: Stochastic depth of the last block (linear from 0).
        embed_dim: Architecture override for small test models (not with pretrained).
        depth: Architecture override for small test models (not with pretrained).
        num_heads: Architecture override for small test models (not with pretrained).
"""


def _args(local_vars: dict[str, Any]) -> dict[str, Any]:
    # Each factory forwards exactly its own parameters.
    return dict(local_vars)


for _factory in (prithvi_eo_v1_100, prithvi_eo_v2_tiny_tl, prithvi_eo_v2_100_tl, prithvi_eo_v2_300,
                 prithvi_eo_v2_300_tl, prithvi_eo_v2_600, prithvi_eo_v2_600_tl):
    _factory.__doc__ = (_factory.__doc__ or "").rstrip() + "\n" + _ARGS_DOC
