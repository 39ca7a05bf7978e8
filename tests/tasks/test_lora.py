"""LoRA (``peft_config``): adapters-only training, slim checkpoints, merge on export/infer.

A tiny Prithvi backbone on the real Sen1Floods11 chip (six HLS bands of the Sentinel-2
L1C chip), a real Lightning ``Trainer`` and ``geofm fit`` from YAML; the base weights
come from a safetensors file (``weights_path``), as pretrained weights would.
"""

from __future__ import annotations

import copy
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import rasterio
import torch
import yaml

pytest.importorskip("peft")

from geofm_core.cli import main as geofm
from geofm_core.errors import ConfigurationError
from geofm_core.inference.checkpoint import load_task
from geofm_core.io.checkpoints import PEFT_KEY, read_checkpoint
from geofm_core.io.weights import save_weights
from geofm_core.models.adapters import adapter_modules
from geofm_core.tasks import SemanticSegmentationTask

DATA = Path(__file__).resolve().parents[2] / ".." / "shared" / "data" / "sen1floods11"
pytestmark = pytest.mark.skipif(not DATA.is_dir(), reason="../shared/data/sen1floods11 absent")
CHIP = DATA / "Spain_7370579_S2Hand.tif"

MODEL_ARGS: dict[str, Any] = {
    "backbone": "prithvi:prithvi_eo_v2_tiny_tl",
    "backbone_kwargs": {"embed_dim": 64, "depth": 4, "num_heads": 2, "img_size": 64,
                        "pretrained": False},
    "necks": [{"name": "geofm:select_indices", "indices": [-1]},
              {"name": "geofm:reshape_tokens_to_image"}],
    "decoder": "geofm:fcn", "decoder_kwargs": {"channels": 8, "num_convs": 1},
}
LORA = {"method": "LORA",
        "peft_config_kwargs": {"target_modules": ["qkv", "fc1"], "r": 4, "lora_alpha": 8}}
DATA_ARGS = {
    "train_data_root": str(DATA), "val_data_root": str(DATA), "predict_data_root": str(DATA),
    "img_pattern": "*_S2Hand.tif", "label_pattern": "*_LabelHand.tif",
    "predict_img_pattern": "*_S2Hand.tif", "output_bands": [1, 2, 3, 8, 11, 12],
    "num_classes": 2, "ignore_index": -1, "constant_scale": 0.0001, "batch_size": 1,
    "num_workers": 0,
}


def task(peft: dict[str, Any] | None = LORA, **kwargs: Any) -> SemanticSegmentationTask:
    return SemanticSegmentationTask(model_args=copy.deepcopy(MODEL_ARGS), num_classes=2,
                                    ignore_index=-1, peft_config=copy.deepcopy(peft),
                                    scheduler=None, lr=1e-2, **kwargs)


