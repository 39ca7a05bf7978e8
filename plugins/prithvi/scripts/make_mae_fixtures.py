"""Generate the Prithvi MAE parity fixture of ``plugins/prithvi/tests/test_mae_parity.py``.

Run in the peer environment, which has TerraTorch::

    /work/main/.venv-terratorch/bin/python plugins/prithvi/scripts/make_mae_fixtures.py

Builds TerraTorch's own ``PrithviMAE`` (``terratorch.models.backbones.prithvi_mae``) at a
reduced size (``TINY``: 3 bands, 2 frames of 32x32, patch 16, embed 16, depth 2, decoder
16 wide with 1 block, time and location encodings with learned scales) with random
weights, and writes ``plugins/prithvi/tests/fixtures/prithvi_mae_tiny.safetensors``:

* ``state.*``: the model's state dict in the official layout (``encoder.*``,
  ``decoder.decoder_embed``, ``decoder.mask_token``, ``decoder.decoder_blocks.N.*``,
  ``decoder.decoder_pos_embed``, ...);
* per case (``32``: the pre-training size; ``48``: 48x48, where TerraTorch interpolates
  its position embeddings): ``<case>.input``, ``<case>.temporal_coords``,
  ``<case>.location_coords``, the mask ``<case>.noise`` fed to TerraTorch's
  ``random_masking``, and TerraTorch's ``forward`` outputs ``<case>.pred`` (image),
  ``<case>.mask`` (image) and ``<case>.loss`` / ``<case>.loss_norm_pix`` (plain and
  per-patch normalised targets).

Nothing here is geofm: the references come from TerraTorch's own model.
"""

from __future__ import annotations

from functools import partial
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import save_file

OUT = Path(__file__).resolve().parents[1] / "tests" / "fixtures" / "prithvi_mae_tiny.safetensors"
#: The reduced architecture (TerraTorch's keyword names).
TINY: dict[str, Any] = {
    "img_size": 32, "patch_size": (1, 16, 16), "num_frames": 2, "in_chans": 3,
    "embed_dim": 16, "depth": 2, "num_heads": 2, "decoder_embed_dim": 16,
    "decoder_depth": 1, "decoder_num_heads": 2, "mlp_ratio": 4.0,
    "coords_encoding": ["time", "location"], "coords_scale_learn": True,
}
CASES = {"32": (2, 32), "48": (1, 48)}  # name: (batch, size)


def _randomise(module: torch.nn.Module, generator: torch.Generator) -> None:
    """Random parameters; norm scales around 1, coordinate scales around 0.3."""
    with torch.no_grad():
        for name, param in module.named_parameters():
            noise = torch.randn(param.shape, generator=generator) * 0.2
            if "norm" in name and name.endswith("weight"):
                noise += 1.0
            if name.endswith("scale"):
                noise = noise.abs() + 0.3
            param.copy_(noise)


def main() -> None:
    """Build the model, run the cases, write the fixture."""
    from terratorch.models.backbones.prithvi_mae import PrithviMAE

    torch.set_float32_matmul_precision("highest")
    generator = torch.Generator().manual_seed(0)
    model = PrithviMAE(**TINY).eval()
    _randomise(model, generator)
    tensors: dict[str, torch.Tensor] = {
        f"state.{k}": v.detach().clone().contiguous() for k, v in model.state_dict().items()
    }
    original = model.encoder.random_masking
    for case, (batch, size) in CASES.items():
        frames = TINY["num_frames"]
        x = torch.randn(batch, TINY["in_chans"], frames, size, size, generator=generator)
        temporal = torch.stack([
            torch.full((batch, frames), 2020.0) + torch.arange(frames),
            torch.randint(1, 365, (batch, frames), generator=generator).float(),
        ], dim=-1)
        location = torch.stack([torch.rand(batch, generator=generator) * 60 - 30,
                                torch.rand(batch, generator=generator) * 120 - 60], dim=-1)
        tokens = frames * (size // 16) ** 2
        noise = torch.rand(batch, tokens, generator=generator)
        model.encoder.random_masking = partial(_fixed, original, noise)
        with torch.no_grad():
            model.norm_pix_loss = False
            loss, pred, mask = model(x, temporal, location, mask_ratio=0.75)
            model.norm_pix_loss = True
            loss_norm, pred_norm, _ = model(x, temporal, location, mask_ratio=0.75)
        assert torch.equal(pred, pred_norm)
        tensors.update({
            f"{case}.input": x, f"{case}.temporal_coords": temporal,
            f"{case}.location_coords": location, f"{case}.noise": noise,
            f"{case}.pred": pred, f"{case}.mask": mask, f"{case}.loss": loss["loss"].reshape(1),
            f"{case}.loss_norm_pix": loss_norm["loss"].reshape(1),
        })
    OUT.parent.mkdir(parents=True, exist_ok=True)
    save_file({k: v.contiguous() for k, v in tensors.items()}, str(OUT),
              metadata={"tiny": repr(TINY)})
    print(f"wrote {OUT} ({OUT.stat().st_size // 1024} KiB, {len(tensors)} tensors)")


def _fixed(original: Any, noise: torch.Tensor, sequence: torch.Tensor, mask_ratio: float,
           noise_arg: torch.Tensor | None = None) -> Any:
    """TerraTorch's ``random_masking`` with the fixture's noise."""
    return original(sequence, mask_ratio, noise=noise)


if __name__ == "__main__":
    main()
