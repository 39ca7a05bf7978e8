"""Patch masking (ratio, modes, noise) and the MAE loss (norm_pix) against hand computations."""

from __future__ import annotations

import pytest
import torch

from geofm_core.errors import ConfigurationError
from geofm_core.models.mae import mae_loss, normalise_patches, patchify, unpatchify
from geofm_core.models.masking import MASKING_MODES, random_masking


@pytest.mark.parametrize("mode", MASKING_MODES)
@pytest.mark.parametrize("ratio", [0.0, 0.5, 0.75, 0.9])
def test_the_masked_fraction_is_exact(mode: str, ratio: float) -> None:
    grid = (3, 4, 5)
    m = random_masking(4, grid, ratio, mode=mode, generator=torch.Generator().manual_seed(1))
    total, spatial = 60, 20
    kept = int(total * (1 - ratio)) if mode == "random" else 3 * int(spatial * (1 - ratio))
    assert m.keep.shape == (4, kept)
    assert (m.mask.sum(dim=1) == total - kept).all()
    # kept indices are exactly the unmasked tokens, each once
    for b in range(4):
        assert sorted(m.keep[b].tolist()) == torch.nonzero(m.mask[b] == 0).flatten().tolist()
    # restore undoes the shuffle: [kept..., masked...] back in token order
    assert torch.equal(torch.gather(torch.argsort(m.restore, dim=1), 1, m.restore),
                       torch.arange(total).expand(4, total))


def test_frame_and_tube_masks_hide_the_same_fraction_of_every_frame() -> None:
    grid = (4, 4, 4)
    for mode in ("frame", "tube"):
        m = random_masking(3, grid, 0.75, mode=mode, generator=torch.Generator().manual_seed(0))
        per_frame = m.mask.reshape(3, 4, 16).sum(dim=2)
        assert (per_frame == 12).all(), mode
    tube = random_masking(3, grid, 0.75, mode="tube").mask.reshape(3, 4, 16)
    assert (tube == tube[:, :1]).all()  # the same patches in every frame
    frame = random_masking(8, grid, 0.75, mode="frame",
                           generator=torch.Generator().manual_seed(0)).mask.reshape(8, 4, 16)
    assert not (frame == frame[:, :1]).all()  # frames draw their own positions
    # random mode counts over all tokens, so frames differ in how much they hide
    rand = random_masking(16, grid, 0.75, generator=torch.Generator().manual_seed(0))
    assert len(set(rand.mask.reshape(16, 4, 16).sum(dim=2).flatten().tolist())) > 1


def test_noise_fixes_the_mask_as_argsort_of_noise() -> None:
    noise = torch.tensor([[0.9, 0.1, 0.5, 0.3]])
    m = random_masking(1, (1, 2, 2), 0.5, noise=noise)
    assert m.keep.tolist() == [[1, 3]]  # smallest noise first
    assert m.mask.tolist() == [[1.0, 0.0, 1.0, 0.0]]
    again = random_masking(1, (1, 2, 2), 0.5, noise=noise)
    assert torch.equal(again.restore, m.restore)


@pytest.mark.parametrize(("kwargs", "match"), [
    ({"ratio": 1.0}, "mask_ratio must be in"),
    ({"ratio": -0.1}, "mask_ratio must be in"),
    ({"mode": "blocks"}, "mask_mode must be one of random, frame, tube"),
    ({"noise": torch.rand(2, 3)}, r"must have shape \(2, 8\)"),
    ({"ratio": 0.9, "grid": (1, 1, 2)}, "keeps no token"),
])
def test_bad_masking_settings_are_named(kwargs: dict, match: str) -> None:
    args = {"batch": 2, "grid": (2, 2, 2), "ratio": 0.5} | kwargs
    with pytest.raises(ConfigurationError, match=match):
        random_masking(args.pop("batch"), args.pop("grid"), args.pop("ratio"), **args)


def test_patchify_layout_and_inverse() -> None:
    x = torch.arange(2 * 3 * 2 * 4 * 6, dtype=torch.float32).reshape(2, 3, 2, 4, 6)
    patches = patchify(x, (1, 2, 3))
    assert patches.shape == (2, 2 * 2 * 2, 2 * 3 * 3)
    # token 1 is frame 0, row 0, column 1; its first value is band 0 at pixel (0, 3),
    # its second band 1 at the same pixel (values run over pixels, then bands last)
    assert patches[0, 1, 0] == x[0, 0, 0, 0, 3]
    assert patches[0, 1, 1] == x[0, 1, 0, 0, 3]
    assert patches[0, 1, 3] == x[0, 0, 0, 0, 4]
    assert torch.equal(unpatchify(patches, (2, 2, 2), (1, 2, 3)), x)


def test_norm_pix_loss_by_hand() -> None:
    pred = torch.tensor([[[0.0, 0.0, 0.0, 0.0], [1.0, 1.0, 1.0, 1.0]]])
    raw = torch.tensor([[[1.0, 2.0, 3.0, 4.0], [2.0, 2.0, 2.0, 2.0]]])
    target = normalise_patches(raw)
    # patch 0: mean 2.5, unbiased variance 5/3
    std = (5.0 / 3.0 + 1e-6) ** 0.5
    assert torch.allclose(target[0, 0], torch.tensor([-1.5, -0.5, 0.5, 1.5]) / std)
    assert torch.equal(target[0, 1], torch.zeros(4))  # a flat patch normalises to 0
    only_first = torch.tensor([[1.0, 0.0]])
    expected = ((torch.tensor([-1.5, -0.5, 0.5, 1.5]) / std) ** 2).mean()
    assert torch.allclose(mae_loss(pred, target, only_first), expected)
    # only masked patches count: the second patch (error 1 everywhere) is left out
    both = torch.tensor([[1.0, 1.0]])
    assert torch.allclose(mae_loss(pred, target, both), (expected + 1.0) / 2)
