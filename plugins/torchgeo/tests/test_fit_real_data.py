"""`geofm fit --trainer.fast_dev_run 1` on a real Sen1Floods11 chip with offline weights."""

from __future__ import annotations

import pytest

from geofm_core.data.bands import SENTINEL2_L1C_BANDS
from geofm_core.testing import fit_fast_dev_run, segmentation_fit_config, sen1floods11_chips

SATLAS_MS = ["RED", "GREEN", "BLUE", "RED_EDGE_1", "RED_EDGE_2", "RED_EDGE_3", "NIR_BROAD",
             "SWIR_1", "SWIR_2"]
TOKENS = [{"name": "geofm:select_indices", "indices": [-1]},
          {"name": "geofm:reshape_tokens_to_image"}]


@pytest.mark.parametrize(("model", "weights", "bands", "backbone_kwargs", "necks"), [
    ("resnet18", "SENTINEL2_ALL_MOCO", list(SENTINEL2_L1C_BANDS), {},
     [{"name": "geofm:select_indices", "indices": [1, 2, 3, 4]}]),
    ("vit_small_patch16_224", "SENTINEL2_ALL_MOCO", list(SENTINEL2_L1C_BANDS), {}, TOKENS),
    ("swin_v2_t", "SENTINEL2_SI_MS_SATLAS", SATLAS_MS, {"bands": SATLAS_MS}, None),
    ("dofa_base_patch16_224", "DOFA_MAE", ["BLUE", "GREEN", "RED", "NIR_NARROW"],
     {"bands": ["BLUE", "GREEN", "RED", "NIR_NARROW"]}, TOKENS),
], ids=["resnet18", "vit_small", "swin_v2_t", "dofa_base"])
def test_fast_dev_run_on_a_real_chip(tmp_path, offline_weights, model, weights, bands,
                                     backbone_kwargs, necks):
    offline_weights(model, weights)
    model_args = {
        "backbone": f"torchgeo:{model}",
        "backbone_kwargs": {"weights": weights, **backbone_kwargs},
        "decoder": "geofm:fcn",
    }
    if necks:
        model_args["necks"] = necks
    chips = sen1floods11_chips(tmp_path)
    fit_fast_dev_run(segmentation_fit_config(chips, tmp_path / "run", model_args, bands=bands),
                     tmp_path)
