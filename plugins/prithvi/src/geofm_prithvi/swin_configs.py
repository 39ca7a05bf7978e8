"""The registered Prithvi Swin backbones (``prithvi:prithvi_swin_b``, ``prithvi:prithvi_swin_l``).

Each row of :data:`~geofm_prithvi.constants.SWIN_VARIANTS` gives one factory:
:func:`build_prithvi_swin` with the variant bound, named after it in this module (the
target ``_plugin.py`` registers). Bands work as for the Prithvi ViTs: names or indices
into the six pre-trained bands; new bands start from the mean pre-trained
patch-embedding channels, with a warning.
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Sequence
from pathlib import Path

from geofm_core.errors import ConfigurationError
from geofm_prithvi.constants import PRETRAINED_BANDS, SWIN_VARIANTS, SwinVariant
from geofm_prithvi.swin import PrithviSwin
from geofm_prithvi.swin_weights import load_swin_checkpoint
from geofm_prithvi.weights import find_pretrained_file, resolve_bands

__all__ = ["SWIN_FACTORIES", "build_prithvi_swin", *SWIN_VARIANTS]


def build_prithvi_swin(
    variant: str,
    *,
    bands: Sequence[str | int] | None = None,
    img_size: int | Sequence[int] = 224,
    out_indices: Sequence[int] | None = None,
    pretrained: bool = False,
    ckpt_path: str | None = None,
    pretrained_bands: Sequence[str] | None = None,
    drop_path_rate: float = 0.1,
    window_size: int | None = None,
    num_frames: int = 1,
    embed_dim: int | None = None,
    depths: Sequence[int] | None = None,
    num_heads: Sequence[int] | None = None,
) -> PrithviSwin:
    """Build the Prithvi Swin variant ``variant``; every ``prithvi:prithvi_swin_*`` calls this.

    Args:
        variant: A key of ``SWIN_VARIANTS`` (bound by each registered factory).
        bands: Input bands in order: HLS names, other names (new bands) or indices into
            the six pre-trained bands. Default: BLUE, GREEN, RED, NIR_NARROW, SWIR_1,
            SWIR_2. New bands get the mean pre-trained weights and a warning.
        img_size: Pre-training image size (nominal; any input size works).
        out_indices: Stages whose feature maps are returned (default all four).
        pretrained: Load the published weights via huggingface_hub (cache and
            HF_HUB_OFFLINE respected; $GEOFM_PRITHVI_WEIGHTS_DIR checked first).
        ckpt_path: Local checkpoint in a layout TerraTorch loads (see
            :mod:`geofm_prithvi.swin_weights`); wins over pretrained.
        pretrained_bands: Bands of the checkpoint's patch embedding (default the six
            pre-trained bands); only for other files.
        drop_path_rate: Stochastic depth, linear from 0 to this over all blocks
            (TerraTorch's default 0.1); training only.
        window_size: Attention window (default the variant's 7); with weights of another
            window the relative-position tables are resized bicubically (as TerraTorch).
        num_frames: Must be 1: the Swin encoders take single images.
        embed_dim: Architecture override for small test models (not with pretrained).
        depths: Architecture override for small test models (not with pretrained).
        num_heads: Architecture override for small test models (not with pretrained).

    Raises:
        ConfigurationError: An unknown variant, architecture overrides with published
            weights, several frames, a variant without published weights asked for them,
            or bands that do not resolve.
    """
    if variant not in SWIN_VARIANTS:
        raise ConfigurationError(
            f"unknown Prithvi Swin variant {variant!r}; known: {list(SWIN_VARIANTS)}")
    spec = SWIN_VARIANTS[variant]
    what = f"backbone 'prithvi:{variant}'"
    if num_frames != 1:
        raise ConfigurationError(
            f"{what}: num_frames={num_frames}, but the Swin encoders take single images; use "
            "num_frames=1 (or a Prithvi ViT, e.g. prithvi:prithvi_eo_v2_300, for time series)"
        )
    overrides = {k: v for k, v in
                 {"embed_dim": embed_dim, "depths": depths, "num_heads": num_heads}.items()
                 if v is not None}
    if pretrained and ckpt_path is None:
        if overrides:
            raise ConfigurationError(
                f"{what}: {sorted(overrides)} change the architecture, so the published "
                "weights cannot load; drop them or use pretrained=False (or ckpt_path= a "
                "matching file)"
            )
        if spec.weights is None:
            raise ConfigurationError(
                f"{what}: no weights of this variant are published; use pretrained=False "
                "or pass ckpt_path= a checkpoint in TerraTorch's layout"
            )
    resolved = resolve_bands(bands, tuple(pretrained_bands or PRETRAINED_BANDS))
    path: str | Path | None = ckpt_path
    if path is None and pretrained and spec.weights is not None:
        path = find_pretrained_file(spec.weights, what)  # before building: fail fast
    model = PrithviSwin(
        in_chans=len(resolved),
        img_size=img_size,
        patch_size=spec.patch_size,
        embed_dim=embed_dim or spec.embed_dim,
        depths=tuple(depths or spec.depths),
        num_heads=tuple(num_heads or spec.num_heads),
        window_size=window_size or spec.window_size,
        drop_path_rate=drop_path_rate,
        out_indices=out_indices,
    )
    model.bands = [name for name, _ in resolved]
    model.variant = variant
    if path is not None:
        model.dropped_keys = load_swin_checkpoint(model, path, [s for _, s in resolved],
                                                  model.bands, what)
        # the weights' bands: the task checks the data's band names against them
        model.pretrained_bands = tuple(pretrained_bands or PRETRAINED_BANDS)
    return model


def _variant_doc(spec: SwinVariant) -> str:
    weights = (f"Weights: {spec.weights.repo_id} ({spec.weights.filename}), "
               f"{spec.weights_note}." if spec.weights else "No published weights.")
    doc = inspect.cleandoc(build_prithvi_swin.__doc__ or "")
    args = doc.split("Args:\n", 1)[1].split("\nRaises:", 1)[0].split("\n", 1)[1]
    return (f"{spec.description}.\n\n{weights} Returns four (B, C, H, W) maps "
            f"of {[spec.embed_dim * 2**i for i in range(4)]} channels.\n\nArgs:\n"
            + args.rstrip())


def _factories() -> dict[str, functools.partial[PrithviSwin]]:
    factories = {}
    for name, spec in SWIN_VARIANTS.items():
        factory = functools.partial(build_prithvi_swin, name)
        factory.__doc__ = _variant_doc(spec)  # geofm describe shows a partial's own doc
        factories[name] = factory
    return factories


#: The registered factories by variant name: ``build_prithvi_swin`` with the variant bound.
SWIN_FACTORIES: dict[str, functools.partial[PrithviSwin]] = _factories()


def __getattr__(name: str) -> functools.partial[PrithviSwin]:
    # ``geofm_prithvi.swin_configs:<variant>`` targets resolve here
    if name in SWIN_FACTORIES:
        return SWIN_FACTORIES[name]
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted([*globals(), *SWIN_FACTORIES])
