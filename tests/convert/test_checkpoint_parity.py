"""TerraTorch checkpoints in geofm: converted weights give TerraTorch's outputs.

The fixtures under ``fixtures/terratorch`` were written by TerraTorch itself
(``fixtures/make_terratorch_fixtures.py``, run in the benchmark peer environment):
small models with random weights, their task checkpoints, and TerraTorch's logits on
fixed inputs. TerraTorch is not needed here.
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import rasterio
import torch
import yaml
from rasterio.transform import from_origin
from safetensors.torch import load_file

from geofm_core.cli import main as geofm
from geofm_core.convert.terratorch.checkpoint import convert_checkpoint
from geofm_core.errors import ConfigurationError
from geofm_core.inference.checkpoint import load_task

FIXTURES = Path(__file__).parent / "fixtures" / "terratorch"
CASES = ("prithvi_v1_upernet", "prithvi_v2_tl_upernet", "prithvi_v2_fcn", "timm_resnet_unet",
         "smp_unet",
         "timm_resnet_classification")
# The fixture script's normalisation (its MEANS and STDS).
MEANS = [500.0, 700.0, 900.0]
STDS = [200.0, 250.0, 300.0]
TOLERANCE = 1e-5


@pytest.fixture(autouse=True)
def _exact_matmul() -> Any:
    previous = torch.get_float32_matmul_precision()
    torch.set_float32_matmul_precision("highest")
    yield
    torch.set_float32_matmul_precision(previous)


def _reference(case: str) -> tuple[torch.Tensor, dict[str, torch.Tensor], torch.Tensor]:
    """The normalised input, the coordinates and TerraTorch's logits of a case."""
    ref = load_file(str(FIXTURES / f"{case}.ref.safetensors"))
    raw = ref["raw"]
    shape = [1, len(MEANS)] + [1] * (raw.ndim - 2)
    x = (raw - torch.tensor(MEANS).reshape(shape)) / torch.tensor(STDS).reshape(shape)
    coords = {k: ref[k] for k in ("temporal_coords", "location_coords") if k in ref}
    return x, coords, ref["logits"]


def _converted(case: str, tmp_path: Path) -> Path:
    result = convert_checkpoint(FIXTURES / f"{case}.ckpt", FIXTURES / f"{case}.yaml")
    path = tmp_path / f"{case}.ckpt"
    torch.save(result.checkpoint, path)
    return path


def _logits(task: Any, x: torch.Tensor, coords: dict[str, torch.Tensor]) -> torch.Tensor:
    with torch.no_grad():
        return task.model(x, **coords).output  # type: ignore[no-any-return]


@pytest.mark.parametrize("case", CASES)
def test_converted_checkpoint_gives_terratorchs_logits(case: str, tmp_path: Path) -> None:
    task = load_task(_converted(case, tmp_path))
    x, coords, expected = _reference(case)
    got = _logits(task, x, coords)
    assert got.shape == expected.shape
    assert float((got - expected).abs().max()) <= TOLERANCE
    ref = load_file(str(FIXTURES / f"{case}.ref.safetensors"))
    with torch.no_grad():
        aux = task.model(x, **coords).auxiliary_heads
    for name in [k.removeprefix("aux.") for k in ref if k.startswith("aux.")]:
        assert float((aux[name] - ref[f"aux.{name}"]).abs().max()) <= TOLERANCE


def test_the_terratorch_options_are_what_makes_them_equal(tmp_path: Path) -> None:
    """With geofm's defaults instead of the options the converter sets, outputs differ."""
    path = _converted("prithvi_v2_tl_upernet", tmp_path)
    checkpoint = torch.load(path, weights_only=True)
    hparams = copy.deepcopy(checkpoint["hyper_parameters"])
    args = hparams["model_args"]
    for key in ("input_multiple", "pad_mode", "pad_centred"):
        args.pop(key)
    for key in ("position_grid", "coords_dtype"):
        args["backbone_kwargs"].pop(key)
    args["head_kwargs"].pop("conv_block")
    checkpoint["hyper_parameters"] = hparams
    torch.save(checkpoint, path)
    with pytest.raises(ConfigurationError, match="another model"):
        load_task(path)  # the head's blocks are laid out differently
    args["head_kwargs"]["conv_block"] = "conv_bias_relu"
    torch.save(checkpoint, path)
    x, coords, expected = _reference("prithvi_v2_tl_upernet")
    assert float((_logits(load_task(path), x, coords) - expected).abs().max()) > 1e-3


