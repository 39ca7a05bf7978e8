"""Official Galileo weights: finding ``models/<variant>/{encoder.pt,config.json}`` and loading them.

The Hugging Face repository ``nasaharvest/galileo`` holds one folder per variant with
the encoder's state dict (``encoder.pt``, official parameter names, sometimes with a
stray ``.backbone`` in the names, which the official loader removes) and the training
config (``config.json``, whose ``model.encoder`` section gives the architecture). Files
come from ``$GEOFM_GALILEO_WEIGHTS_DIR/<variant>/`` when set, else from the hub cache
(``HF_HOME`` / ``HF_HUB_CACHE``; only the cache with ``HF_HUB_OFFLINE=1``), else a download.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import torch

from geofm_core.convert.terratorch.hub import hf_cache_dir
from geofm_core.errors import ConfigurationError
from geofm_core.io.checkpoints import load_state_dict_checked
from geofm_core.io.weights import read_state_dict
from geofm_galileo.constants import HF_REPO_ID, GalileoVariant
from geofm_galileo.encoder import GalileoEncoder

__all__ = [
    "CONFIG_FILENAME",
    "ENCODER_FILENAME",
    "WEIGHTS_DIR_ENV",
    "clean_keys",
    "encoder_config",
    "find_official_files",
    "load_official",
]

#: A folder with one ``<variant>/`` subfolder per variant (``nano/encoder.pt``, ...).
WEIGHTS_DIR_ENV = "GEOFM_GALILEO_WEIGHTS_DIR"
CONFIG_FILENAME = "config.json"
ENCODER_FILENAME = "encoder.pt"

#: ``config.json`` ``model.encoder`` keys -> :class:`GalileoEncoder` arguments; the
#: architecture ones are compared with the variant's.
_ARCHITECTURE = {"embedding_size": "embedding_size", "depth": "depth",
                 "num_heads": "num_heads", "mlp_ratio": "mlp_ratio",
                 "max_sequence_length": "max_sequence_length",
                 "max_patch_size": "max_patch_size"}


def _offline() -> bool:
    return os.environ.get("HF_HUB_OFFLINE", "").strip().upper() in {"1", "ON", "YES", "TRUE"}


def find_official_files(variant: GalileoVariant) -> tuple[Path, Path]:
    """Local paths of a variant's ``encoder.pt`` and ``config.json``, downloaded if needed.

    Raises:
        ConfigurationError: Neither in ``$GEOFM_GALILEO_WEIGHTS_DIR`` nor in the hub cache
            nor downloadable; the message says where they are expected.
    """
    local = os.environ.get(WEIGHTS_DIR_ENV)
    if local:
        folder = Path(local).expanduser() / variant.name
        if (folder / ENCODER_FILENAME).is_file() and (folder / CONFIG_FILENAME).is_file():
            return folder / ENCODER_FILENAME, folder / CONFIG_FILENAME
    from huggingface_hub import hf_hub_download

    cache, offline = hf_cache_dir(), _offline()
    paths = []
    for name in (ENCODER_FILENAME, CONFIG_FILENAME):
        try:
            paths.append(Path(hf_hub_download(HF_REPO_ID, f"{variant.folder}/{name}",
                                              cache_dir=cache, local_files_only=offline)))
        except Exception as exc:  # the hub raises many types: offline, HTTP, missing file
            reason = "HF_HUB_OFFLINE is set" if offline else type(exc).__name__
            raise ConfigurationError(
                f"galileo_{variant.name}: cannot get {variant.folder}/{name} of the Hugging "
                f"Face repo {HF_REPO_ID!r} ({reason}). It is expected in the hub cache {cache} "
                f"(set HF_HOME or HF_HUB_CACHE for another cache) or in "
                f"${WEIGHTS_DIR_ENV}/{variant.name}/{name}; download it where there is "
                f"network (hf download {HF_REPO_ID} --include '{variant.folder}/*') or pass "
                "ckpt_path= the folder holding encoder.pt and config.json"
            ) from exc
    return paths[0], paths[1]


def encoder_config(path: Path) -> dict[str, Any]:
    """The ``model.encoder`` section of an official ``config.json``.

    Raises:
        ConfigurationError: The file is unreadable or has no such section.
    """
    try:
        section = json.loads(Path(path).read_text())["model"]["encoder"]
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise ConfigurationError(
            f"{path} is not an official Galileo config.json (a JSON object with a "
            f"model.encoder section): {type(exc).__name__}: {exc}") from exc
    if not isinstance(section, dict):
        raise ConfigurationError(f"{path}: model.encoder is not a JSON object")
    return section


def check_architecture(config: dict[str, Any], variant: GalileoVariant, where: Path) -> None:
    """Refuse a ``config.json`` whose encoder is not the variant's."""
    wrong = [f"{key}={config[key]!r} (galileo_{variant.name} has "
             f"{getattr(variant, attr)!r})"
             for key, attr in _ARCHITECTURE.items()
             if key in config and config[key] != getattr(variant, attr)]
    if wrong:
        raise ConfigurationError(
            f"{where} describes another encoder than galileo_{variant.name}: "
            f"{', '.join(wrong)}; use the factory of that variant")


def clean_keys(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Remove the ``.backbone`` some official files carry in their names (as Galileo does)."""
    return {k.replace(".backbone", ""): v for k, v in state.items()}


def load_official(encoder: GalileoEncoder, path: str | os.PathLike[str],
                  config: str | os.PathLike[str] | None = None, *,
                  variant: GalileoVariant | None = None) -> None:
    """Load an official ``encoder.pt`` (or a folder with it and ``config.json``) strictly.

    Args:
        encoder: The encoder to fill.
        path: ``encoder.pt`` (or ``.safetensors`` with the same names), or its folder.
        config: The ``config.json`` to check the architecture against (default: the one
            next to the file, when there is one).
        variant: The variant the encoder was built as (for the architecture check).

    Raises:
        ConfigurationError: Missing file, another architecture, or keys / shapes that
            do not match, each named.
    """
    file = Path(path).expanduser()
    if file.is_dir():
        file = file / ENCODER_FILENAME
    if config is None and (file.parent / CONFIG_FILENAME).is_file():
        config = file.parent / CONFIG_FILENAME
    if config is not None and variant is not None:
        check_architecture(encoder_config(Path(config)), variant, Path(config))
    state, _ = read_state_dict(file)
    load_state_dict_checked(
        encoder, clean_keys(state), file,
        fix="pass the encoder.pt of the same Galileo variant (nano, tiny or base)")
