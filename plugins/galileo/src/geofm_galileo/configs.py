"""The registered Galileo backbones (``galileo:galileo_nano``, ``_tiny``, ``_base``).

Each factory is :func:`build_galileo` with its variant bound. ``pretrained=True`` loads
the official ``encoder.pt`` of the variant (checked against its ``config.json``) from
the Hugging Face repository ``nasaharvest/galileo``; ``ckpt_path`` loads a local one.
``embedding_size``, ``depth`` and ``num_heads`` make small test models and are refused
with weights.
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Sequence

from geofm_core.errors import ConfigurationError
from geofm_galileo.backbone import GalileoBackbone, Pooling
from geofm_galileo.constants import BASE_GSD, DEFAULT_PATCH_SIZE, PRETRAINED_BANDS, VARIANTS
from geofm_galileo.encoder import GalileoEncoder
from geofm_galileo.weights import find_official_files, load_official

__all__ = ["build_galileo", "galileo_base", "galileo_nano", "galileo_tiny"]


def build_galileo(
    variant: str,
    *,
    bands: Sequence[str] | None = None,
    pretrained: bool = False,
    ckpt_path: str | None = None,
    patch_size: int = DEFAULT_PATCH_SIZE,
    months: int | Sequence[int] | None = None,
    out_indices: Sequence[int] | None = None,
    final_norm: bool = False,
    pooling: Pooling = "space_time",
    input_resolution_m: float = BASE_GSD,
    drop_unknown_bands: bool = False,
    use_location: bool = True,
    drop_path: float = 0.0,
    embedding_size: int | None = None,
    depth: int | None = None,
    num_heads: int | None = None,
) -> GalileoBackbone:
    """Build the Galileo variant ``variant`` (``galileo_nano``, ``galileo_tiny``, ``galileo_base``).

    Args:
        variant: The variant's registered name.
        bands: One band name per input channel (default: Galileo's ten Sentinel-2 bands,
            B2 .. B12 with B8A); see :class:`~geofm_galileo.backbone.GalileoBackbone`.
        pretrained: Load the official weights of the variant.
        ckpt_path: An official-layout ``encoder.pt`` (or its folder, with
            ``config.json``) to load instead.
        patch_size: Pixels per patch side (Galileo's fine-tuning uses 4).
        months: Calendar month(s) 1-12 of the time steps, when the batch has no
            ``temporal_coords`` (default: July, as Galileo's fine-tuning).
        out_indices: Blocks returned as feature maps (default: all).
        final_norm: Apply the final LayerNorm to every returned level.
        pooling: ``space_time`` or ``all`` (tokens averaged per patch).
        input_resolution_m: Ground distance of a pixel in metres.
        drop_unknown_bands: Ignore bands Galileo has no channel for.
        use_location: Feed ``location_coords`` to the location group.
        drop_path: Stochastic depth rate of every block (pre-training used 0.1).
        embedding_size: Token width of a small test model (no weights).
        depth: Blocks of a small test model (no weights).
        num_heads: Heads of a small test model (no weights).

    Raises:
        ConfigurationError: An unknown variant, architecture overrides with weights, or
            any bad backbone option (see :class:`GalileoBackbone`).
    """
    if variant not in VARIANTS:
        raise ConfigurationError(
            f"unknown Galileo variant {variant!r}; choose one of {', '.join(VARIANTS)}")
    spec = VARIANTS[variant]
    overrides = {k: v for k, v in (("embedding_size", embedding_size), ("depth", depth),
                                   ("num_heads", num_heads)) if v is not None}
    if overrides and (pretrained or ckpt_path):
        raise ConfigurationError(
            f"{variant}: {', '.join(overrides)} change the architecture, so the official "
            "weights would not fit; leave them out with pretrained=True or ckpt_path")
    if pretrained and ckpt_path:
        raise ConfigurationError(
            f"{variant}: give either pretrained=True (the official weights) or ckpt_path, "
            "not both")
    encoder = GalileoEncoder(
        embedding_size=overrides.get("embedding_size", spec.embedding_size),
        depth=overrides.get("depth", spec.depth),
        num_heads=overrides.get("num_heads", spec.num_heads),
        mlp_ratio=spec.mlp_ratio, max_sequence_length=spec.max_sequence_length,
        max_patch_size=spec.max_patch_size, drop_path=drop_path)
    if pretrained:
        weights, config = find_official_files(spec)
        load_official(encoder, weights, config, variant=spec)
    elif ckpt_path:
        load_official(encoder, ckpt_path, variant=spec)
    backbone = GalileoBackbone(
        encoder, bands, patch_size=patch_size, months=months, out_indices=out_indices,
        final_norm=final_norm, pooling=pooling, input_resolution_m=input_resolution_m,
        drop_unknown_bands=drop_unknown_bands, use_location=use_location)
    if pretrained or ckpt_path:
        backbone.pretrained_bands = list(PRETRAINED_BANDS)
    return backbone


def _factory(variant: str) -> functools.partial[GalileoBackbone]:
    spec = VARIANTS[variant]
    factory = functools.partial(build_galileo, variant)
    shared = inspect.cleandoc(build_galileo.__doc__ or "").split("Args:", 1)[-1]
    shared = "\n".join(line for line in shared.splitlines()
                       if not line.strip().startswith("variant:"))
    # geofm describe shows a partial's own docstring
    factory.__doc__ = f"{spec.description}.\n\nArgs:{shared}"
    return factory


galileo_nano = _factory("galileo_nano")
galileo_tiny = _factory("galileo_tiny")
galileo_base = _factory("galileo_base")
