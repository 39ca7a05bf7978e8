"""The examples of docs/embeddings.md run as written, with a tiny backbone.

The departures from the page: the backbone (a tiny Prithvi without pretrained weights
instead of ``prithvi:prithvi_eo_v2_300``), the chips folder (cut from the real chip) and
the run folder.
"""

from __future__ import annotations

import json
import re
import shlex
from pathlib import Path

import pytest
import rasterio
import yaml

from geofm_core.cli import main as geofm

from .conftest import PRITHVI_KWARGS

PAGE = Path(__file__).resolve().parents[2] / "docs" / "embeddings.md"
gpd = pytest.importorskip("geopandas")


def _blocks(kind: str) -> list[str]:
    return re.findall(rf"```{kind}\n(.*?)```", PAGE.read_text(), flags=re.S)


def _tiny(words: list[str], name: str) -> list[str]:
    """The command with the page's backbone replaced by the tiny one."""
    out = list(words)
    out[out.index("--backbone") + 1] = name
    out[out.index("--backbone-kwargs") + 1] = json.dumps(PRITHVI_KWARGS)
    return out


def test_the_pages_geofm_embed_commands_run(prithvi, s2_chip, tmp_path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / s2_chip.name).symlink_to(s2_chip)
    text = "\n".join(_blocks("bash")).replace("\\\n", " ")
    commands = [shlex.split(line) for line in text.splitlines()
                if line.startswith("geofm embed") and "prithvi" in line]
    assert len(commands) == 2
    for words in commands:
        assert geofm([*_tiny(words[1:], prithvi), "--no-progress"]) == 0
    table = gpd.read_parquet(tmp_path / "tiles.parquet")
    assert len(table) == 9 and len(table["embedding"].iloc[0]) == 32
    with rasterio.open(tmp_path / "patches.tif") as dst:
        assert (dst.count, dst.shape) == (32, (32, 32))


def test_the_pages_yaml_runs_with_geofm_predict(prithvi, s2_chip, tmp_path,
                                                monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    config = next(yaml.safe_load(b) for b in _blocks("yaml") if "EmbeddingTask" in b)
    init = config["model"]["init_args"]
    assert init["backbone"] == "prithvi:prithvi_eo_v2_300"
    init.update(backbone=prithvi, backbone_kwargs=PRITHVI_KWARGS)
    (tmp_path / "chips").mkdir()
    (tmp_path / "chips" / s2_chip.name).symlink_to(s2_chip)
    config["trainer"]["accelerator"] = "cpu"
    (tmp_path / "embed.yaml").write_text(yaml.safe_dump(config))
    assert geofm(["predict", "-c", "embed.yaml"]) == 0
    out = tmp_path / "runs" / "embed" / "predictions"
    table = gpd.read_parquet(out / "embeddings.parquet")
    assert list(table["id"]) == [s2_chip.stem]
    assert (out / f"{s2_chip.stem}_emb.tif").is_file()
