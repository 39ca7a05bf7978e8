"""The registered Prithvi EO backbones (``prithvi:<name>``), one factory per official model.

Each row of :data:`~geofm_prithvi.constants.VARIANTS` gives one factory:
:func:`build_prithvi` with the variant's name bound (a ``functools.partial``), named
after the variant in this module (``geofm_prithvi.configs:prithvi_eo_v2_300``, the
target ``_plugin.py`` registers) and documented with the variant's architecture,
weights and normalisation followed by the arguments every factory shares (those of
:func:`build_prithvi` but ``variant``). ``FACTORIES`` holds them by name.

With weights, the input's bands that match pre-trained bands get their pre-trained
patch-embedding channels; new bands start from the mean of the pre-trained channels,
with a warning naming them. ``embed_dim``, ``depth`` and ``num_heads`` make small test
models and are refused with ``pretrained=True`` (the official file would not fit).
"""

from __future__ import annotations

import functools
import inspect
import textwrap
from collections.abc import Sequence
from pathlib import Path

from geofm_core.errors import ConfigurationError
from geofm_prithvi.constants import (
    PRETRAINED_BANDS,
    PRITHVI_V1_MEAN,
    PRITHVI_V1_STD,
    VARIANTS,
    PrithviVariant,
)
from geofm_prithvi.vit import PrithviViT
from geofm_prithvi.weights import find_pretrained_file, load_checkpoint, resolve_bands

__all__ = ["FACTORIES", "build_prithvi", *VARIANTS]

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
    position_grid: str = "recompute",
    coords_dtype: str = "float64",
    drop_path_schedule: str = "linear",
) -> PrithviViT:
    """Build the Prithvi variant ``variant``; every ``prithvi:<name>`` factory calls this.

    Args:
        variant: A key of ``VARIANTS`` (bound by each registered factory).
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
        position_grid: ``recompute`` the sin-cos positions for the input's token grid,
            or ``interpolate`` the ``img_size`` grid bicubically (TerraTorch's models).
        coords_dtype: Precision of the time/location encodings, ``float64`` or
            ``float32`` (TerraTorch's).
        drop_path_schedule: ``linear`` stochastic depth over the blocks, or ``uniform``
            (every block at ``drop_path_rate``, TerraTorch's); training only.

    Raises:
        ConfigurationError: An unknown variant, architecture overrides with official
            weights, or bands that do not resolve.
    """
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
        position_grid=position_grid,
        coords_dtype=coords_dtype,
        drop_path_schedule=drop_path_schedule,
    )
    model.bands = [name for name, _ in resolved]
    model.variant = variant
    if path is not None:
        load_checkpoint(model, path, [s for _, s in resolved], model.bands, what)
        # the weights' bands: the task checks the data's band names against them
        model.pretrained_bands = tuple(pretrained_bands or PRETRAINED_BANDS)
        model.checkpoint_path = str(path)
    return model


def _shared_args() -> str:
    """The Args section of :func:`build_prithvi` without ``variant``, which a factory binds."""
    lines = inspect.cleandoc(build_prithvi.__doc__ or "").splitlines()
    start = lines.index("Args:")
    end = next((i for i in range(start + 1, len(lines)) if lines[i] and not lines[i][0].isspace()),
               len(lines))
    kept, skipping = ["Args:"], False
    for line in lines[start + 1:end]:
        if line.startswith("    ") and not line.startswith("     "):  # a new entry
            skipping = line.lstrip().startswith("variant:")
        if not skipping:
            kept.append(line)
    return "\n".join(kept).rstrip()


def _variant_doc(spec: PrithviVariant, shared_args: str) -> str:
    """What ``geofm describe`` shows for a variant: its facts, then the shared arguments."""
    title = spec.weights.repo_id.rpartition("/")[2]
    patch = spec.patch_size[-1]
    coords = ", time + location" if spec.coords_encoding else ""
    generation = "V1" if (spec.mean, spec.std) == (PRITHVI_V1_MEAN, PRITHVI_V1_STD) else "V2"
    constants = f"PRITHVI_{generation}_MEAN`` / ``PRITHVI_{generation}_STD"
    details = (
        f"Weights: {spec.weights.repo_id} ({spec.weights.filename}). Normalise inputs with "
        f"``{constants}`` (mean {list(spec.mean)}, std {list(spec.std)})."
    )
    if spec.coords_encoding:
        details += (" ``forward`` takes ``temporal_coords`` (B, T, 2) and "
                    "``location_coords`` (B, 2).")
    summary = (f"{title}: embed {spec.embed_dim}, depth {spec.depth}, {spec.num_heads} heads, "
               f"patch {patch}{coords}.")
    return "\n\n".join([summary, textwrap.fill(details, width=88), shared_args])


def _factories() -> dict[str, functools.partial[PrithviViT]]:
    shared = _shared_args()
    factories = {}
    for name, spec in VARIANTS.items():
        factory = functools.partial(build_prithvi, name)
        # geofm describe shows a partial's own docstring (Registry.describe)
        factory.__doc__ = _variant_doc(spec, shared)
        factories[name] = factory
    return factories


#: The registered factories by variant name: ``build_prithvi`` with the variant bound.
FACTORIES: dict[str, functools.partial[PrithviViT]] = _factories()


def __getattr__(name: str) -> functools.partial[PrithviViT]:
    # ``geofm_prithvi.configs:<variant>`` targets and ``configs.<variant>`` resolve here
    if name in FACTORIES:
        return FACTORIES[name]
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted([*globals(), *FACTORIES])
