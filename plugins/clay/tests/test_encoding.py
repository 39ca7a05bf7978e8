"""Clay's metadata channels from geofm's coordinates, checked against Python's calendar."""

from __future__ import annotations

import datetime
import math

import pytest
import torch
from geofm_clay.encoder import encode_location, encode_time, iso_week, position_encoding

from geofm_core.errors import ConfigurationError


def test_iso_week_matches_datetime_over_decades():
    start = datetime.date(1999, 12, 20)
    dates = [start + datetime.timedelta(days=d) for d in range(0, 30 * 366, 3)]
    years = torch.tensor([d.year for d in dates])
    days = torch.tensor([d.timetuple().tm_yday for d in dates])
    expected = torch.tensor([d.isocalendar()[1] for d in dates])
    found = iso_week(years, days)
    bad = [(str(d), int(f)) for d, f, e in zip(dates, found, expected, strict=True) if f != e]
    assert not bad, bad[:5]
    assert {1, 52, 53} <= set(found.tolist())


def test_time_channels_follow_clays_normalize_timestamp():
    # Clay: week = isocalendar week * 2 pi / 52, hour * 2 pi / 24, then sin/cos of both
    when = datetime.datetime(2021, 3, 14, 18)
    doy = when.timetuple().tm_yday + when.hour / 24
    week = when.isocalendar()[1] * 2 * math.pi / 52
    hour = when.hour * 2 * math.pi / 24
    expected = torch.tensor([[math.sin(week), math.cos(week), math.sin(hour), math.cos(hour)]])
    for coords in (torch.tensor([[2021.0, doy]]), torch.tensor([[[2021.0, doy]]])):
        torch.testing.assert_close(encode_time(coords), expected)


def test_location_channels_follow_clays_normalize_latlon():
    lat, lon = 37.77, -122.42
    r_lat, r_lon = math.radians(lat), math.radians(lon)
    expected = torch.tensor([[math.sin(r_lat), math.cos(r_lat), math.sin(r_lon),
                              math.cos(r_lon)]])
    torch.testing.assert_close(encode_location(torch.tensor([[lat, lon]])), expected)


@pytest.mark.parametrize("shape", [(2, 3, 2), (2, 3), (2,)])
def test_bad_temporal_coords_name_the_shape(shape):
    with pytest.raises(ConfigurationError, match="temporal_coords"):
        encode_time(torch.zeros(shape))


def test_bad_location_coords_name_the_shape():
    with pytest.raises(ConfigurationError, match="location_coords"):
        encode_location(torch.zeros(2, 3))


def test_position_code_layout_and_gsd_scaling():
    code = position_encoding(2, 3, 16, gsd=10.0)
    assert code.shape == (6, 16)
    # token 0 is the origin: sines 0, cosines 1
    torch.testing.assert_close(code[0], torch.tensor([0.0] * 4 + [1.0] * 4 + [0.0] * 4 + [1.0] * 4))
    # the first frequency is exactly gsd: column step of one patch gives sin(gsd)
    assert code[1, 0].item() == pytest.approx(math.sin(10.0), abs=1e-6)
    assert code[3, 8].item() == pytest.approx(math.sin(10.0), abs=1e-6)  # one row down
