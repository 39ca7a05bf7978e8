"""The registered TerraMind backbones (``terramind:<name>``), one factory per official encoder.

Each row of :data:`~geofm_terramind.constants.VARIANTS` gives one factory:
:func:`build_terramind` with the variant bound (a ``functools.partial`` named after the
variant, the target ``_plugin.py`` registers), documented with the variant's facts
followed by the shared arguments.
"""

from __future__ import annotations

import functools
import inspect
import warnings
from collections.abc import Mapping, Sequence
from pathlib import Path

from geofm_core.data.bands import canonical_band
from geofm_core.errors import ConfigurationError
from geofm_terramind.constants import (
    MODALITIES,
    VARIANTS,
    TerraMindVariant,
    modality_by_key,
    modality_for,
)
from geofm_terramind.vit import MERGE_METHODS, TerraMindViT
from geofm_terramind.weights import NewBandWarning, find_pretrained_file, load_official

__all__ = ["FACTORIES", "build_terramind", "resolve_modalities", *VARIANTS]

ModalitySpec = list[str | dict[str, int]] | dict[str, int] | None
#: One resolved modality: (name as given, checkpoint key, channels, band names).
Resolved = tuple[str, str, int, tuple[str, ...]]

_NAMES = ", ".join(MODALITIES)


def _new_modality(name: str, channels: object) -> Resolved:
    if isinstance(channels, bool) or not isinstance(channels, int) or channels < 1 \
            or not name or "." in name:
        raise ConfigurationError(
            f"modalities: a new modality is written {{name: channels}} with a positive int "
            f"and a name without dots, got {{{name!r}: {channels!r}}}")
    return name, name, channels, tuple(f"{name.upper()}_{i}" for i in range(channels))


def _entries(modalities: ModalitySpec, in_chans: int) -> list[Resolved]:
    if not modalities:
        return [_new_modality("image", in_chans)]  # TerraTorch's default: one new modality
    items = [modalities] if isinstance(modalities, Mapping) else list(modalities)
    out: list[Resolved] = []
    for item in items:
        if isinstance(item, Mapping):
            out.extend(_new_modality(str(k), v) for k, v in item.items())
            continue
        found = modality_for(item) if isinstance(item, str) else None
        if found is None:
            raise ConfigurationError(
                f"modalities: unknown modality {item!r}; TerraMind's image modalities are "
                f"{_NAMES} (a new one is written {{name: channels}}; tokenized inputs and "
                "the caption and coordinate sequences are not supported)")
        out.append((item, found.key, len(found.bands), found.bands))
    keys = [key for _, key, _, _ in out]
    twice = sorted({k for k in keys if keys.count(k) > 1})
    if twice:
        raise ConfigurationError(f"modalities {items} name the same modality twice ({twice})")
    return out


def _position(given: str, entries: list[Resolved]) -> int | None:
    names = [name for name, *_ in entries]
    if given in names:  # the spelling of `modalities` first, then what it means
        return names.index(given)
    found = modality_for(given)
    keys = [key for _, key, *_ in entries]
    return keys.index(found.key) if found is not None and found.key in keys else None


