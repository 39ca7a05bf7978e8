"""Write the Galileo parity fixtures from the official reference encoder.

Run in the peer venv (it has torch, einops and safetensors) with the path of the
official ``single_file_galileo.py``, extracted from the mirror of nasaharvest/galileo::

    git -C /work/.mirror/nasaharvest+galileo/repo show HEAD:single_file_galileo.py \
        > /tmp/single_file_galileo.py
    /work/main/.venv-terratorch/bin/python plugins/galileo/scripts/make_parity_fixtures.py \
        /tmp/single_file_galileo.py

The reference file is imported from that path at generation time and never committed.
It builds the reference ``Encoder`` with reduced sizes (32 wide, 2 blocks, 4 heads,
patch kernels of 4) and random weights, and writes to ``plugins/galileo/tests/fixtures``:

* ``reference_encoder.safetensors``: its state dict under the official names (what
  ``encoder.pt`` holds), with a ``.backbone`` inserted in one name, as some official
  files have;
* ``reference_config.json``: the matching ``config.json`` (``model.encoder`` section);
* ``reference_io.safetensors``: fixed inputs (S1 + S2 space-time stacks with per-group
  masks and a few masked patches, SRTM, ERA5 and location inputs, months) and, for
  patch sizes 2 (kernels resized) and 4, each block's output sequence (the kept tokens,
  in the encoder's order) and the final tokens of the four kinds with their masks.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
from pathlib import Path
from types import ModuleType

import torch
from safetensors.torch import save_file

FIXTURES = Path(__file__).resolve().parents[1] / "tests" / "fixtures"
CONFIG = {"embedding_size": 32, "depth": 2, "num_heads": 4, "mlp_ratio": 4,
          "max_sequence_length": 24, "freeze_projections": False, "drop_path": 0.0,
          "max_patch_size": 4}
PATCH_SIZES = (2, 4)


def load_reference(path: Path) -> ModuleType:
    """Import the reference file as a module."""
    spec = importlib.util.spec_from_file_location("single_file_galileo", path)
    if spec is None or spec.loader is None:
        raise SystemExit(f"cannot import {path}")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def inputs(gen: torch.Generator) -> dict[str, torch.Tensor]:
    """S1 + S2 (NDVI masked), SRTM, ERA5 and location present; a few patches masked."""
    b, h, w, t = 2, 8, 8, 2
    s_t_m = torch.ones(b, h, w, t, 7)
    s_t_m[..., :6] = 0  # S1 and the five S2 groups; NDVI absent
    s_t_m[1, :4, :, 1, 2] = 1  # a strip of one group masked in sample 1 ...
    s_t_m[0, 4:, :4, 0, 0] = 1  # ... a 4x4 corner of S1 in sample 0: unequal rows
    sp_m = torch.ones(b, h, w, 3)
    sp_m[..., 0] = 0  # SRTM
    t_m = torch.ones(b, t, 3)
    t_m[..., 0] = 0  # ERA5
    st_m = torch.ones(b, 4)
    st_m[:, 1] = 0  # location
    return {
        "s_t_x": torch.randn(b, h, w, t, 13, generator=gen),
        "sp_x": torch.randn(b, h, w, 16, generator=gen),
        "t_x": torch.randn(b, t, 6, generator=gen),
        "st_x": torch.randn(b, 18, generator=gen),
        "s_t_m": s_t_m, "sp_m": sp_m, "t_m": t_m, "st_m": st_m,
        "months": torch.tensor([[0, 11], [3, 4]]),
    }


def main() -> None:
    """Build the reference, run it, write the fixtures."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("reference", type=Path, help="path of single_file_galileo.py")
    args = parser.parse_args()
    ref = load_reference(args.reference)
    torch.manual_seed(0)
    torch.set_float32_matmul_precision("highest")
    encoder = ref.Encoder(**CONFIG).eval()
    gen = torch.Generator().manual_seed(1)
    with torch.no_grad():  # learned parts that start at zero get values, so they count
        for name in ("s_t_channel_embed", "sp_channel_embed", "t_channel_embed",
                     "st_channel_embed"):
            getattr(encoder, name).normal_(generator=gen)
        for p in encoder.parameters():
            if p.requires_grad:
                p.add_(0.02 * torch.randn(p.shape, generator=gen))
    state = {k: v.detach().clone().contiguous() for k, v in encoder.state_dict().items()}
    state["blocks.1.backbone.norm1.weight"] = state.pop("blocks.1.norm1.weight")
    data = inputs(gen)
    out: dict[str, torch.Tensor] = dict(data)
    captured: list[torch.Tensor] = []
    hooks = [blk.register_forward_hook(lambda _m, _i, o: captured.append(o.detach().clone()))
             for blk in encoder.blocks]
    with torch.no_grad():
        for p in PATCH_SIZES:
            captured.clear()
            result = encoder(data["s_t_x"], data["sp_x"], data["t_x"], data["st_x"],
                             data["s_t_m"], data["sp_m"], data["t_m"], data["st_m"],
                             data["months"], patch_size=p)
            for i, seq in enumerate(captured):
                out[f"p{p}.block{i}"] = seq
            names = ("space_time", "space", "time", "static", "space_time_mask",
                     "space_mask", "time_mask", "static_mask")
            for name, value in zip(names, result[:8], strict=True):
                out[f"p{p}.{name}"] = value.detach().clone().contiguous()
            out[f"p{p}.average"] = encoder.average_tokens(*result[:8]).contiguous()
    for hook in hooks:
        hook.remove()
    FIXTURES.mkdir(parents=True, exist_ok=True)
    save_file(state, str(FIXTURES / "reference_encoder.safetensors"))
    save_file({k: v.contiguous() for k, v in out.items()},
              str(FIXTURES / "reference_io.safetensors"))
    config = {"model": {"encoder": CONFIG}}
    (FIXTURES / "reference_config.json").write_text(json.dumps(config, indent=2) + "\n")
    for file in sorted(FIXTURES.iterdir()):
        print(f"{file.name}: {file.stat().st_size / 1024:.0f} KiB")


if __name__ == "__main__":
    main()
