"""The base of geofm's tasks: TorchGeo's ``BaseTask`` contract without importing torchgeo.trainers.

``torchgeo.trainers`` imports every TorchGeo trainer and model zoo (about 7 s here), so
the contract is kept here instead: ``configure_models / configure_losses /
configure_metrics`` called from ``__init__``, saved hyper-parameters, ``monitor`` and
``mode`` for checkpointing and the plateau scheduler, AdamW + ReduceLROnPlateau.
"""

from __future__ import annotations

import difflib
import inspect
import warnings
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, ClassVar

import torch
from lightning.pytorch import LightningModule
from lightning.pytorch.utilities.types import OptimizerLRScheduler
from torch import nn

from geofm_core.errors import ComponentArgumentError, ConfigurationError, GeofmError
from geofm_core.io.checkpoints import TASK_CLASS_KEY
from geofm_core.io.weights import load_weights
from geofm_core.models.contracts import ModelOutput
from geofm_core.registry import get_registry
from geofm_core.signatures import accepted_arguments, check_arguments
from geofm_core.tasks import guards
from geofm_core.tasks.adapter_checkpoints import AdapterCheckpoints, setup_peft, slim_checkpoint
from geofm_core.tasks.loss_handler import LossHandler

__all__ = ["METADATA_KEYS", "GeofmTask"]

#: Batch keys passed to the model's forward as keyword arguments when present.
METADATA_KEYS = ("temporal_coords", "location_coords")

Stage = str