@pytest.fixture(scope="module")
def base(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The 'pretrained' weights: a built model's weights as a safetensors file."""
    torch.manual_seed(0)
    plain = task(peft=None)
    path = tmp_path_factory.mktemp("base") / "base.safetensors"
    return save_weights(plain.model.state_dict(), path)


def chip() -> torch.Tensor:
    with rasterio.open(CHIP) as src:
        raw = src.read([2, 3, 4, 9, 12, 13], window=((0, 64), (0, 64))).astype(np.float32)
    return torch.from_numpy(raw * 1e-4)[None]


def fit(model: SemanticSegmentationTask, root: Path, steps: int = 2) -> Any:
    from lightning.pytorch import Trainer

    from geofm_core.data.datamodules import GeoTiffSegmentationDataModule

    trainer = Trainer(accelerator="cpu", max_steps=steps, limit_val_batches=0, logger=False,
                      enable_checkpointing=False, enable_progress_bar=False,
                      enable_model_summary=False, default_root_dir=root)
    trainer.fit(model, datamodule=GeoTiffSegmentationDataModule(**DATA_ARGS))
    return trainer


@pytest.fixture(scope="module")
def trained(base: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """A LoRA task trained two steps on the chip, its weights before, and its checkpoint."""
    torch.manual_seed(1)
    model = task(weights_path=str(base))
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    root = tmp_path_factory.mktemp("lora_fit")
    trainer = fit(model, root)
    ckpt = root / "lora.ckpt"
    trainer.save_checkpoint(ckpt)
    return {"model": model.eval(), "before": before, "ckpt": ckpt}


def test_only_adapters_and_decoder_train(trained: dict[str, Any]) -> None:
    model, before = trained["model"], trained["before"]
    trainable = {n for n, p in model.named_parameters() if p.requires_grad}
    assert trainable and all("lora_" in n for n in trainable if ".backbone." in n)
    assert any("decoder" in n for n in trainable)
    changed = {n for n, p in model.named_parameters() if not torch.equal(p, before[n])}
    assert changed <= trainable
    assert any("lora_B" in n for n in changed) and any("decoder" in n for n in changed)
    frozen = [n for n in before if n.startswith("model.backbone.") and "lora_" not in n]
    assert frozen and not set(frozen) & changed


def test_checkpoint_holds_adapters_only_and_reloads_identically(
        trained: dict[str, Any], base: Path, tmp_path: Path) -> None:
    checkpoint = read_checkpoint(trained["ckpt"])
    state = checkpoint["state_dict"]
    assert checkpoint[PEFT_KEY]["slim"]
    assert checkpoint[PEFT_KEY]["base"]["weights_path"] == str(base)
    assert not any(".backbone." in k and "lora_" not in k and k.endswith("weight")
                   and "norm" not in k for k in state)
    full = trained["model"].state_dict()
    saved_bytes = sum(v.numel() * v.element_size() for v in state.values())
    full_bytes = sum(v.numel() * v.element_size() for v in full.values())
    assert saved_bytes < 0.15 * full_bytes
    assert trained["ckpt"].stat().st_size < base.stat().st_size / 2
    reloaded = load_task(trained["ckpt"], merge=False)
    assert adapter_modules(reloaded.model)
    x = chip()
    with torch.no_grad():
        assert torch.equal(reloaded(x).output, trained["model"](x).output)


def test_merged_model_has_no_lora_and_equal_outputs(trained: dict[str, Any]) -> None:
    merged = load_task(trained["ckpt"])
    assert not adapter_modules(merged.model)
    assert not any("lora" in n or "base_layer" in n for n, _ in merged.named_parameters())
    x = chip()
    with torch.no_grad():
        diff = (merged(x).output - trained["model"](x).output).abs().max()
    assert float(diff) < 1e-5


def test_other_base_weights_are_refused(trained: dict[str, Any], base: Path,
                                        tmp_path: Path) -> None:
    checkpoint = read_checkpoint(trained["ckpt"])
    other = tmp_path / "other.safetensors"
    torch.manual_seed(7)
    save_weights(task(peft=None).model.state_dict(), other)
    checkpoint["hyper_parameters"]["weights_path"] = str(other)
    moved = tmp_path / "moved.ckpt"
    torch.save(checkpoint, moved)
    with pytest.raises(ConfigurationError, match="other base weights"):
        load_task(moved)


def test_replace_qkv_splits_and_adapts_q_and_v() -> None:
    config = {"method": "LORA", "replace_qkv": "qkv",
              "peft_config_kwargs": {"target_modules": ["q_linear", "v_linear"], "r": 2}}
    torch.manual_seed(0)
    plain = task(peft=None).eval()
    torch.manual_seed(0)
    split = task(peft=config).eval()
    names = [n for n, _ in split.named_parameters() if "lora_A" in n]
    assert names and all(".q_linear." in n or ".v_linear." in n for n in names)
    x = chip()
    with torch.no_grad():  # lora_B starts at zero: the same function as the plain model
        torch.testing.assert_close(split(x).output, plain(x).output, atol=1e-5, rtol=0)


@pytest.mark.parametrize(("config", "extra", "message"), [
    ({"method": "LORA", "peft_config_kwargs": {"target_modules": ["q_proj"]}}, {},
     r"target_modules \['q_proj'\] match no layer .* named fc1, fc2, proj, qkv"),
    ({"method": "IA3", "peft_config_kwargs": {"target_modules": ["qkv"]}}, {},
     "peft_config.method 'IA3' is not supported"),
    ({"method": "LORA", "peft_config_kwargs": {}}, {}, "target_modules is missing"),
    ({"method": "LORA", "r": 4, "peft_config_kwargs": {"target_modules": ["qkv"]}}, {},
     r"unknown keys \['r'\]"),
    ({"method": "LORA", "peft_config_kwargs": {"target_modules": ["qkv"], "rank": 4}}, {},
     "not valid LoraConfig arguments"),
    (LORA, {"freeze_backbone": True}, "remove freeze_backbone"),
])
def test_bad_peft_configs_name_the_field(config: dict[str, Any], extra: dict[str, Any],
                                         message: str) -> None:
    with pytest.raises(ConfigurationError, match=message):
        task(peft=config, **extra)


def test_missing_peft_says_how_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "peft", None)  # `import peft` raises ImportError
    with pytest.raises(ConfigurationError, match=r"pip install 'geofm-core\[peft\]'"):
        task()


def test_random_base_keeps_the_whole_model(tmp_path: Path) -> None:
    with pytest.warns(UserWarning, match="checkpoints keep the whole model"):
        model = task()
    trainer = fit(model, tmp_path, steps=1)
    trainer.save_checkpoint(tmp_path / "full.ckpt")
    checkpoint = read_checkpoint(tmp_path / "full.ckpt")
    assert not checkpoint[PEFT_KEY]["slim"]
    assert set(checkpoint["state_dict"]) == set(model.state_dict())


# ------------------------------------------------------------------ CLI: fit, infer, export


@pytest.fixture(scope="module")
def cli_run(base: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """``geofm fit`` from YAML with peft_config; returns the run folder."""
    run = tmp_path_factory.mktemp("lora_cli")
    config = {
        "seed_everything": 0,
        "trainer": {"accelerator": "cpu", "max_epochs": 1, "limit_train_batches": 1,
                    "limit_val_batches": 1, "num_sanity_val_steps": 0,
                    "enable_progress_bar": False, "enable_model_summary": False,
                    "default_root_dir": str(run), "logger": False},
        "model": {"class_path": "SemanticSegmentationTask", "init_args": {
            "model_args": copy.deepcopy(MODEL_ARGS), "num_classes": 2, "ignore_index": -1,
            "weights_path": str(base), "peft_config": copy.deepcopy(LORA),
            "tiled_inference": {"crop": 64, "stride": 64}}},
        "data": {"class_path": "GeoTiffSegmentationDataModule", "init_args": DATA_ARGS},
    }
    path = run / "lora.yaml"
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    assert geofm(["fit", "-c", str(path)]) == 0
    return run


def _last(run: Path) -> Path:
    found = sorted(run.rglob("last.ckpt"))
    assert found, list(run.rglob("*.ckpt"))
    return found[0]


def test_cli_fit_writes_adapters_only_and_infer_merges(cli_run: Path, tmp_path: Path) -> None:
    ckpt = _last(cli_run)
    assert read_checkpoint(ckpt)[PEFT_KEY]["slim"]
    out = tmp_path / "water.tif"
    assert geofm(["infer", "--ckpt", str(ckpt), str(CHIP), str(out), "--probabilities",
                  "--no-progress"]) == 0
    with rasterio.open(out) as src:
        assert (src.width, src.height) == (512, 512)
    probabilities = next(tmp_path.glob("*prob*.tif"))
    from geofm_core.data.preprocessing import Preprocessing
    from geofm_core.inference.raster import predict_raster

    unmerged = load_task(ckpt, merge=False)
    expected = tmp_path / "unmerged" / "water.tif"
    expected.parent.mkdir()
    with torch.no_grad():
        result = predict_raster(lambda t: unmerged(t).output, CHIP, expected,
                                kind="segmentation", num_classes=2,
                                preprocessing=Preprocessing.from_checkpoint(
                                    read_checkpoint(ckpt)),
                                crop=64, stride=64, batch_size=8, blend="ramp",
                                probabilities=True, progress=False)
    with rasterio.open(probabilities) as a, rasterio.open(result.probabilities) as b:
        np.testing.assert_allclose(a.read(), b.read(), atol=1e-5)


def test_cli_export_onnx_is_merged(cli_run: Path, tmp_path: Path) -> None:
    onnx = pytest.importorskip("onnx")
    ort = pytest.importorskip("onnxruntime")
    ckpt = _last(cli_run)
    out = tmp_path / "lora.onnx"
    assert geofm(["export", "onnx", "--ckpt", str(ckpt), "--output", str(out),
                  "--image-size", "64"]) == 0
    graph = onnx.load(str(out)).graph
    names = [i.name for i in graph.initializer] + [n.name for n in graph.node]
    assert not any("lora" in n for n in names)
    x = chip()
    session = ort.InferenceSession(str(out), providers=["CPUExecutionProvider"])
    got = session.run(None, {session.get_inputs()[0].name: x.numpy()})[0]
    with torch.no_grad():
        want = load_task(ckpt, merge=False)(x).output.numpy()
    np.testing.assert_allclose(got, want, atol=1e-5)
    assert geofm(["export", "safetensors", "--ckpt", str(ckpt), "--output",
                  str(tmp_path / "w.safetensors")]) != 0


# ------------------------------------------------------------------ converter


def test_converter_keeps_peft_config(tmp_path: Path) -> None:
    peft = {"method": "LORA", "replace_qkv": "qkv",
            "peft_config_kwargs": {"target_modules": ["q_linear", "v_linear", "fc1"], "r": 8,
                                   "lora_alpha": 16, "lora_dropout": 0.1}}
    source = {"model": {"class_path": "terratorch.tasks.SemanticSegmentationTask",
                        "init_args": {"model_factory": "EncoderDecoderFactory", "model_args": {
                            "backbone": "prithvi_eo_v2_tiny_tl", "backbone_pretrained": False,
                            "necks": [{"name": "SelectIndices", "indices": [-1]},
                                      {"name": "ReshapeTokensToImage"}],
                            "decoder": "FCNDecoder", "num_classes": 2,
                            "peft_config": peft}}}}
    path = tmp_path / "tt.yaml"
    path.write_text(yaml.safe_dump(source))
    out = tmp_path / "geofm.yaml"
    assert geofm(["convert", "terratorch", str(path), "-o", str(out)]) == 0
    converted = yaml.safe_load(out.read_text())["model"]["init_args"]
    assert converted["peft_config"] == peft
    assert "peft_config" not in converted["model_args"]
    built = SemanticSegmentationTask(**converted)
    assert any(".q_linear.lora_A" in n for n, _ in built.named_parameters())


# ------------------------------------------------------------------ the docs page


def test_docs_config_trains_with_a_tiny_backbone(base: Path, tmp_path: Path) -> None:
    """docs/lora.md's YAML, as written but for a tiny backbone, the chip and one batch."""
    import re

    page = (Path(__file__).resolve().parents[2] / "docs" / "lora.md").read_text()
    config = yaml.safe_load(re.findall(r"```yaml\n(.*?)```", page, flags=re.S)[0])
    init = config["model"]["init_args"]
    assert init["peft_config"]["method"] == "LORA"
    init["model_args"] = copy.deepcopy(MODEL_ARGS)  # the page's Prithvi 300M is 1.2 GB
    init["weights_path"] = str(base)
    for key in ("train_data_root", "val_data_root"):
        config["data"]["init_args"][key] = str(DATA)
    config["data"]["init_args"]["batch_size"] = 1
    config["trainer"] |= {"default_root_dir": str(tmp_path), "logger": False,
                          "enable_progress_bar": False}
    path = tmp_path / "lora.yaml"
    path.write_text(yaml.safe_dump(config))
    assert geofm(["fit", "-c", str(path), "--trainer.fast_dev_run", "1"]) == 0


def test_cli_resumes_from_an_adapters_only_checkpoint(cli_run: Path) -> None:
    ckpt = _last(cli_run)
    before = read_checkpoint(ckpt)
    assert geofm(["fit", "-c", str(cli_run / "lora.yaml"), "--ckpt_path", str(ckpt),
                  "--trainer.max_epochs", "2"]) == 0
    after = read_checkpoint(_last(cli_run))
    assert after["epoch"] == before["epoch"] + 1 and after[PEFT_KEY]["slim"]
    assert set(after["state_dict"]) == set(before["state_dict"])


def test_a_detector_trains_only_its_backbone_adapters(tmp_path: Path) -> None:
    """peft_config on ObjectDetectionTask: the Prithvi backbone gets LoRA, the FPN and the
    detector heads train, the base weights stay; the checkpoint reloads the same model."""
    from lightning.pytorch import Trainer

    from geofm_core.data.detection import GeoTiffObjectDetectionDataModule
    from geofm_core.tasks import ObjectDetectionTask
    from geofm_core.testing import water_bodies

    water = water_bodies(tmp_path / "water", size=64)
    backbone = {k: MODEL_ARGS[k] for k in ("backbone", "backbone_kwargs")}
    necks = [{"name": "geofm:select_indices", "indices": [0, 1, 2, 3]},
             {"name": "geofm:reshape_tokens_to_image"},
             {"name": "geofm:learned_interpolate_to_pyramidal"}]
    torch.manual_seed(0)
    base = tmp_path / "base.safetensors"
    plain = ObjectDetectionTask(model_args={**copy.deepcopy(backbone), "necks": necks,
                                            "fpn_channels": 16}, class_names=water.classes)
    save_weights(plain.model.state_dict(), base)
    model = ObjectDetectionTask(
        model_args={**copy.deepcopy(backbone), "necks": necks, "fpn_channels": 16},
        class_names=water.classes, peft_config=copy.deepcopy(LORA), weights_path=str(base),
        scheduler=None, lr=1e-2)
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    trainable = {n for n, p in model.named_parameters() if p.requires_grad}
    assert all("lora_" in n for n in trainable if n.startswith("model.backbone."))
    assert any(n.startswith("model.fpn.") for n in trainable)
    data = GeoTiffObjectDetectionDataModule(
        train_data_root=str(water.images), train_label_data_root=str(water.labels),
        img_pattern="*_S2Hand.tif", label_pattern="*_water.gpkg",
        class_attribute=water.class_attribute, classes=water.classes, batch_size=1,
        constant_scale=0.0001, num_workers=0)
    trainer = Trainer(accelerator="cpu", max_steps=2, limit_val_batches=0, logger=False,
                      enable_checkpointing=False, enable_progress_bar=False,
                      enable_model_summary=False, default_root_dir=tmp_path)
    trainer.fit(model, datamodule=data)
    changed = {n for n, p in model.named_parameters() if not torch.equal(p, before[n])}
    assert changed <= trainable and any("lora_B" in n for n in changed)
    ckpt = tmp_path / "det_lora.ckpt"
    trainer.save_checkpoint(ckpt)
    assert read_checkpoint(ckpt)[PEFT_KEY]["slim"]
    # load_task merges the adapters into the base weights (read from base.safetensors)
    reloaded = load_task(ckpt).model.eval()
    image = torch.randn(1, 6, 64, 64)
    with torch.no_grad():
        for ours, theirs in zip(model.model.eval().backbone(image), reloaded.backbone(image),
                                strict=True):
            torch.testing.assert_close(theirs, ours, rtol=1e-4, atol=1e-5)
    heads = {n: p for n, p in model.model.named_parameters() if not n.startswith("backbone.")}
    assert heads
    for name, value in reloaded.named_parameters():
        if name in heads:
            torch.testing.assert_close(value, heads[name], rtol=0, atol=0, msg=name)