def resolve_modalities(
    modalities: ModalitySpec, bands: Mapping[str, Sequence[str]] | None = None,
    in_chans: int = 3,
) -> tuple[list[Resolved], dict[str, list[int | None]]]:
    """The modalities in input order, and per checkpoint key the channel of each band.

    Args:
        modalities: Names (``S2L1C``, TerraTorch's spellings) and ``{name: channels}``
            dicts of new modalities; ``None``: one new modality ``image``.
        bands: Per modality name, the bands it gets (a subset or reordering of its
            pretrained bands; other names are new bands).
        in_chans: Channels of the default new modality.

    Raises:
        ConfigurationError: An unknown or repeated modality, or bands that do not fit.
    """
    entries = _entries(modalities, in_chans)
    sources: dict[str, list[int | None]] = {}
    for given, chosen in (bands or {}).items():
        index = _position(str(given), entries)
        if index is None:
            raise ConfigurationError(
                f"bands: {given!r} is not among the modalities "
                f"{[name for name, *_ in entries]}; key bands by those names")
        name, key, _, pretrained = entries[index]
        info = modality_by_key(key)
        if info is None or not info.pretrained:
            raise ConfigurationError(
                f"bands: {name} has no pretrained bands to select from; give a new "
                "modality its channel count instead ({name: channels})")
        if isinstance(chosen, str) or not chosen:
            raise ConfigurationError(f"bands[{given}] must be a non-empty list of band names, "
                                     f"e.g. {list(pretrained)}")
        names = [canonical_band(str(b)) or str(b).strip().upper() for b in chosen]
        if len(set(names)) != len(names):
            raise ConfigurationError(f"bands[{given}] lists a band twice: {list(chosen)}")
        sources[key] = [pretrained.index(n) if n in pretrained else None for n in names]
        entries[index] = (name, key, len(names), tuple(names))
    return entries, sources


def build_terramind(
    variant: str,
    *,
    modalities: list[str | dict[str, int]] | dict[str, int] | None = None,
    bands: dict[str, list[str]] | None = None,
    merge_method: str | None = "mean",
    img_size: int = 224,
    patch_size: int = 16,
    out_indices: list[int] | None = None,
    pretrained: bool = False,
    ckpt_path: str | None = None,
    in_chans: int = 3,
    drop_path_rate: float = 0.0,
    drop_rate: float = 0.0,
    attn_drop_rate: float = 0.0,
    modality_drop_rate: float = 0.0,
    embed_dim: int | None = None,
    depth: int | None = None,
    num_heads: int | None = None,
) -> TerraMindViT:
    """Build the TerraMind variant ``variant``; every ``terramind:<name>`` factory calls this.

    Args:
        variant: A key of ``VARIANTS`` (bound by each registered factory).
        modalities: Input modalities in the order their channels are stacked: S2L1C
            (13), S2L2A (12), S1GRD (2), S1RTC (2), DEM (1), RGB (3), LULC (10), NDVI
            (1), or ``{name: channels}`` for a new one. Default: one new 3-channel
            modality ``image``, as TerraTorch's.
        bands: Per modality, the bands to use of its pretrained ones (other names are
            new bands, initialised at random), e.g. ``{S2L2A: [BLUE, GREEN, RED]}``.
        merge_method: ``mean``, ``max`` or ``concat`` over the modalities' tokens
            (geofm's necks take these), ``dict`` or ``None`` (TerraTorch's other two).
        img_size: Size of the position grid; other input sizes resize it.
        patch_size: Patch size (16 with official weights).
        out_indices: Blocks whose tokens are returned (default all).
        pretrained: Load the official weights via huggingface_hub (cache and
            HF_HUB_OFFLINE respected; $GEOFM_TERRAMIND_WEIGHTS_DIR checked first).
        ckpt_path: A local file in the official layout (or TerraTorch's encoder state);
            wins over pretrained.
        in_chans: Channels of the default new modality.
        drop_path_rate: Stochastic depth of the last block (linear from 0).
        drop_rate: Dropout in the blocks.
        attn_drop_rate: Attention dropout.
        modality_drop_rate: Probability of dropping each modality but one in training.
        embed_dim: Architecture override for small test models (not with pretrained).
        depth: Architecture override for small test models (not with pretrained).
        num_heads: Architecture override for small test models (not with pretrained).

    Raises:
        ConfigurationError: Unknown modalities or bands, an unknown merge method, or an
            architecture that the official weights do not fit.
    """
    if variant not in VARIANTS:
        raise ConfigurationError(f"unknown TerraMind variant {variant!r}; known: {list(VARIANTS)}")
    spec = VARIANTS[variant]
    what = f"backbone 'terramind:{variant}'"
    if merge_method not in MERGE_METHODS:
        raise ConfigurationError(f"{what}: merge_method {merge_method!r} is not one of "
                                 f"{', '.join(map(str, MERGE_METHODS))}")
    overrides = {k: v for k, v in {"embed_dim": embed_dim, "depth": depth,
                                   "num_heads": num_heads}.items() if v is not None}
    if patch_size != 16:
        overrides["patch_size"] = patch_size
    if overrides and pretrained and ckpt_path is None:
        raise ConfigurationError(
            f"{what}: {sorted(overrides)} change the architecture, so the official weights "
            "cannot load; drop them or use pretrained=False (or ckpt_path= a matching file)")
    entries, sources = resolve_modalities(modalities, bands, in_chans)
    path: str | Path | None = ckpt_path
    if path is None and pretrained:  # before building: a missing file fails fast
        path = find_pretrained_file(spec.weights, what)
    model = TerraMindViT(
        entries, img_size=img_size, patch_size=patch_size,
        embed_dim=overrides.get("embed_dim", spec.embed_dim),
        depth=overrides.get("depth", spec.depth),
        num_heads=overrides.get("num_heads", spec.num_heads),
        bias=not spec.gated, gated=spec.gated, merge_method=merge_method,
        out_indices=out_indices, drop_path_rate=drop_path_rate, drop_rate=drop_rate,
        attn_drop_rate=attn_drop_rate, modality_drop_rate=modality_drop_rate)
    model.variant = variant
    if path is not None:
        _warn_untrained(entries, sources, what)
        load_official(model, path, sources, what)
        model.pretrained_bands = tuple(b for _, key, _, own in entries
                                       for b in _checkpoint_bands(key, own))
    return model