class GeofmTask(AdapterCheckpoints, LightningModule):
    """Base of geofm's tasks: builds a model by registry name, its losses, metrics and optimizer.

    Args:
        model_factory: Registry name of the model factory (kind ``model_factory``).
        model_args: Keyword arguments of the factory's ``build_model`` (``task`` is added).
        model: A ready ``nn.Module`` used instead of a factory; it is called as
            ``model(image, **metadata)`` and returns a ``ModelOutput`` or a tensor.
        loss: Registry name of the loss, or a mapping of loss names to weights. None: the
            task's default.
        loss_args: Loss name -> extra keyword arguments of that loss.
        aux_loss: Auxiliary head name -> weight of that head's loss (the main criterion
            applied to the head's output). Must name every auxiliary head of the model.
        class_weights: One weight per class, passed to the losses that take them.
        ignore_index: Target value left out of losses and metrics. None: nothing ignored.
        num_classes: Number of classes; taken from ``model_args`` or ``class_names`` if
            not given, and passed to the factory when ``model_args`` lacks it.
        class_names: Names of the classes, used in per-class metric keys.
        freeze_backbone: Stop training the backbone (the model's ``freeze_encoder``).
        freeze_decoder: Stop training necks and decoder (the model's ``freeze_decoder``).
        freeze_head: Stop training the head (the model's ``freeze_head`` or ``head``).
        lr: Learning rate.
        optimizer: Name of a ``torch.optim`` optimizer class.
        optimizer_hparams: Extra keyword arguments of the optimizer.
        scheduler: Name of a ``torch.optim.lr_scheduler`` class, or None for none.
        scheduler_hparams: Extra keyword arguments of the scheduler.
        lr_overrides: Substring of a parameter name -> learning rate for the parameters
            whose names contain it (first match wins), each its own parameter group.
        plot_on_val: Samples to draw per validation epoch, one figure each (through the
            datamodule's or dataset's ``plot(sample)``): TensorBoard shows them, other
            loggers get PNG files under ``<log_dir>/figures``.
        tiled_inference: ``{crop, stride, batch_size, blend}``; when given, test and
            predict run over overlapping tiles (pixel-wise tasks only).
        weights_path: Weights loaded (strictly) into the built model: a ``.safetensors``
            file from ``geofm export safetensors`` or a state dict / checkpoint read with
            ``torch.load(weights_only=True)``. Checkpoints given with ``--ckpt_path``
            still win.
        peft_config: TerraTorch's ``{method: LORA, replace_qkv, peft_config_kwargs}``:
            LoRA adapters on the backbone, whose own weights are frozen (docs/lora.md).
    """

    #: Arguments not saved as hyper-parameters.
    ignore: ClassVar[Sequence[str]] = ("model",)
    #: Metric that checkpointing and the plateau scheduler follow.
    monitor = "val/loss"
    #: Whether ``monitor`` should be minimised or maximised.
    mode = "min"
    #: Task name passed to model factories.
    task_name: ClassVar[str] = ""
    #: Loss used when none is configured.
    default_loss: ClassVar[str] = "ce"
    #: Batch key of the target.
    target_key: ClassVar[str] = "mask"
    #: Whether the task needs ``num_classes``.
    needs_classes: ClassVar[bool] = True
    #: Whether the output is a per-pixel map (tiling applies).
    pixelwise: ClassVar[bool] = True

    model: nn.Module
    loss_handler: LossHandler
    _ready_model: nn.Module | None

    def __init__(
        self,
        model_factory: str = "geofm:encoder_decoder",
        model_args: dict[str, Any] | None = None,
        model: nn.Module | None = None,
        loss: str | dict[str, float] | None = None,
        loss_args: dict[str, dict[str, Any]] | None = None,
        aux_loss: dict[str, float] | None = None,
        class_weights: list[float] | None = None,
        ignore_index: int | None = None,
        num_classes: int | None = None,
        class_names: list[str] | None = None,
        freeze_backbone: bool = False,
        freeze_decoder: bool = False,
        freeze_head: bool = False,
        lr: float = 1e-3,
        optimizer: str = "AdamW",
        optimizer_hparams: dict[str, Any] | None = None,
        scheduler: str | None = "ReduceLROnPlateau",
        scheduler_hparams: dict[str, Any] | None = None,
        lr_overrides: dict[str, float] | None = None,
        plot_on_val: int = 0,
        tiled_inference: dict[str, Any] | None = None,
        weights_path: str | None = None,
        peft_config: dict[str, Any] | None = None,
    ) -> None:
        super().__init__()
        # Kept out of nn.Module's registry: it becomes ``self.model``, registered once.
        object.__setattr__(self, "_ready_model", model)
        self.save_hyperparameters(ignore=list(self.ignore))
        self.num_classes = self._resolve_num_classes(num_classes, model_args, class_names)
        if class_names is not None and self.num_classes is not None:
            if len(class_names) != self.num_classes:
                raise ConfigurationError(
                    f"class_names has {len(class_names)} names but num_classes is "
                    f"{self.num_classes}; give one name per class"
                )
        self.class_names = list(class_names) if class_names else (
            [str(i) for i in range(self.num_classes)] if self.num_classes else []
        )
        if tiled_inference is not None:
            self._check_tiling(tiled_inference)
        self.configure_models()
        if weights_path is not None:
            load_weights(self.model, weights_path)
        self._peft = setup_peft(self)
        self.configure_losses()
        self.configure_metrics()
        self._frozen: list[nn.Module] = []
        self._apply_freezing()
        self._plot_failed = False
        self._plotted = 0
        self._updated: dict[str, bool] = {}
        #: The last validation/test confusion matrix per stage (true classes down).
        self.confusion_matrices: dict[str, torch.Tensor] = {}
        self._guard_batch: Mapping[str, Any] | None = None  # files of the batch in training

    # -- configuration ------------------------------------------------------------

    def _resolve_num_classes(
        self, num_classes: int | None, model_args: Mapping[str, Any] | None,
        class_names: Sequence[str] | None,
    ) -> int | None:
        from_args = (model_args or {}).get("num_classes")
        if num_classes is not None and from_args is not None and num_classes != from_args:
            raise ConfigurationError(
                f"num_classes is {num_classes} but model_args.num_classes is {from_args}; "
                "give it once"
            )
        found = num_classes if num_classes is not None else from_args
        if found is None and class_names:
            found = len(class_names)
        if found is None and self.needs_classes and self._ready_model is None:
            raise ConfigurationError(
                f"{type(self).__name__} needs the number of classes: set num_classes "
                "(or model_args.num_classes, or class_names)"
            )
        return int(found) if found is not None else None

    def _check_tiling(self, tiled: Mapping[str, Any]) -> None:
        allowed = {"crop", "stride", "batch_size", "blend"}
        unknown = sorted(set(tiled) - allowed)
        if unknown:
            raise ConfigurationError(
                f"tiled_inference got unknown keys {unknown}; it takes {sorted(allowed)}"
            )
        if not self.pixelwise:
            raise ConfigurationError(
                f"tiled_inference applies to pixel-wise tasks, not {type(self).__name__}; "
                "remove it"
            )

    def configure_models(self) -> None:
        """Build the model with ``model_factory`` from ``model_args``, or take the ready one."""
        if self._ready_model is not None:
            self.model = self._ready_model
            return
        name = self.hparams["model_factory"]
        spec = get_registry().get("model_factory", name)
        factory = spec.load()()
        args = dict(self.hparams["model_args"] or {})
        if self.needs_classes and self.num_classes is not None:
            args.setdefault("num_classes", self.num_classes)
        what = f"model_factory {spec.qualified_name!r}"
        if "task" in args:
            raise ConfigurationError(
                f"model_args must not set 'task': {type(self).__name__} passes "
                f"task={self.task_name!r} itself"
            )
        check_arguments(factory.build_model, {"task": self.task_name, **args}, what)
        try:
            model = factory.build_model(task=self.task_name, **args)
        except GeofmError:
            raise
        except (TypeError, ValueError, KeyError) as exc:
            raise ConfigurationError(
                f"{what} could not build a {self.task_name} model from model_args: {exc}"
            ) from exc
        if not isinstance(model, nn.Module):
            raise ConfigurationError(f"{what} returned {type(model).__name__}, not an nn.Module")
        self.model = model

    def configure_losses(self) -> None:
        """Build the loss handler and match its auxiliary losses to the model's auxiliary heads."""
        self.loss_handler = LossHandler.from_config(
            self.hparams["loss"] if self.hparams["loss"] is not None else self.default_loss,
            aux_loss=self.hparams["aux_loss"],
            ignore_index=self.hparams["ignore_index"],
            class_weights=self.hparams["class_weights"],
            loss_args=self.hparams["loss_args"],
        )
        heads = self.aux_head_names()
        if heads is not None:
            self.loss_handler.check_heads(heads)

    def aux_head_names(self) -> list[str] | None:
        """Names of the model's auxiliary heads, or None when the model does not declare them.

        A model declares them with an ``aux_heads`` mapping (e.g. ``nn.ModuleDict``) or an
        ``aux_head_names`` sequence; otherwise they are checked at the first forward.
        """
        names = getattr(self.model, "aux_head_names", None)
        if names is not None:
            return list(names)
        heads = getattr(self.model, "aux_heads", None)
        if isinstance(heads, Mapping | nn.ModuleDict):
            return list(heads.keys())
        return None

    def configure_metrics(self) -> None:
        """Create ``train_metrics``, ``val_metrics`` and ``test_metrics`` (subclasses)."""

    def _apply_freezing(self) -> None:
        flags = [
            ("freeze_backbone", "freeze_encoder", ("backbone", "encoder")),
            ("freeze_decoder", "freeze_decoder", ("decoder",)),
            ("freeze_head", "freeze_head", ("head",)),
        ]
        for flag, method, attrs in flags:
            if not self.hparams.get(flag):  # a subclass may not offer every flag
                continue
            if callable(getattr(self.model, method, None)):
                getattr(self.model, method)()
                continue
            module = next((getattr(self.model, a) for a in attrs
                           if isinstance(getattr(self.model, a, None), nn.Module)), None)
            if module is None:
                raise ConfigurationError(
                    f"{flag}: the model ({type(self.model).__name__}) has no {method}() method "
                    f"and no {' or '.join(attrs)} submodule; remove {flag} or use a model "
                    "that provides it"
                )
            module.requires_grad_(False)
        if any(self.hparams.get(f) for f, _, _ in flags):
            self._frozen = _frozen_modules(self.model)
            for module in self._frozen:
                module.eval()

    def train(self, mode: bool = True) -> GeofmTask:
        """Set training mode, keeping frozen parts in eval mode so their norm statistics stay."""
        super().train(mode)
        if mode:
            for module in getattr(self, "_frozen", []):
                module.eval()
        return self

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        """Record the task class, so ``geofm infer`` rebuilds the task from any checkpoint.

        LightningCLI also saves ``_class_path`` in the hyper-parameters, but a task trained
        from Python (``Trainer.fit(task)``) has no CLI to do it. Weights that are NaN / inf
        are never saved (a callback may save before :meth:`optimizer_step`'s check). With
        ``peft_config`` the frozen base weights are left out when their source is known.
        """
        guards.check_finite_weights(self, self.global_step, self.current_epoch,
                                    self._guard_batch)
        checkpoint[TASK_CLASS_KEY] = f"{type(self).__module__}.{type(self).__qualname__}"
        slim_checkpoint(self, checkpoint)

    def setup(self, stage: str) -> None:
        """Check the model's input bands against the data module's, before any batch."""
        datamodule = getattr(self._trainer, "datamodule", None) if self._trainer else None
        if datamodule is not None:
            guards.check_input_bands(self.model, datamodule)

    # -- optimisation ---------------------------------------------------------------

    def parameter_groups(self) -> list[dict[str, Any]]:
        """Trainable parameters in groups: one per ``lr_overrides`` entry, then the rest."""
        overrides: dict[str, float] = dict(self.hparams["lr_overrides"] or {})
        groups: dict[str, list[nn.Parameter]] = {key: [] for key in overrides}
        rest: list[nn.Parameter] = []
        for name, param in self.named_parameters():
            if not param.requires_grad:
                continue
            key = next((k for k in overrides if k in name), None)
            (groups[key] if key is not None else rest).append(param)
        unused = [k for k, params in groups.items() if not params]
        if unused:
            raise ConfigurationError(
                f"lr_overrides {unused} match no trainable parameter name; parameter names "
                f"look like {[n for n, _ in list(self.named_parameters())[:3]]}"
            )
        out: list[dict[str, Any]] = [
            {"params": params, "lr": overrides[key], "name": key}
            for key, params in groups.items()
        ]
        if rest:
            out.append({"params": rest, "name": "default"})
        return out

    def configure_optimizers(self) -> OptimizerLRScheduler:
        """The optimizer (default AdamW) and scheduler (default ReduceLROnPlateau on monitor)."""
        hp = self.hparams
        opt_cls = _lookup_class(torch.optim, hp["optimizer"], torch.optim.Optimizer, "optimizer")
        opt_kwargs = dict(hp["optimizer_hparams"] or {})
        check_arguments(opt_cls, {"params": None, "lr": hp["lr"], **opt_kwargs},
                        f"optimizer {hp['optimizer']!r}")
        optimizer: torch.optim.Optimizer = opt_cls(
            self.parameter_groups(), lr=hp["lr"], **opt_kwargs
        )
        if hp["scheduler"] is None:
            return optimizer
        sched_cls = _lookup_class(torch.optim.lr_scheduler, hp["scheduler"],
                                  torch.optim.lr_scheduler.LRScheduler, "scheduler")
        sched_kwargs = dict(hp["scheduler_hparams"] or {})
        if sched_cls is torch.optim.lr_scheduler.ReduceLROnPlateau:
            # The plateau follows the monitored metric, which may be maximised (mIoU).
            sched_kwargs.setdefault("mode", self.mode)
        check_arguments(sched_cls, {"optimizer": optimizer, **sched_kwargs},
                        f"scheduler {hp['scheduler']!r}")
        scheduler = sched_cls(optimizer, **sched_kwargs)
        config: OptimizerLRScheduler = {
            "optimizer": optimizer,
            # Not strict: a run without validation warns instead of failing.
            "lr_scheduler": {"scheduler": scheduler, "monitor": self.monitor, "strict": False},
        }
        return config

    # -- forward and steps -------------------------------------------------------------

    def forward(self, x: torch.Tensor, **metadata: Any) -> ModelOutput:
        """Run the model on ``x`` with optional metadata; always returns a ``ModelOutput``."""
        out = self.model(x, **metadata)
        if isinstance(out, ModelOutput):
            return out
        if isinstance(out, torch.Tensor):
            return ModelOutput(out)
        raise TypeError(
            f"the model returned {type(out).__name__}; a geofm model returns a ModelOutput "
            "or a tensor"
        )

    @staticmethod
    def metadata(batch: Mapping[str, Any]) -> dict[str, Any]:
        """The batch's metadata entries passed to the model (``temporal_coords``, ...)."""
        return {k: batch[k] for k in METADATA_KEYS if batch.get(k) is not None}

    def adapt_output(self, output: torch.Tensor) -> torch.Tensor:
        """Bring the model's main output to the task's shape (subclasses)."""
        return output

    def _shared_step(
        self, batch: Mapping[str, Any], stage: Stage
    ) -> tuple[ModelOutput, torch.Tensor]:
        output = self(batch["image"], **self.metadata(batch))
        output = ModelOutput(
            self.adapt_output(output.output),
            {k: self.adapt_output(v) for k, v in output.auxiliary_heads.items()},
        )
        target = batch[self.target_key]
        loss, parts = self.loss_handler(output, target)
        size = batch["image"].shape[0]
        on_step = stage == "train"
        for key, value in parts.items():
            # sync_dist: under DDP the epoch value is the mean over all ranks (a no-op on one)
            self.log(f"{stage}/{key}", value, batch_size=size, on_step=on_step, on_epoch=True,
                     prog_bar=key == "loss", sync_dist=True)
        self._update(stage, output.output.detach(), target)
        return output, loss

    def training_step(self, batch: Any, batch_idx: int) -> torch.Tensor:
        """Compute and log the loss and update the training metrics.

        A NaN / inf loss stops the run (:class:`~geofm_core.errors.NonFiniteError`) naming
        the step and the batch's files, before it reaches the weights.
        """
        self._guard_batch = {"filename": batch.get("filename")} if isinstance(
            batch, Mapping) else None
        _, loss = self._shared_step(batch, "train")
        guards.check_finite_loss(loss, self.global_step, self.current_epoch, batch)
        return loss

    def optimizer_step(self, *args: Any, **kwargs: Any) -> None:
        """Step, then stop the run if a trainable weight became NaN / inf (naming it)."""
        super().optimizer_step(*args, **kwargs)
        guards.check_finite_weights(self, self.global_step, self.current_epoch,
                                    self._guard_batch)

    def validation_step(self, batch: Any, batch_idx: int) -> None:
        """Compute and log the loss, update the metrics and log prediction figures."""
        output, _ = self._shared_step(batch, "val")
        if self._plotted < self.hparams["plot_on_val"]:
            self._plot(batch, output.output)

    def on_validation_epoch_start(self) -> None:
        """Start counting the ``plot_on_val`` figures of this epoch."""
        self._plotted = 0

    def test_step(self, batch: Any, batch_idx: int) -> None:
        """Compute and log the loss and metrics, over tiles when ``tiled_inference`` is set."""
        if not self.hparams["tiled_inference"]:
            self._shared_step(batch, "test")
            return
        output = ModelOutput(self.adapt_output(self._tiled(batch)))
        target = batch[self.target_key]
        main = self.loss_handler.main_loss(output.output, target)["loss"]
        self.log("test/loss", main, batch_size=batch["image"].shape[0], on_epoch=True,
                 sync_dist=True)
        self._update("test", output.output, target)

    def predict_step(self, batch: Any, batch_idx: int, dataloader_idx: int = 0) -> dict[str, Any]:
        """Predictions for a batch: ``{"prediction": ..., "filename": ...}`` plus task extras."""
        if self.hparams["tiled_inference"]:
            raw = self._tiled(batch)
        else:
            raw = self(batch["image"], **self.metadata(batch)).output
        # Under bf16/fp16 autocast the model's output is half precision; what leaves the
        # task (writers, user callbacks, numpy) is fp32, as in an fp32 run.
        out = self.prediction_outputs(self.adapt_output(raw).float())
        out["filename"] = batch.get("filename")
        return out

    def prediction_outputs(self, output: torch.Tensor) -> dict[str, Any]:
        """Turn the main output into ``{"prediction": ..., ...}`` (subclasses)."""
        return {"prediction": output}

    def _tiled(self, batch: Mapping[str, Any]) -> torch.Tensor:
        if not self.pixelwise:
            raise ConfigurationError(f"tiled_inference does not apply to {type(self).__name__}")
        from geofm_core.inference.tiling import tiled_forward

        settings = dict(self.hparams["tiled_inference"])
        image = batch["image"]
        metadata = self.metadata(batch)
        if not metadata:  # tiles of all samples may share a forward call
            return tiled_forward(lambda tiles: self.adapt_output(self(tiles).output), image,
                                 **settings)
        outputs = []
        # One sample at a time: a tile batch then shares one sample's metadata.
        for i in range(image.shape[0]):
            meta_i = {k: v[i : i + 1] for k, v in metadata.items()}

            def forward(tiles: torch.Tensor, meta: dict[str, Any] = meta_i) -> torch.Tensor:
                expanded = {k: v.expand(tiles.shape[0], *v.shape[1:]) for k, v in meta.items()}
                return self.adapt_output(self(tiles, **expanded).output)

            outputs.append(tiled_forward(forward, image[i : i + 1], **settings))
        return torch.cat(outputs)

    # -- metrics ----------------------------------------------------------------

    def _update(self, stage: Stage, output: torch.Tensor, target: torch.Tensor) -> None:
        self._updated[stage] = True
        self.update_metrics(stage, output, target)

    def update_metrics(self, stage: Stage, output: torch.Tensor, target: torch.Tensor) -> None:
        """Update the stage's metrics with a batch (subclasses)."""

    def _metrics(self, stage: Stage) -> Any:
        return getattr(self, f"{stage}_metrics", None)

    def set_stage_metrics(self, metrics: Any, confusion: Any = None) -> None:
        """Use one copy of a metric collection per stage, logged as ``train/…`` etc.

        Args:
            metrics: The scalar metrics (a torchmetrics ``MetricCollection``).
            confusion: A confusion-matrix metric, kept for validation and test: its
                matrix goes to ``confusion_matrices[stage]`` and, with a logger that takes
                figures (TensorBoard), into a figure.
        """
        self.train_metrics = metrics.clone(prefix="train/")
        self.val_metrics = metrics.clone(prefix="val/")
        self.test_metrics = metrics.clone(prefix="test/")
        if confusion is not None:
            self.val_confusion = confusion.clone()
            self.test_confusion = confusion.clone()

    def update_confusion(self, stage: Stage, predicted: torch.Tensor,
                         target: torch.Tensor) -> None:
        """Add predicted and true classes to the stage's confusion matrix (val and test)."""
        metric = getattr(self, f"{stage}_confusion", None)
        if metric is not None:
            metric.update(predicted, target)

    def _log_epoch_metrics(self, stage: Stage) -> None:
        metrics = self._metrics(stage)
        if metrics is None or not self._updated.pop(stage, False):
            return
        values = metrics.compute()
        # The monitored metric (e.g. val/mIoU) is shown in the progress bar too.
        self.log_dict({k: v for k, v in values.items() if k != self.monitor})
        if self.monitor in values:
            self.log(self.monitor, values[self.monitor], prog_bar=True)
        metrics.reset()
        confusion = getattr(self, f"{stage}_confusion", None)
        if confusion is not None and confusion.update_called:
            matrix = confusion.compute()
            self.confusion_matrices[stage] = matrix.detach().cpu()
            self._log_confusion_figure(stage, confusion, matrix)
            confusion.reset()

    def _log_confusion_figure(self, stage: Stage, metric: Any, matrix: torch.Tensor) -> None:
        if self.trainer is None or self.trainer.sanity_checking:
            return
        loggers = [lg for lg in self.trainer.loggers
                   if hasattr(getattr(lg, "experiment", None), "add_figure")]
        if not loggers:  # the matrix is printed by geofm validate/test and the fit summary
            return
        figure, _ = metric.plot(matrix, labels=list(self.class_names or []) or None)
        self._log_figure(loggers, f"{stage}/confusion_matrix", figure)

    def on_train_epoch_end(self) -> None:
        """Log and reset the training metrics."""
        self._log_epoch_metrics("train")

    def on_validation_epoch_end(self) -> None:
        """Log and reset the validation metrics."""
        self._log_epoch_metrics("val")

    def on_test_epoch_end(self) -> None:
        """Log and reset the test metrics."""
        self._log_epoch_metrics("test")

    # -- figures ------------------------------------------------------------------

    def _plot(self, batch: Mapping[str, Any], output: torch.Tensor) -> None:
        """One figure per sample until ``plot_on_val`` samples are shown this epoch.

        Loggers that take figures (TensorBoard) get them; any other logger with a log
        folder (CSV) gets PNG files under ``<log_dir>/figures``.
        """
        if self._plot_failed or self.trainer is None or self.trainer.sanity_checking:
            return
        datamodule = getattr(self.trainer, "datamodule", None)
        plotter = getattr(datamodule, "plot", None)
        if plotter is None:
            plotter = getattr(getattr(datamodule, "val_dataset", None), "plot", None)
        loggers = list(self.trainer.loggers)
        if not loggers or not callable(plotter):
            self._plotted = self.hparams["plot_on_val"]
            return
        prediction = self.prediction_outputs(output.detach())["prediction"]
        # TorchGeo's plot(sample, show_titles, suptitle); a user's may take the sample only.
        accepted = accepted_arguments(plotter)
        titled = accepted is None or accepted.accepts("suptitle")
        names = batch.get("filename")
        size = batch["image"].shape[0]
        for i in range(min(size, self.hparams["plot_on_val"] - self._plotted)):
            sample = {k: v[i].cpu() if isinstance(v, torch.Tensor) else v
                      for k, v in batch.items() if k != "filename"}
            sample["prediction"] = prediction[i].cpu()
            name = Path(str(names[i])).stem if names else f"sample{self._plotted}"
            try:
                figure = plotter(sample, suptitle=name) if titled else plotter(sample)
            except Exception as exc:  # a plot is a convenience; never stop training for it
                self._plot_failed = True
                warnings.warn(f"plot_on_val: plotting failed, no more figures: {exc}",
                              stacklevel=2)
                return
            self._plotted += 1
            if figure is not None:
                self._log_figure(loggers, f"val/prediction_{name}", figure)

    def _log_figure(self, loggers: Sequence[Any], tag: str, figure: Any) -> None:
        for logger in loggers:
            experiment: Any = getattr(logger, "experiment", None)
            if hasattr(experiment, "add_figure"):
                experiment.add_figure(tag, figure, self.global_step)
            elif getattr(logger, "log_dir", None):
                folder = Path(logger.log_dir) / "figures"
                folder.mkdir(parents=True, exist_ok=True)
                safe = tag.replace("/", "_")
                figure.savefig(folder / f"{safe}_epoch{self.current_epoch}.png", dpi=80)
        import matplotlib.pyplot as plt

        plt.close(figure)


