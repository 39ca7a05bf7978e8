"""Official TerraMind checkpoints: finding them and loading their encoder with strict keys.

An official file (``TerraMind_v1_<size>.pt``) holds the whole any-to-any model: the
encoder (``encoder_embeddings.<key>.*``, ``encoder.N.*``, ``encoder_norm.*``) and the
generation parts (``decoder_embeddings.*``, ``decoder.*``, ``decoder_norm.*``,
``decoder_proj_context.*``, ``mask_token``), plus embeddings of modalities the model was
not built for (tokenized ones, captions, coordinates). The encoder's tensors must match
the model exactly; the rest is dropped with a :class:`DroppedWeightsNote` that lists it.
Reading goes through the core (:func:`geofm_core.io.weights.read_state_dict`, the
Hugging Face cache of :func:`geofm_core.convert.terratorch.hub.hf_cache_dir`).
"""

from __future__ import annotations

import os
import re
import warnings
from collections.abc import Mapping, Sequence
from pathlib import Path

import torch

from geofm_core.convert.terratorch.hub import hf_cache_dir
from geofm_core.errors import ConfigurationError
from geofm_core.io.checkpoints import check_state_dict
from geofm_core.io.weights import read_state_dict
from geofm_terramind.constants import WeightsFile, modality_by_key
from geofm_terramind.vit import TerraMindViT, sincos_2d

__all__ = [
    "DROPPED_PARTS",
    "WEIGHTS_DIR_ENV",
    "DroppedWeightsNote",
    "NewBandWarning",
    "find_pretrained_file",
    "load_official",
    "map_official_state",
]

#: A folder holding official weight files under their Hub file names; checked first.
WEIGHTS_DIR_ENV = "GEOFM_TERRAMIND_WEIGHTS_DIR"

#: Key prefixes of the official files that the encoder does not use, and why.
DROPPED_PARTS: dict[str, str] = {
    "decoder_embeddings.": "the generation decoder's modality embeddings",
    "decoder.": "the generation decoder's blocks",
    "decoder_norm.": "the generation decoder's norm",
    "decoder_proj_context.": "the generation decoder's context projection",
    "mask_token": "the generation decoder's mask token",
    "tokenizer.": "TerraTorch's tokenizers (geofm embeds raw pixels only)",
}


_NORM_BIAS = re.compile(r"encoder\.\d+\.norm[12]\.bias|encoder_norm\.bias")


class DroppedWeightsNote(UserWarning):
    """Tensors of a checkpoint that the encoder does not use were dropped (listed)."""


class NewBandWarning(UserWarning):
    """Some requested bands have no pretrained patch-embedding weights."""


def _offline() -> bool:
    from huggingface_hub import constants

    flag = os.environ.get("HF_HUB_OFFLINE", "").strip().upper()
    return flag in {"1", "ON", "YES", "TRUE"} or bool(constants.HF_HUB_OFFLINE)


def find_pretrained_file(weights: WeightsFile, what: str = "TerraMind") -> Path:
    """A local path to an official weight file, downloaded if needed.

    ``$GEOFM_TERRAMIND_WEIGHTS_DIR`` first, then ``huggingface_hub`` (its cache,
    ``HF_HOME``/``HF_HUB_CACHE`` and ``HF_HUB_OFFLINE`` are respected).

    Raises:
        ConfigurationError: Neither cached nor downloadable; says where it was looked for.
    """
    local_dir = os.environ.get(WEIGHTS_DIR_ENV)
    if local_dir and (Path(local_dir) / weights.filename).is_file():
        return Path(local_dir) / weights.filename
    from huggingface_hub import hf_hub_download

    cache, offline = hf_cache_dir(), _offline()
    try:
        return Path(hf_hub_download(weights.repo_id, weights.filename, cache_dir=cache,
                                    local_files_only=offline))
    except Exception as exc:  # the hub raises many types: offline, HTTP, missing repo
        reason = "HF_HUB_OFFLINE is set" if offline else f"{type(exc).__name__}: {exc}"
        raise ConfigurationError(
            f"{what}: cannot get the official weights {weights.filename!r} from the Hugging "
            f"Face repo {weights.repo_id!r} ({reason}). It is expected in the hub cache "
            f"{cache} (set HF_HOME or HF_HUB_CACHE for another one) or in "
            f"${WEIGHTS_DIR_ENV}/{weights.filename}; download it where there is network "
            f"(huggingface-cli download {weights.repo_id} {weights.filename}), or pass "
            "ckpt_path= a local copy instead of pretrained=True") from exc


def _adapt_projection(weight: torch.Tensor, own: torch.Tensor, sources: Sequence[int | None],
                      patch_pixels: int) -> torch.Tensor:
    """Select the checkpoint's input channels ``sources`` of a patch projection.

    The projection's inputs are (pixel, channel) with the channel fastest; a ``None``
    source (a new band) keeps the model's own initial column.
    """
    dim = weight.shape[0]
    src = weight.reshape(dim, patch_pixels, -1)
    out = own.detach().clone().reshape(dim, patch_pixels, len(sources))
    for i, s in enumerate(sources):
        if s is not None:
            out[..., i] = src[..., s]
    return out.reshape(dim, -1)


