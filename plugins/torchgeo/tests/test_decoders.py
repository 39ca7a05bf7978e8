"""The core necks, UperNet and smp decoders fit the torchgeo backbones' features."""

from __future__ import annotations

import pytest
import torch

from geofm_core import get_registry

PYRAMID = [{"name": "geofm:select_indices", "indices": [2, 5, 8, 11]},
           {"name": "geofm:reshape_tokens_to_image"},
           {"name": "geofm:learned_interpolate_to_pyramidal"}]


@pytest.mark.parametrize(("backbone", "kwargs", "necks", "decoder"), [
    ("torchgeo:vit_small_patch16_224", {"in_chans": 4}, PYRAMID, "upernet:upernet"),
    ("torchgeo:swin_v2_t", {"in_chans": 4}, None, "upernet:upernet"),
    ("torchgeo:resnet18", {"in_chans": 4},
     [{"name": "geofm:select_indices", "indices": [1, 2, 3, 4]}], "smp:fpn"),
    ("torchgeo:copernicusfm_base", {"bands": ["BLUE", "GREEN", "RED", "VV"]},
     [{"name": "geofm:select_indices", "indices": [11]},
      {"name": "geofm:reshape_tokens_to_image"}], "geofm:fcn"),
    ("torchgeo:panopticon_vitb14", {"bands": ["BLUE", "GREEN", "RED", "VV"], "img_size": 56},
     [{"name": "geofm:select_indices", "indices": [11]},
      {"name": "geofm:reshape_tokens_to_image"}], "geofm:fcn"),
    ("torchgeo:scalemae_large_patch16", {"in_chans": 4},
     [{"name": "geofm:select_indices", "indices": [23]},
      {"name": "geofm:reshape_tokens_to_image"}], "geofm:fcn"),
    ("torchgeo:croma_base", {"bands": ["VV", "VH"], "img_size": 64},
     [{"name": "geofm:select_indices", "indices": [5]},
      {"name": "geofm:reshape_tokens_to_image", "remove_cls_token": False}], "geofm:fcn"),
], ids=["vit-upernet", "swin-upernet", "resnet-smp_fpn", "copernicusfm-fcn", "panopticon-fcn",
        "scalemae-fcn", "croma_radar-fcn"])
def test_segmentation_model_on_torchgeo_features(backbone, kwargs, necks, decoder):
    factory = get_registry().build("model_factory", "geofm:encoder_decoder")
    args = {"task": "segmentation", "backbone": backbone, "decoder": decoder, "num_classes": 3,
            "backbone_kwargs": kwargs}
    if necks:
        args["necks"] = necks
    model = factory.build_model(**args).eval()
    # Panopticon: multiples of its patch, 14; CROMA: its img_size, square
    size = {"torchgeo:panopticon_vitb14": (56, 84), "torchgeo:croma_base": (64, 64)}.get(
        backbone, (64, 96))
    with torch.no_grad():
        out = model(torch.randn(1, len(kwargs.get("bands", "abcd")), *size)).output
    assert out.shape == (1, 3, *size)