def test_the_unet_layout_option_matters(tmp_path: Path) -> None:
    path = _converted("timm_resnet_unet", tmp_path)
    checkpoint = torch.load(path, weights_only=True)
    assert checkpoint["hyper_parameters"]["model_args"]["decoder_kwargs"]["upsample_last"] is False
    checkpoint["hyper_parameters"]["model_args"]["decoder_kwargs"]["upsample_last"] = True
    torch.save(checkpoint, path)
    x, coords, expected = _reference("timm_resnet_unet")
    assert float((_logits(load_task(path), x, coords) - expected).abs().max()) > 1e-3


def test_only_the_position_buffer_is_left_out() -> None:
    result = convert_checkpoint(FIXTURES / "prithvi_v1_upernet.ckpt",
                                FIXTURES / "prithvi_v1_upernet.yaml")
    assert [d.split()[0] for d in result.dropped] == ["encoder.pos_embed"]
    checkpoint = result.checkpoint
    assert checkpoint["geofm_task_class"].endswith("SemanticSegmentationTask")
    assert checkpoint["datamodule_hyper_parameters"]["means"] == MEANS


def _tampered(tmp_path: Path, change: Any) -> Path:
    checkpoint = torch.load(FIXTURES / "prithvi_v1_upernet.ckpt", weights_only=True)
    change(checkpoint["state_dict"])
    path = tmp_path / "tampered.ckpt"
    torch.save(checkpoint, path)
    return path


def test_unmapped_missing_and_mismatched_keys_are_listed_in_one_error(tmp_path: Path) -> None:
    def change(state: dict[str, torch.Tensor]) -> None:
        state["model.something_else.weight"] = torch.zeros(1)
        del state["model.decoder.bottleneck.conv.weight"]
        state["model.head.head.2.bias"] = torch.zeros(7)

    path = _tampered(tmp_path, change)
    with pytest.raises(ConfigurationError) as caught:
        convert_checkpoint(path, FIXTURES / "prithvi_v1_upernet.yaml")
    message = str(caught.value)
    assert "something_else.weight" in message  # placed by no rule
    assert "model.decoder.bottleneck.0.weight" in message  # missing
    assert "model.head.classifier.bias (7,) vs (3,)" in message  # shape


def _write_tif(path: Path, array: np.ndarray) -> None:
    with rasterio.open(path, "w", driver="GTiff", height=array.shape[1], width=array.shape[2],
                       count=array.shape[0], dtype=array.dtype, crs="EPSG:32633",
                       transform=from_origin(500_000, 4_000_000, 30, 30)) as dst:
        dst.write(array)


# Single-frame segmentation cases: `geofm infer` reads one GeoTIFF per scene. The
# multi-temporal case with coordinates is compared on logits above.
INFER_CASES = ("prithvi_v1_upernet", "prithvi_v2_fcn", "timm_resnet_unet", "smp_unet")


@pytest.mark.parametrize("case", INFER_CASES)
def test_convert_then_infer_gives_terratorchs_class_map(case: str, tmp_path: Path) -> None:
    output = tmp_path / "model.ckpt"
    assert geofm(["convert", "terratorch", str(FIXTURES / f"{case}.yaml"), "--ckpt",
                  str(FIXTURES / f"{case}.ckpt"), "-o", str(output)]) == 0
    raw = load_file(str(FIXTURES / f"{case}.ref.safetensors"))["raw"][0].numpy()
    _write_tif(tmp_path / "scene.tif", raw.astype(np.float32))
    assert geofm(["infer", "--ckpt", str(output), str(tmp_path / "scene.tif"),
                  str(tmp_path / "map.tif"), "--crop", "32", "--stride", "32",
                  "--no-progress"]) == 0
    with rasterio.open(tmp_path / "map.tif") as src:
        predicted = src.read(1)
    _, _, logits = _reference(case)
    np.testing.assert_array_equal(predicted, logits[0].argmax(0).numpy())


