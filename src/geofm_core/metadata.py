"""Capability metadata of components: bands, modalities, patch size and weight sets.

A plugin declares these facts in its light ``_plugin.py`` when it registers a component
(``register(kind, name, target, metadata={...})``), so that ``geofm list backbone
--band B8A --modality sar`` and ``geofm describe`` answer without importing torch or
the plugin's model code, and so that a data module whose bands differ from the chosen
weights' bands is caught before training. timm, TerraTorch and TorchGeo keep such facts
in docs, model cards or behind an import.

Band names follow :mod:`geofm_core.data.bands` (``BLUE``, ``NIR_NARROW``, ``VV``, ...;
Sentinel-2 names such as ``B8A`` are accepted and normalised), so the bands of weights,
data and search queries compare directly. Everything here is plain Python: no torch.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, fields
from typing import Any

from geofm_core.data.bands import canonical_band, wavelength_of

__all__ = ["MODALITIES", "ComponentMetadata", "WeightSet", "parse_metadata"]

#: The modalities a component or weight set may declare.
MODALITIES: tuple[str, ...] = (
    "optical", "multispectral", "rgb", "hyperspectral", "sar", "dem", "thermal", "lulc",
    "weather", "any",
)


def _bands(values: Iterable[str] | None, where: str) -> tuple[str, ...]:
    out = []
    for value in values or ():
        if not isinstance(value, str):
            raise ValueError(f"{where}: band {value!r} is not a name")
        out.append(canonical_band(value) or value.strip().upper())
    return tuple(out)


def _modalities(values: Iterable[str] | str | None, where: str) -> tuple[str, ...]:
    if isinstance(values, str):
        values = (values,)
    out = tuple(str(v).lower() for v in values or ())
    unknown = [m for m in out if m not in MODALITIES]
    if unknown:
        raise ValueError(
            f"{where}: unknown modality {', '.join(unknown)}; use {', '.join(MODALITIES)}"
        )
    return out


def _floats(values: Iterable[float] | None, where: str) -> tuple[float, ...]:
    try:
        return tuple(float(v) for v in values or ())
    except (TypeError, ValueError) as exc:
        raise ValueError(f"{where}: expected numbers, got {values!r}") from exc


@dataclass(frozen=True)
class WeightSet:
    """One set of pretrained weights of a component.

    Attributes:
        name: How a config chooses it (``SENTINEL2_ALL_MOCO``, ``prithvi_eo_v2_300``).
        bands: The input bands the weights were trained on, in order.
        modalities: What those bands are (``multispectral``, ``sar``, ...).
        url: Where the weights come from (a download URL or a Hugging Face repo id).
        license: The weights' licence (SPDX id where there is one; ``unknown`` when the
            publisher states none).
        sha256: The file's SHA-256 (or the prefix the file name carries), when known.
        mean: Normalisation means per band, in the scale of ``bands``' data.
        std: Normalisation standard deviations per band.
        image_size: Image size the weights were trained at, when it matters.
        multi_temporal: The weights were trained on several dates per sample.
        dataset: The pretraining data set.
        method: The pretraining method (``moco``, ``mae``, ...).
        description: One line shown in listings.
    """

    name: str
    bands: tuple[str, ...] = ()
    modalities: tuple[str, ...] = ()
    url: str = ""
    license: str = ""
    sha256: str = ""
    mean: tuple[float, ...] = ()
    std: tuple[float, ...] = ()
    image_size: int | None = None
    multi_temporal: bool = False
    dataset: str = ""
    method: str = ""
    description: str = ""

    @classmethod
    def from_mapping(cls, data: Mapping[str, Any], where: str = "weights") -> WeightSet:
        """Build from a plain mapping (as plugins write it); names every bad field."""
        _check_keys(cls, data, where)
        if not data.get("name"):
            raise ValueError(f"{where}: a weight set needs a name")
        where = f"{where} {data['name']!r}"
        values = dict(data)
        values["bands"] = _bands(data.get("bands"), where)
        values["modalities"] = _modalities(data.get("modalities"), where)
        values["mean"] = _floats(data.get("mean"), f"{where} mean")
        values["std"] = _floats(data.get("std"), f"{where} std")
        for key in ("mean", "std"):
            if values[key] and values["bands"] and len(values[key]) != len(values["bands"]):
                raise ValueError(
                    f"{where}: {len(values[key])} {key} values for {len(values['bands'])} bands"
                )
        return cls(**values)


@dataclass(frozen=True)
class ComponentMetadata:
    """What a component can take and which weights it has, declared without importing it.

    Attributes:
        modalities: The modalities it is meant for (union over its weight sets when
            not given).
        bands: Its native input bands, in order, when it has one fixed set (else empty).
        any_bands: It is built for any number of bands (a first layer that adapts).
        wavelength_conditioned: It takes each band's centre wavelength as input (DOFA,
            Copernicus-FM, Panopticon), so any optical band fits.
        patch_size: Patch size of a vision transformer.
        image_size: Native image size (what positional embeddings were made for).
        multi_temporal: It takes several dates per sample.
        parameters: Number of parameters, when known.
        weights: The pretrained weight sets it can load.
        family: A short family name for tables (``ResNet``, ``ViT``, ``Swin``, ...).
        forward_metadata: Keyword inputs its ``forward`` uses besides the image
            (``temporal_coords``, ``location_coords``, ``wavelengths``, ...).
    """

    modalities: tuple[str, ...] = ()
    bands: tuple[str, ...] = ()
    any_bands: bool = False
    wavelength_conditioned: bool = False
    patch_size: int | None = None
    image_size: int | None = None
    multi_temporal: bool = False
    parameters: int | None = None
    weights: tuple[WeightSet, ...] = ()
    family: str = ""
    forward_metadata: tuple[str, ...] = ()

    @classmethod
    def from_mapping(cls, data: Mapping[str, Any], where: str = "metadata") -> ComponentMetadata:
        """Build from a plain mapping (as plugins write it); names every bad field."""
        _check_keys(cls, data, where)
        values = dict(data)
        values["bands"] = _bands(data.get("bands"), where)
        values["modalities"] = _modalities(data.get("modalities"), where)
        weights = []
        for entry in data.get("weights") or ():
            weights.append(entry if isinstance(entry, WeightSet)
                           else WeightSet.from_mapping(entry, f"{where} weights"))
        names = [w.name for w in weights]
        repeated = sorted({n for n in names if names.count(n) > 1})
        if repeated:
            raise ValueError(f"{where}: weight sets named more than once: {', '.join(repeated)}")
        values["weights"] = tuple(weights)
        values["forward_metadata"] = tuple(str(k) for k in data.get("forward_metadata") or ())
        return cls(**values)

    # -- questions listings ask ---------------------------------------------------

    def all_modalities(self) -> tuple[str, ...]:
        """Its own modalities and those of its weight sets, in first-seen order."""
        seen = dict.fromkeys(self.modalities)
        for weights in self.weights:
            seen.update(dict.fromkeys(weights.modalities))
        return tuple(seen)

    def weight_set(self, name: str) -> WeightSet | None:
        """The weight set called ``name`` (case-insensitive), if it has one."""
        folded = name.casefold()
        return next((w for w in self.weights if w.name.casefold() == folded), None)

    def matching_weights(
        self, bands: Sequence[str] = (), modalities: Sequence[str] = ()
    ) -> list[WeightSet]:
        """Its weight sets trained on every band of ``bands`` and on one of ``modalities``.

        A weight set that declares no modalities has the component's. ``optical`` in
        ``modalities`` also matches ``rgb``, ``multispectral`` and ``hyperspectral``.
        """
        wanted = _wanted_bands(bands)
        mods = _wanted_modalities(modalities)
        return [
            w for w in self.weights
            if wanted <= set(w.bands)
            and (not mods or bool(mods & set(w.modalities or self.modalities)))
        ]

    def matches(self, bands: Sequence[str] = (), modalities: Sequence[str] = ()) -> bool:
        """Whether it takes all of ``bands`` and one of ``modalities``.

        True when a weight set covers both; else when its own modalities match (or are
        ``any``) and its native bands include ``bands``, or it is wavelength-conditioned
        and the bands are optical. ``any_bands`` alone does not match a band: such a
        component accepts the band, but none of its weights was trained on it.
        """
        if not bands and not modalities:
            return True
        if self.matching_weights(bands, modalities):
            return True
        mods = _wanted_modalities(modalities)
        if mods and not mods & set(self.modalities) and "any" not in self.modalities:
            return False
        wanted = _wanted_bands(bands)
        if not wanted:
            return bool(mods)  # a modality query: matched by the component's own modalities
        if wanted <= set(self.bands):
            return True
        return self.wavelength_conditioned and all(_is_optical(b) for b in wanted)

    def as_dict(self) -> dict[str, Any]:
        """A JSON-friendly view (``geofm describe --json``, the model-zoo page)."""
        return asdict(self)


def _is_optical(band: str) -> bool:
    return wavelength_of(band) is not None


#: Modalities a query for ``optical`` also matches.
_OPTICAL = frozenset({"optical", "rgb", "multispectral", "hyperspectral"})


def _wanted_bands(bands: Sequence[str]) -> set[str]:
    return {canonical_band(b) or b.strip().upper() for b in bands}


def _wanted_modalities(modalities: Sequence[str]) -> set[str]:
    mods = {m.strip().lower() for m in modalities}
    return mods | _OPTICAL if "optical" in mods else mods


def _check_keys(cls: type, data: Mapping[str, Any], where: str) -> None:
    if not isinstance(data, Mapping):
        raise ValueError(f"{where}: expected a mapping, got {type(data).__name__}")
    known = {f.name for f in fields(cls)}
    unknown = sorted(set(data) - known)
    if unknown:
        raise ValueError(
            f"{where}: unknown field {', '.join(unknown)}; "
            f"the fields are {', '.join(sorted(known))}"
        )


def parse_metadata(value: ComponentMetadata | Mapping[str, Any] | None,
                   where: str = "metadata") -> ComponentMetadata | None:
    """Accept what a plugin passes as ``metadata=`` (a mapping, the dataclass or nothing)."""
    if value is None or isinstance(value, ComponentMetadata):
        return value
    return ComponentMetadata.from_mapping(value, where)

