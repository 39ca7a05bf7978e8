from __future__ import annotations

import pytest

from geofm_core.data.bands import SENTINEL2_L1C_BANDS, HLSBands, resolve_bands
from geofm_core.errors import ConfigurationError


def test_names_indices_and_ranges_agree():
    s2 = list(SENTINEL2_L1C_BANDS)
    six = ["BLUE", "GREEN", "RED", "NIR_NARROW", "SWIR_1", "SWIR_2"]
    by_name = resolve_bands(six, dataset_bands=s2)
    assert by_name == [1, 2, 3, 8, 11, 12]
    assert resolve_bands([1, 2, 3, 8, 11, 12], band_count=13) == by_name
    assert resolve_bands(["1-3", 8, [11, 12]], band_count=13) == by_name
    assert resolve_bands(["blue", "green", "red", "nir_narrow", "swir_1", "swir_2"],
                         dataset_bands=s2) == by_name
    assert resolve_bands([[0, 5]]) == [0, 1, 2, 3, 4, 5]
    assert resolve_bands(None) is None


def test_hls_names_follow_terratorch():
    assert [b.value for b in HLSBands][:4] == ["COASTAL_AEROSOL", "BLUE", "GREEN", "RED"]
    assert "THERMAL_INFRARED_2" in HLSBands.__members__


@pytest.mark.parametrize(
    ("spec", "kwargs", "message"),
    [
        ([13], {"band_count": 13}, r"output_bands: band index 13 is out of range; valid.*0\.\.12"),
        (["NIR"], {"dataset_bands": ["BLUE", "NIR_NARROW"]}, r"unknown band name .NIR.*NIR_N"),
        (["RED"], {"dataset_bands": ["BLUE", "GREEN"]}, r"band RED is not in dataset_bands"),
        (["RED"], {}, r"needs dataset_bands"),
        (["5-2"], {}, r"runs backwards"),
        ([[1, 2, 3]], {}, r"a range is two integers"),
        ([-1], {}, r"out of range"),
        ([], {}, r"selects no bands"),
    ],
)
def test_errors_name_field_and_choices(spec, kwargs, message):
    with pytest.raises(ConfigurationError, match=message):
        resolve_bands(spec, **kwargs)


def test_dataset_bands_must_be_names():
    with pytest.raises(ConfigurationError, match="dataset_bands: unknown band name 'FOO'"):
        resolve_bands([0], dataset_bands=["BLUE", "FOO"])
    with pytest.raises(ConfigurationError, match="repeated"):
        resolve_bands([0], dataset_bands=["BLUE", "BLUE"])
