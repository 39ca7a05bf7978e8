"""TorchGeo's models as geofm backbones: multi-level features, weights through torchgeo.

Each backbone is built by torchgeo's own builder (``torchgeo.models.<model>``), so
torchgeo's weights load exactly as torchgeo loads them (download to
``$TORCH_HOME/hub/checkpoints``), and is then wrapped to return a list of features:

* ResNet (timm): the 5 levels of timm's ``feature_info`` as (B, C, H, W), strides 2..32.
* ViT (timm): the tokens after each block, (B, 1 + N, C) with the CLS token first (what
  ``geofm:reshape_tokens_to_image`` removes); any size that is a multiple of the patch.
* Swin (torchvision): the 4 stages as (B, C, H, W), strides 4..32.
* DOFA: the tokens after each block, (B, 1 + N, C); the wavelength of each input band
  comes from ``bands`` (or ``wavelengths``).
* Copernicus-FM, Panopticon, Scale-MAE: tokens after each block, (B, 1 + N, C); CROMA:
  (B, N, C), no CLS token; see
  :mod:`geofm_torchgeo.wavelength_models`.

Component names (``resnet50``, ``resnet50_sentinel2_all_moco``) are attributes of this
module, made on demand from :data:`geofm_torchgeo._zoo.MODELS`.
"""

from __future__ import annotations

import functools
import inspect
import math
import os
import warnings
from collections.abc import Callable, Sequence
from typing import Any
from urllib.parse import urlparse

import torch
import torch.nn.functional as F
from torch import nn

from geofm_core.data.bands import canonical_band, wavelength_of
from geofm_core.errors import ConfigurationError, ConfigurationWarning
from geofm_torchgeo._names import weighted_name, wrapper_family
from geofm_torchgeo._zoo import DESCRIPTIONS, MODELS
from geofm_torchgeo.wavelength_models import FAMILIES as WAVELENGTH_FAMILIES
from geofm_torchgeo.wavelength_models import (
    LEVELS,
    block_outputs,
    check_input,
    prepare,
    shape,
)

__all__ = ["TorchGeoBackbone", "build", "checkpoint_path", "factory", "family_of"]


def family_of(model: str) -> str:
    """Which wrapper serves ``model``: ``resnet``, ``vit``, ``swin``, ``dofa``, ..."""
    family = wrapper_family(model)
    if family is not None:
        return family
    raise ConfigurationError(
        f"torchgeo model {model!r} is not supported as a geofm backbone yet; the supported "
        "families are ResNet, ViT, Swin, DOFA, Copernicus-FM, Panopticon, Scale-MAE and "
        "CROMA (see the plugin's README)"
    )


def _weights_member(model: str, weights: str | None) -> Any:
    """The torchgeo weights enum member called ``weights`` (case-insensitive), or None."""
    if weights is None:
        return None
    import torchgeo.models

    try:
        enum = torchgeo.models.get_model_weights(model)
    except KeyError:
        raise ConfigurationError(
            f"torchgeo:{model} has no pretrained weights in torchgeo; use weights: null"
        ) from None
    for member in enum:
        if member.name.casefold() == str(weights).casefold():
            return member
    names = ", ".join(m.name for m in enum)
    raise ConfigurationError(
        f"torchgeo:{model} has no weight set {weights!r}; its weight sets are {names}"
    )


def checkpoint_path(member: Any) -> str:
    """Where torch.hub keeps the file of a torchgeo weight set (``$TORCH_HOME/hub/...``)."""
    name = os.path.basename(urlparse(member.url).path)
    return os.path.join(torch.hub.get_dir(), "checkpoints", name)


def _pretrained_bands(model: str, member: Any) -> tuple[str, ...] | None:
    """The weight set's bands in geofm names, as the generated zoo metadata gives them.

    Not torchgeo's ``meta["bands"]``: it spells bands per sensor (Landsat's ``B5`` is
    SWIR 1, Sentinel-2's is red edge 1; NAIP's are ``R, G, B``), which the zoo's
    generator maps sensor by sensor.
    """
    if member is None:
        return None
    entries = MODELS.get(model, {}).get("weights") or ()
    entry = next((w for w in entries if w["name"] == member.name), None)
    return tuple(entry["bands"]) if entry and entry.get("bands") else None