def _frozen_modules(model: nn.Module) -> list[nn.Module]:
    """The outermost submodules whose parameters are all frozen."""
    out: list[nn.Module] = []

    def visit(module: nn.Module) -> None:
        params = list(module.parameters())
        if params and not any(p.requires_grad for p in params):
            out.append(module)
            return
        for child in module.children():
            visit(child)

    visit(model)
    return out


def _lookup_class(namespace: Any, name: str, base: type, what: str) -> Any:
    candidates = {
        n: obj for n, obj in vars(namespace).items()
        if inspect.isclass(obj) and issubclass(obj, base) and obj is not base
        and not n.startswith("_")
    }
    if base is torch.optim.lr_scheduler.LRScheduler:
        candidates["ReduceLROnPlateau"] = torch.optim.lr_scheduler.ReduceLROnPlateau
    if name in candidates:
        return candidates[name]
    lower = {n.lower(): n for n in candidates}
    close = [lower[c] for c in difflib.get_close_matches(name.lower(), list(lower), n=3,
                                                         cutoff=0.5)]
    hint = f" Did you mean {', '.join(repr(c) for c in close)}?" if close else ""
    raise ComponentArgumentError(
        f"unknown {what} {name!r}.{hint} Use the name of a {namespace.__name__} class, "
        f"e.g. {', '.join(sorted(candidates)[:6])}"
    )