def _checkpoint_bands(key: str, own: tuple[str, ...]) -> tuple[str, ...]:
    """The bands of a modality's patch embedding in the official files (own: a new one)."""
    info = modality_by_key(key)
    return info.bands if info is not None and info.pretrained else own


def _warn_untrained(entries: list[Resolved], sources: Mapping[str, Sequence[int | None]],
                    what: str) -> None:
    untrained = [f"{name} (all channels)" for name, key, _, _ in entries
                 if (m := modality_by_key(key)) is None or not m.pretrained]
    for name, key, _, names in entries:
        new = [n for n, s in zip(names, sources.get(key, ()), strict=False) if s is None]
        if new:
            untrained.append(f"{name} bands {new}")
    if untrained:
        warnings.warn(
            f"{what}: {', '.join(untrained)} have no pretrained patch embedding in the "
            "official weights; they start from random weights and are learned in fine-tuning",
            NewBandWarning, stacklevel=3)


def _shared_args() -> str:
    lines = inspect.cleandoc(build_terramind.__doc__ or "").splitlines()
    start = lines.index("Args:")
    end = next((i for i in range(start + 1, len(lines)) if lines[i] and not lines[i][0].isspace()),
               len(lines))
    kept, skipping = ["Args:"], False
    for line in lines[start + 1:end]:
        if line.startswith("    ") and not line.startswith("     "):
            skipping = line.lstrip().startswith("variant:")
        if not skipping:
            kept.append(line)
    return "\n".join(kept).rstrip()


def _variant_doc(spec: TerraMindVariant, shared: str) -> str:
    return f"{spec.description}.\n\n{shared}"


def _factories() -> dict[str, functools.partial[TerraMindViT]]:
    shared = _shared_args()
    out = {}
    for name, spec in VARIANTS.items():
        factory = functools.partial(build_terramind, name)
        factory.__doc__ = _variant_doc(spec, shared)  # geofm describe shows it
        out[name] = factory
    return out


#: The registered factories by variant name: ``build_terramind`` with the variant bound.
FACTORIES: dict[str, functools.partial[TerraMindViT]] = _factories()


def __getattr__(name: str) -> functools.partial[TerraMindViT]:
    # ``geofm_terramind.configs:<variant>`` targets resolve here
    if name in FACTORIES:
        return FACTORIES[name]
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted([*globals(), *FACTORIES])
