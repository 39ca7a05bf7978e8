"""The tutorials under docs/tutorials run as written, on the project's real test rasters.

Each test reads its page's ```bash blocks and runs every command in order in a fresh
folder (``python examples/...`` with this interpreter, ``geofm`` as the real CLI
process). The only departures from the page are listed in each test: a tiny backbone
and one epoch, so that the suite stays fast, and the inputs the page tells the reader to
bring (the Sen1Floods11 chip, linked into the folder).
"""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import rasterio
import yaml

ROOT = Path(__file__).resolve().parents[2]
TUTORIALS = ROOT / "docs" / "tutorials"
DATA = ROOT.parent / "shared" / "data" / "sen1floods11"
SCENE, LABEL = "Spain_7370579_S2Hand.tif", "Spain_7370579_LabelHand.tif"
FAST = ["--trainer.max_epochs", "1", "--trainer.limit_train_batches", "2",
        "--trainer.enable_progress_bar", "false"]

pytestmark = pytest.mark.skipif(not DATA.is_dir(), reason=f"real test rasters not at {DATA}")


def page_commands(page: str) -> list[list[str]]:
    """The commands of a page's ```bash blocks, one list of words per line."""
    text = (TUTORIALS / page).read_text()
    blocks = re.findall(r"```bash\n(.*?)```", text, flags=re.S)
    return [shlex.split(line) for block in blocks for line in block.splitlines()
            if line.strip() and not line.lstrip().startswith("#")]


def run_page(page: str, cwd: Path, adjust: Callable[[list[str]], list[str]] | None = None,
             after: Callable[[list[str]], None] | None = None,
             select: Callable[[list[str]], bool] | None = None) -> list[str]:
    """Run a page's commands (those ``select`` keeps) in ``cwd``; returns their stdout."""
    env = dict(os.environ, OMP_WAIT_POLICY="PASSIVE", PYTHONUNBUFFERED="1")
    outputs = []
    for words in page_commands(page):
        if select is not None and not select(words):
            continue
        if adjust is not None:
            words = adjust(words)
        if words[0] == "python":
            argv = [sys.executable, str(ROOT / words[1]), *words[2:]]
        elif words[0] == "geofm":
            argv = [sys.executable, "-m", "geofm_core.cli", *words[1:]]
        else:
            raise AssertionError(f"{page}: unexpected command {words}")
        argv = [str(ROOT / w) if w.startswith("examples/") else w for w in argv]
        done = subprocess.run(argv, cwd=cwd, env=env, capture_output=True, text=True,
                              timeout=600)
        assert done.returncode == 0, f"{page}: {shlex.join(words)} failed:\n{done.stderr[-3000:]}"
        outputs.append(done.stdout)
        if after is not None:
            after(words)
    return outputs


@pytest.fixture
def workdir(tmp_path: Path) -> Path:
    """A folder holding the Sen1Floods11 chip and label, as a reader would download them."""
    for name in (SCENE, LABEL):
        (tmp_path / name).symlink_to(DATA / name)
    return tmp_path


def _tiny_model(config_path: Path) -> None:
    """The departure from the page: a tiny random backbone and one epoch."""
    config = yaml.safe_load(config_path.read_text())
    model = config["model"]["init_args"]
    model["model_args"]["backbone"] = "timm:test_resnet"
    bands = len(config["data"]["init_args"]["means"])
    model["model_args"]["backbone_kwargs"] = {"in_chans": bands, "pretrained": False}
    config["trainer"]["max_epochs"] = 1
    config_path.write_text(yaml.safe_dump(config, sort_keys=False))


def _rename_classes(config_path: Path) -> None:
    """What the page asks the reader to do by hand after `geofm init`."""
    text = config_path.read_text()
    assert text.count("class_names: [class_0, class_1]") == 2
    config_path.write_text(text.replace("[class_0, class_1]", "[land, water]"))


def _chips(workdir: Path) -> None:
    """The first tutorial's chip folder (its `make_flood_chips.py` step only)."""
    run_page("own-geotiff-folder.md", workdir, select=lambda w: w[0] == "python")


def _own_folder(workdir: Path) -> list[str]:
    def after(words: list[str]) -> None:
        if words[:2] == ["geofm", "init"]:
            _rename_classes(workdir / "flood.yaml")
            _tiny_model(workdir / "flood.yaml")

    return run_page("own-geotiff-folder.md", workdir, after=after)


