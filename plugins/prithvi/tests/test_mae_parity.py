"""geofm's Prithvi MAE equals TerraTorch's ``PrithviMAE``: reconstruction, mask and loss.

The fixture was written by TerraTorch itself (``scripts/make_mae_fixtures.py``, run in
the peer environment): a reduced ``PrithviMAE`` (3 bands, 2 frames, patch 16, embed 16,
depth 2, decoder 16 wide with 1 block, time and location encodings) with random
weights, fixed inputs and mask noise, at its pre-training size (32) and at 48x48 (where
it interpolates its position embeddings). Its state dict is loaded through geofm's
official-layout loaders (encoder and the kept ``decoder.*``). TerraTorch is not needed.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import torch
from safetensors.torch import load_file, save_file

from geofm_core.models.mae import MAEFactory, MaskedAutoencoder

FIXTURE = Path(__file__).parent / "fixtures" / "prithvi_mae_tiny.safetensors"
BANDS = ["BLUE", "GREEN", "RED"]
TOLERANCE = 1e-5


@pytest.fixture(autouse=True)
def _exact_matmul() -> Any:
    previous = torch.get_float32_matmul_precision()
    torch.set_float32_matmul_precision("highest")
    yield
    torch.set_float32_matmul_precision(previous)


@pytest.fixture(scope="module")
def reference() -> dict[str, torch.Tensor]:
    return load_file(str(FIXTURE))


def _model(reference: dict[str, torch.Tensor], tmp_path: Path,
           norm_pix_loss: bool) -> MaskedAutoencoder:
    state = {k.removeprefix("state."): v for k, v in reference.items() if k.startswith("state.")}
    path = tmp_path / "prithvi_mae_tiny.safetensors"
    save_file(state, str(path))
    model = MAEFactory().build_model(
        "reconstruction", "prithvi:prithvi_eo_v2_tiny_tl",
        backbone_kwargs={"embed_dim": 16, "depth": 2, "num_heads": 2, "num_frames": 2,
                         "img_size": 32, "bands": BANDS, "pretrained_bands": BANDS,
                         "ckpt_path": str(path), "position_grid": "interpolate",
                         "coords_dtype": "float32"},
        decoder_kwargs={"decoder_embed_dim": 16, "decoder_depth": 1, "decoder_num_heads": 2},
        mask_ratio=0.75, norm_pix_loss=norm_pix_loss,
    )
    return model.eval()


@pytest.mark.parametrize("case", ["32", "48"])
def test_reconstruction_mask_and_loss_equal_terratorch(reference, tmp_path, case) -> None:
    r = {k.removeprefix(f"{case}."): v for k, v in reference.items()
         if k.startswith(f"{case}.")}
    metadata = {"temporal_coords": r["temporal_coords"], "location_coords": r["location_coords"]}
    for norm_pix, loss_key in ((False, "loss"), (True, "loss_norm_pix")):
        model = _model(reference, tmp_path, norm_pix)
        with torch.no_grad():
            out = model.forward_mae(r["input"], noise=r["noise"], **metadata)
        pred = model.unpatchify(out.pred, out.grid)
        mask = model.unpatchify(out.mask[..., None].expand_as(out.pred), out.grid)[:, 0]
        assert (pred - r["pred"]).abs().max() < TOLERANCE
        assert torch.equal(mask, r["mask"])
        assert abs(out.loss.item() - r[loss_key].item()) < TOLERANCE, loss_key
    assert r["loss"].item() != pytest.approx(r["loss_norm_pix"].item())
