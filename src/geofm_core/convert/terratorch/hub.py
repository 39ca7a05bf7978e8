"""Published TerraTorch models by Hugging Face repo id: their config and checkpoint as local files.

:func:`resolve_hub_model` finds the TerraTorch YAML config and the fine-tuned
checkpoint of a model repository through ``huggingface_hub``: from its cache (the only
place looked at with ``HF_HUB_OFFLINE=1``), or downloaded into it. The files are then
converted like local ones. Plugins declare the file names of the models published for
their components (:attr:`geofm_core.convert.rules.ConversionRules.published`); in any
other repository, exactly one YAML file and one checkpoint must be found (or named).

Importing this module imports neither torch nor ``huggingface_hub``.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from geofm_core.errors import ConfigurationError

__all__ = ["HubModel", "hf_cache_dir", "resolve_hub_model"]

_REPO_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*/[A-Za-z0-9][A-Za-z0-9._-]*")
_CONFIGS = (".yaml", ".yml")
_CHECKPOINTS = (".ckpt", ".pt", ".pth")


@dataclass(frozen=True)
class HubModel:
    """A published model's files, local.

    Attributes:
        repo_id: The Hugging Face repository.
        config: Its TerraTorch YAML config.
        checkpoint: Its TerraTorch checkpoint.
    """

    repo_id: str
    config: Path
    checkpoint: Path


def hf_cache_dir() -> Path:
    """The Hugging Face hub cache folder, read from the environment at call time."""
    for variable in ("HF_HUB_CACHE", "HUGGINGFACE_HUB_CACHE"):  # the second is the legacy name
        if os.environ.get(variable):
            return Path(os.environ[variable]).expanduser()
    home = os.environ.get("HF_HOME") or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.join("~", ".cache"), "huggingface")
    return Path(home).expanduser() / "hub"


def _offline() -> bool:
    return os.environ.get("HF_HUB_OFFLINE", "").strip().upper() in {"1", "ON", "YES", "TRUE"}


def _hub() -> Any:
    try:
        import huggingface_hub
    except ImportError as exc:
        raise ConfigurationError(
            "reading models from the Hugging Face hub needs huggingface_hub: pip install "
            "huggingface_hub (or pass the downloaded config and checkpoint files)") from exc
    return huggingface_hub


def _where(repo_id: str, cache: Path, offline: bool) -> str:
    how = ("HF_HUB_OFFLINE is set, so only the cache is read" if offline else
           "nor downloadable")
    return (f"the hub cache {cache} ({how}; set HF_HOME or HF_HUB_CACHE for another cache, "
            f"or run `huggingface-cli download {repo_id}` where there is network)")


def _repo_files(repo_id: str, revision: str | None, cache: Path, offline: bool) -> list[str]:
    """The files of the repository: listed by the hub, or those of the cached snapshot."""
    hub = _hub()
    try:
        if offline:
            folder = Path(hub.snapshot_download(repo_id, revision=revision, cache_dir=cache,
                                                local_files_only=True))
            return sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*")
                          if p.is_file())
        return sorted(hub.HfApi().list_repo_files(repo_id, revision=revision))
    except Exception as exc:  # the hub raises many types: offline, HTTP, missing repo
        raise ConfigurationError(
            f"cannot list the files of the Hugging Face model {repo_id!r}: it is not in "
            f"{_where(repo_id, cache, offline)} ({type(exc).__name__})") from exc


def _pick(files: list[str], suffixes: tuple[str, ...], what: str, option: str,
          repo_id: str) -> str:
    found = [f for f in files if f.lower().endswith(suffixes)]
    if len(found) == 1:
        return found[0]
    if not found and what == "config" and any(f.endswith(".py") for f in files):
        raise ConfigurationError(
            f"{repo_id} holds no YAML config, only Python ones "
            f"({', '.join(f for f in files if f.endswith('.py'))}): it is not a TerraTorch "
            "model (MMSegmentation configs are .py files); geofm converts TerraTorch models")
    listing = ", ".join(found) if found else f"none among {', '.join(files) or 'no files'}"
    raise ConfigurationError(
        f"{repo_id}: {'several' if found else 'no'} {what} files ({' / '.join(suffixes)}): "
        f"{listing}; name the one to use with {option}")


def resolve_hub_model(repo_id: str, *, config_file: str | None = None,
                      checkpoint_file: str | None = None, revision: str | None = None,
                      cache_dir: str | Path | None = None,
                      known: Mapping[str, tuple[str, str]] | None = None) -> HubModel:
    """Local paths of a published TerraTorch model's config and checkpoint.

    Args:
        repo_id: The Hugging Face model repository (``org/name``).
        config_file: The config's file name in the repository (default: the known one,
            else the only YAML file).
        checkpoint_file: The checkpoint's file name (default: the known one, else the
            only ``.ckpt`` / ``.pt`` / ``.pth`` file).
        revision: A branch, tag or commit (default ``main``).
        cache_dir: The hub cache (default: ``HF_HUB_CACHE`` / ``HF_HOME``'s).
        known: Repo id -> (config, checkpoint) file names (default: those the installed
            plugins declare).

    Raises:
        ConfigurationError: The id is malformed, the files are neither cached nor
            downloadable (only the cache is read with ``HF_HUB_OFFLINE=1``), or which
            files to use cannot be told; the message says where they were looked for.
    """
    if not isinstance(repo_id, str) or not _REPO_ID.fullmatch(repo_id):
        raise ConfigurationError(
            f"{repo_id!r} is not a Hugging Face repo id; write it as org/name")
    cache = Path(cache_dir).expanduser() if cache_dir is not None else hf_cache_dir()
    offline = _offline()
    if known is None:
        from geofm_core.convert.terratorch.names import rule_book

        known = rule_book().published()
    files_of = known.get(repo_id)
    if files_of is not None:
        config_file = config_file or files_of[0]
        checkpoint_file = checkpoint_file or files_of[1]
    if config_file is None or checkpoint_file is None:
        files = _repo_files(repo_id, revision, cache, offline)
        config_file = config_file or _pick(files, _CONFIGS, "config", "--config-file",
                                           repo_id)
        checkpoint_file = checkpoint_file or _pick(files, _CHECKPOINTS, "checkpoint",
                                                   "--checkpoint-file", repo_id)
    hub = _hub()
    paths: list[Path] = []
    for name in (config_file, checkpoint_file):
        try:
            paths.append(Path(hub.hf_hub_download(repo_id, name, revision=revision,
                                                  cache_dir=cache, local_files_only=offline)))
        except Exception as exc:  # the hub raises many types: offline, HTTP, missing file
            raise ConfigurationError(
                f"cannot get {name!r} of the Hugging Face model {repo_id!r}: it is not in "
                f"{_where(repo_id, cache, offline)} ({type(exc).__name__})") from exc
    return HubModel(repo_id, paths[0], paths[1])
