"""The one preprocessing of image pixels, shared by training, statistics and inference.

The chip datasets, the scene data module, ``geofm stats``, tiled inference and int8
calibration all turn raw raster bands into model input through :class:`Preprocessing`,
so inference cannot drift from what the model was trained on. The stages, in order:

1. band selection: the ``output_bands`` of every frame (names resolved through
   ``dataset_bands``, see :mod:`geofm_core.data.bands`);
2. cast to float32, times ``constant_scale``;
3. pixels equal to the file's nodata value, NaN or ±inf, become ``no_data_replace`` (when
   set);
4. ``(x - mean) / std`` per selected band (when ``means``/``stds`` are set);
5. with ``expand_temporal_dimension``, the C·T bands stacked in the file (frame after
   frame: band c of frame t is file band ``t * C + c``) become (C, T).

Statistics (``geofm stats``) stop after stage 2 and keep the validity mask of stage 3.
A data module's saved settings (``datamodule_hyper_parameters`` of a checkpoint) rebuild
the same object: :meth:`Preprocessing.from_checkpoint`.
"""

from __future__ import annotations

from collections.abc import Mapping, MutableMapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple

import numpy as np

from geofm_core.data.bands import BandSpec, check_dataset_bands, resolve_bands
from geofm_core.data.files import load_band_values
from geofm_core.errors import ConfigurationError

if TYPE_CHECKING:
    import torch

__all__ = ["BandPlan", "Preprocessing", "check_real", "nodata_mask"]

Array = np.ndarray[Any, Any]

def nodata_mask(data: Array, nodata: float | None) -> Array | None:
    """Where ``data`` holds the nodata value, NaN or ±inf (same shape); ``None`` when nowhere.

    The comparison is made in ``data``'s own type (an int16 file's nodata -9999 is
    compared as int16). Infinities count as missing like NaN: neither is a measurement,
    and either turns a loss and then every weight non-finite. ``None`` lets callers skip
    the replacement pass for the usual chip without nodata.
    """
    invalid: Array | None = None
    if nodata is not None and not np.isnan(nodata):
        invalid = data == np.asarray(nodata).astype(data.dtype)
    if data.dtype.kind == "f":
        nonfinite = ~np.isfinite(data)
        if invalid is None:
            invalid = nonfinite
        else:
            invalid |= nonfinite
    if invalid is not None and not invalid.any():
        return None
    return invalid


def check_real(path: str | Path, dtypes: Sequence[str]) -> None:
    """Refuse complex-valued bands (e.g. SAR single-look complex) with the file's name.

    Casting them to float would drop the imaginary part silently.
    """
    # rasterio names them complex64, complex128 or complex_int16 (no NumPy type)
    complex_bands = [i + 1 for i, d in enumerate(dtypes) if str(d).startswith("complex")]
    if complex_bands:
        raise ConfigurationError(
            f"{path}: band {complex_bands[0]} is complex-valued ({dtypes[complex_bands[0] - 1]})"
            "; geofm reads real-valued bands only. Convert the file first, e.g. to amplitude "
            "and phase bands, or to intensity in dB"
        )


class BandPlan(NamedTuple):
    """What to read from one file.

    Attributes:
        indexes: 1-based rasterio band indexes, band after band and, within a band, frame
            after frame (so reading them gives C·T planes that reshape to (C, T)).
        bands: C, the bands selected per frame.
        frames: T (1 without ``expand_temporal_dimension``).
    """

    indexes: list[int]
    bands: int
    frames: int


