"""The core's losses (source ``geofm``), written with plain torch.

Every loss is an ``nn.Module`` called as ``loss(prediction, target)``. Class losses take
logits (B, C, ...) and integer targets (B, ...); ``ignore_index`` pixels take no part.
``bce`` takes logits and float targets of the same shape. Regression losses take
predictions and float targets of the same shape and leave out NaN targets and targets
equal to ``ignore_index``. Averages are over the pixels that count, so a batch in which
nothing counts gives a zero loss (with a graph) instead of NaN, without a host sync.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

__all__ = [
    "BCELoss",
    "CrossEntropyLoss",
    "DiceLoss",
    "FocalLoss",
    "HuberLoss",
    "JaccardLoss",
    "LovaszLoss",
    "MAELoss",
    "MSELoss",
    "RMSELoss",
]


def _weights(class_weights: Sequence[float] | None) -> torch.Tensor | None:
    if class_weights is None:
        return None
    return torch.as_tensor(list(class_weights), dtype=torch.float32)


def _valid_classes(
    target: torch.Tensor, ignore_index: int | None
) -> tuple[torch.Tensor, torch.Tensor]:
    """Valid-pixel mask and a target with ignored pixels set to class 0 (safe to index)."""
    if ignore_index is None:
        return torch.ones_like(target, dtype=torch.bool), target
    valid = target != ignore_index
    return valid, torch.where(valid, target, torch.zeros_like(target))


def _check_classes(logits: torch.Tensor, weights: torch.Tensor | None, name: str) -> None:
    if weights is not None and weights.numel() != logits.shape[1]:
        raise ValueError(
            f"{name}: class_weights has {weights.numel()} values but the model predicts "
            f"{logits.shape[1]} classes"
        )


class _ClassLoss(nn.Module):
    class_weights: torch.Tensor | None

    def __init__(
        self, ignore_index: int | None = None, class_weights: Sequence[float] | None = None
    ) -> None:
        super().__init__()
        self.ignore_index = ignore_index
        self.register_buffer("class_weights", _weights(class_weights), persistent=False)


class CrossEntropyLoss(_ClassLoss):
    """Cross-entropy over class logits.

    Args:
        ignore_index: Target value that takes no part (None: every pixel counts).
        class_weights: One weight per class; the mean is weighted like torch's.
        label_smoothing: As in :func:`torch.nn.functional.cross_entropy`.
    """

    def __init__(
        self,
        ignore_index: int | None = None,
        class_weights: Sequence[float] | None = None,
        label_smoothing: float = 0.0,
    ) -> None:
        super().__init__(ignore_index, class_weights)
        self.label_smoothing = label_smoothing

    def forward(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """Mean cross-entropy over the pixels that count."""
        _check_classes(logits, self.class_weights, "ce")
        valid, safe = _valid_classes(target, self.ignore_index)
        per_pixel = F.cross_entropy(
            logits, safe, weight=self.class_weights, reduction="none",
            label_smoothing=self.label_smoothing,
        )
        weight = valid.to(per_pixel.dtype)
        if self.class_weights is not None:
            weight = weight * self.class_weights.to(per_pixel.dtype)[safe]
        return (per_pixel * valid).sum() / weight.sum().clamp_min(1e-12)


class FocalLoss(_ClassLoss):
    """Multi-class focal loss (Lin et al. 2017): cross-entropy scaled by ``(1 - p_t)^gamma``.

    Args:
        ignore_index: Target value that takes no part.
        class_weights: Per-class factors (the focal ``alpha``).
        gamma: Focusing parameter; 0 gives cross-entropy.
    """

    def __init__(
        self,
        ignore_index: int | None = None,
        class_weights: Sequence[float] | None = None,
        gamma: float = 2.0,
    ) -> None:
        super().__init__(ignore_index, class_weights)
        self.gamma = gamma

    def forward(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """Mean focal loss over the pixels that count."""
        _check_classes(logits, self.class_weights, "focal")
        valid, safe = _valid_classes(target, self.ignore_index)
        log_pt = logits.log_softmax(1).gather(1, safe.unsqueeze(1)).squeeze(1)
        loss = -((1 - log_pt.exp()) ** self.gamma) * log_pt
        if self.class_weights is not None:
            loss = loss * self.class_weights.to(loss.dtype)[safe]
        return (loss * valid).sum() / valid.sum().clamp_min(1)


def _overlap(
    logits: torch.Tensor, target: torch.Tensor, ignore_index: int | None
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Per-class soft intersection, soft cardinality and target count over valid pixels."""
    valid, safe = _valid_classes(target, ignore_index)
    probs = logits.softmax(1)
    one_hot = F.one_hot(safe, probs.shape[1]).movedim(-1, 1).to(probs.dtype)
    mask = valid.unsqueeze(1).to(probs.dtype)
    probs, one_hot = probs * mask, one_hot * mask
    dims = (0, *range(2, probs.ndim))
    intersection = (probs * one_hot).sum(dims)
    cardinality = probs.sum(dims) + one_hot.sum(dims)
    return intersection, cardinality, one_hot.sum(dims)


