"""Write the TerraMind parity fixtures from TerraTorch's own encoder (run in the peer venv).

    flock /tmp/geofm-heavy.lock /work/main/.venv-terratorch/bin/python \
        plugins/terramind/scripts/make_parity_fixtures.py

TerraTorch's ``TerraMindViT`` is built at a reduced size (dim 16, depth 2, 2 heads, patch
16, position grid 32) in the two block flavours of the published variants: ``gelu`` (tiny
and small: biases, GELU MLP) and ``swiglu`` (base and large: no biases, SwiGLU). Each
flavour's random weights (exact in float16, stored so) are saved in the official
checkpoint layout (with a few generation-decoder tensors, as the official files have) to
``tests/fixtures/weights_<flavour>.safetensors``; each case's fixed input (the
modalities' channels stacked in order) and every block's merged tokens to
``tests/fixtures/case_<name>.safetensors``, its settings in the file's metadata. Only
these small outputs are committed.
"""

from __future__ import annotations

import json
from functools import partial
from pathlib import Path

import torch
from safetensors.torch import save_file
from terratorch.models.backbones.terramind.model.terramind_register import (
    PRETRAINED_BANDS,
    select_modality_patch_embed_weights,
)
from terratorch.models.backbones.terramind.model.terramind_vit import TerraMindViT
from terratorch.models.backbones.terramind.model.tm_utils import LayerNorm
from torch import nn

OUT = Path(__file__).resolve().parents[1] / "tests" / "fixtures"
# TerraTorch keeps patch 16 for its pretrained modalities whatever patch_size says, and a
# 16-pixel patch of 13 bands makes a wide projection: dim 16 keeps the files small.
SIZE = {"dim": 16, "encoder_depth": 2, "num_heads": 2, "patch_size": 16, "img_size": 32}
FLAVOURS = {
    "gelu": {"qkv_bias": True, "proj_bias": True, "mlp_bias": True, "act_layer": nn.GELU,
             "gated_mlp": False},
    "swiglu": {"qkv_bias": False, "proj_bias": False, "mlp_bias": False,
               "act_layer": nn.SiLU, "gated_mlp": True},
}
#: name -> (flavour, modalities, merge_method, (H, W), bands)
CASES: dict[str, tuple[str, list[str], str, tuple[int, int], dict[str, list[str]] | None]] = {
    "s2l1c_mean_gelu": ("gelu", ["S2L1C"], "mean", (32, 32), None),
    "s2l1c_s1grd_mean_swiglu": ("swiglu", ["S2L1C", "S1GRD"], "mean", (32, 32), None),
    "s2l1c_s1grd_concat_gelu": ("gelu", ["S2L1C", "S1GRD"], "concat", (32, 48), None),
    "s2l1c_bands_s1rtc_max_swiglu": ("swiglu", ["S2L1C", "S1RTC"], "max", (48, 48),
                                     {"S2L1C": ["RED", "GREEN", "BLUE", "NIR_NARROW"]}),
    "s1grd_dem_dict_gelu": ("gelu", ["S1GRD", "DEM"], "dict", (32, 32), None),
}
CHANNELS = {"S2L1C": 13, "S2L2A": 12, "S1GRD": 2, "S1RTC": 2, "DEM": 1, "RGB": 3}


def build(flavour: str, modalities: list[str], merge: str) -> TerraMindViT:
    """TerraTorch's encoder at the reduced size in one block flavour."""
    return TerraMindViT(modalities=list(modalities), merge_method=merge,
                        norm_layer=partial(LayerNorm, eps=1e-6, bias=False),
                        num_register_tokens=0, tokenizer_dict=None, **SIZE, **FLAVOURS[flavour])


def weights(flavour: str, modalities: list[str]) -> dict[str, torch.Tensor]:
    """Random weights of every parameter (norm scales and biases too), official layout."""
    torch.manual_seed(len(flavour))
    model = build(flavour, modalities, "concat")
    with torch.no_grad():
        model.missing_mod_token.normal_(std=0.02)  # TerraTorch leaves it uninitialised
        for name, p in model.named_parameters():
            p.add_(torch.randn_like(p) * (0.02 if name.endswith("mod_emb") else 0.1))
            p.copy_(p.half().float())  # stored as float16 (half the bytes), exactly
    return {k: v.clone().contiguous() for k, v in model.state_dict().items()}


def main() -> None:
    """Write the weights and cases (see the module docstring)."""
    OUT.mkdir(parents=True, exist_ok=True)
    torch.set_float32_matmul_precision("highest")
    needed: dict[str, list[str]] = {}
    for flavour, mods, *_ in CASES.values():
        needed.setdefault(flavour, [])
        needed[flavour] += [m for m in mods if m not in needed[flavour]]
    states = {f: weights(f, mods) for f, mods in needed.items()}
    for name, (flavour, mods, merge, (h, w), bands) in CASES.items():
        model = build(flavour, mods, merge)
        result = model.load_state_dict(states[flavour], strict=False)
        assert not [k for k in result.missing_keys], result.missing_keys
        if bands is not None:
            model = select_modality_patch_embed_weights(model, bands, PRETRAINED_BANDS)
        model.eval()
        gen = torch.Generator().manual_seed(7)
        channels = {m: len((bands or {}).get(m, [])) or CHANNELS[m] for m in mods}
        # one sample, exact in float16 and stored so: the inputs are most of the bytes
        inputs = {m: torch.randn(1, c, h, w, generator=gen).half().float()
                  for m, c in channels.items()}
        with torch.no_grad():
            outputs = model(dict(inputs))
        tensors = {"input": torch.cat([inputs[m] for m in mods], dim=1).half()}
        for i, out in enumerate(outputs):
            if isinstance(out, dict):
                tensors.update({f"out.{i}.{m}": t.contiguous() for m, t in out.items()})
            else:
                tensors[f"out.{i}"] = out.contiguous()
        config = {"flavour": flavour, "modalities": mods, "merge_method": merge,
                  "bands": bands, "depth": len(outputs), **SIZE}
        save_file(tensors, str(OUT / f"case_{name}.safetensors"),
                  metadata={"config": json.dumps(config)})
        print(name, {k: tuple(v.shape) for k, v in tensors.items()})
    for flavour, state in states.items():
        d = SIZE["dim"]
        gen = torch.Generator().manual_seed(3)
        # the official files carry the generation decoder; the loader must drop it
        state |= {"decoder.0.norm1.weight": torch.randn(d, generator=gen),
                  "decoder_norm.weight": torch.randn(d, generator=gen),
                  "decoder_proj_context.weight": torch.randn(d, d, generator=gen),
                  "mask_token": torch.randn(1, 1, d, generator=gen)}
        state = {k: v for k, v in state.items() if k != "missing_mod_token"}
        # the fixed position embeddings stay float32: the loader checks them
        save_file({k: v if k.endswith("pos_emb") else v.half() for k, v in state.items()},
                  str(OUT / f"weights_{flavour}.safetensors"))
    print("total bytes", sum(p.stat().st_size for p in OUT.glob("*.safetensors")))


if __name__ == "__main__":
    main()
