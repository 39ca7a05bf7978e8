"""EmbeddingTask and Embedder on the real Sen1Floods11 chip: pooled vectors and patch maps."""

from __future__ import annotations

import pytest
import torch
from rasterio.windows import Window

from geofm_core.errors import ConfigurationError, GeofmError
from geofm_core.tasks import EmbeddingTask

from .conftest import PRITHVI_KWARGS, prithvi_task, read_hls


@pytest.fixture(scope="module")
def chip_batch(s2_chip):
    """Two 64 x 96 windows of the chip's HLS bands (non-square on purpose)."""
    return torch.stack([read_hls(s2_chip, Window(0, 0, 96, 64)),
                        read_hls(s2_chip, Window(200, 300, 96, 64))])


def test_vit_pooled_vectors_are_the_backbones_tokens_pooled(prithvi, chip_batch) -> None:
    task = prithvi_task()
    with torch.no_grad():
        tokens = task.model.backbone(chip_batch)[-1]  # (B, 1 + 4*6, 32)
        out = task.predict_step({"image": chip_batch, "filename": ["a", "b"]}, 0)
        cls = prithvi_task(pooling="cls").embed(chip_batch)[0]
        most = prithvi_task(pooling="max").embed(chip_batch)[0]
        dense = prithvi_task(dense=True).predict_step({"image": chip_batch}, 0)["dense"]
    assert tokens.shape == (2, 1 + 4 * 6, 32)
    assert out["embedding"].shape == (2, 32) and task.embedding_dim == 32
    assert torch.allclose(out["embedding"], tokens[:, 1:].mean(1), atol=1e-6)
    assert torch.allclose(cls, tokens[:, 0])
    assert torch.allclose(most, tokens[:, 1:].amax(1))
    # Patch (r, c) of the map is token 1 + r * 6 + c: the grid keeps the image's layout.
    assert dense.shape == (2, 32, 4, 6) and out["patch"] == 16
    assert torch.allclose(dense[:, :, 2, 5], tokens[:, 1 + 2 * 6 + 5])
    assert "dense" not in out and out["filename"] == ["a", "b"]
    # Two different places of the chip embed differently.
    assert not torch.allclose(out["embedding"][0], out["embedding"][1])


def test_cnn_layers_and_sizes_that_are_not_multiples(s2_chip) -> None:
    torch.manual_seed(0)
    image = torch.stack([read_hls(s2_chip, Window(0, 0, 90, 60))])
    task = EmbeddingTask(backbone="timm:test_resnet", backbone_kwargs={"in_chans": 6},
                         layer=1).eval()
    with torch.no_grad():
        pooled, dense = task.embed(image)
        padded = torch.nn.functional.pad(image, (0, 6, 0, 4))  # to the multiple of 32
        level = task.model.backbone(padded)[1]
    stride = task.model.backbone.reductions[1]
    assert task.model.patch == stride
    rows, cols = -(-60 // stride), -(-90 // stride)
    assert dense.shape == (1, task.model.backbone.out_channels[1], rows, cols)
    assert torch.allclose(dense, level[..., :rows, :cols])
    assert torch.allclose(pooled, level[..., :rows, :cols].mean((2, 3)))


def test_fit_is_refused_with_a_real_trainer(prithvi, chip_batch, tmp_path) -> None:
    from lightning.pytorch import Trainer

    loader = torch.utils.data.DataLoader([{"image": chip_batch[:1]}], batch_size=None)
    trainer = Trainer(accelerator="cpu", max_epochs=1, logger=False, enable_progress_bar=False,
                      enable_checkpointing=False, default_root_dir=tmp_path)
    with pytest.raises(ConfigurationError, match=r"trains nothing.*geofm predict"):
        trainer.fit(prithvi_task(), train_dataloaders=loader)
    predictions = trainer.predict(prithvi_task(), dataloaders=loader)
    assert predictions[0]["embedding"].shape == (1, 32)


def test_clear_errors() -> None:
    with pytest.raises(GeofmError, match="unknown backbone 'timm:no_such_net'"):
        EmbeddingTask(backbone="timm:no_such_net")
    with pytest.raises(ConfigurationError, match="needs a backbone"):
        EmbeddingTask()
    with pytest.raises(ConfigurationError, match="pooling must be one of mean, max, cls"):
        EmbeddingTask(backbone="timm:test_resnet", pooling="avg")
    task = EmbeddingTask(backbone="timm:test_resnet", layer=7)
    with pytest.raises(ConfigurationError, match="layer 7 is out of range"):
        task.embed(torch.zeros(1, 3, 32, 32))
    with pytest.raises(ConfigurationError, match="pooling 'cls' needs a CLS token"):
        EmbeddingTask(backbone="timm:test_resnet", pooling="cls").embed(torch.zeros(1, 3, 32, 32))


def test_hyper_parameters_rebuild_the_task(prithvi) -> None:
    task = prithvi_task(pooling="max", layer=-1)
    assert set(task.hparams) == {"backbone", "backbone_kwargs", "layer", "pooling", "dense",
                                 "weights_path"}
    again = EmbeddingTask(**task.hparams)
    assert again.hparams["backbone_kwargs"] == PRITHVI_KWARGS
    again.load_state_dict(task.state_dict())
    image = torch.randn(1, 6, 32, 32)
    with torch.no_grad():
        assert torch.equal(again.eval().embed(image)[0], task.embed(image)[0])
