"""The generated zoo metadata parses, and agrees with the installed torchgeo.

When torchgeo is upgraded and its zoo changes, these fail: rerun
``python plugins/torchgeo/scripts/generate_zoo.py`` and commit the regenerated modules.
"""

from __future__ import annotations

import subprocess
import sys

import pytest
from geofm_torchgeo._zoo import DESCRIPTIONS, EXCLUDED, MODELS, TERRATORCH_NAMES

from geofm_core.metadata import ComponentMetadata

RERUN = "; rerun plugins/torchgeo/scripts/generate_zoo.py and commit the result"


@pytest.mark.parametrize("name", sorted(MODELS))
def test_every_model_parses(name: str) -> None:
    meta = ComponentMetadata.from_mapping(MODELS[name], name)
    assert meta.family and meta.modalities
    assert DESCRIPTIONS[name]
    for weights in meta.weights:
        assert weights.license, f"{name} {weights.name} has no licence"
        assert weights.url.startswith("https://")
        assert weights.description and weights.modalities
        assert weights.bands or meta.wavelength_conditioned


def test_excluded_models_are_documented() -> None:
    assert set(EXCLUDED) == {"aurora_swin_unet", "unet"}
    assert not set(EXCLUDED) & set(MODELS)


def test_models_and_weights_agree_with_the_installed_torchgeo() -> None:
    models = pytest.importorskip("torchgeo.models")
    names = set(models.list_models()) - set(EXCLUDED)
    assert set(MODELS) == names, f"torchgeo's models changed{RERUN}"
    for name in sorted(names):
        try:
            enum = list(models.get_model_weights(name))
        except KeyError:  # no pretrained weights
            enum = []
        ours = {w["name"]: w for w in MODELS[name]["weights"]}
        assert set(ours) == {m.name for m in enum}, f"{name}: weight sets changed{RERUN}"
        for member in enum:
            entry, where = ours[member.name], f"{name} {member.name}"
            assert entry["url"] == member.url, f"{where}: url changed{RERUN}"
            chans = member.meta.get("in_chans")
            if chans is not None and entry["bands"]:
                assert len(entry["bands"]) == chans, f"{where}: bands changed{RERUN}"
            for key in ("mean", "std"):
                assert not entry[key] or len(entry[key]) == len(entry["bands"])


def test_terratorch_names_point_at_models_and_weight_sets() -> None:
    assert len(TERRATORCH_NAMES) > 60
    for alias, (model, member) in TERRATORCH_NAMES.items():
        assert model in MODELS, alias
        if member is not None:
            assert member in {w["name"] for w in MODELS[model]["weights"]}, alias


def test_the_data_modules_import_no_torch() -> None:
    code = ("import sys, geofm_torchgeo._zoo, geofm_torchgeo._conversion;"
            "heavy = sorted(m for m in sys.modules if m.split('.')[0] in "
            "('torch', 'torchgeo', 'timm', 'torchvision', 'kornia', 'numpy'));"
            "print(heavy); raise SystemExit(1 if heavy else 0)")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.returncode == 0, done.stdout + done.stderr
