"""Generate the Prithvi Swin parity fixtures of ``plugins/prithvi/tests/test_swin_parity.py``.

Run in the peer environment, which has TerraTorch::

    /work/main/.venv-terratorch/bin/python plugins/prithvi/scripts/make_swin_fixtures.py

Builds TerraTorch's own ``prithvi_swin_B`` at a reduced size (``TINY``: embed 3, depths
2-2-2-2, window 3, pre-training size 32) with random weights, and writes to
``plugins/prithvi/tests/fixtures/``:

* ``swin_tiny.safetensors``: the encoder's state dict in TerraTorch's layout (its
  ``MMSegSwinTransformer.state_dict()``, classifier head and index buffers included),
  under ``state.*``; fixed inputs ``input.<size>`` at the pre-training size and at a
  size that is not a multiple of the patch; TerraTorch's four feature maps per input
  (``out.<size>.<stage>``, channels first as its ``prepare_features_for_image_model``
  returns them), and those of the same weights in a model of window 4
  (``out.window4.21x27.<stage>``, the bias tables resized by TerraTorch's filter);
* ``swin_tiny_simmim.safetensors``: the same encoder in the Swin / SimMIM layout
  (``encoder.layers.*`` beside a ``decoder``), checked here to map back onto the
  TerraTorch weights through TerraTorch's own ``checkpoint_filter_fn``;
* ``swin_upernet.yaml`` / ``.ckpt`` / ``.ref.safetensors``: a TerraTorch segmentation
  task (this Swin + its UperNetDecoder), its Lightning-style checkpoint, the input and
  TerraTorch's logits.

Nothing here is geofm: the references come from TerraTorch's own models.
"""

from __future__ import annotations

import copy
import re
import warnings
from pathlib import Path
from typing import Any

import torch
import yaml
from safetensors.torch import save_file

OUT = Path(__file__).resolve().parents[1] / "tests" / "fixtures"
BANDS = ["BLUE", "GREEN", "RED", "NIR_NARROW", "SWIR_1", "SWIR_2"]
#: The reduced architecture (TerraTorch's keyword names).
TINY: dict[str, Any] = {"embed_dim": 3, "depths": [2, 2, 2, 2], "num_heads": [1, 1, 2, 2],
                        "window_size": 3, "pretrain_img_size": 32}
#: Input sizes: the pre-training size, and one that is no multiple of the patch (4) and
#: gives odd maps to merge.
SIZES = ((32, 32), (21, 27))


def _randomise(module: torch.nn.Module, generator: torch.Generator) -> None:
    """Random floats everywhere; norm scales around 1 so features keep their size."""
    with torch.no_grad():
        for name, tensor in module.state_dict().items():
            if not tensor.is_floating_point():
                continue  # relative_position_index
            noise = torch.randn(tensor.shape, generator=generator) * 0.2
            if "norm" in name and name.endswith("weight"):
                noise += 1.0
            if name.endswith("running_var"):
                noise = torch.rand(tensor.shape, generator=generator) + 0.5
            tensor.copy_(noise)


def _features(model: Any, x: torch.Tensor) -> list[torch.Tensor]:
    """TerraTorch's stage outputs: what its features-only wrapper collects, channels first."""
    out = model.patch_embed(x)
    maps = []
    for stage in model.stages:
        out = stage(out)
        maps.append(out[0].permute(0, 3, 1, 2).contiguous())
    return maps


