"""Continued MAE pre-training with `geofm fit` on a real chip, then fine-tuning its encoder.

The Sen1Floods11 Sentinel-2 chip (no labels read) trains a tiny Prithvi MAE for a few
steps from YAML; the run's checkpoint then seeds a segmentation task's backbone, through
``model_args.backbone_weights`` (any backbone) and ``backbone_kwargs.ckpt_path``
(Prithvi's loader), and through `geofm fit` again.
"""

from __future__ import annotations

import csv
import math
from pathlib import Path
from typing import Any

import pytest
import torch
import yaml

from geofm_core.cli import main
from geofm_core.data.bands import SENTINEL2_L1C_BANDS
from geofm_core.errors import ConfigurationError
from geofm_core.io.checkpoints import read_checkpoint
from geofm_core.io.weights import save_weights
from geofm_core.tasks import ReconstructionTask, SemanticSegmentationTask

DATA = Path(__file__).resolve().parents[3].parent / "shared" / "data" / "sen1floods11"
HLS = [SENTINEL2_L1C_BANDS[i] for i in (1, 2, 3, 8, 11, 12)]
BACKBONE: dict[str, Any] = {"embed_dim": 32, "depth": 2, "num_heads": 2, "bands": HLS,
                            "img_size": 64}
MODEL_ARGS: dict[str, Any] = {
    "backbone": "prithvi:prithvi_eo_v2_tiny_tl", "backbone_kwargs": BACKBONE,
    "decoder_kwargs": {"decoder_embed_dim": 16, "decoder_depth": 1, "decoder_num_heads": 2},
    "mask_ratio": 0.75, "norm_pix_loss": True,
}
SEGMENTATION_NECKS = [{"name": "geofm:select_indices", "indices": [-1]},
                      {"name": "geofm:reshape_tokens_to_image"}]


def _data(**extra: Any) -> dict[str, Any]:
    return {
        "train_data_root": str(DATA), "val_data_root": str(DATA),
        "img_pattern": "*_S2Hand.tif", "dataset_bands": list(SENTINEL2_L1C_BANDS),
        "output_bands": HLS, "means": [1500.0] * 6, "stds": [1000.0] * 6,
        "batch_size": 1, "num_workers": 0, "train_augmentations": [{"random_crop": 64}],
        "val_augmentations": [{"center_crop": 64}], **extra,
    }


