"""Prithvi Swin checkpoints: the layouts TerraTorch loads, mapped onto :class:`PrithviSwin`.

Two layouts, told apart as TerraTorch's ``checkpoint_filter_fn`` tells them apart:

* **TerraTorch / MMSegmentation** (its model's own state dict, in a file or inside a
  task checkpoint): ``patch_embed.projection``, ``stages.N`` (``stages_N`` in task
  checkpoints), ``attn.w_msa``, ``ffn.layers.0.0`` / ``ffn.layers.1``, a classifier
  ``head.fc``. Renamed by ``geofm_prithvi._conversion.SWIN_KEYS`` (the rules
  ``geofm convert`` applies to task checkpoints too): ``patch_embed.projection`` ->
  ``patch_embed.proj``, ``stages_N`` -> ``stages.N``, ``attn.w_msa.`` -> ``attn.``,
  ``ffn.layers.0.0`` -> ``mlp.fc1``, ``ffn.layers.1`` -> ``mlp.fc2``. Prefixes
  ``module.``, ``backbone.``, ``model.encoder.`` and ``encoder.`` are removed.
* **Swin** (Microsoft / SimMIM pre-training, ``encoder.layers.N...`` beside a
  ``decoder``): ``layers.N`` -> ``stages.N``; the patch-merging weights are reordered
  from Swin's quadrant concatenation to the channel-major order this encoder uses (the
  permutation MMSegmentation's ``swin2mmseg`` applies). These files have one final
  ``norm`` and no per-stage norms: the final one is dropped and the stage norms stay
  at identity (as TerraTorch leaves them), with a warning naming them.

Dropped from either, and listed (``PrithviSwin.dropped_keys``, logged at INFO):
``relative_position_index`` and ``attn_mask`` (computed from the window), the
classifier ``head.*``, the SimMIM ``decoder``/``mask_token``, and the other parts of a
task checkpoint (decoder, head, loss). Any other key left over or missing, or a shape
that differs, is an error naming it. Relative-position tables of another window size
are resized bicubically, as TerraTorch does.
"""

from __future__ import annotations

import logging
import os
import re
import warnings
from collections.abc import Mapping, Sequence

import torch
import torch.nn.functional as F

from geofm_core.convert.rules import rename_key
from geofm_core.errors import ConfigurationError
from geofm_prithvi._conversion import SWIN_KEYS
from geofm_prithvi.swin import PrithviSwin
from geofm_prithvi.weights import adapt_patch_embedding, read_state_dict

__all__ = ["load_swin_checkpoint", "map_swin_keys"]

_log = logging.getLogger(__name__)

_COMPUTED = ("relative_position_index", "attn_mask")
_ENCODER_PREFIXES = ("model.encoder.", "encoder.", "backbone.")


def _quadrants_to_channel_major(weight: torch.Tensor) -> torch.Tensor:
    """Swin's merge order (TL, BL, TR, BR blocks of C) to per-channel TL, TR, BL, BR."""
    lead = weight.shape[:-1]
    c = weight.shape[-1] // 4
    blocks = weight.reshape(*lead, 4, c)[..., [0, 2, 1, 3], :]
    return blocks.transpose(-1, -2).reshape(*lead, 4 * c)


def _rename_swin(key: str) -> str | None:
    """A Swin (SimMIM) layout key, without ``encoder.``, as geofm's; ``None``: dropped."""
    if key.rsplit(".", 1)[-1] in _COMPUTED or key.startswith(("norm.", "head.")) \
            or key == "mask_token":
        return None
    return re.sub(r"^layers\.(\d+)\.", r"stages.\1.", key)


def map_swin_keys(state_dict: Mapping[str, torch.Tensor]
                  ) -> tuple[dict[str, torch.Tensor], dict[str, str], bool]:
    """Map an official Prithvi Swin state dict onto :class:`PrithviSwin` names.

    Returns:
        The mapped tensors, the dropped keys (original name -> why) and whether the
        file was in the Swin (SimMIM) layout.
    """
    state = {k.removeprefix("module."): v for k, v in state_dict.items()}
    dropped: dict[str, str] = {}
    swin_layout = any(k.startswith("encoder.layers.") for k in state)
    prefixed = any(k.startswith(_ENCODER_PREFIXES) for k in state)
    mapped: dict[str, torch.Tensor] = {}
    for original, value in state.items():
        prefix = next((p for p in _ENCODER_PREFIXES if original.startswith(p)), "")
        key = original[len(prefix):]
        if swin_layout and prefix != "encoder.":
            dropped[original] = "the SimMIM decoder / mask token, not the encoder"
            continue
        if not prefix and prefixed:
            dropped[original] = "not the encoder (another part of a task checkpoint)"
            continue
        if swin_layout:
            new = _rename_swin(key)
            if new is None:
                dropped[original] = ("computed from the window, or Swin's final norm, mask "
                                     "token or classifier, which this encoder has not")
                continue
            if ".downsample." in new:
                value = _quadrants_to_channel_major(value)
        else:
            new, rule = rename_key(SWIN_KEYS, key)
            if new is None:
                dropped[original] = rule.why if rule is not None else ""
                continue
        mapped[new] = value
    return mapped, dropped, swin_layout


