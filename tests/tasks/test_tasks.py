"""The tasks in process: model building, aux losses, freezing, optimizers, steps, tiling."""

from __future__ import annotations

from typing import Any

import pytest
import torch
from lightning.pytorch import Trainer
from lightning.pytorch.loggers import Logger
from torch import nn
from torch.utils.data import DataLoader, Dataset

from geofm_core.errors import ComponentArgumentError, ConfigurationError, UnknownComponentError
from geofm_core.models.contracts import ModelOutput
from geofm_core.tasks import (
    ClassificationTask,
    MultiLabelClassificationTask,
    PixelwiseRegressionTask,
    SemanticSegmentationTask,
)

BANDS = 6


def seg_args(**extra: Any) -> dict[str, Any]:
    return {
        "backbone": "timm:test_resnet", "backbone_kwargs": {"in_chans": BANDS},
        "decoder": "geofm:fcn", "decoder_kwargs": {"channels": 8, "num_convs": 1},
    } | extra


def aux(name: str) -> dict[str, Any]:
    return {"name": name, "decoder": "geofm:fcn",
            "decoder_kwargs": {"channels": 8, "num_convs": 1, "in_index": -2}}


class Batches(Dataset[dict[str, Any]]):
    def __init__(self, task: str, n: int = 4, size: int = 32) -> None:
        g = torch.Generator().manual_seed(0)
        self.items = []
        for i in range(n):
            item: dict[str, Any] = {"image": torch.randn(BANDS, size, size, generator=g),
                                    "filename": f"chip{i}.tif"}
            if task == "segmentation":
                item["mask"] = torch.randint(0, 3, (size, size), generator=g)
            elif task == "regression":
                item["mask"] = torch.randn(size, size, generator=g)
            elif task == "classification":
                item["label"] = torch.tensor(i % 3)
            else:
                item["label"] = torch.tensor([1.0, 0.0, float(i % 2)])
            self.items.append(item)

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, i: int) -> dict[str, Any]:
        return self.items[i]


def loader(task: str) -> DataLoader[dict[str, Any]]:
    return DataLoader(Batches(task), batch_size=2)


def trainer(tmp_path: Any, **kwargs: Any) -> Trainer:
    return Trainer(accelerator="cpu", max_epochs=1, logger=False, enable_checkpointing=False,
                   enable_progress_bar=False, enable_model_summary=False,
                   default_root_dir=tmp_path, num_sanity_val_steps=0, **kwargs)


# -- model building ----------------------------------------------------------------


def test_segmentation_task_builds_from_registry_names() -> None:
    task = SemanticSegmentationTask(model_args=seg_args(), num_classes=3)
    out = task(torch.randn(2, BANDS, 32, 32))
    assert isinstance(out, ModelOutput) and out.output.shape == (2, 3, 32, 32)
    assert task.hparams["model_factory"] == "geofm:encoder_decoder"
    assert task.hparams["ignore_index"] is None
    assert task.monitor == "val/mIoU" and task.mode == "max"  # the best checkpoint by mIoU


def test_number_of_classes_is_required_and_consistent() -> None:
    with pytest.raises(ConfigurationError, match="needs the number of classes"):
        SemanticSegmentationTask(model_args=seg_args())
    with pytest.raises(ConfigurationError, match="class_names has 2 names"):
        SemanticSegmentationTask(model_args=seg_args(), num_classes=3, class_names=["a", "b"])
    with pytest.raises(ConfigurationError, match="give it once"):
        SemanticSegmentationTask(model_args=seg_args(num_classes=4), num_classes=3)
    task = SemanticSegmentationTask(model_args=seg_args(), class_names=["a", "b"])
    assert task.num_classes == 2


def test_unknown_factory_and_component_raise_registry_errors() -> None:
    with pytest.raises(UnknownComponentError, match="acme"):
        SemanticSegmentationTask(model_factory="acme:factory", num_classes=2)
    with pytest.raises(UnknownComponentError, match="timm:test_resnet"):
        SemanticSegmentationTask(model_args=seg_args(backbone="timm:test_resnt"), num_classes=2)


