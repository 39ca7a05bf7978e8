"""Inputs anywhere GDAL reads: `geofm infer` on a Cloud-Optimized GeoTIFF served over HTTP."""

from __future__ import annotations

import http.server
import io
import re
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import pytest

from geofm_core.cli import main
from geofm_core.io.locations import is_remote

from .conftest import BANDS, snapshot

rasterio = pytest.importorskip("rasterio")

SHARED = Path(__file__).resolve().parents[2] / ".." / "shared" / "data"
LANDSAT = SHARED / "landsat_rgb" / "RGB.byte.tif"


class RangeHandler(http.server.SimpleHTTPRequestHandler):
    """Static files with ``Range: bytes=a-b`` answered by 206 (the stdlib handler has none)."""

    #: The Range headers answered, across requests.
    ranges: ClassVar[list[str]] = []

    def log_message(self, format: str, *args: Any) -> None:
        """Quiet: the test output stays readable."""

    def send_head(self) -> Any:
        """The file, or the requested part of it with ``206 Partial Content``."""
        header = self.headers.get("Range")
        match = re.fullmatch(r"bytes=(\d+)-(\d*)", header or "")
        path = Path(self.translate_path(self.path))
        if match is None or not path.is_file():
            return super().send_head()
        RangeHandler.ranges.append(header or "")
        data = path.read_bytes()
        start = int(match[1])
        end = min(int(match[2]) if match[2] else len(data) - 1, len(data) - 1)
        if start >= len(data):
            self.send_error(416)
            return None
        self.send_response(206)
        self.send_header("Content-Type", "image/tiff")
        self.send_header("Accept-Ranges", "bytes")
        self.send_header("Content-Range", f"bytes {start}-{end}/{len(data)}")
        self.send_header("Content-Length", str(end - start + 1))
        self.end_headers()
        return io.BytesIO(data[start : end + 1])


@pytest.fixture
def served(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[str, Path]]:
    """A COG of the shared Landsat scene (4 bands, as the test model takes) on 127.0.0.1."""
    if not LANDSAT.is_file():
        pytest.skip(f"the shared test data is absent ({LANDSAT})")
    from rasterio.shutil import copy as rio_copy

    folder = tmp_path / "www"
    folder.mkdir()
    with rasterio.open(LANDSAT) as src:
        window = rasterio.windows.Window(100, 100, 96, 80)
        rgb = src.read(window=window)
        profile = {"driver": "GTiff", "width": 96, "height": 80, "count": BANDS,
                   "dtype": "uint8", "crs": src.crs, "nodata": 0,
                   "transform": src.window_transform(window)}
    plain = tmp_path / "plain.tif"
    with rasterio.open(plain, "w", **profile) as dst:
        dst.write(np.concatenate([rgb, rgb[:1]])[:BANDS])
    cog = folder / "scene.tif"
    rio_copy(plain, cog, driver="COG", blocksize=32, overview_resampling="nearest")
    RangeHandler.ranges = []

    def handler(*args: Any, **kwargs: Any) -> RangeHandler:
        return RangeHandler(*args, directory=str(folder), **kwargs)

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    for name in ("http_proxy", "https_proxy", "HTTP_PROXY", "HTTPS_PROXY"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("GDAL_DISABLE_READDIR_ON_OPEN", "EMPTY_DIR")
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", cog
    finally:
        server.shutdown()
        server.server_close()


def test_infer_reads_a_cog_over_http_and_writes_the_same_map_as_from_a_file(
    tmp_path: Path, trained: dict[str, Path], served: tuple[str, Path],
) -> None:
    base, cog = served
    out = tmp_path / "out"
    out.mkdir()
    common = ["infer", "--ckpt", str(trained["ckpt"]), "--no-progress"]
    assert main([*common, f"{base}/scene.tif", str(out / "remote.tif")]) == 0
    assert RangeHandler.ranges  # read by range requests, as a COG should be
    assert main([*common, str(cog), str(out / "local.tif")]) == 0
    with rasterio.open(out / "remote.tif") as a, rasterio.open(out / "local.tif") as b:
        assert a.crs == b.crs and a.transform == b.transform
        np.testing.assert_array_equal(a.read(), b.read())
    # each map comes with its QGIS style file (class colours and names), nothing else
    assert sorted(p.name for p in out.iterdir()) == [
        "local.qml", "local.tif", "remote.qml", "remote.tif",
    ]


@pytest.mark.parametrize("name", ["missing.tif", "notes.tif"])
def test_an_unreadable_url_is_one_error_naming_it_and_nothing_is_written(
    tmp_path: Path, trained: dict[str, Path], served: tuple[str, Path], name: str,
    capsys: pytest.CaptureFixture[str],
) -> None:
    base, cog = served
    (cog.parent / "notes.tif").write_text("not a GeoTIFF\n" * 100)
    out = tmp_path / "out"
    out.mkdir()
    before = snapshot([out])
    url = f"{base}/{name}"
    assert main(["infer", "--ckpt", str(trained["ckpt"]), url, str(out / "pred.tif")]) == 1
    err = capsys.readouterr().err
    assert f"cannot read the raster at {url}" in err
    assert "Traceback" not in err
    assert snapshot([out]) == before


@pytest.mark.parametrize(("location", "remote"), [
    ("https://example.org/a.tif", True), ("s3://bucket/key.tif", True),
    ("gs://bucket/key.tif", True), ("/vsis3/bucket/key.tif", True),
    ("zip+https://example.org/a.zip!a.tif", True), ("scene.tif", False),
    ("/data/https/a.tif", False), (Path("https://x/a.tif"), False),
])
def test_urls_and_gdal_paths_are_told_from_local_files(location: Any, remote: bool) -> None:
    assert is_remote(location) is remote