def _resolve_in_chans(model: str, member: Any, in_chans: int | None,
                      bands: Sequence[str] | None) -> int:
    native = member.meta.get("in_chans") if member is not None else None
    chans = in_chans or native or (len(bands) if bands else None) or 3
    if native is not None and chans != native:
        raise ConfigurationError(
            f"torchgeo:{model} weights {member.name} take {native} bands but in_chans={chans}; "
            f"give {native}-band inputs or choose another weight set"
        )
    if bands is not None and len(bands) != chans:
        raise ConfigurationError(
            f"torchgeo:{model}: {len(bands)} bands given ({', '.join(bands)}) but the "
            f"backbone takes {chans} (in_chans)"
        )
    return int(chans)


def _check_bands(model: str, member: Any, bands: Sequence[str] | None,
                 pretrained: tuple[str, ...] | None) -> None:
    if bands is None or pretrained is None:
        return
    given = tuple(canonical_band(b) or b.upper() for b in bands)
    if given != pretrained:
        warnings.warn(
            f"torchgeo:{model} weights {member.name} were trained on bands "
            f"{', '.join(pretrained)}, but the data's bands are {', '.join(given)}",
            ConfigurationWarning, stacklevel=3,
        )


def _build_torchgeo(model: str, member: Any, pretrained: bool, **kwargs: Any) -> nn.Module:
    """Build with torchgeo's builder; loading errors name the weight set, URL and cache."""
    import torchgeo.models

    builder: Callable[..., nn.Module] = getattr(torchgeo.models, model)
    if member is None or not pretrained:
        # builders of models without published weights (dofa_small) take no weights
        has_weights = "weights" in inspect.signature(builder).parameters
        return builder(weights=None, **kwargs) if has_weights else builder(**kwargs)
    try:
        return builder(weights=member, **kwargs)
    except Exception as exc:
        raise ConfigurationError(
            f"cannot load torchgeo weights {model} {member.name} from {member.url} "
            f"(cached as {checkpoint_path(member)}): {type(exc).__name__}: {exc}. Offline, "
            "put the file at that path (TORCH_HOME sets the folder), or use pretrained: false"
        ) from exc


def _pick(levels: int, out_indices: Sequence[int] | None, model: str) -> list[int]:
    if out_indices is None:
        return list(range(levels))
    bad = [i for i in out_indices if not -levels <= i < levels]
    if bad or not out_indices:
        raise ConfigurationError(
            f"torchgeo:{model}: out_indices {list(out_indices)} out of range; it has "
            f"{levels} levels (valid: {-levels}..{levels - 1})"
        )
    return [i % levels for i in out_indices]