def _class_mean(
    per_class: torch.Tensor, present: torch.Tensor, weights: torch.Tensor | None
) -> torch.Tensor:
    """Mean over the classes present in the target (all classes when none is)."""
    counted = (present > 0).to(per_class.dtype)
    counted = torch.where(counted.sum() > 0, counted, torch.ones_like(counted))
    if weights is not None:
        counted = counted * weights.to(per_class.dtype)
    return (per_class * counted).sum() / counted.sum().clamp_min(1e-12)


class _OverlapLoss(_ClassLoss):
    """``1 - score`` averaged over the classes present in the target (Dice, Jaccard).

    Args:
        ignore_index: Target value that takes no part.
        class_weights: Per-class weights of the class average.
        smooth: Added to numerator and denominator.
    """

    #: Registry name, used in error messages.
    name = ""

    def __init__(
        self,
        ignore_index: int | None = None,
        class_weights: Sequence[float] | None = None,
        smooth: float = 1.0,
    ) -> None:
        super().__init__(ignore_index, class_weights)
        self.smooth = smooth

    def score(self, inter: torch.Tensor, card: torch.Tensor) -> torch.Tensor:
        """Per-class score from soft intersections and cardinalities (|A| + |B|)."""
        raise NotImplementedError

    def forward(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """The loss over the pixels that count."""
        _check_classes(logits, self.class_weights, self.name)
        inter, card, present = _overlap(logits, target, self.ignore_index)
        return _class_mean(1 - self.score(inter, card), present, self.class_weights)


class DiceLoss(_OverlapLoss):
    """Soft Dice loss, ``1 - Dice`` averaged over the classes present in the target.

    Args:
        ignore_index: Target value that takes no part.
        class_weights: Per-class weights of the class average.
        smooth: Added to numerator and denominator.
    """

    name = "dice"

    def score(self, inter: torch.Tensor, card: torch.Tensor) -> torch.Tensor:
        """Dice: twice the intersection over the summed cardinalities, smoothed."""
        return (2 * inter + self.smooth) / (card + self.smooth).clamp_min(1e-12)


class JaccardLoss(_OverlapLoss):
    """Soft Jaccard (IoU) loss, ``1 - IoU`` averaged over the classes present in the target.

    Args:
        ignore_index: Target value that takes no part.
        class_weights: Per-class weights of the class average.
        smooth: Added to numerator and denominator.
    """

    name = "jaccard"

    def score(self, inter: torch.Tensor, card: torch.Tensor) -> torch.Tensor:
        """IoU: intersection over union, smoothed."""
        return (inter + self.smooth) / (card - inter + self.smooth).clamp_min(1e-12)


def _lovasz_grad(sorted_truth: torch.Tensor) -> torch.Tensor:
    """Gradient of the Lovasz extension of the Jaccard loss (Berman et al. 2018, alg. 1)."""
    total = sorted_truth.sum()
    intersection = total - sorted_truth.cumsum(0)
    union = total + (1 - sorted_truth).cumsum(0)
    jaccard = 1 - intersection / union
    return torch.cat([jaccard[:1], jaccard[1:] - jaccard[:-1]])


class LovaszLoss(_ClassLoss):
    """Lovasz-softmax loss (Berman et al. 2018) over the classes present in the target.

    Args:
        ignore_index: Target value that takes no part.
        class_weights: Per-class weights of the class average.
    """

    def forward(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """Lovasz-softmax over the pixels that count, the whole batch as one set."""
        _check_classes(logits, self.class_weights, "lovasz")
        num_classes = logits.shape[1]
        probs = logits.softmax(1).movedim(1, -1).reshape(-1, num_classes)
        labels = target.reshape(-1)
        if self.ignore_index is not None:
            keep = labels != self.ignore_index
            probs, labels = probs[keep], labels[keep]
        if labels.numel() == 0:
            return logits.sum() * 0
        losses, present = [], []
        for c in range(num_classes):
            truth = (labels == c).to(probs.dtype)
            errors = (truth - probs[:, c]).abs()
            errors_sorted, order = torch.sort(errors, descending=True)
            losses.append(torch.dot(errors_sorted, _lovasz_grad(truth[order])))
            present.append(truth.sum())
        return _class_mean(torch.stack(losses), torch.stack(present), self.class_weights)


class BCELoss(_ClassLoss):
    """Binary cross-entropy on logits, for multi-label targets (B, C) or binary maps.

    Args:
        ignore_index: Target value that takes no part (NaN targets never count).
        class_weights: One weight per class (dimension 1 of the prediction).
        pos_weight: Weight of positive examples, one per class.
    """

    def __init__(
        self,
        ignore_index: int | None = None,
        class_weights: Sequence[float] | None = None,
        pos_weight: Sequence[float] | None = None,
    ) -> None:
        super().__init__(ignore_index, class_weights)
        self.pos_weight: torch.Tensor | None
        self.register_buffer("pos_weight", _weights(pos_weight), persistent=False)

    def forward(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """Mean binary cross-entropy over the entries that count."""
        target = target.to(logits.dtype)
        valid = ~torch.isnan(target)
        if self.ignore_index is not None:
            valid = valid & (target != self.ignore_index)
        safe = torch.where(valid, target, torch.zeros_like(target))
        pos_weight = self.pos_weight
        if pos_weight is not None and logits.ndim > 2:
            pos_weight = pos_weight.view(-1, *([1] * (logits.ndim - 2)))
        loss = F.binary_cross_entropy_with_logits(
            logits, safe, reduction="none", pos_weight=pos_weight
        )
        weight = valid.to(loss.dtype)
        if self.class_weights is not None:
            _check_classes(logits, self.class_weights, "bce")
            shape = (1, -1, *([1] * (logits.ndim - 2)))
            weight = weight * self.class_weights.to(loss.dtype).view(shape)
        return (loss * weight).sum() / weight.sum().clamp_min(1e-12)


class _RegressionLoss(nn.Module):
    def __init__(self, ignore_index: float | None = None) -> None:
        super().__init__()
        self.ignore_index = ignore_index

    def _elementwise(self, prediction: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def _mean(self, prediction: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        if prediction.shape != target.shape and prediction.ndim == target.ndim + 1:
            prediction = prediction.squeeze(1)
        target = target.to(prediction.dtype)
        valid = torch.isfinite(target)
        if self.ignore_index is not None:
            valid = valid & (target != self.ignore_index)
        safe = torch.where(valid, target, prediction.detach())
        loss = self._elementwise(prediction, safe)
        return (loss * valid).sum() / valid.sum().clamp_min(1)

    def forward(self, prediction: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """Mean loss over the targets that count."""
        return self._mean(prediction, target)


class MSELoss(_RegressionLoss):
    """Mean squared error; NaN targets and ``ignore_index`` left out.

    Args:
        ignore_index: Target value that takes no part.
    """

    def _elementwise(self, prediction: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return (prediction - target) ** 2


class MAELoss(_RegressionLoss):
    """Mean absolute error; NaN targets and ``ignore_index`` left out.

    Args:
        ignore_index: Target value that takes no part.
    """

    def _elementwise(self, prediction: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return (prediction - target).abs()


class RMSELoss(MSELoss):
    """Root mean squared error; NaN targets and ``ignore_index`` left out.

    Args:
        ignore_index: Target value that takes no part.
    """

    def forward(self, prediction: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """Square root of the mean squared error over the targets that count."""
        return self._mean(prediction, target).clamp_min(1e-12).sqrt()


class HuberLoss(_RegressionLoss):
    """Huber loss; NaN targets and ``ignore_index`` left out.

    Args:
        ignore_index: Target value that takes no part.
        delta: Where the loss turns from quadratic to linear.
    """

    def __init__(self, ignore_index: float | None = None, delta: float = 1.0) -> None:
        super().__init__(ignore_index)
        self.delta = delta

    def _elementwise(self, prediction: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return F.huber_loss(prediction, target, reduction="none", delta=self.delta)
