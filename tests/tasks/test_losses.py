"""The core losses: registry names, ignore_index, class weights, NaN targets."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from geofm_core.errors import ComponentArgumentError, ConfigurationError
from geofm_core.registry import get_registry
from geofm_core.tasks.loss_handler import build_loss

CLASS_LOSSES = ["ce", "focal", "dice", "jaccard", "lovasz"]
REGRESSION_LOSSES = ["mse", "mae", "rmse", "huber"]


def _seg_batch(seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    logits = torch.randn(2, 3, 8, 8, generator=g, requires_grad=True)
    target = torch.randint(0, 3, (2, 8, 8), generator=g)
    return logits, target


def test_every_loss_is_registered_under_geofm() -> None:
    names = {s.name for s in get_registry().list("loss") if s.source == "geofm"}
    assert set(CLASS_LOSSES + REGRESSION_LOSSES + ["bce"]) <= names


@pytest.mark.parametrize("name", CLASS_LOSSES)
def test_class_loss_ignores_ignored_pixels(name: str) -> None:
    loss = build_loss(f"geofm:{name}", ignore_index=255)
    logits, target = _seg_batch()
    target[0, :3] = 255
    value = loss(logits, target)
    value.backward()
    assert torch.isfinite(value)
    # Changing the logits where the target is ignored changes nothing, and gets no gradient.
    assert logits.grad is not None and logits.grad[0, :, :3].abs().sum() == 0
    other = logits.detach().clone()
    other[0, :, :3] = torch.randn(3, 3, 8) * 10
    assert torch.allclose(loss(other, target), value.detach(), atol=1e-6)


@pytest.mark.parametrize("name", CLASS_LOSSES)
def test_class_loss_without_ignore_index_counts_every_pixel(name: str) -> None:
    loss = build_loss(f"geofm:{name}")
    logits, target = _seg_batch(1)
    base = loss(logits, target)
    other = logits.detach().clone()
    other[0, :, :3] = torch.randn(3, 3, 8) * 10
    assert not torch.allclose(loss(other, target), base.detach())


@pytest.mark.parametrize("name", CLASS_LOSSES)
def test_class_loss_all_ignored_is_zero_not_nan(name: str) -> None:
    loss = build_loss(f"geofm:{name}", ignore_index=-1)
    logits, _ = _seg_batch()
    value = loss(logits, torch.full((2, 8, 8), -1))
    value.backward()
    assert torch.isfinite(value) and torch.isfinite(logits.grad).all()


def test_ce_matches_torch_with_weights_and_ignore_index() -> None:
    logits, target = _seg_batch(2)
    target[1, 4:] = 9
    weights = [0.2, 1.0, 3.0]
    ours = build_loss("ce", ignore_index=9, class_weights=weights)(logits, target)
    expected = F.cross_entropy(logits, target, weight=torch.tensor(weights), ignore_index=9)
    assert torch.allclose(ours, expected, atol=1e-6)


def test_focal_with_gamma_zero_is_cross_entropy() -> None:
    logits, target = _seg_batch(3)
    focal = build_loss("focal", kwargs={"gamma": 0.0})(logits, target)
    assert torch.allclose(focal, F.cross_entropy(logits, target), atol=1e-6)


@pytest.mark.parametrize("name", ["dice", "jaccard", "lovasz"])
def test_overlap_losses_are_near_zero_for_a_perfect_prediction(name: str) -> None:
    target = torch.randint(0, 3, (2, 8, 8))
    logits = F.one_hot(target, 3).movedim(-1, 1).float() * 50
    assert build_loss(name)(logits, target) < 1e-3
    assert build_loss(name)(-logits, target) > 0.5


@pytest.mark.parametrize("name", REGRESSION_LOSSES)
def test_regression_losses_leave_out_nan_and_ignore_index(name: str) -> None:
    loss = build_loss(name, ignore_index=-9999)
    pred = torch.randn(2, 8, 8, requires_grad=True)
    target = torch.randn(2, 8, 8)
    masked = target.clone()
    masked[0, 0] = float("nan")
    masked[1, 1] = -9999
    keep = torch.isfinite(masked) & (masked != -9999)
    value = loss(pred, masked)
    value.backward()
    assert torch.isfinite(value) and torch.isfinite(pred.grad).all()
    assert pred.grad[0, 0].abs().sum() == 0 and pred.grad[1, 1].abs().sum() == 0
    reference = {
        "mse": F.mse_loss(pred[keep], target[keep]),
        "mae": F.l1_loss(pred[keep], target[keep]),
        "rmse": F.mse_loss(pred[keep], target[keep]).sqrt(),
        "huber": F.huber_loss(pred[keep], target[keep]),
    }[name]
    assert torch.allclose(value, reference, atol=1e-6)


def test_regression_loss_accepts_a_channel_dimension() -> None:
    pred, target = torch.randn(2, 1, 4, 4), torch.randn(2, 4, 4)
    assert torch.allclose(build_loss("mse")(pred, target), F.mse_loss(pred[:, 0], target))


def test_bce_leaves_out_nan_targets_and_weights_classes() -> None:
    logits = torch.randn(4, 3)
    target = torch.randint(0, 2, (4, 3)).float()
    value = build_loss("bce")(logits, target)
    assert torch.allclose(value, F.binary_cross_entropy_with_logits(logits, target))
    target_nan = target.clone()
    target_nan[0, 1] = float("nan")
    keep = ~torch.isnan(target_nan)
    expected = F.binary_cross_entropy_with_logits(logits[keep], target[keep])
    assert torch.allclose(build_loss("bce")(logits, target_nan), expected)
    weighted = build_loss("bce", class_weights=[0.0, 0.0, 1.0])(logits, target)
    assert torch.allclose(weighted, F.binary_cross_entropy_with_logits(logits[:, 2], target[:, 2]))


def test_class_weights_on_a_regression_loss_is_an_error() -> None:
    with pytest.raises(ConfigurationError, match="does not take class weights"):
        build_loss("mse", class_weights=[1.0, 2.0])


def test_ignore_index_with_a_loss_that_cannot_ignore_is_an_error(fake_dist) -> None:
    from geofm_core.registry import reset_registry

    fake_dist("geofm-plugin-plainloss", {"plainloss": "plainloss_plugin"}, {
        "plainloss_plugin": """
            from geofm_core import hookimpl

            @hookimpl
            def geofm_register_components(register):
                register("loss", "l1", "torch.nn:L1Loss", description="torch's L1")
        """})
    reset_registry()
    assert isinstance(build_loss("plainloss:l1"), torch.nn.L1Loss)
    with pytest.raises(ConfigurationError, match="'plainloss:l1' cannot leave"):
        build_loss("plainloss:l1", ignore_index=0)


def test_wrong_loss_argument_names_the_loss() -> None:
    with pytest.raises(ComponentArgumentError, match=r"'geofm:focal'.*gama.*gamma"):
        build_loss("focal", kwargs={"gama": 1.0})


def test_class_weight_count_must_match_classes() -> None:
    logits, target = _seg_batch()
    with pytest.raises(ValueError, match="class_weights has 2 values"):
        build_loss("ce", class_weights=[1.0, 2.0])(logits, target)
