"""Object detection (boxes) and instance segmentation (boxes and masks) on registry backbones.

Batches follow TorchGeo 0.8: ``image`` (B, C, H, W) float, normalised; ``bbox_xyxy`` a
list of B (N_i, 4) float tensors of chip pixels; ``label`` a list of B (N_i,) int64
tensors in 1..K (0 is the background); for instances ``mask`` a list of B (N_i, H, W)
uint8 tensors; optionally ``filename`` and ``window`` (passed through to predictions).
The model (``geofm:detection`` by default) computes its own losses, so there is no
``loss`` argument; metrics are torchmetrics' ``MeanAveragePrecision`` (COCO mAP, which
needs ``pycocotools``: ``pip install geofm-core[detection]``).
"""

from __future__ import annotations

import inspect
from collections.abc import Mapping, Sequence
from typing import Any, ClassVar

import torch
from torch import nn

from geofm_core.errors import ConfigurationError
from geofm_core.tasks import guards
from geofm_core.tasks.base import GeofmTask

__all__ = ["InstanceSegmentationTask", "ObjectDetectionTask", "map_backend"]

#: Pixels of a predicted mask probability at or above this belong to the instance.
MASK_THRESHOLD = 0.5


def map_backend() -> str:
    """The COCO evaluation backend of ``MeanAveragePrecision`` that is installed.

    Raises:
        ConfigurationError: Neither ``pycocotools`` nor ``faster_coco_eval`` imports.
    """
    try:
        import pycocotools  # noqa: F401

        return "pycocotools"
    except ImportError:
        pass
    try:
        import faster_coco_eval  # noqa: F401

        return "faster_coco_eval"
    except ImportError:
        raise ConfigurationError(
            "detection metrics (mAP) need pycocotools: pip install geofm-core[detection] "
            "(or pip install pycocotools)"
        ) from None


