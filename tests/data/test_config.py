"""The data modules are configured from YAML the way LightningCLI does it (jsonargparse),
and their augmentations run inside a real Lightning Trainer."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from jsonargparse import ArgumentParser
from lightning.pytorch import LightningDataModule, LightningModule, Trainer

from geofm_core.cli import main

from .conftest import write_tif


def parse_data(yaml_text: str) -> LightningDataModule:
    parser = ArgumentParser()
    parser.add_subclass_arguments(LightningDataModule, "data")
    config = parser.parse_string(yaml_text)
    return parser.instantiate(config).data


def test_segmentation_from_yaml(seg_folder):
    root, _ = seg_folder
    dm = parse_data(f"""
data:
  class_path: geofm_core.data.GeoTiffSegmentationDataModule
  init_args:
    train_data_root: {root}
    img_pattern: "*_img.tif"
    label_pattern: "*_lab.tif"
    dataset_bands: [BLUE, GREEN, RED, NIR_NARROW]
    output_bands: [RED, "0-1", [3, 3]]
    num_classes: 3
    class_names: [a, b, c]
    ignore_index: -1
    no_data_replace: 0
    means: [1, 2, 3, 4]
    stds: [1, 1, 1, 1]
    batch_size: 4
    train_augmentations: [hflip, {{vflip: 0.3}}, rot90, {{random_crop: [8, 12]}}]
""")
    dm.setup("fit")
    batch = next(iter(dm.train_dataloader()))
    assert batch["image"].shape == (4, 4, 16, 16)
    assert dm.class_names == ["a", "b", "c"] and dm.rgb_indices == [0, 2, 1]


@pytest.mark.parametrize("kind", ["Regression", "Classification", "MultiLabel"])
def test_other_datamodules_from_yaml(tmp_path, kind):
    for i in range(4):
        write_tif(tmp_path / "d" / f"x{i}_img.tif", np.full((2, 8, 8), i, np.int16))
        write_tif(tmp_path / "d" / f"x{i}_lab.tif", np.full((8, 8), i / 2, np.float32))
    (tmp_path / "labels.csv").write_text(
        "file,labels\n" + "".join(f"x{i}_img.tif,{i % 2}\n" for i in range(4)))
    extra = {
        "Regression": 'label_pattern: "*_lab.tif"',
        "Classification": f"train_label_data_root: {tmp_path / 'labels.csv'}\n    num_classes: 2",
        "MultiLabel": f"train_label_data_root: {tmp_path / 'labels.csv'}\n    num_classes: 2",
    }[kind]
    dm = parse_data(f"""
data:
  class_path: geofm_core.data.GeoTiff{kind}DataModule
  init_args:
    train_data_root: {tmp_path / 'd'}
    img_pattern: "*_img.tif"
    batch_size: 4
    {extra}
""")
    dm.setup("fit")
    batch = next(iter(dm.train_dataloader()))
    assert batch["image"].shape == (4, 2, 8, 8)
    if kind == "Regression":
        assert batch["mask"].dtype == torch.float32
        assert torch.equal(batch["mask"][:, 0, 0], batch["image"][:, 0, 0, 0] / 2)
    elif kind == "Classification":
        assert torch.equal(batch["label"], batch["image"][:, 0, 0, 0].long() % 2)
    else:
        assert batch["label"].shape == (4, 2)


class Probe(LightningModule):
    """A 1x1 convolution that records the batches Lightning hands it."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = torch.nn.Conv2d(2, 3, 1)
        self.shapes: dict[str, list[tuple[int, ...]]] = {"train": [], "val": []}

    def _step(self, batch, stage):
        self.shapes[stage].append(tuple(batch["image"].shape))
        assert torch.equal(batch["mask"] >= 0, batch["image"][:, 0] != 0)  # still aligned
        logits = self.conv(batch["image"])
        return torch.nn.functional.cross_entropy(logits, batch["mask"], ignore_index=-1)

    def training_step(self, batch, batch_idx):
        return self._step(batch, "train")

    def validation_step(self, batch, batch_idx):
        self._step(batch, "val")

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=0.01)


def test_augmentations_run_in_trainer(seg_folder, tmp_path):
    from geofm_core.data.datamodules import GeoTiffSegmentationDataModule

    root, _ = seg_folder
    (tmp_path / "val.txt").write_text("tile01\ntile02\n")
    dm = GeoTiffSegmentationDataModule(
        train_data_root=str(root), img_pattern="*_img.tif", label_pattern="*_lab.tif",
        val_split=str(tmp_path / "val.txt"), num_classes=3, ignore_index=-1, batch_size=4,
        output_bands=[0, 1], no_data_replace=0.0,
        train_augmentations=["hflip", "rot90", {"random_crop": 8}],
        val_augmentations=[{"center_crop": 12}],
    )
    model = Probe()
    trainer = Trainer(max_epochs=1, accelerator="cpu", logger=False, enable_checkpointing=False,
                      enable_progress_bar=False, enable_model_summary=False,
                      default_root_dir=tmp_path)
    trainer.fit(model, dm)
    assert model.shapes["train"] == [(4, 2, 8, 8)] * 2
    assert set(model.shapes["val"]) == {(2, 2, 12, 12)}


def test_stats_of_scene_datamodule(tmp_path, capsys):
    rng = np.random.default_rng(5)
    img = rng.integers(1, 500, size=(3, 40, 50)).astype(np.uint16)
    img[:, :5] = 0
    write_tif(tmp_path / "s" / "scene.tif", img, nodata=0)
    write_tif(tmp_path / "l" / "label.tif", (img[0] % 2).astype(np.uint8))
    config = {"data": {"class_path": "geofm_core.data.GeoTiffSceneDataModule", "init_args": {
        "train_data_root": str(tmp_path / "s"), "train_label_data_root": str(tmp_path / "l"),
        "output_bands": [2, 0], "num_classes": 2, "constant_scale": 2.0}}}
    (tmp_path / "c.yaml").write_text(json.dumps(config))
    assert main(["stats", "-c", str(tmp_path / "c.yaml"), "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    valid = img[[2, 0]] != 0
    values = img[[2, 0]].astype(np.float64) * 2
    np.testing.assert_allclose(result["means"], [values[b][valid[b]].mean() for b in (0, 1)],
                               rtol=1e-5)
    np.testing.assert_allclose(result["stds"], [values[b][valid[b]].std() for b in (0, 1)],
                               rtol=1e-5)
    labels = img[0] % 2
    assert result["class_counts"] == {"0": int((labels == 0).sum()), "1": int(labels.sum())}
