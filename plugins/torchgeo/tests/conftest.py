"""Offline weights: random torchgeo models saved where torch.hub looks for the real files."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
import torchgeo.models
from geofm_torchgeo.backbones import checkpoint_path
from torch import nn


def official_state_dict(model: str, weights: str) -> dict[str, torch.Tensor]:
    """A random state dict laid out as torchgeo's file for ``model`` ``weights`` is.

    ResNet and ViT files hold the timm model's keys (head included, which torchgeo
    tolerates); Satlas Swin files hold torchvision's keys with a stem of the weight set's
    band count; DOFA files hold the DOFA module's keys; Copernicus-FM files hold its
    module's keys without ``fc_norm`` and ``head`` (torchgeo's builder makes those);
    Panopticon files hold its timm ViT's keys, ``mask_token`` and a 518-pixel (37 x 37)
    position embedding, which torchgeo's builder resizes; CROMA files hold one state dict
    per part (``s1_encoder``, ``s1_GAP_FFN``, ``s2_encoder``, ``s2_GAP_FFN``,
    ``joint_encoder``).
    """
    member = torchgeo.models.get_model_weights(model)[weights]
    builder = getattr(torchgeo.models, model)
    chans = member.meta.get("in_chans")
    if model.startswith("swin"):
        net = builder(weights=None)
        stem = net.features[0][0]
        net.features[0][0] = nn.Conv2d(chans, stem.out_channels, kernel_size=4, stride=4)
    elif model.startswith("dofa"):
        net = builder(weights=None)
    elif model.startswith("croma"):
        net = builder(weights=None, image_size=16)  # the file has no size-dependent part
        parts = ("s1_encoder", "s1_GAP_FFN", "s2_encoder", "s2_GAP_FFN", "joint_encoder")
        return {part: {k: v.clone() for k, v in getattr(net, part).state_dict().items()}
                for part in parts}  # type: ignore[return-value]
    elif model.startswith("panopticon"):
        state = builder(weights=None, img_size=518).model.state_dict()
        state["mask_token"] = torch.randn(1, state["cls_token"].shape[-1])
        return {k: v.clone() for k, v in state.items()}
    elif model.startswith("earthloc"):  # trunk, MixVPR aggregator and projection
        net = builder(weights=None, pretrained=False)
    elif model.startswith("copernicusfm"):
        state = builder(weights=None).state_dict()
        return {k: v.clone() for k, v in state.items() if not k.startswith(("fc_norm", "head"))}
    else:
        net = builder(weights=None, in_chans=chans)
    return {k: v.clone() for k, v in net.state_dict().items()}


@pytest.fixture
def torch_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A fresh TORCH_HOME with no weights in it."""
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    return tmp_path / "torch"


@pytest.fixture
def offline_weights(torch_home: Path):
    """Write a random file for (model, weights) at torch.hub's cache path; return its state."""

    def write(model: str, weights: str) -> dict[str, torch.Tensor]:
        torch.manual_seed(1234)
        state = official_state_dict(model, weights)
        path = Path(checkpoint_path(torchgeo.models.get_model_weights(model)[weights]))
        path.parent.mkdir(parents=True, exist_ok=True)
        torch.save(state, path)
        return state

    return write