class ObjectDetectionTask(GeofmTask):
    """Object detection: boxes and classes of the objects in ``image`` (B, C, H, W).

    Labels: 0 is the background, object classes are 1..K; ``class_names`` lists the K
    object classes and ``num_classes`` is K + 1 (TorchGeo's and TerraTorch's meaning),
    defaulting to ``len(class_names) + 1``. The loss is the sum of the detector's losses
    (logged as ``train/loss`` and ``train/<part>``, torchvision's names). Validation and
    test log COCO metrics: ``map``, ``map_50``, ``map_75``, ``mar_100`` (and the other
    scalars of ``MeanAveragePrecision``) and ``map_<class>`` per object class (-1 for a
    class absent from the epoch), as ``val/…`` and ``test/…``; the best checkpoint is the
    highest ``val/map``. ``predict`` returns ``prediction_bbox_xyxy``,
    ``prediction_label``, ``prediction_score`` (lists, one tensor per image, on the CPU)
    and the batch's ``filename`` and ``window``.

    Args:
        model_factory: Registry name of the model factory (default ``geofm:detection``).
        model_args: Arguments of ``build_model``: ``backbone``, ``backbone_kwargs``,
            ``necks``, ``framework`` (``faster_rcnn``, ``retinanet``, ``fcos``),
            ``fpn_channels``, ``framework_kwargs``, ``backbone_weights``, ...
        model: A ready detection module (``model(images, targets)`` -> loss dict in
            training, list of detections in eval), instead of a factory.
        num_classes: Object classes + 1 (background).
        class_names: The K object classes, in label order 1..K.
        freeze_backbone: Stop training the backbone.
        freeze_decoder: Stop training the necks and the feature pyramid.
        freeze_head: Stop training the detector's heads.
        lr: Learning rate.
        optimizer: Name of a ``torch.optim`` optimizer class.
        optimizer_hparams: Extra keyword arguments of the optimizer.
        scheduler: Name of a ``torch.optim.lr_scheduler`` class, or None.
        scheduler_hparams: Extra keyword arguments of the scheduler.
        lr_overrides: Substring of a parameter name -> learning rate.
        weights_path: Weights loaded (strictly) into the built model.
        peft_config: LoRA adapters on the backbone (see :class:`GeofmTask`).
    """

    monitor = "val/map"
    mode = "max"
    task_name: ClassVar[str] = "object_detection"
    target_key: ClassVar[str] = "bbox_xyxy"
    pixelwise: ClassVar[bool] = False
    #: Predictions are vectors: ``geofm infer`` / ``geofm predict`` write vector files.
    vector_output: ClassVar[bool] = True
    #: ``iou_type`` of ``MeanAveragePrecision``.
    iou_types: ClassVar[tuple[str, ...]] = ("bbox",)

    _object_names: list[str]

    def __init__(
        self,
        model_factory: str = "geofm:detection",
        model_args: dict[str, Any] | None = None,
        model: nn.Module | None = None,
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
        weights_path: str | None = None,
        peft_config: dict[str, Any] | None = None,
    ) -> None:
        # The base class counts class_names as all classes; here they exclude the
        # background, so they are resolved by _resolve_num_classes from this stash.
        # (Hyper-parameters still record the given class_names: Lightning keeps the
        # values of the outermost __init__.)
        object.__setattr__(self, "_given_class_names", class_names)
        super().__init__(
            model_factory=model_factory, model_args=model_args, model=model,
            num_classes=num_classes, freeze_backbone=freeze_backbone,
            freeze_decoder=freeze_decoder, freeze_head=freeze_head, lr=lr,
            optimizer=optimizer, optimizer_hparams=optimizer_hparams, scheduler=scheduler,
            scheduler_hparams=scheduler_hparams, lr_overrides=lr_overrides,
            weights_path=weights_path, peft_config=peft_config,
        )
        #: The K object classes (label 1 is the first).
        self.class_names = list(self._object_names)
        # The base saved its own arguments too (loss, tiled_inference, ...); a checkpoint
        # rebuilds this task from its own (load_task calls ``cls(**hparams)``).
        own = set(inspect.signature(type(self).__init__).parameters) | set(
            inspect.signature(ObjectDetectionTask.__init__).parameters)
        for key in [k for k in self.hparams if k not in own and not k.startswith("_")]:
            del self.hparams[key]

    # -- configuration ------------------------------------------------------------

    def _resolve_num_classes(self, num_classes: int | None,
                             model_args: Mapping[str, Any] | None,
                             class_names: Sequence[str] | None) -> int | None:
        """``num_classes`` = K + 1 from any of num_classes, model_args, class_names; checked."""
        names = self.__dict__.get("_given_class_names")
        from_args = (model_args or {}).get("num_classes")
        if num_classes is not None and from_args is not None and num_classes != from_args:
            raise ConfigurationError(
                f"num_classes is {num_classes} but model_args.num_classes is {from_args}; "
                "give it once"
            )
        found = num_classes if num_classes is not None else from_args
        if found is None and self._ready_model is not None:
            found = getattr(self._ready_model, "num_classes", None)
        if names is not None:
            if found is None:
                found = len(names) + 1
            elif int(found) != len(names) + 1:
                raise ConfigurationError(
                    f"{type(self).__name__}: class_names lists {len(names)} object classes "
                    f"but num_classes is {found}; num_classes counts the background too "
                    f"(K object classes -> K + 1 = {len(names) + 1}); fix one of them"
                )
        if found is None:
            raise ConfigurationError(
                f"{type(self).__name__} needs the object classes: set class_names (the K "
                "object classes) or num_classes (K + 1, counting the background)"
            )
        if int(found) < 2:
            raise ConfigurationError(
                f"{type(self).__name__}: num_classes counts the background too, so it is at "
                f"least 2 (one object class), got {found}"
            )
        self._object_names = (list(names) if names is not None
                              else [str(i) for i in range(1, int(found))])
        return int(found)

    def configure_losses(self) -> None:
        """No loss handler: the detector computes its own losses."""

    def configure_metrics(self) -> None:
        """COCO mean average precision for validation and test (per class too)."""
        from torchmetrics.detection import MeanAveragePrecision

        iou: str | tuple[str, ...] = self.iou_types[0] if len(self.iou_types) == 1 \
            else self.iou_types
        kwargs: dict[str, Any] = {"iou_type": iou, "class_metrics": True,
                                  "backend": map_backend()}
        self.val_metrics = MeanAveragePrecision(**kwargs)
        self.test_metrics = MeanAveragePrecision(**kwargs)

    # -- batches --------------------------------------------------------------------

    def forward(self, x: torch.Tensor, targets: list[dict[str, torch.Tensor]] | None = None,
                **metadata: Any) -> Any:
        """The model's loss dict (training, with targets) or detections (eval)."""
        return self.model(x, targets)

    def targets(self, batch: Mapping[str, Any]) -> list[dict[str, torch.Tensor]]:
        """The torchvision targets (``boxes``, ``labels``[, ``masks``]) of a TorchGeo batch."""
        required = ("bbox_xyxy", "label") + (("mask",) if "segm" in self.iou_types else ())
        missing = [k for k in required if k not in batch]
        if missing:
            datamodule = ("GeoTiffInstanceSegmentationDataModule" if "segm" in self.iou_types
                          else "GeoTiffObjectDetectionDataModule")
            legacy = " (TorchGeo < 0.8 called the boxes 'boxes')" if "boxes" in batch else ""
            raise ConfigurationError(
                f"{type(self).__name__} needs batch keys {list(required)}; the batch has "
                f"{sorted(batch)}, missing {missing}{legacy}. Use {datamodule} or a TorchGeo "
                "0.8 detection data module"
            )
        boxes, labels = list(batch["bbox_xyxy"]), list(batch["label"])
        size = batch["image"].shape[0]
        if len(boxes) != size or len(labels) != size:
            raise ConfigurationError(
                f"{type(self).__name__}: the batch has {size} images but {len(boxes)} box "
                f"and {len(labels)} label tensors; give one per image (lists)"
            )
        out = [{"boxes": b.float().reshape(-1, 4), "labels": lab.long().reshape(-1)}
               for b, lab in zip(boxes, labels, strict=True)]
        found = torch.cat([t["labels"] for t in out])
        if found.numel() and (int(found.min()) < 1 or int(found.max()) >= int(self.num_classes
                                                                                or 0)):
            raise ConfigurationError(
                f"{type(self).__name__}: batch labels range {int(found.min())}.."
                f"{int(found.max())} but object labels are 1..{int(self.num_classes or 0) - 1} "
                f"(0 is the background; num_classes={self.num_classes} counts it); label "
                "objects from 1 (the data module's classes, in order) or raise num_classes"
            )
        if "segm" in self.iou_types:
            for target, mask in zip(out, list(batch["mask"]), strict=True):
                target["masks"] = mask.to(torch.uint8)
        return out

    def training_step(self, batch: Any, batch_idx: int) -> torch.Tensor:
        """The sum of the detector's losses; a NaN / inf loss stops the run."""
        self._guard_batch = {"filename": batch.get("filename")} if isinstance(
            batch, Mapping) else None
        images = batch["image"]
        losses = self(images, self.targets(batch))
        if not isinstance(losses, Mapping) or not losses:
            raise ConfigurationError(
                f"{type(self).__name__}: in training the model must return a dict of losses, "
                f"got {type(losses).__name__}"
            )
        loss: torch.Tensor = torch.stack([v for v in losses.values()]).sum()
        size = images.shape[0]
        self.log("train/loss", loss, batch_size=size, on_step=True, on_epoch=True,
                 prog_bar=True, sync_dist=True)
        for key, value in losses.items():
            self.log(f"train/{key}", value, batch_size=size, on_step=True, on_epoch=True,
                     sync_dist=True)
        guards.check_finite_loss(loss, self.global_step, self.current_epoch, batch)
        return loss

    def detections(self, images: torch.Tensor) -> list[dict[str, torch.Tensor]]:
        """The model's detections of ``images`` (the model is in eval mode here)."""
        output: list[dict[str, torch.Tensor]] = self(images)
        return output

    def _evaluate(self, batch: Mapping[str, Any], stage: str) -> None:
        targets = self.targets(batch)
        predictions = self.detections(batch["image"])
        preds = []
        for pred in predictions:
            item = {"boxes": pred["boxes"].float(), "scores": pred["scores"].float(),
                    "labels": pred["labels"]}
            if "segm" in self.iou_types:
                item["masks"] = pred["masks"][:, 0] >= MASK_THRESHOLD
            preds.append(item)
        for target in targets:
            if "masks" in target:
                target["masks"] = target["masks"].bool()
        getattr(self, f"{stage}_metrics").update(preds, targets)
        self._updated[stage] = True

    def validation_step(self, batch: Any, batch_idx: int) -> None:
        """Update the validation mAP with the batch's detections."""
        self._evaluate(batch, "val")

    def test_step(self, batch: Any, batch_idx: int) -> None:
        """Update the test mAP with the batch's detections."""
        self._evaluate(batch, "test")

    def predict_step(self, batch: Any, batch_idx: int, dataloader_idx: int = 0) -> dict[str, Any]:
        """Boxes, labels and scores per image (lists), with ``filename`` and ``window``."""
        detections = self.detections(batch["image"])
        out: dict[str, Any] = {
            "prediction_bbox_xyxy": [d["boxes"].float().cpu() for d in detections],
            "prediction_label": [d["labels"].cpu() for d in detections],
            "prediction_score": [d["scores"].float().cpu() for d in detections],
        }
        if "segm" in self.iou_types:
            out["prediction_mask"] = [(d["masks"][:, 0] >= MASK_THRESHOLD).to(torch.uint8).cpu()
                                      for d in detections]
        out["filename"] = batch.get("filename")
        out["window"] = batch.get("window")
        return out

    # -- metrics ----------------------------------------------------------------

    def _log_map(self, stage: str) -> None:
        metric = getattr(self, f"{stage}_metrics", None)
        if metric is None or not self._updated.pop(stage, False):
            return
        values = dict(metric.compute())
        metric.reset()
        classes = values.pop("classes", torch.zeros(0)).reshape(-1).tolist()
        prefixes = ["bbox_", "segm_"] if len(self.iou_types) > 1 else [""]
        for prefix in prefixes:
            per_class = values.pop(f"{prefix}map_per_class", None)
            values.pop(f"{prefix}mar_100_per_class", None)
            found: dict[int, float] = {}
            if per_class is not None and per_class.numel() == len(classes):
                found = dict(zip((int(c) for c in classes), per_class.reshape(-1).tolist(),
                                 strict=True))
            for label, name in enumerate(self.class_names, start=1):
                self.log(f"{stage}/{prefix}map_{name}", float(found.get(label, -1.0)))
        monitored = self.monitor.removeprefix(f"{stage}/") if stage == "val" else None
        for key, value in values.items():
            if isinstance(value, torch.Tensor) and value.numel() == 1:
                self.log(f"{stage}/{key}", value.float().reshape(()), prog_bar=key == monitored)

    def on_validation_epoch_end(self) -> None:
        """Log and reset the validation mAP."""
        self._log_map("val")

    def on_test_epoch_end(self) -> None:
        """Log and reset the test mAP."""
        self._log_map("test")


class InstanceSegmentationTask(ObjectDetectionTask):
    """Instance segmentation: a box, a class and a mask per object (Mask R-CNN).

    Batches add ``mask``: a list of B (N_i, H, W) uint8 tensors, one binary mask per
    object. Metrics are ``MeanAveragePrecision(iou_type=("bbox", "segm"))``:
    ``bbox_map``, ``segm_map``, ``bbox_map_50``, ``segm_map_50``, ...,
    ``segm_map_<class>``; the best checkpoint is the highest ``val/segm_map``.
    Predictions add ``prediction_mask`` (N, H, W) uint8 per image. ``model_args`` as for
    :class:`ObjectDetectionTask` with ``framework: mask_rcnn`` (the default).
    """

    monitor = "val/segm_map"
    task_name: ClassVar[str] = "instance_segmentation"
    iou_types: ClassVar[tuple[str, ...]] = ("bbox", "segm")