def test_example_plugin_factory_works_for_regression() -> None:
    task = PixelwiseRegressionTask(model_factory="example:tiny_segmenter",
                                   model_args={"in_chans": BANDS, "widths": [4, 8, 8, 8]})
    task.eval()
    batch = Batches("regression")[0]
    out = task.predict_step({"image": batch["image"][None], "filename": ["a"]}, 0)
    assert out["prediction"].shape == (1, 32, 32) and out["filename"] == ["a"]


def test_factory_value_errors_become_configuration_errors() -> None:
    with pytest.raises(ConfigurationError, match=r"example:tiny_segmenter.*classification"):
        ClassificationTask(model_factory="example:tiny_segmenter", num_classes=3)


# -- losses and aux heads -----------------------------------------------------------


def test_aux_heads_and_aux_loss_are_combined_and_logged() -> None:
    task = SemanticSegmentationTask(
        model_args=seg_args(aux_decoders=[aux("deep")]), num_classes=3,
        loss={"ce": 1.0, "dice": 0.5}, aux_loss={"deep": 0.4},
    )
    logged: dict[str, torch.Tensor] = {}
    task.log = lambda name, value, **kw: logged.__setitem__(name, value)  # type: ignore[method-assign]
    batch = next(iter(loader("segmentation")))
    loss = task.training_step(batch, 0)
    expected = logged["train/loss_main"] + 0.4 * logged["train/aux_deep_loss"]
    assert torch.allclose(loss, expected)
    assert torch.allclose(logged["train/loss_main"],
                          logged["train/loss_ce"] + 0.5 * logged["train/loss_dice"])
    assert set(logged) == {"train/loss", "train/loss_main", "train/loss_ce", "train/loss_dice",
                           "train/aux_deep_loss"}


def test_aux_loss_without_head_is_an_error_naming_both_sides() -> None:
    with pytest.raises(ConfigurationError) as info:
        SemanticSegmentationTask(model_args=seg_args(aux_decoders=[aux("deep")]),
                                 num_classes=3, aux_loss={"deeep": 0.4})
    message = str(info.value)
    assert "'deeep'" in message and "'deep'" in message
    assert "match no auxiliary head" in message and "have no weight" in message


def test_aux_head_without_weight_is_an_error() -> None:
    with pytest.raises(ConfigurationError, match=r"auxiliary heads \['deep'\] have no weight"):
        SemanticSegmentationTask(model_args=seg_args(aux_decoders=[aux("deep")]), num_classes=3)


