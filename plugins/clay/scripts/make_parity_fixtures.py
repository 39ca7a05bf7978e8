"""Write the Clay parity fixtures from TerraTorch's own Clay v1 and v1.5 encoders.

Run in the peer venv (TerraTorch installed), from the repository root::

    /work/main/.venv-terratorch/bin/python plugins/clay/scripts/make_parity_fixtures.py

For each version it builds TerraTorch's encoder at a reduced size (v1:
``clay_v1.modules.EmbeddingEncoder``, the fine-tuning encoder of ``clay_v1_base``; v1.5:
``clay_v15.model.Encoder`` with ``mask_ratio=0`` and ``shuffle=False``, Clay's
fine-tuning path), fills it with seeded random weights, runs fixed inputs (pixels,
wavelengths, time, latlon, gsd) and records every block's tokens. It writes
``tests/fixtures/clay_<version>.safetensors``:

* ``model.encoder.<key>``: the weights in the official layout (a Lightning checkpoint's
  ``state_dict`` keys), plus two decoder/teacher tensors the loader must drop;
* large tensors whose shapes Clay fixes (the wavelength weight generator's 2048-wide
  feed-forward and its kernel head) are not stored: ``seed.<key>`` holds
  ``(seed, scale)`` and ``check.<key>`` a fingerprint; the test regenerates them with
  ``torch.randn(shape, generator=torch.Generator().manual_seed(seed)) * scale`` and checks
  the fingerprint, which keeps the files small;
* ``input.*`` and ``level.<i>`` (block ``i``'s tokens; the last after the final norm).

The architecture is stored in the file's metadata.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch

#: Tensors with more elements than this are regenerated from a seed, not stored.
STORED_LIMIT = 4096
OUT = Path(__file__).resolve().parents[1] / "tests" / "fixtures"
ARCH = {
    "v1": {"dim": 40, "depth": 2, "heads": 2, "dim_head": 8, "mlp_ratio": 2.0},
    "v1.5": {"dim": 48, "depth": 3, "heads": 3, "dim_head": 8, "mlp_ratio": 2.0},
}
IMG, BANDS = 32, 3
WAVELENGTHS = [0.49, 0.665, 1.61]
GSD = 10.0


def fingerprint(t: torch.Tensor) -> torch.Tensor:
    """Sum, sum of squares and the first four values of a tensor."""
    flat = t.double().flatten()
    return torch.cat((flat.sum()[None], (flat * flat).sum()[None], flat[:4]))


def randomise(model: torch.nn.Module, seed: int) -> dict[str, torch.Tensor]:
    """Seeded weights for every tensor; returns the seeds of the regenerated ones."""
    state = model.state_dict()
    seeds = {}
    for i, (key, value) in enumerate(sorted(state.items())):
        fan = value.shape[-1] if value.ndim >= 2 else 1
        scale = 0.5 / fan ** 0.5 if value.ndim >= 2 else 0.1
        gen = torch.Generator().manual_seed(seed * 1000 + i)
        noise = torch.randn(value.shape, generator=gen) * scale
        if value.ndim == 1 and key.endswith("weight"):  # every 1-D weight is a LayerNorm gain
            noise = noise + 1.0
        state[key] = noise
        if value.numel() > STORED_LIMIT:
            seeds[key] = torch.tensor([float(seed * 1000 + i), scale], dtype=torch.float64)
    model.load_state_dict(state)
    return seeds


def block_outputs_v15(encoder: torch.nn.Module, datacube: dict) -> list[torch.Tensor]:
    """Each block's tokens of TerraTorch's v1.5 encoder (its forward returns only the last)."""
    seen: list[torch.Tensor] = []
    layers = encoder.transformer.layers
    hooks = [layers[i][0].register_forward_pre_hook(lambda m, a: seen.append(a[0].clone()))
             for i in range(1, len(layers))]
    hooks.append(encoder.transformer.norm.register_forward_pre_hook(
        lambda m, a: seen.append(a[0].clone())))
    final = encoder(datacube)[0]
    for hook in hooks:
        hook.remove()
    return [*seen[:-1], final]


def main() -> None:
    """Build both reference encoders and write their fixtures."""
    from terratorch.models.backbones.clay_v1.modules import EmbeddingEncoder
    from terratorch.models.backbones.clay_v15.model import Encoder

    # TerraTorch's clay_v15 module lowers the matmul precision on import
    torch.set_float32_matmul_precision("highest")
    from safetensors.torch import save_file

    gen = torch.Generator().manual_seed(7)
    inputs = {
        "pixels": torch.randn(2, BANDS, IMG, IMG, generator=gen),
        "time": torch.rand(2, 4, generator=gen) * 2 - 1,
        "latlon": torch.rand(2, 4, generator=gen) * 2 - 1,
        "waves": torch.tensor(WAVELENGTHS),
    }
    OUT.mkdir(parents=True, exist_ok=True)
    for seed, (version, arch) in enumerate(ARCH.items(), start=1):
        if version == "v1":
            model = EmbeddingEncoder(img_size=IMG, patch_size=8, **arch)
            gsd: object = GSD
        else:
            model = Encoder(mask_ratio=0.0, patch_size=8, shuffle=False, **arch)
            gsd = torch.tensor(GSD)
        seeds = randomise(model, seed)
        model.eval()
        cube = {**inputs, "gsd": gsd}
        with torch.no_grad():
            levels = model(cube) if version == "v1" else block_outputs_v15(model, cube)
        tensors: dict[str, torch.Tensor] = {}
        for key, value in model.state_dict().items():
            if key in seeds:
                tensors[f"seed.model.encoder.{key}"] = seeds[key]
                tensors[f"check.model.encoder.{key}"] = fingerprint(value)
                tensors[f"shape.model.encoder.{key}"] = torch.tensor(value.shape)
            else:
                tensors[f"model.encoder.{key}"] = value.contiguous()
        tensors["model.decoder.mask_patch"] = torch.zeros(4)
        tensors["model.teacher.head.weight"] = torch.zeros(2, 2)
        tensors.update({f"input.{k}": v for k, v in inputs.items()})
        tensors.update({f"level.{i}": t.contiguous() for i, t in enumerate(levels)})
        path = OUT / f"clay_{version.replace('.', '_')}.safetensors"
        meta = {"version": version, "arch": json.dumps(arch), "gsd": str(GSD),
                "img_size": str(IMG), "made_by": "plugins/clay/scripts/make_parity_fixtures.py"}
        save_file(tensors, str(path), metadata=meta)
        print(f"{path}: {path.stat().st_size / 1024:.0f} KiB, {len(levels)} levels")


if __name__ == "__main__":
    main()