class Preprocessing:
    """Band selection, scaling, nodata replacement, normalisation and temporal expansion.

    Args:
        bands: bands to read, per frame: names (with ``dataset_bands``), 0-based indices or
            inclusive ranges, as ``output_bands``; ``None`` reads all.
        constant_scale: factor applied to the raw values.
        means: per selected band (after ``constant_scale``), a list or a file holding one.
        stds: per selected band, like ``means``; both or neither.
        no_data_replace: value given to nodata / NaN pixels after scaling; ``None`` keeps
            them as read.
        num_frames: T, the frames stacked in each file's bands.
        expand_temporal_dimension: turn the stacked frames into (C, T); ``None`` means
            "when ``num_frames`` > 1".
        dataset_bands: names of the bands stored in each file (per frame), in order.

    Raises:
        ConfigurationError: a setting that cannot work (unknown band, ``means`` without
            ``stds``, lengths that disagree, ...), naming the field.
    """

    def __init__(
        self,
        *,
        bands: Sequence[BandSpec] | None = None,
        constant_scale: float = 1.0,
        means: Sequence[float] | str | None = None,
        stds: Sequence[float] | str | None = None,
        no_data_replace: float | None = None,
        num_frames: int | None = None,
        expand_temporal_dimension: bool | None = None,
        dataset_bands: Sequence[str] | None = None,
    ) -> None:
        self.dataset_bands = check_dataset_bands(dataset_bands)
        self.bands = resolve_bands(bands, dataset_bands=self.dataset_bands)
        self.constant_scale = float(constant_scale)
        self.no_data_replace = None if no_data_replace is None else float(no_data_replace)
        if num_frames is not None and num_frames < 1:
            raise ConfigurationError(f"num_frames must be >= 1, got {num_frames}")
        self.num_frames = num_frames
        self.expand_temporal_dimension = (
            (num_frames or 1) > 1 if expand_temporal_dimension is None
            else bool(expand_temporal_dimension)
        )
        if self.expand_temporal_dimension and num_frames is None and self.dataset_bands is None:
            raise ConfigurationError(
                "expand_temporal_dimension needs num_frames (the number of frames stacked in "
                "each file) or dataset_bands (the bands of one frame)"
            )
        self.means = load_band_values(means, "means")
        self.stds = load_band_values(stds, "stds")
        self._check_norm()
        # Shaped once to broadcast over (C, H, W) / (C, T, H, W) items and their batches.
        shape = (-1, 1, 1, 1) if self.expand_temporal_dimension else (-1, 1, 1)
        self._mean = None if self.means is None else np.asarray(self.means, np.float32)
        self._std = None if self.stds is None else np.asarray(self.stds, np.float32)
        self._mean_b = None if self._mean is None else self._mean.reshape(shape)
        self._std_b = None if self._std is None else self._std.reshape(shape)

    def _check_norm(self) -> None:
        if (self.means is None) != (self.stds is None):
            raise ConfigurationError("give both means and stds, or neither")
        if self.means is None or self.stds is None:
            return
        if len(self.means) != len(self.stds):
            raise ConfigurationError(
                f"means has {len(self.means)} values and stds {len(self.stds)}; give one "
                "of each per selected band"
            )
        if any(s <= 0 for s in self.stds):
            raise ConfigurationError(f"stds must be positive, got {self.stds}")
        if self.bands is not None and len(self.means) != len(self.bands):
            raise ConfigurationError(
                f"means/stds have {len(self.means)} values but output_bands selects "
                f"{len(self.bands)} bands; give one value per selected band"
            )

    # ------------------------------------------------------------ construction
    @classmethod
    def from_settings(cls, settings: Mapping[str, Any]) -> Preprocessing:
        """The preprocessing a data module's options describe (other keys are ignored).

        Args:
            settings: the options of a geofm data module (``output_bands``,
                ``dataset_bands``, ``constant_scale``, ``no_data_replace``,
                ``expand_temporal_dimension``, ``num_frames``, ``means``, ``stds``), e.g. its
                ``hparams``; missing ones take their defaults.
        """
        return cls(
            bands=settings.get("output_bands"),
            dataset_bands=settings.get("dataset_bands"),
            constant_scale=settings.get("constant_scale", 1.0),
            no_data_replace=settings.get("no_data_replace"),
            expand_temporal_dimension=bool(settings.get("expand_temporal_dimension", False)),
            num_frames=settings.get("num_frames"),
            means=settings.get("means"),
            stds=settings.get("stds"),
        )

    @classmethod
    def from_checkpoint(cls, checkpoint: Mapping[str, Any]) -> Preprocessing:
        """The preprocessing of the data module that trained a checkpoint.

        Built from the checkpoint's ``datamodule_hyper_parameters``; no preprocessing
        (all bands, as read) when it has none.
        """
        return cls.from_settings(checkpoint.get("datamodule_hyper_parameters") or {})

    def settings(self) -> dict[str, Any]:
        """The settings as data module options, resolved (band indices, loaded means)."""
        return {
            "dataset_bands": self.dataset_bands, "output_bands": self.bands,
            "constant_scale": self.constant_scale, "no_data_replace": self.no_data_replace,
            "expand_temporal_dimension": self.expand_temporal_dimension,
            "num_frames": self.num_frames, "means": self.means, "stds": self.stds,
        }

    def store_values(self, hparams: MutableMapping[str, Any]) -> None:
        """Replace statistics files in a data module's ``hparams`` by the values read.

        Checkpoints save these hyper-parameters and inference rebuilds its preprocessing
        from them: a file path would let a later edit of the file change, silently, what
        the trained model is fed.
        """
        for key, values in (("means", self.means), ("stds", self.stds)):
            if isinstance(hparams.get(key), str):
                hparams[key] = list(values or [])

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Preprocessing):
            return NotImplemented
        return self.settings() == other.settings()

    def __hash__(self) -> int:
        return hash(repr(self))

    def __repr__(self) -> str:
        defaults = Preprocessing().settings()
        given = ", ".join(f"{k}={v!r}" for k, v in self.settings().items() if v != defaults[k]
                          or type(v) is not type(defaults[k]))
        return f"Preprocessing({given.replace('output_bands=', 'bands=')})"

    @property
    def channels(self) -> int | None:
        """Bands per frame of the model input, when known without a file."""
        if self.bands is not None:
            return len(self.bands)
        return None if self.dataset_bands is None else len(self.dataset_bands)

    # ------------------------------------------------------------ band selection
    def plan(self, path: str | Path, count: int, dtypes: Sequence[str] = ()) -> BandPlan:
        """The bands to read from a file of ``count`` bands, checked against the settings.

        Args:
            path: the file, for messages.
            count: its number of bands.
            dtypes: its bands' data types (rasterio's ``src.dtypes``), when known.

        Raises:
            ConfigurationError: naming ``path``: its bands are complex-valued, do not form
                whole frames, do not match ``dataset_bands``, lack a selected index, or are
                not as many as ``means``/``stds`` values.
        """
        check_real(path, dtypes)
        if self.expand_temporal_dimension:
            per_frame = (
                len(self.dataset_bands) if self.dataset_bands is not None
                else count // (self.num_frames or 1)
            )
            frames = count // per_frame if per_frame else 0
            if per_frame == 0 or count % per_frame or (
                self.num_frames is not None and frames != self.num_frames
            ):
                expected = f"{self.num_frames} frames" if self.num_frames else "whole frames"
                raise ConfigurationError(
                    f"{path}: has {count} bands, which is not {expected} of {per_frame} bands; "
                    "fix num_frames / dataset_bands for expand_temporal_dimension"
                )
        else:
            per_frame, frames = count, 1
            if self.dataset_bands is not None and len(self.dataset_bands) != count:
                raise ConfigurationError(
                    f"{path}: has {count} bands but dataset_bands names "
                    f"{len(self.dataset_bands)}; list one name per band stored in the file"
                )
        selected = self.bands if self.bands is not None else list(range(per_frame))
        bad = [i for i in selected if i >= per_frame]
        if bad:
            raise ConfigurationError(
                f"{path}: band index {bad[0]} is out of range for {Path(path).name}, which has "
                f"{per_frame} bands{' per frame' if frames > 1 else ''} (valid "
                f"0..{per_frame - 1}); fix output_bands"
            )
        if self.means is not None and len(self.means) != len(selected):
            raise ConfigurationError(
                f"means/stds have {len(self.means)} values but {len(selected)} bands are read "
                f"from {path}; give one value per selected band (to predict, a raster with "
                f"the {len(self.means)} bands the model was trained on)"
            )
        indexes = [t * per_frame + c + 1 for c in selected for t in range(frames)]
        return BandPlan(indexes, len(selected), frames)

    # ------------------------------------------------------------ pixels
    def _layout(self, planes: int) -> tuple[int, int]:
        """(C, T) of ``planes`` read band after band (see :class:`BandPlan`)."""
        if not self.expand_temporal_dimension:
            return planes, 1
        frames = self.num_frames or planes // (self.channels or planes)
        if frames < 1 or planes % frames:
            raise ConfigurationError(
                f"{planes} bands are not whole frames of {self.channels} bands; fix "
                "num_frames / dataset_bands for expand_temporal_dimension"
            )
        return planes // frames, frames

    def scale(self, raw: Array, nodata: float | None, *, copy: bool = True) -> tuple[
        Array, Array | None
    ]:
        """Stage 2, and the mask of stage 3: raw planes to float32 values times the scale.

        Args:
            raw: the selected planes as read, (C·T, H, W) in :class:`BandPlan` order (or,
                without temporal expansion, any array whose axis -3 is the band axis).
            nodata: the file's nodata value.
            copy: ``False`` lets a float32 ``raw`` that nothing else holds be scaled in place.

        Returns:
            ``(values, invalid)``: writable float32 values, (C, T, H, W) with
            ``expand_temporal_dimension``, and where they were nodata / NaN (same shape;
            ``None`` when nowhere).
        """
        invalid = nodata_mask(raw, nodata)
        values = raw.astype(np.float32, copy=copy)
        if self.constant_scale != 1.0:
            values *= np.float32(self.constant_scale)
        if self.expand_temporal_dimension:
            bands, frames = self._layout(values.shape[0])
            shape = (bands, frames, *values.shape[1:])
            values = values.reshape(shape)
            invalid = None if invalid is None else invalid.reshape(shape)
        return values, invalid

    def fill_and_normalise(self, values: Array, invalid: Array | None) -> Array:
        """Stages 3 and 4, in place: nodata / NaN replaced, then ``(x - mean) / std``.

        Works on an item or a batch of items (the band axis is -3, or -4 with frames).
        """
        if self.no_data_replace is not None and invalid is not None:
            values[invalid] = np.float32(self.no_data_replace)
        if self._mean_b is not None and self._std_b is not None:
            axis = -4 if self.expand_temporal_dimension else -3
            if values.shape[axis] != self._mean_b.shape[0]:
                raise ConfigurationError(
                    f"means/stds have {self._mean_b.shape[0]} values but the input has "
                    f"{values.shape[axis]} bands; give one value per band"
                )
            values -= self._mean_b
            values /= self._std_b
        return values

    def __call__(self, raw: Array, nodata: float | None = None) -> torch.Tensor:
        """Raw planes (C·T, H, W), read with :meth:`plan`, as the model's input tensor.

        Used to predict: nodata / NaN / inf pixels get ``no_data_replace`` as in training
        and, when it is not set, non-finite values become 0 after normalisation (the band
        mean), so they never reach the model; the caller writes those pixels as nodata.
        """
        import torch

        values, invalid = self.scale(raw, nodata)
        values = self.fill_and_normalise(values, invalid)
        if invalid is not None and self.no_data_replace is None:
            np.nan_to_num(values, copy=False, nan=0.0, posinf=0.0, neginf=0.0)
        return torch.from_numpy(values)

    def read(self, src: Any, window: Any = None) -> tuple[Array, Array | None]:
        """Read the selected bands of an open rasterio dataset and :meth:`scale` them.

        Args:
            src: an open rasterio dataset.
            window: the window to read (default the whole raster).

        Returns:
            ``(values, invalid)`` as :meth:`scale` returns them.
        """
        plan = self.plan(src.name, src.count, src.dtypes)
        return self.scale(src.read(plan.indexes, window=window), src.nodata, copy=False)

    def check_trainable(self, values: Array, invalid: Array, path: str | Path) -> None:
        """Training data must not feed nodata-only chips, NaN or inf to the model.

        A chip with no valid pixel can teach nothing and, left in silently, dilutes the
        batch; a NaN reaching the model turns the loss and then every weight into NaN.
        Both stop the run with the file's name instead of being skipped silently.

        Args:
            values: scaled values (from :meth:`scale`).
            invalid: their nodata / NaN mask.
            path: the file, for the message.
        """
        if invalid.all():
            raise ConfigurationError(
                f"{path}: every pixel of this image is nodata/NaN, so it can teach the model "
                "nothing; remove it (and its label) from the folder, or leave it out with a "
                "split file"
            )
        if self.no_data_replace is None and not np.isfinite(values).all():
            raise ConfigurationError(
                f"{path}: the image has NaN or infinite pixels and no_data_replace is not set, "
                "so they would reach the model and turn the loss and the weights into NaN; set "
                "no_data_replace (e.g. 0) in the data section, or fix the file"
            )

    def denormalise(self, values: Array) -> Array:
        """Undo stage 4 on (C, H, W) values (for plots); a new array."""
        if self._mean is None or self._std is None:
            return values
        return values * self._std.reshape(-1, 1, 1) + self._mean.reshape(-1, 1, 1)