class AuxModule(nn.Module):
    """A ready model that does not declare its auxiliary heads."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(BANDS, 3, 1)

    def forward(self, x: torch.Tensor, **metadata: Any) -> ModelOutput:
        y = self.conv(x)
        return ModelOutput(y, {"side": y * 0.5})


def test_undeclared_aux_heads_are_checked_at_the_first_step() -> None:
    task = SemanticSegmentationTask(model=AuxModule(), num_classes=3, aux_loss={"other": 1.0})
    with pytest.raises(ConfigurationError, match=r"\['other'\].*\['side'\]"):
        task.loss_handler(task(torch.randn(1, BANDS, 8, 8)), torch.zeros(1, 8, 8).long())


def test_unknown_loss_name_is_the_registry_error() -> None:
    with pytest.raises(UnknownComponentError, match="geofm:dice"):
        SemanticSegmentationTask(model_args=seg_args(), num_classes=3, loss="dicee")


# -- optimisation -------------------------------------------------------------------


def test_lr_overrides_make_parameter_groups() -> None:
    task = SemanticSegmentationTask(model_args=seg_args(), num_classes=3,
                                    lr_overrides={"backbone": 1e-5, "head": 1e-2})
    config = task.configure_optimizers()
    optimizer = config["optimizer"]  # type: ignore[index]
    groups = {g["name"]: g for g in optimizer.param_groups}
    assert set(groups) == {"backbone", "head", "default"}
    assert groups["backbone"]["lr"] == 1e-5 and groups["head"]["lr"] == 1e-2
    assert groups["default"]["lr"] == 1e-3
    names = {id(p): n for n, p in task.named_parameters()}
    assert all("backbone" in names[id(p)] for p in groups["backbone"]["params"])
    assert all("backbone" not in names[id(p)] and "head" not in names[id(p)]
               for p in groups["default"]["params"])
    assert isinstance(optimizer, torch.optim.AdamW)
    assert isinstance(config["lr_scheduler"]["scheduler"],  # type: ignore[index]
                      torch.optim.lr_scheduler.ReduceLROnPlateau)


def test_lr_override_matching_nothing_is_an_error() -> None:
    task = SemanticSegmentationTask(model_args=seg_args(), num_classes=3,
                                    lr_overrides={"encoderr": 1e-5})
    with pytest.raises(ConfigurationError, match="encoderr"):
        task.configure_optimizers()


def test_optimizer_and_scheduler_by_name() -> None:
    task = SemanticSegmentationTask(
        model_args=seg_args(), num_classes=3, optimizer="SGD",
        optimizer_hparams={"momentum": 0.9}, scheduler="StepLR",
        scheduler_hparams={"step_size": 2},
    )
    config = task.configure_optimizers()
    assert isinstance(config["optimizer"], torch.optim.SGD)  # type: ignore[index]
    task = SemanticSegmentationTask(model_args=seg_args(), num_classes=3, scheduler=None)
    assert isinstance(task.configure_optimizers(), torch.optim.AdamW)
    task = SemanticSegmentationTask(model_args=seg_args(), num_classes=3, optimizer="Adamw")
    with pytest.raises(ComponentArgumentError, match="'AdamW'"):
        task.configure_optimizers()
    task = SemanticSegmentationTask(model_args=seg_args(), num_classes=3,
                                    optimizer_hparams={"momentun": 0.9}, optimizer="SGD")
    with pytest.raises(ComponentArgumentError, match="momentum"):
        task.configure_optimizers()


# -- training with a real Trainer ------------------------------------------------------


def test_frozen_backbone_stays_unchanged_after_training(tmp_path: Any) -> None:
    task = SemanticSegmentationTask(model_args=seg_args(), num_classes=3,
                                    freeze_backbone=True, lr=0.1)
    backbone = {k: v.clone() for k, v in task.model.backbone.state_dict().items()}
    decoder = {k: v.clone() for k, v in task.model.decoder.state_dict().items()}
    trainer(tmp_path, max_steps=2).fit(task, loader("segmentation"))
    after = task.model.backbone.state_dict()
    assert all(torch.equal(backbone[k], after[k]) for k in backbone)  # BN statistics included
    assert any(not torch.equal(decoder[k], v) for k, v in task.model.decoder.state_dict().items())
    assert all(not p.requires_grad for p in task.model.backbone.parameters())


def test_freeze_flags_without_support_are_errors() -> None:
    with pytest.raises(ConfigurationError, match="freeze_decoder"):
        SemanticSegmentationTask(model=nn.Conv2d(BANDS, 3, 1), num_classes=3,
                                 freeze_decoder=True)


@pytest.mark.parametrize("task_cls,kind,args", [
    (SemanticSegmentationTask, "segmentation", {"num_classes": 3, "class_names": ["a", "b", "c"]}),
    (PixelwiseRegressionTask, "regression", {}),
    (ClassificationTask, "classification", {"num_classes": 3, "class_names": ["a", "b", "c"]}),
    (MultiLabelClassificationTask, "multilabel", {"num_classes": 3,
                                                  "class_names": ["a", "b", "c"]}),
])
def test_each_task_fits_tests_and_predicts(tmp_path: Any, task_cls: Any, kind: str,
                                           args: dict[str, Any]) -> None:
    model_args = seg_args() if kind in ("segmentation", "regression") else {
        "backbone": "timm:test_resnet", "backbone_kwargs": {"in_chans": BANDS}}
    task = task_cls(model_args=model_args, **args)
    run = trainer(tmp_path, limit_train_batches=1)
    run.fit(task, loader(kind), loader(kind))
    assert {"train/loss_epoch", "val/loss"} <= set(run.callback_metrics)
    metrics = run.test(task, loader(kind), verbose=False)[0]
    expected = {
        "segmentation": {"test/loss", "test/mIoU", "test/mIoU_micro", "test/IoU_a",
                         "test/IoU_c", "test/accuracy", "test/F1"},
        "regression": {"test/loss", "test/RMSE", "test/MAE", "test/R2"},
        "classification": {"test/loss", "test/accuracy", "test/accuracy_macro", "test/F1",
                           "test/accuracy_b"},
        "multilabel": {"test/loss", "test/mAP", "test/F1", "test/accuracy", "test/AP_c"},
    }[kind]
    assert expected <= set(metrics), sorted(metrics)
    out = run.predict(task, loader(kind))[0]
    assert out["filename"] == ["chip0.tif", "chip1.tif"]
    shape = {"segmentation": (2, 32, 32), "regression": (2, 32, 32),
             "classification": (2,), "multilabel": (2, 3)}[kind]
    assert out["prediction"].shape == shape
    if kind != "regression":
        assert out["probabilities"].shape[:2] == (2, 3)


# -- metadata, tiling, plots ---------------------------------------------------------


class Pointwise(nn.Module):
    """A 1x1 model that records the metadata it is given."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(BANDS, 3, 1)
        self.seen: list[dict[str, Any]] = []

    def forward(self, x: torch.Tensor, **metadata: Any) -> torch.Tensor:
        self.seen.append({k: v.shape for k, v in metadata.items()})
        return self.conv(x)