@pytest.fixture(scope="module")
def pretrained_run(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """`geofm fit` of a ReconstructionTask from YAML: 4 steps on the real chip."""
    if not (DATA / "Spain_7370579_S2Hand.tif").exists():
        pytest.skip(f"real test rasters not found at {DATA} (see the project's data README)")
    tmp = tmp_path_factory.mktemp("mae")
    torch.manual_seed(0)
    init = tmp / "init.safetensors"
    save_weights(ReconstructionTask(model_args=MODEL_ARGS).model.state_dict(), init)
    config = {
        "seed_everything": 0,
        "trainer": {
            "accelerator": "cpu", "devices": 1, "max_steps": 4, "log_every_n_steps": 1,
            "enable_progress_bar": False, "enable_model_summary": False,
            "num_sanity_val_steps": 0, "default_root_dir": str(tmp / "run"),
            "logger": {"class_path": "lightning.pytorch.loggers.CSVLogger",
                       "init_args": {"save_dir": str(tmp / "logs"), "name": "mae"}},
        },
        "model": {"class_path": "ReconstructionTask", "init_args": {
            "model_args": MODEL_ARGS, "lr": 1e-3, "weights_path": str(init)}},
        "data": {"class_path": "GeoTiffImageDataModule", "init_args": _data()},
    }
    path = tmp / "pretrain.yaml"
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    assert main(["fit", "-c", str(path)]) == 0
    ckpt = next(tmp.rglob("last.ckpt"))
    metrics = next((tmp / "logs").rglob("metrics.csv"))
    return {"ckpt": ckpt, "init": init, "metrics": metrics, "root": tmp}


def _encoder(ckpt: Path) -> dict[str, torch.Tensor]:
    state = read_checkpoint(ckpt)["state_dict"]
    return {k.removeprefix("model.encoder."): v for k, v in state.items()
            if k.startswith("model.encoder.")}


def test_pretraining_from_yaml_trains_the_mae(pretrained_run) -> None:
    from safetensors.torch import load_file

    with pretrained_run["metrics"].open() as handle:
        rows = list(csv.DictReader(handle))
    losses = [float(r["train/loss_step"]) for r in rows if r.get("train/loss_step")]
    val = [float(r["val/loss"]) for r in rows if r.get("val/loss")]
    assert len(losses) == 4 and all(math.isfinite(v) and v > 0 for v in losses)
    assert val and math.isfinite(val[-1])
    init = load_file(str(pretrained_run["init"]))
    trained = read_checkpoint(pretrained_run["ckpt"])["state_dict"]
    assert set(trained) == {f"model.{k}" for k in init}
    for part in ("encoder.patch_embed.proj.weight", "encoder.blocks.1.mlp.fc2.weight",
                 "decoder.decoder_pred.weight", "decoder.mask_token"):
        assert not torch.equal(trained[f"model.{part}"], init[part]), part


def _segmentation(**model_args: Any) -> SemanticSegmentationTask:
    return SemanticSegmentationTask(num_classes=2, model_args={
        "backbone": "prithvi:prithvi_eo_v2_tiny_tl", "decoder": "geofm:fcn",
        "necks": SEGMENTATION_NECKS, **model_args})


def test_a_segmentation_task_starts_from_the_pretrained_encoder(pretrained_run) -> None:
    ckpt = pretrained_run["ckpt"]
    expected = _encoder(ckpt)
    generic = _segmentation(backbone_kwargs=BACKBONE, backbone_weights=str(ckpt))
    prithvi = _segmentation(backbone_kwargs={**BACKBONE, "ckpt_path": str(ckpt)})
    for task in (generic, prithvi):
        state = task.model.backbone.state_dict()
        assert set(state) == set(expected)
        assert all(torch.equal(state[k], expected[k]) for k in expected)
    fresh = _segmentation(backbone_kwargs=BACKBONE).model.backbone.state_dict()
    assert not torch.equal(fresh["blocks.0.attn.qkv.weight"], expected["blocks.0.attn.qkv.weight"])


def test_pretrained_encoder_of_another_shape_is_refused(pretrained_run, tmp_path) -> None:
    ckpt = str(pretrained_run["ckpt"])
    with pytest.raises(ConfigurationError, match=r"another model.*settings of the pre-training"):
        _segmentation(backbone_kwargs={**BACKBONE, "embed_dim": 64}, backbone_weights=ckpt)
    with pytest.raises(ConfigurationError, match="holds no backbone weights"):
        save_weights({"head.weight": torch.zeros(2)}, tmp_path / "other.safetensors")
        _segmentation(backbone_kwargs=BACKBONE,
                      backbone_weights=str(tmp_path / "other.safetensors"))


def test_fine_tuning_from_yaml_with_backbone_weights(pretrained_run, tmp_path) -> None:
    labelled = tmp_path / "chips"
    labelled.mkdir()
    for kind in ("S2Hand", "LabelHand"):
        (labelled / f"a_{kind}.tif").symlink_to(DATA / f"Spain_7370579_{kind}.tif")
    data = _data(train_data_root=str(labelled), val_data_root=str(labelled),
                 label_pattern="*_LabelHand.tif", num_classes=2, ignore_index=-1)
    config = {
        "seed_everything": 0,
        "trainer": {"accelerator": "cpu", "devices": 1, "logger": False,
                    "enable_progress_bar": False, "enable_model_summary": False,
                    "default_root_dir": str(tmp_path / "run")},
        "model": {"class_path": "SemanticSegmentationTask", "init_args": {
            "num_classes": 2, "ignore_index": -1, "model_args": {
                "backbone": "prithvi:prithvi_eo_v2_tiny_tl", "backbone_kwargs": BACKBONE,
                "backbone_weights": str(pretrained_run["ckpt"]),
                "necks": SEGMENTATION_NECKS, "decoder": "geofm:fcn"}}},
        "data": {"class_path": "GeoTiffSegmentationDataModule", "init_args": data},
    }
    path = tmp_path / "finetune.yaml"
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    assert main(["fit", "-c", str(path), "--trainer.fast_dev_run", "1"]) == 0


def test_predict_returns_the_reconstruction_and_mask(pretrained_run) -> None:
    from geofm_core.inference.checkpoint import load_task

    task = load_task(str(pretrained_run["ckpt"]))
    assert isinstance(task, ReconstructionTask)
    image = torch.randn(2, 6, 64, 64)
    out = task.eval().predict_step({"image": image, "filename": ["a", "b"]}, 0)
    assert out["prediction"].shape == image.shape
    assert out["mask"].shape == (2, 64, 64)
    assert out["mask"].mean(dim=(1, 2)).tolist() == [0.75, 0.75]  # 12 of 16 patches hidden
    series = torch.randn(1, 6, 2, 32, 32)
    assert task.predict_step({"image": series}, 0)["prediction"].shape == (1, 12, 32, 32)


def test_geofm_predict_writes_the_reconstruction(pretrained_run) -> None:
    import rasterio

    root = pretrained_run["root"]
    assert main(["predict", "-c", str(root / "pretrain.yaml"), "--ckpt_path",
                 str(pretrained_run["ckpt"]), "--data.init_args.predict_data_root",
                 str(DATA)]) == 0
    written = next((root / "run").rglob("Spain_7370579_S2Hand_pred.tif"))
    with rasterio.open(written) as out, rasterio.open(DATA / "Spain_7370579_S2Hand.tif") as src:
        assert (out.count, out.height, out.width) == (6, src.height, src.width)
        assert out.crs == src.crs and out.transform == src.transform
        assert math.isfinite(float(out.read(1, window=((0, 16), (0, 16))).mean()))


EXAMPLES = Path(__file__).resolve().parents[3] / "examples" / "pretraining"
TINY_300 = {"embed_dim": 32, "depth": 4, "num_heads": 2, "pretrained": False}


def test_the_documented_configs_run(tmp_path) -> None:
    """docs/pretraining.md's two configs, with a tiny backbone, two steps and the real chip."""
    if not (DATA / "Spain_7370579_S2Hand.tif").exists():
        pytest.skip(f"real test rasters not found at {DATA}")
    chips = tmp_path / "chips"
    chips.mkdir()
    for copy in ("a", "b"):
        for kind in ("S2Hand", "LabelHand"):
            (chips / f"{copy}_{kind}.tif").symlink_to(DATA / f"Spain_7370579_{kind}.tif")
    fast = {"max_epochs": 1, "max_steps": 2, "precision": "32", "accelerator": "cpu",
            "devices": 1, "logger": False, "enable_progress_bar": False,
            "default_root_dir": str(tmp_path / "run")}
    crops = {"train_augmentations": [{"random_crop": 64}],
             "val_augmentations": [{"center_crop": 64}], "num_workers": 0, "batch_size": 2}
    pretrain = yaml.safe_load((EXAMPLES / "pretrain.yaml").read_text())
    pretrain["trainer"] |= fast
    ckpt_dir = tmp_path / "mae" / "checkpoints"
    pretrain["trainer"]["callbacks"][0]["init_args"]["dirpath"] = str(ckpt_dir)
    args = pretrain["model"]["init_args"]["model_args"]
    args["backbone_kwargs"] |= TINY_300
    args["decoder_kwargs"] = {"decoder_embed_dim": 16, "decoder_depth": 1}
    pretrain["data"]["init_args"] |= {"train_data_root": str(chips),
                                      "val_data_root": str(chips)} | crops
    (tmp_path / "pretrain.yaml").write_text(yaml.safe_dump(pretrain))
    assert main(["fit", "-c", str(tmp_path / "pretrain.yaml")]) == 0
    assert (ckpt_dir / "last.ckpt").is_file()

    finetune = yaml.safe_load((EXAMPLES / "finetune.yaml").read_text())
    finetune["trainer"] |= fast
    args = finetune["model"]["init_args"]["model_args"]
    assert args["backbone_weights"] == "runs/mae/checkpoints/last.ckpt"
    args["backbone_weights"] = str(ckpt_dir / "last.ckpt")
    args["backbone_kwargs"] |= {k: v for k, v in TINY_300.items() if k != "pretrained"}
    args["backbone_kwargs"]["out_indices"] = [0, 1, 2, 3]
    args["decoder_kwargs"] = {"channels": 8}
    data = finetune["data"]["init_args"]
    del data["train_split"], data["val_split"]
    data |= {"train_data_root": str(chips), "val_data_root": str(chips)} | crops
    (tmp_path / "finetune.yaml").write_text(yaml.safe_dump(finetune))
    assert main(["fit", "-c", str(tmp_path / "finetune.yaml")]) == 0


def test_pretraining_on_a_whole_scene_without_labels(tmp_path) -> None:
    """GeoTiffSceneDataModule(task="image") samples chips of a scene; no label raster."""
    if not (DATA / "Spain_7370579_S2Hand.tif").exists():
        pytest.skip(f"real test rasters not found at {DATA}")
    from lightning.pytorch import Trainer

    from geofm_core.data import GeoTiffSceneDataModule

    scene = str(DATA / "Spain_7370579_S2Hand.tif")
    data = GeoTiffSceneDataModule(
        train_data_root=scene, val_data_root=scene, task="image",
        dataset_bands=list(SENTINEL2_L1C_BANDS), output_bands=HLS, means=[1500.0] * 6,
        stds=[1000.0] * 6, patch_size=64, train_length=4, stride=256, batch_size=2, seed=0)
    torch.manual_seed(0)
    task = ReconstructionTask(model_args=MODEL_ARGS, lr=1e-3)
    before = task.model.encoder.patch_embed.proj.weight.detach().clone()
    trainer = Trainer(accelerator="cpu", max_steps=2, logger=False, enable_checkpointing=False,
                      enable_progress_bar=False, enable_model_summary=False,
                      num_sanity_val_steps=0, limit_val_batches=1)
    trainer.fit(task, datamodule=data)
    assert math.isfinite(float(trainer.callback_metrics["val/loss"]))
    assert not torch.equal(before, task.model.encoder.patch_embed.proj.weight)
    with pytest.raises(ConfigurationError, match="task 'image' reads no labels"):
        GeoTiffSceneDataModule(train_data_root=scene, train_label_data_root=scene,
                               task="image")
