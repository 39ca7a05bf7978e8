"""TerraTorch's TerraMind names convert: a config trains after `geofm convert`, weights map.

The config is written as a TerraTorch user writes it (TerraTorch's task, factory, data
module, necks and decoder names, ``backbone_modalities`` / ``backbone_pretrained`` /
``backbone_merge_method``). TerraTorch fixes a variant's architecture; the tiny sizes
(``backbone_embed_dim``, ...) are geofm keywords the converter keeps because the geofm
backbone takes them, so that the run stays small.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
import yaml
from geofm_terramind._conversion import TERRATORCH
from geofm_terramind.constants import MODALITIES
from safetensors.torch import load_file

from geofm_core.cli import main
from geofm_core.convert.rules import rename_key
from geofm_core.registry import get_registry
from geofm_core.testing import (
    convert_terratorch_config,
    fit_fast_dev_run,
    terratorch_segmentation_config,
)

FIXTURES = Path(__file__).parent / "fixtures"


def test_a_terratorch_terramind_config_converts_and_trains(tmp_path: Path, stacked_chip: Path,
                                                           capsys: pytest.CaptureFixture[str]
                                                           ) -> None:
    chips = stacked_chip
    s2, s1 = MODALITIES["S2L1C"], MODALITIES["S1GRD"]
    bands = [*s2.bands, *s1.bands]
    model_args = {
        "backbone": "terramind_v1_base",
        "backbone_pretrained": False,
        "backbone_modalities": ["S2L1C", "S1GRD"],
        "backbone_merge_method": "mean",
        "backbone_img_size": 64,
        "backbone_embed_dim": 32, "backbone_depth": 4, "backbone_num_heads": 2,
        "necks": [{"name": "SelectIndices", "indices": [0, 1, 2, 3]},
                  {"name": "ReshapeTokensToImage", "remove_cls_token": False},
                  {"name": "LearnedInterpolateToPyramidal"}],
        "decoder": "UperNetDecoder", "decoder_channels": 16,
        "num_classes": 2}
    terratorch = terratorch_segmentation_config(
        chips, tmp_path / "run", model_args, bands=bands, dataset_bands=bands,
        img_grep="*_S2S1.tif", means=[*s2.mean, *s1.mean], stds=[*s2.std, *s1.std],
        batch_size=2)
    code, config, converted = convert_terratorch_config(terratorch, tmp_path)
    assert code == 0 and config is not None
    model_args = config["model"]["init_args"]["model_args"]
    assert model_args["backbone"] == "terramind:terramind_v1_base"
    kwargs = model_args["backbone_kwargs"]
    assert kwargs["modalities"] == ["S2L1C", "S1GRD"] and kwargs["pretrained"] is False
    assert kwargs["merge_method"] == "mean"
    assert model_args["decoder"] == "upernet:upernet"
    capsys.readouterr()
    fit_fast_dev_run(converted, tmp_path)


def test_terratorch_encoder_keys_map_onto_the_backbone() -> None:
    """A TerraTorch task checkpoint holds its TerraMindViT's state under ``encoder.``."""
    # the parity fixture's weights are TerraTorch's TerraMindViT state (plus decoder parts)
    terratorch = {k: v for k, v in load_file(str(FIXTURES / "weights_gelu.safetensors")).items()
                  if k.startswith(("encoder", ))}
    rule = next(r for r in TERRATORCH.components if r.names == ("terramind_v1_small",))
    renamed, dropped = {}, []
    for key, value in terratorch.items():
        new, _ = rename_key(rule.keys, key)
        if new is None:
            dropped.append(key)
        else:
            renamed[new] = value.float()
    assert dropped and all(k.endswith(".pos_emb") for k in dropped)
    model = get_registry().build(
        "backbone", "terramind:terramind_v1_small", embed_dim=16, depth=2, num_heads=2,
        img_size=32, modalities=["S2L1C", "S1GRD", "DEM"])
    model.load_state_dict(renamed, strict=True)
    torch.testing.assert_close(model.encoder[1].mlp.fc2.weight, renamed["encoder.1.mlp.fc2.weight"])


def test_thinking_in_modalities_is_reported_unconvertible() -> None:
    prefixes = TERRATORCH.unconvertible[0].prefixes
    assert "terramind_v1_base_tim" in prefixes and "terramind_v01" in prefixes
    with pytest.raises(StopIteration):
        next(r for r in TERRATORCH.components if r.names[0].endswith("_tim"))


def test_a_terratorch_task_checkpoint_converts(tmp_path: Path,
                                               capsys: pytest.CaptureFixture[str]) -> None:
    """``geofm convert terratorch --ckpt``: TerraTorch's ``model.encoder.*`` become the backbone's.

    The checkpoint holds TerraTorch's own TerraMindViT tensors (the gelu parity fixture,
    S2L1C and S1GRD, position embeddings included, as TerraTorch saves them) under
    ``model.encoder.`` and a segmentation head under TerraTorch's names.
    """
    fixture = load_file(str(FIXTURES / "weights_gelu.safetensors"))
    encoder = {k: v.float() for k, v in fixture.items()
               if k.startswith(("encoder.", "encoder_norm."))
               or k.startswith(("encoder_embeddings.untok_sen2l1c@224.",
                                "encoder_embeddings.untok_sen1grd@224."))}
    gen = torch.Generator().manual_seed(0)
    state = {**{f"model.encoder.{k}": v for k, v in encoder.items()},
             "model.head.head.2.weight": torch.randn(2, 16, 1, 1, generator=gen),
             "model.head.head.2.bias": torch.randn(2, generator=gen)}
    ckpt = tmp_path / "terratorch.ckpt"
    torch.save({"state_dict": state, "hyper_parameters": {}}, ckpt)
    terratorch = {"model": {"class_path": "terratorch.tasks.SemanticSegmentationTask",
                            "init_args": {"model_factory": "EncoderDecoderFactory", "model_args": {
                                "backbone": "terramind_v1_small",
                                "backbone_modalities": ["S2L1C", "S1GRD"],
                                "backbone_img_size": 32, "backbone_embed_dim": 16,
                                "backbone_depth": 2, "backbone_num_heads": 2,
                                "necks": [{"name": "SelectIndices", "indices": [-1]},
                                          {"name": "ReshapeTokensToImage",
                                           "remove_cls_token": False}],
                                "decoder": "IdentityDecoder", "num_classes": 2},
                                "loss": "ce"}}}
    config = tmp_path / "terratorch.yaml"
    config.write_text(yaml.safe_dump(terratorch, sort_keys=False))
    out = tmp_path / "geofm.ckpt"
    assert main(["convert", "terratorch", str(config), "--ckpt", str(ckpt), "-o", str(out)]) == 0
    report = capsys.readouterr().err
    assert "pos_emb" in report and "sin-cos position embedding" in report
    converted = torch.load(out, map_location="cpu", weights_only=True)["state_dict"]
    for key in ("encoder.1.mlp.fc2.weight", "encoder_embeddings.untok_sen1grd@224.proj.weight"):
        torch.testing.assert_close(converted[f"model.backbone.{key}"], encoder[key],
                                   atol=0, rtol=0)
    assert not any(k.endswith("pos_emb") for k in converted)