def test_metadata_reaches_the_model_and_tiling_matches_whole_image() -> None:
    model = Pointwise()
    task = SemanticSegmentationTask(model=model, num_classes=3, tiled_inference={
        "crop": 16, "stride": 8, "batch_size": 4, "blend": "ramp"})
    image = torch.randn(2, BANDS, 40, 24)
    batch = {"image": image, "temporal_coords": torch.zeros(2, 1, 2),
             "location_coords": torch.zeros(2, 2), "filename": ["a", "b"]}
    tiled = task.predict_step(batch, 0)
    assert model.seen and all(set(s) == {"temporal_coords", "location_coords"}
                              for s in model.seen)
    assert all(s["location_coords"][0] == s["temporal_coords"][0] for s in model.seen)
    whole = model.conv(image).softmax(1)
    assert torch.allclose(tiled["probabilities"], whole, atol=1e-5)
    assert torch.equal(tiled["prediction"], whole.argmax(1))
    plain = task.predict_step({"image": image, "filename": ["a", "b"]}, 0)  # no metadata
    assert torch.allclose(plain["probabilities"], whole, atol=1e-5)


def test_tiled_test_step_logs_metrics() -> None:
    task = SemanticSegmentationTask(model=Pointwise(), num_classes=3, tiled_inference={
        "crop": 16, "stride": 16})
    logged: dict[str, Any] = {}
    task.log = lambda name, value, **kw: logged.__setitem__(name, value)  # type: ignore[method-assign]
    task.test_step({"image": torch.randn(1, BANDS, 20, 20),
                    "mask": torch.randint(0, 3, (1, 20, 20))}, 0)
    assert "test/loss" in logged and task._updated["test"]


def test_tiling_settings_are_checked() -> None:
    with pytest.raises(ConfigurationError, match="unknown keys"):
        SemanticSegmentationTask(model=Pointwise(), num_classes=3,
                                 tiled_inference={"crop": 16, "overlap": 8})
    with pytest.raises(ConfigurationError, match="pixel-wise"):
        ClassificationTask(model=nn.Linear(2, 3), num_classes=3,
                           tiled_inference={"crop": 16})


class FigureLogger(Logger):
    """A logger that takes figures, like TensorBoard's."""

    def __init__(self) -> None:
        super().__init__()
        self.figures: list[str] = []
        outer = self

        class Experiment:
            def add_figure(self, tag: str, figure: Any, step: int) -> None:
                outer.figures.append(tag)

        self._experiment = Experiment()

    @property
    def experiment(self) -> Any:
        return self._experiment

    @property
    def name(self) -> str:
        return "figures"

    @property
    def version(self) -> int:
        return 0

    def log_metrics(self, metrics: dict[str, float], step: int | None = None) -> None:
        pass

    def log_hyperparams(self, params: Any, *args: Any, **kwargs: Any) -> None:
        pass


