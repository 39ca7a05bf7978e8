"""`geofm fit --trainer.fast_dev_run 1` with a tiny random Clay on the real Sen1Floods11 chip."""

from __future__ import annotations

import pytest

from geofm_core.data.bands import SENTINEL2_L1C_BANDS
from geofm_core.testing import fit_fast_dev_run, segmentation_fit_config, sen1floods11_chips

TINY = {"dim": 24, "depth": 4, "heads": 2, "dim_head": 8, "mlp_ratio": 2.0}
LAST = [{"name": "geofm:select_indices", "indices": [-1]},
        {"name": "geofm:reshape_tokens_to_image"}]
PYRAMID = [{"name": "geofm:select_indices", "indices": [0, 1, 2, 3]},
           {"name": "geofm:reshape_tokens_to_image"},
           {"name": "geofm:learned_interpolate_to_pyramidal"}]


@pytest.mark.parametrize(("backbone", "necks", "decoder"), [
    ("clay:clay_v1_5_tiny", LAST, "geofm:fcn"),
    ("clay:clay_v1_base", PYRAMID, "upernet:upernet"),
], ids=["v1_5_fcn", "v1_upernet"])
def test_fast_dev_run_on_a_real_chip(tmp_path, backbone, necks, decoder):
    if decoder.startswith("upernet:"):
        pytest.importorskip("geofm_upernet", reason="UperNet comes from geofm-plugin-upernet")
    # all 13 bands named, so that their wavelengths resolve; two copies for UperNet's pooling
    chips = sen1floods11_chips(tmp_path, copies=2)
    model_args = {"backbone": backbone,
                  "backbone_kwargs": {**TINY, "bands": list(SENTINEL2_L1C_BANDS), "gsd": 10.0},
                  "necks": necks, "decoder": decoder}
    fit_fast_dev_run(segmentation_fit_config(chips, tmp_path / "run", model_args,
                                             batch_size=2), tmp_path)