def map_official_state(
    state: Mapping[str, torch.Tensor], model: TerraMindViT,
    band_sources: Mapping[str, Sequence[int | None]] | None = None,
) -> tuple[dict[str, torch.Tensor], dict[str, list[str]]]:
    """Map an official-layout state dict onto ``model``'s names.

    Args:
        state: The checkpoint's tensors.
        model: The encoder they are for.
        band_sources: Per checkpoint key (``untok_sen2l1c@224``), each model channel's
            channel in the checkpoint (``None``: a new band); modalities not given take
            the checkpoint's channels.

    Returns:
        The tensors to load, and the dropped keys grouped by reason. Keys the rules do
        not know are kept, so that the strict check names them.

    Raises:
        ConfigurationError: A stored position embedding differs from the fixed sin-cos
            one the model computes (the file is not a TerraMind encoder).
    """
    own = model.state_dict()
    keys = {key: name for name, key in model.modality_keys.items()}
    pixels = model.patch_size ** 2
    mapped: dict[str, torch.Tensor] = {}
    dropped: dict[str, list[str]] = {}
    for key, value in state.items():
        part = next((p for p in DROPPED_PARTS if key.startswith(p) or key == p.rstrip(".")),
                    None)
        if part is not None:
            dropped.setdefault(DROPPED_PARTS[part], []).append(key)
            continue
        if key.startswith("encoder_embeddings."):
            modality, _, rest = key[len("encoder_embeddings."):].partition(".")
            if modality not in keys:
                dropped.setdefault("embeddings of modalities this model was not built for",
                                   []).append(key)
                continue
            if rest == "pos_emb":
                _check_position(value, model, modality, key)
                dropped.setdefault("fixed sin-cos position embeddings (recomputed)",
                                   []).append(key)
                continue
            sources = (band_sources or {}).get(modality)
            if rest == "proj.weight" and sources is not None and value.ndim == 2:
                value = _adapt_projection(value, own[key], sources, pixels)
        mapped[key] = value
    for key in own:
        if key in mapped:
            continue
        if key == "missing_mod_token" or (key.startswith("encoder_embeddings.")
                                          and _untrained(key.split(".")[1])):
            # concat's stand-in for absent modalities and the embeddings of modalities the
            # files have no pixel embedding for start from the model's own initial values
            mapped[key] = own[key]
            dropped.setdefault("not in the file, kept at their initial values", []).append(key)
        elif _NORM_BIAS.fullmatch(key):
            # a file saved without the bias-free LayerNorms' zero buffers loses nothing
            mapped[key] = own[key]
            dropped.setdefault("not in the file, the LayerNorms' zero biases", []).append(key)
    return mapped, dropped


def _untrained(key: str) -> bool:
    info = modality_by_key(key)  # a new modality's key is its own name
    return info is None or not info.pretrained


def _check_position(value: torch.Tensor, model: TerraMindViT, modality: str, key: str) -> None:
    side = round(value.shape[1] ** 0.5) if value.ndim == 3 else 0
    if value.ndim != 3 or side * side != value.shape[1] or value.shape[2] != model.embed_dim:
        return  # a shape the strict check cannot hold against us: it is recomputed anyway
    expected = sincos_2d((side, side), model.embed_dim)
    if not torch.allclose(value.float(), expected, atol=1e-4):
        raise ConfigurationError(
            f"{key} is not TerraMind's fixed sin-cos position embedding; the file is not "
            f"an official-layout TerraMind encoder (modality {modality})")


def load_official(model: TerraMindViT, path: str | os.PathLike[str],
                  band_sources: Mapping[str, Sequence[int | None]] | None = None,
                  what: str = "TerraMind") -> dict[str, list[str]]:
    """Load an official-layout checkpoint into ``model`` with strict key matching.

    Returns:
        The dropped keys grouped by reason (also shown as a :class:`DroppedWeightsNote`).

    Raises:
        ConfigurationError: Keys missing or left over after the mapping, or shapes that
            differ, each named.
    """
    state, _ = read_state_dict(Path(path))
    mapped, dropped = map_official_state(state, model, band_sources)
    check_state_dict(model.state_dict(), mapped, f"{what}: checkpoint {str(path)!r}",
                     fix="check that the file belongs to this variant (embed_dim, depth, "
                     "patch size) and that its modalities include those asked for")
    model.load_state_dict(mapped, strict=True)
    if dropped:
        listing = "; ".join(f"{why}: {len(k)} tensor(s) ({', '.join(k[:3])}"
                            f"{', ...' if len(k) > 3 else ''})" for why, k in dropped.items())
        warnings.warn(f"{what}: loaded the encoder from {str(path)!r}; not taken from the "
                      f"file: {listing}",
                      DroppedWeightsNote, stacklevel=3)
    return dropped