def _resize_table(table: torch.Tensor, size: int) -> torch.Tensor:
    """A ``(L, heads)`` relative-position table resized to ``(size, heads)`` bicubically."""
    old, new = int(table.shape[0] ** 0.5), int(size**0.5)
    grid = table.T.reshape(1, table.shape[1], old, old)
    resized = F.interpolate(grid, size=(new, new), mode="bicubic")
    return resized.reshape(table.shape[1], size).T.contiguous()


def _names(keys: Sequence[str], limit: int = 25) -> str:
    shown = ", ".join(keys[:limit])
    return shown + (f", ... ({len(keys) - limit} more)" if len(keys) > limit else "")


def load_swin_checkpoint(
    model: PrithviSwin,
    path: str | os.PathLike[str],
    band_sources: Sequence[int | None],
    band_names: Sequence[str],
    what: str = "Prithvi Swin",
) -> dict[str, str]:
    """Load an official Prithvi Swin checkpoint into ``model`` with strict semantics.

    Args:
        model: The encoder to fill.
        path: ``.pt``/``.pth``/``.ckpt``/``.safetensors`` file in a layout of the module doc.
        band_sources: For each model band, its channel in the checkpoint (or None: new).
        band_names: The model's band names.
        what: The component, for messages.

    Returns:
        The dropped keys, original name -> why (also logged).

    Raises:
        ConfigurationError: Keys left over or missing after the mapping, or shapes that
            differ, each listed by name.
    """
    mapped, dropped, swin_layout = map_swin_keys(read_state_dict(path))
    expected = model.state_dict()
    patch_key = "patch_embed.proj.weight"
    if patch_key in mapped:
        weight = mapped[patch_key]
        wanted = [s for s in band_sources if s is not None]
        if weight.ndim != 4 or (wanted and max(wanted) >= weight.shape[1]):
            raise ConfigurationError(
                f"{what}: checkpoint {str(path)!r} has a patch embedding of shape "
                f"{tuple(weight.shape)}, which does not hold the pre-trained bands the model "
                "expects; pass pretrained_bands= the checkpoint's bands in order"
            )
        mapped[patch_key] = adapt_patch_embedding(weight, band_sources, band_names, what)
    for key, table in list(mapped.items()):
        if key.endswith("relative_position_bias_table") and key in expected:
            want = expected[key].shape
            if table.shape[1] == want[1] and table.shape[0] != want[0]:
                mapped[key] = _resize_table(table, want[0])
    missing = sorted(set(expected) - set(mapped))
    if swin_layout:
        identity = [k for k in missing if re.fullmatch(r"stages\.\d+\.norm\.(weight|bias)", k)]
        if identity:
            warnings.warn(
                f"{what}: checkpoint {str(path)!r} is in the Swin (SimMIM) layout, which has no "
                f"per-stage feature norms; {_names(identity)} keep their identity "
                "initialisation (as in TerraTorch) and are learned in fine-tuning",
                UserWarning, stacklevel=3,
            )
            mapped.update({k: expected[k] for k in identity})
            missing = [k for k in missing if k not in identity]
    leftover = sorted(set(mapped) - set(expected))
    mismatched = sorted(
        f"{k} {tuple(mapped[k].shape)} vs model {tuple(v.shape)}"
        for k, v in expected.items() if k in mapped and mapped[k].shape != v.shape
    )
    if leftover or missing or mismatched:
        parts = [f"{label}: {_names(keys)}" for label, keys in
                 (("unexpected keys", leftover), ("missing keys", missing),
                  ("shape mismatches", mismatched)) if keys]
        raise ConfigurationError(
            f"{what}: checkpoint {str(path)!r} does not fit the model after mapping the "
            f"official key names ({'; '.join(parts)}). Check that the file belongs to this "
            "variant (embed_dim, depths, num_heads, window_size)"
        )
    model.load_state_dict(mapped, strict=True)
    if dropped:
        _log.info("%s: dropped %d checkpoint keys: %s", what, len(dropped),
                  _names([f"{k} ({why})" for k, why in dropped.items()], limit=10))
    return dropped