def test_own_geotiff_folder_tutorial_trains_and_writes_a_named_class_map(workdir: Path) -> None:
    outputs = _own_folder(workdir)
    config = yaml.safe_load((workdir / "flood.yaml").read_text())
    assert config["data"]["init_args"]["ignore_index"] == -1
    assert len(config["data"]["init_args"]["means"]) == 13
    assert "best val/mIoU" in outputs[-2] and "water" in outputs[-2]
    with rasterio.open(workdir / "flood_map.tif") as out, rasterio.open(workdir / SCENE) as src:
        assert (out.width, out.height, out.crs) == (src.width, src.height, src.crs)
        assert out.transform == src.transform
        assert set(np.unique(out.read(1))) <= {0, 1, 255}
        assert "land" in out.tags(1).values() or out.colormap(1)
    assert "water" in (workdir / "flood_map.qml").read_text()
    # TensorBoard holds the curves and the validation figures the page promises
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    events = EventAccumulator(str(workdir / "runs" / "lightning_logs" / "version_0"))
    events.Reload()
    assert "val/mIoU" in events.Tags()["scalars"]
    assert events.Tags()["images"], "no validation figures in TensorBoard"


def test_multi_temporal_tutorial_trains_on_stacks_of_three_dates(workdir: Path) -> None:
    _chips(workdir)
    # Three "dates" per chip: the chip's reflectance scaled per date (a stand-in).
    chips = sorted((workdir / "my_data" / "images").glob("*.tif"))
    (workdir / "dates").mkdir()
    for path in chips:
        with rasterio.open(path) as src:
            profile, image = src.profile, src.read()
        for t, factor in enumerate((0.9, 1.0, 1.1)):
            with rasterio.open(workdir / "dates" / f"{path.stem}_t{t}.tif", "w",
                               **profile) as dst:
                dst.write((image * factor).astype(image.dtype))
    sys.path.insert(0, str(ROOT / "examples" / "tutorials"))
    try:
        from stack_dates import stack
    finally:
        sys.path.pop(0)
    for i, path in enumerate(chips):
        split = "val" if i >= 12 else "train"
        for sub in ("images", "labels"):
            (workdir / "stacks" / split / sub).mkdir(parents=True, exist_ok=True)
        if path.stem != "chip_00_00":  # the page stacks this one itself
            stack([workdir / "dates" / f"{path.stem}_t{t}.tif" for t in range(3)],
                  workdir / "stacks" / split / "images" / path.name)
        (workdir / "stacks" / split / "labels" / path.name).symlink_to(
            workdir / "my_data" / "labels" / path.name)

    def adjust(words: list[str]) -> list[str]:
        if words[:2] == ["geofm", "fit"] and "--trainer.fast_dev_run" not in words:
            return [*words, *FAST]
        return words

    run_page("multi-temporal.md", workdir, adjust=adjust)
    with rasterio.open(workdir / "stacks" / "train" / "images" / "chip_00_00.tif") as src:
        assert src.count == 39
    with rasterio.open(workdir / "chip_03_03_map.tif") as out:
        assert (out.width, out.height) == (128, 128)


def test_python_api_tutorial_trains_and_predicts_a_scene(workdir: Path) -> None:
    _chips(workdir)

    def adjust(words: list[str]) -> list[str]:
        return [*words, "--backbone", "timm:test_resnet", "--epochs", "1", "--no-pretrained"]

    outputs = run_page("python-api.md", workdir, adjust=adjust)
    assert "wrote flood_map.tif (512 x 512 px)" in outputs[-1]
    with rasterio.open(workdir / "flood_map.tif") as out:
        assert out.crs is not None and set(np.unique(out.read(1))) <= {0, 1, 255}


def test_big_raster_tutorial_predicts_a_mosaic_with_probabilities(workdir: Path) -> None:
    _own_folder(workdir)
    outputs = run_page("big-raster-inference.md", workdir)
    assert "wrote big_scene.tif (2048 x 2048 px)" in outputs[0]
    with rasterio.open(workdir / "big_map.tif") as out:
        assert (out.width, out.height) == (2048, 2048)
        assert out.profile.get("tiled")
        classes = out.read(1, window=((0, 512), (0, 512)))
    with rasterio.open(workdir / "flood_map.tif") as single:
        # the mosaic repeats the chip, so its first copy's map is the chip's map up to
        # the tiles' different overlaps at the copy's borders
        agreement = float((single.read(1)[16:-16, 16:-16] == classes[16:-16, 16:-16]).mean())
    assert agreement > 0.95
    with rasterio.open(workdir / "big_map_probabilities.tif") as probabilities:
        assert probabilities.count == 2
        assert probabilities.descriptions == ("probability of land", "probability of water")