def _to_simmim(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """The Swin / SimMIM layout of a TerraTorch state dict (inverse of swin2mmseg)."""
    out: dict[str, torch.Tensor] = {}
    for key, value in state.items():
        if key.startswith("head.") or re.fullmatch(r"stages\.\d+\.norm\.\w+", key):
            continue  # no classifier, no per-stage norms in this layout
        new = key.replace("patch_embed.projection.", "patch_embed.proj.")
        new = new.replace("stages.", "layers.", 1).replace("attn.w_msa.", "attn.")
        new = new.replace("ffn.layers.0.0.", "mlp.fc1.").replace("ffn.layers.1.", "mlp.fc2.")
        if ".downsample." in key:  # channel-major (unfold) back to Swin's quadrant blocks
            lead, c = value.shape[:-1], value.shape[-1] // 4
            value = value.reshape(*lead, c, 4).transpose(-1, -2)[..., [0, 2, 1, 3], :]
            value = value.reshape(*lead, 4 * c)
        out[f"encoder.{new}"] = value.contiguous()
    width = state["patch_embed.norm.weight"].shape[0]
    last = width * 8  # the last stage's width
    out["encoder.norm.weight"] = torch.ones(last)
    out["encoder.norm.bias"] = torch.zeros(last)
    out["encoder.mask_token"] = torch.zeros(1, 1, width)
    out["decoder.0.weight"] = torch.zeros(8, last, 1, 1)
    return out


def make_backbone(generator: torch.Generator) -> None:
    """The encoder alone: official-layout weights, inputs, per-stage outputs."""
    import timm
    from terratorch.models.backbones.prithvi_swin import checkpoint_filter_fn

    model = timm.create_model("prithvi_swin_B", num_classes=2, **TINY)
    model.eval()  # its train() override returns None, so not chained
    _randomise(model, generator)
    state = {k: v.contiguous() for k, v in model.state_dict().items()}
    tensors = {f"state.{k}": v for k, v in state.items()}
    for h, w in SIZES:
        x = torch.randn(1, 6, h, w, generator=generator)
        tensors[f"input.{h}x{w}"] = x
        with torch.no_grad():
            for i, fmap in enumerate(_features(model, x)):
                tensors[f"out.{h}x{w}.{i}"] = fmap
                print(f"{h}x{w} stage {i}: {tuple(fmap.shape)}")
    # Another window: TerraTorch's filter resizes the bias tables bicubically for files
    # without a classifier (with one it returns them untouched); its index buffers, of
    # the old window, would not load (they are computed, so left out here).
    wider = timm.create_model("prithvi_swin_B", num_classes=2, **{**TINY, "window_size": 4})
    wider.eval()
    headless = {k: v for k, v in state.items() if not k.startswith("head.")}
    resized = checkpoint_filter_fn(copy.deepcopy(headless), wider, BANDS, BANDS)
    wider.load_state_dict({k: v for k, v in resized.items()
                           if not k.endswith("relative_position_index")}, strict=False)
    with torch.no_grad():
        for i, fmap in enumerate(_features(wider, tensors["input.21x27"])):
            tensors[f"out.window4.21x27.{i}"] = fmap
    save_file(tensors, str(OUT / "swin_tiny.safetensors"))

    simmim = _to_simmim(state)
    back = checkpoint_filter_fn(copy.deepcopy(simmim), model, BANDS, BANDS)
    for key, value in back.items():  # TerraTorch maps the SimMIM layout back exactly
        if key in state and not key.startswith("head.") and "patch_embed.projection" not in key:
            assert torch.equal(value, state[key]), key
    save_file(simmim, str(OUT / "swin_tiny_simmim.safetensors"))


def _task_args() -> dict[str, Any]:
    model_args = {"backbone": "prithvi_swin_B", "backbone_pretrained": False,
                  "backbone_bands": BANDS, **{f"backbone_{k}": v for k, v in TINY.items()},
                  "decoder": "UperNetDecoder", "decoder_channels": 4, "num_classes": 2}
    return {"model_factory": "EncoderDecoderFactory", "loss": "ce", "model_args": model_args}


def make_task(generator: torch.Generator) -> None:
    """A TerraTorch segmentation task: Swin + UperNet, its checkpoint and logits."""
    from terratorch.tasks import SemanticSegmentationTask

    task = SemanticSegmentationTask(**_task_args())
    _randomise(task, generator)
    task.eval()
    x = torch.randn(2, 6, *SIZES[1], generator=generator)
    with torch.no_grad():
        logits = task.model(x).output
    save_file({"input": x, "logits": logits.contiguous()},
              str(OUT / "swin_upernet.ref.safetensors"))
    config = {"model": {"class_path": "terratorch.tasks.SemanticSegmentationTask",
                        "init_args": _task_args()},
              "data": {"class_path": "terratorch.datamodules.GenericNonGeoSegmentationDataModule",
                       "init_args": {"batch_size": 2, "num_workers": 0, "num_classes": 2,
                                     "train_data_root": "data/train", "val_data_root": "data/val",
                                     "test_data_root": "data/test", "dataset_bands": BANDS,
                                     "output_bands": BANDS, "means": [0.0] * 6,
                                     "stds": [1.0] * 6}}}
    (OUT / "swin_upernet.yaml").write_text(yaml.safe_dump(config, sort_keys=False))
    checkpoint = {"state_dict": task.state_dict(), "epoch": 1, "global_step": 10,
                  "pytorch-lightning_version": "2.5.0", "hyper_parameters": _task_args()}
    torch.save(checkpoint, OUT / "swin_upernet.ckpt")
    print(f"task logits {tuple(logits.shape)}")


def main() -> None:
    """Write every fixture."""
    warnings.filterwarnings("ignore")
    torch.set_float32_matmul_precision("highest")
    OUT.mkdir(parents=True, exist_ok=True)
    generator = torch.Generator().manual_seed(20251203)
    make_backbone(generator)
    make_task(generator)
    for path in sorted(OUT.glob("swin*")):
        print(f"{path.name}: {path.stat().st_size / 1e3:.0f} kB")


if __name__ == "__main__":
    main()
