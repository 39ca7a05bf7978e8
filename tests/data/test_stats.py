from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest

from geofm_core.cli import main
from geofm_core.errors import ConfigurationError

from .conftest import write_tif


@pytest.fixture
def chips(tmp_path):
    rng = np.random.default_rng(7)
    root = tmp_path / "train"
    arrays, labels = [], []
    for i in range(5):
        img = rng.normal(1000, 300, size=(4, 12, 10)).astype(np.int16)
        img[:, i, :] = -9999  # a nodata row per chip
        write_tif(root / f"c{i}_img.tif", img, nodata=-9999)
        lab = rng.integers(0, 3, size=(12, 10)).astype(np.int16)
        lab[0, :i] = -1
        write_tif(root / f"c{i}_lab.tif", lab)
        arrays.append(img)
        labels.append(lab)
    return tmp_path, np.stack(arrays), np.stack(labels)


def expected_stats(arrays, bands, scale):
    values = arrays[:, bands].astype(np.float64) * scale
    valid = arrays[:, bands] != -9999
    means = [values[:, b][valid[:, b]].mean() for b in range(len(bands))]
    stds = [values[:, b][valid[:, b]].std() for b in range(len(bands))]
    return np.array(means), np.array(stds)


def write_config(tmp_path, **extra):
    init = {
        "train_data_root": str(tmp_path / "train"), "img_pattern": "*_img.tif",
        "label_pattern": "*_lab.tif", "output_bands": [3, "0-1"], "constant_scale": 0.01,
        "num_classes": 3, "class_names": ["a", "b", "c"], "ignore_index": -1,
        "means": [0, 0, 0], "stds": [1, 1, 1], **extra,
    }
    config = {"data": {"class_path": "geofm_core.data.GeoTiffSegmentationDataModule",
                       "init_args": init}, "trainer": {"max_epochs": 1}}
    path = tmp_path / "config.yaml"
    path.write_text(json.dumps(config))  # JSON is YAML
    return path


def test_stats_config_json_matches_numpy(chips, capsys):
    tmp_path, arrays, labels = chips
    config = write_config(tmp_path)
    assert main(["stats", "-c", str(config), "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    means, stds = expected_stats(arrays, [3, 0, 1], 0.01)
    np.testing.assert_allclose(result["means"], means, rtol=1e-5)
    np.testing.assert_allclose(result["stds"], stds, rtol=1e-5)
    assert result["files"] == 5
    assert result["valid_pixels"] == [5 * 11 * 10] * 3
    values, counts = np.unique(labels, return_counts=True)
    assert result["class_counts"] == {str(v): int(c) for v, c in zip(values, counts, strict=True)}
    assert sum(result["class_frequencies"].values()) == pytest.approx(1.0)


def test_stats_table_and_snippet(chips, capsys):
    tmp_path, _, _ = chips
    assert main(["stats", "-c", str(write_config(tmp_path))]) == 0
    out = capsys.readouterr().out
    assert "BAND" in out and "(ignored)" in out
    assert out.strip().splitlines()[-2].startswith("means: [")
    assert out.strip().splitlines()[-1].startswith("stds: [")


def test_stats_plain_folder_subprocess(chips):
    tmp_path, arrays, _ = chips
    proc = subprocess.run(
        [sys.executable, "-m", "geofm_core.cli", "stats", "--data-root", str(tmp_path / "train"),
         "--img-pattern", "*_img.tif", "--bands", "0-3", "--json"],
        capture_output=True, text=True, check=False, timeout=300,
    )
    assert proc.returncode == 0, proc.stderr
    result = json.loads(proc.stdout)
    means, stds = expected_stats(arrays, [0, 1, 2, 3], 1.0)
    np.testing.assert_allclose(result["means"], means, rtol=1e-5)
    np.testing.assert_allclose(result["stds"], stds, rtol=1e-5)


def test_stats_errors(chips, capsys, tmp_path):
    root, _, _ = chips
    config = write_config(root, output_bands=[9])
    assert main(["stats", "-c", str(config)]) == 1
    assert "band index 9 is out of range" in capsys.readouterr().err
    config = write_config(root, img_patern="*.tif")
    assert main(["stats", "-c", str(config)]) == 1
    assert "img_pattern" in capsys.readouterr().err
    with pytest.raises(ConfigurationError, match="either -c CONFIG or --data-root"):
        from geofm_core.cli.stats import main as stats_main

        stats_main([])


def test_stats_output_is_a_statistics_file(chips, capsys, tmp_path):
    """`geofm stats -c C > stats.yaml` then `means: stats.yaml` (the documented recipe)."""
    import yaml

    from geofm_core.data.files import load_band_values

    root, arrays, _ = chips
    assert main(["stats", "-c", str(write_config(root))]) == 0
    printed = tmp_path / "printed.yaml"
    printed.write_text(capsys.readouterr().out)
    loaded = yaml.safe_load(printed.read_text())
    means, stds = expected_stats(arrays, [3, 0, 1], 0.01)
    np.testing.assert_allclose(load_band_values(str(printed), "means"), means, rtol=1e-5)
    np.testing.assert_allclose(load_band_values(str(printed), "stds"), stds, rtol=1e-5)
    # Unnamed bands are labelled by their index in the file, not by their position.
    assert loaded["bands"] == ["index 3", "index 0", "index 1"]


def test_stats_writes_output_file_and_refuses_existing(chips, capsys, tmp_path):
    root, _, _ = chips
    target = tmp_path / "stats.yaml"
    assert main(["stats", "-c", str(write_config(root)), "-o", str(target)]) == 0
    assert capsys.readouterr().out == ""
    first = target.read_text()
    assert "means: [" in first
    assert main(["stats", "-c", str(write_config(root)), "-o", str(target)]) == 1
    assert "--overwrite" in capsys.readouterr().err
    assert target.read_text() == first
    assert main(["stats", "-c", str(write_config(root)), "-o", str(target), "--overwrite",
                 "--json"]) == 0
    assert "means" in json.loads(target.read_text())


def test_stats_file_that_is_not_statistics_names_file_and_fix(tmp_path):
    from geofm_core.data.files import load_band_values

    bad = tmp_path / "table.txt"
    bad.write_text("77 files\nBAND NAME MEAN\n0 BLUE 80.1\n")
    with pytest.raises(ConfigurationError, match=r"table\.txt.*geofm stats -c CONFIG -o"):
        load_band_values(str(bad), "means")


def test_training_without_statistics_warns(chips):
    from geofm_core.data import GeoTiffSegmentationDataModule
    from geofm_core.errors import ConfigurationWarning

    root, _, _ = chips
    common = {"train_data_root": str(root / "train"), "img_pattern": "*_img.tif",
              "label_pattern": "*_lab.tif", "num_classes": 3}
    with pytest.warns(ConfigurationWarning, match=r"without means/stds.*geofm stats"):
        GeoTiffSegmentationDataModule(**common).setup("fit")
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("error", ConfigurationWarning)
        GeoTiffSegmentationDataModule(**common, means=[0.0] * 4, stds=[1.0] * 4).setup("fit")
