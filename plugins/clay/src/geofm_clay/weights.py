"""Official Clay checkpoints: finding them on the Hub, mapping their keys, loading strictly.

Clay publishes Lightning checkpoints of its whole pre-training module: the encoder under
``model.encoder.*``, and the MAE decoder (``model.decoder.*``), for v1.5 the teacher
(``model.teacher.*``) and its projection (``model.proj.*``), which fine-tuning does not
use. :func:`map_official_keys` keeps the encoder (a bare encoder state dict, with or
without ``encoder.``, is accepted too) and reports what it drops, grouped by prefix;
:func:`load_checkpoint` then requires the encoder's keys and shapes to match exactly.
The patch embedding is generated from wavelengths, so the bands never change the keys.
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Mapping
from pathlib import Path

import torch

from geofm_clay.constants import WeightsFile
from geofm_clay.encoder import ClayEncoder
from geofm_core.convert.terratorch.hub import hf_cache_dir
from geofm_core.errors import ConfigurationError
from geofm_core.io.weights import read_state_dict

__all__ = [
    "WEIGHTS_DIR_ENV",
    "DroppedWeightsWarning",
    "find_pretrained_file",
    "load_checkpoint",
    "map_official_keys",
]

#: A folder holding official weight files under their Hub file names; checked first.
WEIGHTS_DIR_ENV = "GEOFM_CLAY_WEIGHTS_DIR"

_PREFIXES = ("model.encoder.", "encoder.")


class DroppedWeightsWarning(UserWarning):
    """An official checkpoint held tensors outside the encoder (decoder, teacher), dropped."""


def _offline() -> bool:
    return os.environ.get("HF_HUB_OFFLINE", "").strip().upper() in {"1", "ON", "YES", "TRUE"}


def find_pretrained_file(weights: WeightsFile, what: str = "Clay") -> Path:
    """A local path to an official checkpoint, downloaded through ``huggingface_hub`` if needed.

    ``$GEOFM_CLAY_WEIGHTS_DIR/<file name>`` is used when it exists; otherwise the hub
    cache (``HF_HOME`` / ``HF_HUB_CACHE``), the only place read with ``HF_HUB_OFFLINE=1``.

    Raises:
        ConfigurationError: The file is neither cached nor downloadable; the message says
            where it is expected and how to pass a local file instead.
    """
    local = os.environ.get(WEIGHTS_DIR_ENV)
    if local and (Path(local) / Path(weights.filename).name).is_file():
        return Path(local) / Path(weights.filename).name
    from huggingface_hub import hf_hub_download

    cache = hf_cache_dir()
    offline = _offline()
    try:
        return Path(hf_hub_download(weights.repo_id, weights.filename, cache_dir=cache,
                                    local_files_only=offline))
    except Exception as exc:  # the hub raises many types: offline, HTTP, missing repo
        reason = "HF_HUB_OFFLINE is set" if offline else f"{type(exc).__name__}: {exc}"
        name = Path(weights.filename).name
        raise ConfigurationError(
            f"{what}: cannot get the official weights {weights.filename!r} of the Hugging "
            f"Face repo {weights.repo_id!r} ({reason}). They are looked for in the hub cache "
            f"{cache} (set HF_HOME or HF_HUB_CACHE for another) and in ${WEIGHTS_DIR_ENV}/"
            f"{name}. Download them where there is network (huggingface-cli download "
            f"{weights.repo_id} {weights.filename}) and copy them over, or pass "
            f"ckpt_path='/path/to/{name}' instead of pretrained=True"
        ) from exc


def _group(key: str) -> str:
    parts = key.split(".")
    return ".".join(parts[:2]) + ".*" if len(parts) > 2 else key


def map_official_keys(
    state_dict: Mapping[str, torch.Tensor],
) -> tuple[dict[str, torch.Tensor], dict[str, int]]:
    """The encoder's tensors of an official checkpoint under :class:`ClayEncoder` names.

    Returns:
        ``(encoder state dict, {dropped prefix: tensor count})``. When any key starts
        with ``model.encoder.`` (a Lightning checkpoint), every other key is dropped;
        else ``encoder.`` is removed where present and the rest kept as is.
    """
    keys = list(state_dict)
    prefix = next((p for p in _PREFIXES if any(k.startswith(p) for k in keys)), "")
    mapped: dict[str, torch.Tensor] = {}
    dropped: dict[str, int] = {}
    for key, value in state_dict.items():
        if key.startswith(prefix):
            mapped[key[len(prefix):]] = value
        else:
            dropped[_group(key)] = dropped.get(_group(key), 0) + 1
    return mapped, dropped


def _names(keys: list[str], limit: int = 20) -> str:
    shown = ", ".join(keys[:limit])
    return shown + (f", ... ({len(keys) - limit} more)" if len(keys) > limit else "")


def load_checkpoint(model: ClayEncoder, path: str | os.PathLike[str],
                    what: str = "Clay") -> dict[str, int]:
    """Load an official-layout checkpoint into ``model``, strictly.

    Tensors outside the encoder are dropped with a :class:`DroppedWeightsWarning` that
    lists them by prefix.

    Returns:
        The dropped prefixes and their tensor counts.

    Raises:
        ConfigurationError: The file is unreadable, or the encoder's keys are missing,
            left over or of other shapes after the mapping (each listed by name).
    """
    state, _ = read_state_dict(Path(path))
    mapped, dropped = map_official_keys(state)
    expected = model.state_dict()
    leftover = sorted(set(mapped) - set(expected))
    missing = sorted(set(expected) - set(mapped))
    mismatched = sorted(
        f"{k} {tuple(mapped[k].shape)} vs model {tuple(v.shape)}"
        for k, v in expected.items() if k in mapped and mapped[k].shape != v.shape
    )
    if leftover or missing or mismatched:
        parts = [f"{label}: {_names(items)}" for label, items in (
            ("unexpected keys", leftover), ("missing keys", missing),
            ("shape mismatches", mismatched)) if items]
        raise ConfigurationError(
            f"{what}: checkpoint {str(path)!r} does not fit the encoder after mapping "
            f"Clay's key names ({'; '.join(parts)}). Check that the file is this variant's "
            "(dim, depth, heads, dim_head, mlp_ratio)"
        )
    if dropped:
        listed = ", ".join(f"{k} ({n})" for k, n in sorted(dropped.items()))
        warnings.warn(
            f"{what}: {sum(dropped.values())} tensors of {Path(path).name} are not part of "
            f"the encoder and were dropped: {listed}", DroppedWeightsWarning, stacklevel=2)
    model.load_state_dict(mapped, strict=True)
    return dropped