class TorchGeoBackbone(nn.Module):
    """A torchgeo model returning a list of features (see the module docstring).

    Attributes:
        model: The model torchgeo built, with its weights.
        out_channels: Channels of each returned feature.
        input_multiple: Input sizes must be multiples of it (patch size or largest stride).
        pretrained_bands: The loaded weight set's bands (geofm names), None without weights.
        weights_name: The weight set's name, None without one.
        extras: Family-specific inputs (Copernicus-FM: ``wavelengths``, ``bandwidths``;
            Panopticon: ``chn_ids``; CROMA: ``modalities`` and band positions).
    """

    def __init__(self, name: str, model: nn.Module, family: str, out_indices: list[int],
                 channels: list[int], input_multiple: int,
                 pretrained_bands: tuple[str, ...] | None, weights_name: str | None,
                 wavelengths: list[float] | None = None,
                 extras: dict[str, Any] | None = None) -> None:
        super().__init__()
        self.name = name
        self.model = model
        self.family = family
        self.out_indices = out_indices
        self.out_channels = [channels[i] for i in out_indices]
        self.input_multiple = input_multiple
        self.pretrained_bands = pretrained_bands
        self.weights_name = weights_name
        self.extras = extras or {}
        self.wavelengths = wavelengths or self.extras.get("wavelengths")

    def forward(self, x: torch.Tensor, **metadata: Any) -> list[torch.Tensor]:
        """The features at ``out_indices``; metadata is accepted and unused."""
        fn = LEVELS.get(self.family)  # families of wavelength_models, else a method here
        levels = fn(self, x) if fn else getattr(self, f"_{self.family}_levels")(x)
        return [levels[i] for i in self.out_indices]

    def _earthloc_levels(self, x: torch.Tensor) -> list[torch.Tensor]:
        # EarthLoc's trunk is a timm ResNet-50 whose layer4 is removed: 4 levels, stride 16
        trunk: Any = self.model.backbone
        stem = trunk.act1(trunk.bn1(trunk.conv1(x)))
        first = trunk.layer1(trunk.maxpool(stem))
        second = trunk.layer2(first)
        return [stem, first, second, trunk.layer3(second)]

    def _resnet_levels(self, x: torch.Tensor) -> list[torch.Tensor]:
        resnet: Any = self.model
        out: list[torch.Tensor] = resnet.forward_intermediates(x, intermediates_only=True)
        return out

    def _vit_levels(self, x: torch.Tensor) -> list[torch.Tensor]:
        vit: Any = self.model
        x = vit.patch_embed(x)
        x = vit._pos_embed(x)
        x = vit.patch_drop(x)
        x = vit.norm_pre(x)
        return block_outputs(vit.blocks, x)

    def _swin_levels(self, x: torch.Tensor) -> list[torch.Tensor]:
        swin: Any = self.model
        out = []
        for i, layer in enumerate(swin.features):
            x = layer(x)
            if i % 2:  # odd positions are the stages; even ones embed or merge patches
                out.append(x.permute(0, 3, 1, 2).contiguous())
        return out

    def _dofa_levels(self, x: torch.Tensor) -> list[torch.Tensor]:
        dofa: Any = self.model
        waves = self.wavelengths or []
        check_input(self, x, waves, "wavelengths")
        tokens, _ = dofa.patch_embed(x, torch.tensor(waves, device=x.device).float())
        grid = (x.shape[-2] // dofa.patch_size, x.shape[-1] // dofa.patch_size)
        tokens = tokens + _resize_pos_embed(dofa.pos_embed[:, 1:], grid)
        cls = (dofa.cls_token + dofa.pos_embed[:, :1]).expand(tokens.shape[0], -1, -1)
        h = torch.cat((cls, tokens), dim=1)
        return block_outputs(dofa.blocks, h)


def _resize_pos_embed(pos: torch.Tensor, grid: tuple[int, int]) -> torch.Tensor:
    """Bicubic resize of a square patch position embedding (1, n, C) to ``grid``."""
    side = math.isqrt(pos.shape[1])
    if (side, side) == grid:
        return pos
    square = pos.reshape(1, side, side, -1).permute(0, 3, 1, 2)
    resized = F.interpolate(square, size=grid, mode="bicubic", align_corners=False)
    return resized.permute(0, 2, 3, 1).reshape(1, grid[0] * grid[1], -1)


def _dofa_wavelengths(model: str, bands: Sequence[str] | None,
                      wavelengths: Sequence[float] | None) -> list[float]:
    if wavelengths is not None:
        if bands is not None and len(bands) != len(wavelengths):
            raise ConfigurationError(
                f"torchgeo:{model}: {len(bands)} bands but {len(wavelengths)} wavelengths"
            )
        return [float(w) for w in wavelengths]
    if bands is None:
        raise ConfigurationError(
            f"torchgeo:{model} is wavelength-conditioned: pass bands (their names give the "
            "wavelengths) or wavelengths (micrometres, one per input band)"
        )
    out = []
    for band in bands:
        value = wavelength_of(band)
        if value is None:
            raise ConfigurationError(
                f"torchgeo:{model}: band {band!r} has no known centre wavelength; pass "
                "wavelengths (micrometres, one per input band) instead"
            )
        out.append(value)
    return out


def build(model: str, *, weights: str | None = None, pretrained: bool = True,
          in_chans: int | None = None, bands: Sequence[str] | None = None,
          wavelengths: Sequence[float] | None = None,
          bandwidths: Sequence[float] | None = None, out_indices: Sequence[int] | None = None,
          img_size: int | None = None,
          model_kwargs: dict[str, Any] | None = None) -> TorchGeoBackbone:
    """Build the torchgeo model ``model`` as a geofm backbone.

    Args:
        model: The torchgeo model name (``torchgeo.models.list_models()``).
        weights: The weight set (weights enum member name, case-insensitive, such as
            ``SENTINEL2_ALL_MOCO``); None for random initialisation.
        pretrained: Load the weight set's parameters; False builds the architecture the
            weight set needs (its band count) with random parameters (TerraTorch's
            meaning of ``pretrained``).
        in_chans: Input bands; defaults to the weight set's, else the number of
            ``bands``, else 3. Ignored by DOFA, Copernicus-FM, Panopticon and CROMA,
            whose inputs follow ``bands``.
        bands: The data's band names, in order: checked against the weight set's, giving
            DOFA, Copernicus-FM and Panopticon their wavelengths and choosing CROMA's
            encoder (radar, optical or joint).
        wavelengths: Centre wavelengths (micrometres) per input band, for DOFA,
            Copernicus-FM and Panopticon.
        bandwidths: Bandwidths (nm) per input band, for Copernicus-FM (default: from
            ``bands``).
        out_indices: Which levels to return (negative counts from the end); all by default.
        img_size: Native image size of ViT, DOFA, Panopticon and Scale-MAE position
            embeddings (random initialisation; with weights keep the weight set's size,
            other sizes are interpolated at run time); CROMA's one input size.
        model_kwargs: More keyword arguments for torchgeo's builder.

    Raises:
        ConfigurationError: Unknown weight set, band or channel mismatch, failed download.
    """
    family = family_of(model)
    member = _weights_member(model, weights)
    kwargs = dict(model_kwargs or {})
    if img_size is not None:
        kwargs["img_size"] = img_size
    pretrained_bands = _pretrained_bands(model, member) if pretrained else None
    waves: list[float] | None = None
    tg: Any  # the torchgeo model; its attributes differ by family
    extras: dict[str, Any] | None = None
    if family in WAVELENGTH_FAMILIES:
        extras = prepare(family, model, bands=bands, wavelengths=wavelengths,
                         bandwidths=bandwidths, builder_kwargs=kwargs)
        tg = _build_torchgeo(model, member, pretrained, **kwargs)
        channels, multiple = shape(family, tg)
    elif family == "dofa":
        waves = _dofa_wavelengths(model, bands, wavelengths)
        tg = _build_torchgeo(model, member, pretrained, **kwargs)
        dim, depth = tg.embed_dim, tg.depth
        channels, multiple = [int(dim)] * int(depth), int(tg.patch_size)
    else:
        chans = _resolve_in_chans(model, member, in_chans, bands)
        _check_bands(model, member, bands, pretrained_bands)
        if family == "swin":
            tg = _build_torchgeo(model, member, pretrained, **kwargs)
            stem: Any = tg.features[0][0]
            if stem.in_channels != chans:  # torchgeo swaps the stem only for weights
                tg.features[0][0] = nn.Conv2d(chans, stem.out_channels, kernel_size=4, stride=4)
            dim = stem.out_channels
            channels, multiple = [dim * 2**i for i in range(4)], 32
        elif family == "earthloc":
            if member is None or not pretrained:
                import torchgeo.models

                # no timm ImageNet download behind the user's back: random means random
                tg = torchgeo.models.earthloc(None, in_channels=chans, pretrained=False,
                                              **kwargs)
            else:
                tg = _build_torchgeo(model, member, pretrained, **kwargs)
            # the geolocation head (MixVPR aggregator + projection) is not a feature
            # extractor and fixes the input size; only the ResNet-50 trunk is kept
            tg.aggregator, tg.fc = nn.Identity(), nn.Identity()
            channels, multiple = [64, 256, 512, 1024], 16
        else:
            if member is None or not pretrained:
                kwargs["in_chans"] = chans
            if family == "vit":
                kwargs.setdefault("dynamic_img_size", True)
            tg = _build_torchgeo(model, member, pretrained, **kwargs)
            if family == "resnet":
                channels = [int(f["num_chs"]) for f in tg.feature_info]
                multiple = 32
            else:
                channels = [int(tg.embed_dim)] * len(tg.blocks)
                multiple = int(tg.patch_embed.patch_size[0])
    return TorchGeoBackbone(
        model, tg, family, _pick(len(channels), out_indices, model), channels, multiple,
        pretrained_bands, member.name if member is not None else None, waves, extras,
    )


def factory(model: str, weights: str | None = None) -> Callable[..., TorchGeoBackbone]:
    """The factory of ``torchgeo:<model>`` (with ``weights`` bound as its default)."""
    made = functools.partial(build, model, weights=weights)
    line = DESCRIPTIONS.get(model, f"TorchGeo {model}")
    made.__doc__ = f"{line}{f'; weights {weights}' if weights else ''}.\n\n{build.__doc__}"
    return made


@functools.cache
def _names() -> dict[str, tuple[str, str | None]]:
    out: dict[str, tuple[str, str | None]] = {}
    for model, meta in MODELS.items():
        out[model] = (model, None)
        for entry in meta.get("weights") or ():
            out[weighted_name(model, entry["name"])] = (model, entry["name"])
    return out


def __getattr__(name: str) -> Callable[..., TorchGeoBackbone]:
    """``backbones.<component>``: the registry's targets, made on first use."""
    if name in _names():
        return factory(*_names()[name])
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
