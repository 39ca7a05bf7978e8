"""Official Prithvi checkpoints: finding them, reading them, mapping their keys, adapting bands.

Two official layouts exist: Prithvi-EO-1.0's flat MAE state dict (``cls_token``,
``pos_embed``, ``patch_embed.proj.*``, ``blocks.N.*``, ``norm.*`` plus the MAE decoder's
``decoder_*`` and ``mask_token``) and Prithvi-EO-2.0's ``encoder.*`` / ``decoder.*``
split. Both map onto :class:`~geofm_prithvi.vit.PrithviViT` with strict semantics: the
decoder and the fixed position embedding are dropped, everything else must match. The
decoder's part is kept by :mod:`geofm_prithvi.mae` when the MAE decoder is built
(continued pre-training with ``geofm:mae``). A geofm ``ReconstructionTask`` checkpoint
(``model.encoder.*``) maps the same way, so ``ckpt_path: run.ckpt`` loads its encoder.
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Mapping, Sequence
from pathlib import Path

import torch

from geofm_core.errors import ConfigurationError
from geofm_prithvi.constants import HLS_BANDS, PRETRAINED_BANDS, WeightsFile
from geofm_prithvi.vit import PrithviViT

__all__ = [
    "NewBandWarning",
    "WEIGHTS_DIR_ENV",
    "adapt_patch_embedding",
    "find_pretrained_file",
    "hf_cache_dir",
    "load_checkpoint",
    "map_official_keys",
    "read_state_dict",
    "resolve_bands",
]

#: A folder holding official weight files under their Hub file names; checked first.
WEIGHTS_DIR_ENV = "GEOFM_PRITHVI_WEIGHTS_DIR"

_DROPPED_PREFIXES = ("decoder.", "decoder_")
_DROPPED_KEYS = ("mask_token", "pos_embed")
_TIME_PREFIX = "temporal_embed_enc."
_LOCATION_PREFIX = "location_embed_enc."


class NewBandWarning(UserWarning):
    """Some requested bands have no pre-trained patch-embedding weights."""


# -- bands ---------------------------------------------------------------------------


def _normalise_band(name: str) -> str:
    return name.strip().upper().replace("-", "_").replace(" ", "_")


def resolve_bands(
    bands: Sequence[str | int] | None, pretrained_bands: Sequence[str] = PRETRAINED_BANDS
) -> list[tuple[str, int | None]]:
    """Match the user's ``bands`` to the checkpoint's bands.

    Each entry is an HLS band name (any case; see ``HLS_BANDS``), any other name (a new
    band), or an int: the position of a band in ``pretrained_bands``.

    Returns:
        One ``(name, index into pretrained_bands or None for a new band)`` per entry.

    Raises:
        ConfigurationError: An index out of range, a band listed twice, or an empty list.
    """
    pretrained = [_normalise_band(b) for b in pretrained_bands]
    if bands is None:
        return [(b, i) for i, b in enumerate(pretrained)]
    if isinstance(bands, str) or len(bands) == 0:
        raise ConfigurationError(
            f"bands must be a non-empty list of band names or indices, got {bands!r}; e.g. "
            f"{list(PRETRAINED_BANDS)}"
        )
    resolved: list[tuple[str, int | None]] = []
    for band in bands:
        if isinstance(band, bool) or not isinstance(band, (int, str)):
            raise ConfigurationError(
                f"bands entry {band!r} is neither a band name nor an index; use names such as "
                f"{list(PRETRAINED_BANDS)} or indices 0..{len(pretrained) - 1}"
            )
        if isinstance(band, int):
            if not 0 <= band < len(pretrained):
                raise ConfigurationError(
                    f"bands index {band} is outside the {len(pretrained)} pre-trained bands "
                    f"{pretrained} (indices 0..{len(pretrained) - 1}); name a new band instead"
                )
            resolved.append((pretrained[band], band))
            continue
        name = _normalise_band(band)
        resolved.append((name, pretrained.index(name) if name in pretrained else None))
    names = [n for n, _ in resolved]
    duplicates = sorted({n for n in names if names.count(n) > 1})
    if duplicates:
        raise ConfigurationError(f"bands lists {duplicates} more than once: {list(bands)}")
    return resolved


def adapt_patch_embedding(
    weight: torch.Tensor, sources: Sequence[int | None], names: Sequence[str], what: str = ""
) -> torch.Tensor:
    """Reorder, select and extend the input channels of a patch-embedding weight.

    Args:
        weight: ``(embed_dim, C_pretrained, t, h, w)`` pre-trained weight.
        sources: For each model band, its channel in ``weight`` or ``None`` (a new band).
        names: The model's band names (for the warning).
        what: The component, for messages.

    Returns:
        ``(embed_dim, len(sources), t, h, w)``: pre-trained channels copied; new bands
        set to the mean of the pre-trained channels, with a :class:`NewBandWarning`.
    """
    channels = [weight[:, s] if s is not None else weight.mean(dim=1) for s in sources]
    new = [n for n, s in zip(names, sources, strict=True) if s is None]
    if new:
        known = [b for b in new if b in HLS_BANDS]
        warnings.warn(
            f"{what or 'Prithvi'}: band(s) {new} have no pre-trained patch-embedding weights "
            f"(pre-trained: {list(PRETRAINED_BANDS)}); they start from the mean of the "
            "pre-trained bands' weights and are learned in fine-tuning"
            + (f" ({known} are HLS bands the model never saw)" if known else ""),
            NewBandWarning, stacklevel=3,
        )
    return torch.stack(channels, dim=1).contiguous()


# -- files ---------------------------------------------------------------------------


def hf_cache_dir() -> Path:
    """The Hugging Face hub cache folder, read from the environment at call time."""
    for variable in ("HF_HUB_CACHE", "HUGGINGFACE_HUB_CACHE"):  # the second is the legacy name
        if os.environ.get(variable):
            return Path(os.environ[variable]).expanduser()
    home = os.environ.get("HF_HOME") or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.join("~", ".cache"), "huggingface"
    )
    return Path(home).expanduser() / "hub"


def _offline() -> bool:
    from huggingface_hub import constants

    flag = os.environ.get("HF_HUB_OFFLINE", "").strip().upper()
    return flag in {"1", "ON", "YES", "TRUE"} or bool(constants.HF_HUB_OFFLINE)


def find_pretrained_file(weights: WeightsFile, what: str = "") -> Path:
    """Return a local path to an official weight file, downloading it if needed.

    Looks in ``$GEOFM_PRITHVI_WEIGHTS_DIR`` first, then asks ``huggingface_hub`` (its
    cache, ``HF_HOME``/``HF_HUB_CACHE`` and ``HF_HUB_OFFLINE`` are respected).

    Raises:
        ConfigurationError: The file is neither cached nor downloadable; the message says
            where it is expected and how to pass a local file.
    """
    local_dir = os.environ.get(WEIGHTS_DIR_ENV)
    if local_dir and (Path(local_dir) / weights.filename).is_file():
        return Path(local_dir) / weights.filename
    from huggingface_hub import hf_hub_download

    cache = hf_cache_dir()
    offline = _offline()
    try:
        return Path(hf_hub_download(weights.repo_id, weights.filename, cache_dir=cache,
                                    local_files_only=offline))
    except Exception as exc:  # the hub raises many types: offline, HTTP, missing repo
        reason = "HF_HUB_OFFLINE is set" if offline else f"{type(exc).__name__}: {exc}"
        raise ConfigurationError(
            f"{what or 'Prithvi'}: cannot get the official weights {weights.filename!r} from "
            f"the Hugging Face repo {weights.repo_id!r} ({reason}). The file is expected in "
            f"the hub cache {cache} (set HF_HOME or HF_HUB_CACHE to use another cache), or in "
            f"${WEIGHTS_DIR_ENV}/{weights.filename}. Download it where there is network "
            f"(huggingface-cli download {weights.repo_id} {weights.filename}) and copy it "
            "over, or pass ckpt_path='/path/to/" + weights.filename + "' instead of "
            "pretrained=True"
        ) from exc


def read_state_dict(path: str | os.PathLike[str]) -> dict[str, torch.Tensor]:
    """Read a ``.safetensors`` or ``.pt``/``.pth`` state dict (``torch.load(weights_only=True)``).

    A ``{"state_dict": ...}`` or ``{"model": ...}`` wrapper is unwrapped.

    Raises:
        ConfigurationError: The file is missing or is not a state dict of tensors.
    """
    file = Path(path).expanduser()
    if not file.is_file():
        raise ConfigurationError(
            f"checkpoint {str(file)!r} does not exist or is not a file; pass ckpt_path= the "
            "path of a .pt, .pth or .safetensors file"
        )
    try:
        if file.suffix == ".safetensors":
            from safetensors.torch import load_file

            state: object = load_file(str(file), device="cpu")
        else:
            state = torch.load(file, map_location="cpu", weights_only=True)
    except Exception as exc:
        raise ConfigurationError(
            f"cannot read checkpoint {str(file)!r}: {type(exc).__name__}: {exc}. geofm reads "
            ".safetensors files and .pt/.pth state dicts of tensors (torch.load with "
            "weights_only=True)"
        ) from exc
    for wrapper in ("state_dict", "model"):
        if isinstance(state, Mapping) and isinstance(state.get(wrapper), Mapping):
            state = state[wrapper]
    if not isinstance(state, Mapping) or not all(
        isinstance(v, torch.Tensor) for v in state.values()
    ):
        raise ConfigurationError(
            f"checkpoint {str(file)!r} is not a state dict (a mapping of names to tensors)"
        )
    return {str(k): v for k, v in state.items()}


# -- keys ----------------------------------------------------------------------------


def map_official_keys(
    state_dict: Mapping[str, torch.Tensor], *, time_location: bool
) -> dict[str, torch.Tensor]:
    """Map an official (v1 flat or v2 ``encoder.``) state dict onto :class:`PrithviViT` names.

    Drops the MAE decoder (``decoder.*``, ``decoder_*``, ``mask_token``), the fixed
    ``pos_embed`` (the model computes its own), a ``_timm_module.`` prefix, and the
    time/location scales when ``time_location`` is off, and the ``model.`` prefix of a
    geofm task checkpoint (``model.encoder.*``). Other keys are kept as they are,
    for :func:`load_checkpoint` to check.
    """
    mapped: dict[str, torch.Tensor] = {}
    for original, value in state_dict.items():
        key = original.replace("_timm_module.", "").removeprefix("model.")
        if key.startswith("encoder."):
            key = key[len("encoder."):]
        if key.startswith(_DROPPED_PREFIXES) or key in _DROPPED_KEYS:
            continue
        if not time_location and key.startswith((_TIME_PREFIX, _LOCATION_PREFIX)):
            continue
        mapped[key] = value
    return mapped


def _names(keys: Sequence[str], limit: int = 25) -> str:
    shown = ", ".join(keys[:limit])
    return shown + (f", ... ({len(keys) - limit} more)" if len(keys) > limit else "")


def load_checkpoint(
    model: PrithviViT,
    path: str | os.PathLike[str],
    band_sources: Sequence[int | None],
    band_names: Sequence[str],
    what: str = "Prithvi",
) -> None:
    """Load an official-layout checkpoint into ``model`` with strict semantics.

    Args:
        model: The encoder to fill.
        path: ``.pt``/``.pth``/``.safetensors`` file.
        band_sources: For each model band, its channel in the checkpoint (or None: new).
        band_names: The model's band names.
        what: The component, for messages.

    Raises:
        ConfigurationError: Keys left over or missing after the mapping, or shapes that
            differ, each listed by name.
    """
    state = read_state_dict(path)
    mapped = map_official_keys(state, time_location=model.coords_encoding)
    expected = model.state_dict()
    patch_key = "patch_embed.proj.weight"
    if patch_key in mapped:
        weight = mapped[patch_key]
        wanted = [s for s in band_sources if s is not None]
        if weight.ndim != 5 or (wanted and max(wanted) >= weight.shape[1]):
            raise ConfigurationError(
                f"{what}: checkpoint {str(path)!r} has a patch embedding of shape "
                f"{tuple(weight.shape)}, which does not hold the pre-trained bands the model "
                "expects; pass pretrained_bands= the checkpoint's bands in order"
            )
        mapped[patch_key] = adapt_patch_embedding(weight, band_sources, band_names, what)
    leftover = sorted(set(mapped) - set(expected))
    missing = sorted(set(expected) - set(mapped))
    mismatched = sorted(
        f"{k} {tuple(mapped[k].shape)} vs model {tuple(v.shape)}"
        for k, v in expected.items() if k in mapped and mapped[k].shape != v.shape
    )
    if leftover or missing or mismatched:
        parts = []
        if leftover:
            parts.append(f"unexpected keys: {_names(leftover)}")
        if missing:
            parts.append(f"missing keys: {_names(missing)}")
        if mismatched:
            parts.append(f"shape mismatches: {_names(mismatched)}")
        raise ConfigurationError(
            f"{what}: checkpoint {str(path)!r} does not fit the model after mapping the "
            f"official key names ({'; '.join(parts)}). Check that the file belongs to this "
            "variant (embed_dim, depth, patch size, time/location encoding)"
        )
    model.load_state_dict(mapped, strict=True)
