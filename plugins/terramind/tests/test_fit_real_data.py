"""`geofm fit --trainer.fast_dev_run 1` on the real Sen1Floods11 chip, Sentinel-2 and -1 stacked.

The chip's S2 L1C (13 bands, int16) and S1 GRD (VV, VH in dB, NaN nodata) rasters are
stacked into one 15-band float32 GeoTIFF, cut into two halves (UperNet's pyramid pooling
needs a batch of two in training), and a tiny random TerraMind with
``modalities: [S2L1C, S1GRD]`` trains through the real CLI with UperNet.
"""

from __future__ import annotations

from pathlib import Path

from geofm_terramind.constants import MODALITIES

from geofm_core.testing import fit_fast_dev_run, segmentation_fit_config

TINY = {"embed_dim": 32, "depth": 4, "num_heads": 2, "img_size": 64}


def test_a_tiny_terramind_on_s2_and_s1_of_one_chip_trains(tmp_path: Path,
                                                         stacked_chip: Path) -> None:
    root = stacked_chip
    s2, s1 = MODALITIES["S2L1C"], MODALITIES["S1GRD"]
    bands = [*s2.bands, *s1.bands]
    model_args = {
        "backbone": "terramind:terramind_v1_small",
        "backbone_kwargs": {"modalities": ["S2L1C", "S1GRD"], **TINY},
        "necks": [{"name": "geofm:select_indices", "indices": [0, 1, 2, 3]},
                  {"name": "geofm:reshape_tokens_to_image", "remove_cls_token": False},
                  {"name": "geofm:learned_interpolate_to_pyramidal"}],
        "decoder": "upernet:upernet", "decoder_kwargs": {"channels": 16}}
    config = segmentation_fit_config(
        root, tmp_path / "run", model_args, bands=bands, dataset_bands=bands,
        img_pattern="*_S2S1.tif", means=[*s2.mean, *s1.mean], stds=[*s2.std, *s1.std],
        batch_size=2, no_data_replace=0.0)
    fit_fast_dev_run(config, tmp_path)