class PlotData:
    """A datamodule-like object with a plot() (the real datamodules are tested in tests/cli)."""

    def __init__(self) -> None:
        self.plotted: list[set[str]] = []

    def plot(self, sample: dict[str, Any]) -> Any:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        self.plotted.append(set(sample))
        figure, axis = plt.subplots()
        axis.imshow(sample["prediction"].numpy())
        return figure


def test_plot_on_val_logs_figures_and_is_skipped_without_support(tmp_path: Any) -> None:
    from lightning.pytorch import LightningDataModule

    class DM(LightningDataModule):
        def __init__(self) -> None:
            super().__init__()
            self.helper = PlotData()

        def train_dataloader(self) -> Any:
            return loader("segmentation")

        def val_dataloader(self) -> Any:
            return loader("segmentation")

        def plot(self, sample: dict[str, Any]) -> Any:
            return self.helper.plot(sample)

    task = SemanticSegmentationTask(model=Pointwise(), num_classes=3, plot_on_val=1)
    logger = FigureLogger()
    dm = DM()
    Trainer(accelerator="cpu", max_epochs=1, logger=logger, enable_checkpointing=False,
            enable_progress_bar=False, enable_model_summary=False, default_root_dir=tmp_path,
            num_sanity_val_steps=0, limit_train_batches=1).fit(task, datamodule=dm)
    assert logger.figures == ["val/prediction_chip0", "val/confusion_matrix"]
    assert {"image", "mask", "prediction"} <= dm.helper.plotted[0]
    # Without a logger that takes figures nothing is plotted, and nothing fails.
    dm2 = DM()
    trainer(tmp_path, limit_train_batches=1).fit(
        SemanticSegmentationTask(model=Pointwise(), num_classes=3, plot_on_val=2),
        datamodule=dm2)
    assert dm2.helper.plotted == []


def test_multitemporal_prithvi_with_metadata_trains_and_predicts_tiled() -> None:
    from geofm_core.errors import GeofmError
    from geofm_core.registry import get_registry

    try:
        get_registry().get("backbone", "prithvi:prithvi_eo_v2_tiny_tl")
    except GeofmError:
        pytest.skip("backbone prithvi:prithvi_eo_v2_tiny_tl is not installed")
    frames = 2
    task = SemanticSegmentationTask(
        model_args={
            "backbone": "prithvi:prithvi_eo_v2_tiny_tl",
            "backbone_kwargs": {"embed_dim": 32, "depth": 2, "num_heads": 2, "img_size": 32,
                                "num_frames": frames, "bands": [0, 1, 2, 3, 4, 5]},
            "necks": [{"name": "geofm:select_indices", "indices": [-1]},
                      {"name": "geofm:reshape_tokens_to_image", "effective_time_dim": frames}],
            "decoder": "geofm:fcn", "decoder_kwargs": {"channels": 8, "num_convs": 1},
        },
        num_classes=3, tiled_inference={"crop": 32, "stride": 16, "batch_size": 2},
    )
    batch = {
        "image": torch.randn(2, BANDS, frames, 32, 48),
        "mask": torch.randint(0, 3, (2, 32, 48)),
        "temporal_coords": torch.tensor([[[2021.0, 100.0], [2021.0, 160.0]]]).expand(2, -1, -1),
        "location_coords": torch.tensor([[40.0, -105.0], [12.0, 77.0]]),
        "filename": ["a.tif", "b.tif"],
    }
    loss = task.training_step(batch, 0)
    loss.backward()
    assert torch.isfinite(loss)
    task.eval()
    with torch.no_grad():
        out = task.predict_step(batch, 0)
        # The location of each sample reaches its own tiles: swapping it changes the output.
        swapped = dict(batch, location_coords=batch["location_coords"].flip(0))
        other = task.predict_step(swapped, 0)
        second = task.predict_step({k: v[1:] for k, v in batch.items()}, 0)
    assert out["prediction"].shape == (2, 32, 48)
    assert out["probabilities"].shape == (2, 3, 32, 48)
    assert not torch.allclose(out["probabilities"], other["probabilities"])
    assert torch.allclose(out["probabilities"][1:], second["probabilities"], atol=1e-5)
