"""The example plugin, used as an outside author would: through geofm's registry."""

from __future__ import annotations

import torch

from geofm_core import ModelOutput, get_registry


def test_registered_under_its_source():
    names = [s.qualified_name for s in get_registry().list(None, "example:*")]
    assert names == ["example:tiny_cnn", "example:tiny_segmenter"]
    spec = get_registry().get("backbone", "example:tiny_cnn")
    assert spec.distribution == "geofm-plugin-example"


def test_backbone_declares_its_channels():
    net = get_registry().build("backbone", "example:tiny_cnn", in_chans=4)
    features = net(torch.randn(2, 4, 64, 96))
    assert [f.shape[1] for f in features] == net.out_channels
    assert [f.shape[-2:] for f in features][-1] == (2, 3)


def test_factory_model_trains_a_step_at_odd_sizes():
    factory = get_registry().get("model_factory", "example:tiny_segmenter").load()()
    model = factory.build_model("segmentation", num_classes=3, in_chans=6)
    x, y = torch.randn(2, 6, 50, 70), torch.randint(0, 3, (2, 50, 70))
    out = model(x)
    assert isinstance(out, ModelOutput) and out.output.shape == (2, 3, 50, 70)
    loss = torch.nn.functional.cross_entropy(out.output, y)
    loss.backward()
    assert all(p.grad is not None for p in model.parameters() if p.requires_grad)
    regression = factory.build_model("regression")
    assert regression(torch.randn(1, 6, 64, 40)).output.shape == (1, 64, 40)