def test_convert_ckpt_needs_an_output_and_a_readable_checkpoint(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    config = str(FIXTURES / "prithvi_v1_upernet.yaml")
    assert geofm(["convert", "terratorch", config, "--ckpt",
                  str(FIXTURES / "prithvi_v1_upernet.ckpt")]) == 1
    assert "-o" in capsys.readouterr().err
    assert geofm(["convert", "terratorch", config, "--ckpt", str(tmp_path / "no.ckpt"),
                  "-o", str(tmp_path / "out.ckpt")]) == 1
    assert "does not exist" in capsys.readouterr().err
    assert not (tmp_path / "out.ckpt").exists()
    ckpt = str(FIXTURES / "prithvi_v1_upernet.ckpt")
    assert geofm(["convert", "terratorch", config, "--ckpt", ckpt, "-o", str(tmp_path)]) == 1
    assert "is a folder" in capsys.readouterr().err
    missing = tmp_path / "no" / "out.ckpt"
    assert geofm(["convert", "terratorch", config, "--ckpt", ckpt, "-o", str(missing)]) == 1
    assert "does not exist" in capsys.readouterr().err


def test_the_fixture_configs_are_terratorch_configs() -> None:
    for case in CASES:
        config = yaml.safe_load((FIXTURES / f"{case}.yaml").read_text())
        assert config["model"]["class_path"].startswith("terratorch.tasks.")


def test_a_converted_checkpoint_is_accepted_for_fine_tuning_and_ckpt_path(tmp_path: Path) -> None:
    from geofm_core.cli.run_checks import check_checkpoint_fits
    from geofm_core.tasks import SemanticSegmentationTask

    path = _converted("prithvi_v1_upernet", tmp_path)
    hparams = {k: v for k, v in torch.load(path, weights_only=True)["hyper_parameters"].items()
               if k != "weights_path"}
    task = SemanticSegmentationTask(**{**hparams, "weights_path": str(path)})
    x, coords, expected = _reference("prithvi_v1_upernet")
    task.eval()
    assert float((_logits(task, x, coords) - expected).abs().max()) <= TOLERANCE
    check_checkpoint_fits(path, task)  # what `geofm predict/validate/test --ckpt_path` checks


def _saved_with_object(tmp_path: Path, module: str, monkeypatch: pytest.MonkeyPatch) -> Path:
    import sys
    import types

    fake = types.ModuleType(module)
    head = type("AuxiliaryHead", (), {"__module__": module})
    fake.AuxiliaryHead = head  # type: ignore[attr-defined]
    for part in range(1, module.count(".") + 2):
        monkeypatch.setitem(sys.modules, ".".join(module.split(".")[:part]),
                            fake if part == module.count(".") + 1 else types.ModuleType("x"))
    checkpoint = torch.load(FIXTURES / "prithvi_v1_upernet.ckpt", weights_only=True)
    checkpoint["hyper_parameters"]["aux_heads"] = [head()]
    path = tmp_path / "lightning.ckpt"
    torch.save(checkpoint, path)
    monkeypatch.undo()  # the class is gone again, as where TerraTorch is not installed
    return path


def test_terratorch_objects_in_the_hyper_parameters_are_read_as_inert_stand_ins(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = _saved_with_object(tmp_path, "terratorch.models.model", monkeypatch)
    result = convert_checkpoint(path, FIXTURES / "prithvi_v1_upernet.yaml")
    assert "model.head.classifier.weight" in result.checkpoint["state_dict"]


def test_objects_of_other_packages_are_still_refused(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = _saved_with_object(tmp_path, "evil_package.payload", monkeypatch)
    with pytest.raises(ConfigurationError, match="refused to load"):
        convert_checkpoint(path, FIXTURES / "prithvi_v1_upernet.yaml")


def test_lightning_predicts_from_a_converted_checkpoint(tmp_path: Path) -> None:
    from lightning.pytorch import Trainer

    from geofm_core.tasks import SemanticSegmentationTask

    path = _converted("prithvi_v1_upernet", tmp_path)
    hparams = torch.load(path, weights_only=True)["hyper_parameters"]
    task = SemanticSegmentationTask(**hparams)  # fresh weights, replaced by --ckpt_path's
    x, _, expected = _reference("prithvi_v1_upernet")
    trainer = Trainer(logger=False, enable_progress_bar=False, enable_checkpointing=False,
                      default_root_dir=tmp_path, accelerator="cpu")
    loader = torch.utils.data.DataLoader([{"image": x[0]}], batch_size=1)
    (batch,) = trainer.predict(task, loader, ckpt_path=str(path), weights_only=True)
    assert torch.equal(batch["prediction"], expected.argmax(1))
