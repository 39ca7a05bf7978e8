"""Contract tests for plugin components: subclass them and every registered component is tested.

There is one contract per kind: :class:`BackboneContract`, :class:`NeckContract`,
:class:`DecoderContract`, :class:`HeadContract`, :class:`LossContract` and
:class:`ModelFactoryContract`. A plugin's test module subclasses the ones for the kinds
it registers, sets ``source`` to its plugin source and gives tiny keyword arguments
where the defaults would be slow. The contract parametrizes its tests over
``get_registry().list(kind, f"{source}:*")``, so a component is tested by being
registered, without editing the tests::

    # plugins/acme/tests/test_contracts.py
    from typing import ClassVar

    from geofm_core.testing import BackboneContract, DecoderContract, LossContract

    class TestAcmeBackbones(BackboneContract):
        source = "acme"
        in_chans = 4                                     # bands of the test input
        default_kwargs: ClassVar[dict] = {"in_chans": 4}  # for every backbone
        kwargs: ClassVar[dict] = {"acme:big_vit": {"in_chans": 4, "depth": 1}}

    class TestAcmeDecoders(DecoderContract):
        source = "acme"
        kwargs: ClassVar[dict] = {"fancy": {"channels": 16}}   # bare or qualified names
        skip: ClassVar[dict] = {"acme:needs_gpu": "needs CUDA"}  # shown as skips

    class TestAcmeLosses(LossContract):
        source = "acme"
        tasks: ClassVar[dict] = {"tversky": ["segmentation"], "l1": ["regression"]}

What the contracts check, at a tiny size (64 x 96 pixels for images: non-square on
purpose):

* every kind: forward and backward run and gradients reach the parameters; a batch of
  one works (in eval mode, since batch norm cannot train on one value per channel);
  and a **save/load round trip**: the state dict, written with ``torch.save`` to a real
  file and read back with ``torch.load(weights_only=True)``, loads strictly into a
  fresh build with the same keyword arguments, which gives the same output in eval
  mode on the same input (a training-mode forward first moves batch-norm statistics,
  so buffers are covered too);
* backbones, necks and decoders: the declared channels (``out_channels``) match the
  real outputs; :class:`DecoderContract` also trains one step of a whole model
  (segmentation and regression) on a CNN and a ViT-style backbone built by
  ``geofm:encoder_decoder``;
* heads, built as ``head(in_channels, num_classes, **kwargs)``: the output shape on a
  map (B, C, h, w) or a pooled vector (B, C), whichever ``layouts`` gives the head;
* losses: a finite scalar on the predictions and targets of each of the loss's
  ``tasks``, a gradient to the prediction, and, for a loss that takes
  ``ignore_index``, ignored targets changing neither the value nor the gradient; the
  round trip is on the loss's config (its keyword arguments) and state dict;
* model factories: ``build_model(task, ...)`` for each task the factory declares
  (a ``tasks`` attribute) or the contract's ``tasks`` give: a model honouring the
  ``Model`` protocol, returning a ``ModelOutput`` of the task's shape, trained one step
  (gradients reach the parameters).

The helpers the contracts use (:class:`TinyViT`, :func:`make_features`,
:func:`train_step`, :func:`assert_round_trip`, ...) are exported for a plugin's own
tests, and so is the scaffolding for training on the real Sen1Floods11 chip
(:func:`sen1floods11_chips`, :func:`segmentation_fit_config`, :func:`fit_fast_dev_run`;
its water bodies as vector labels for detection, :func:`water_bodies`) and for
converting a TerraTorch config (:func:`terratorch_segmentation_config`,
:func:`convert_terratorch_config`). This package imports pytest and torch; it is meant
for test suites only.
"""

from __future__ import annotations

from geofm_core.testing._base import ComponentContract
from geofm_core.testing._change import RGB_SCENE, change_pairs, write_change_pair
from geofm_core.testing._components import BackboneContract, DecoderContract, NeckContract
from geofm_core.testing._factories import ModelFactoryContract
from geofm_core.testing._heads import HeadContract
from geofm_core.testing._losses import LossContract
from geofm_core.testing._real_data import (
    SEN1FLOODS11_CHIP,
    convert_terratorch_config,
    csv_trainer,
    fit_fast_dev_run,
    logged_metric_keys,
    segmentation_fit_config,
    sen1floods11_chips,
    shared_data,
    terratorch_segmentation_config,
)
from geofm_core.testing._tools import (
    TinyViT,
    assert_round_trip,
    assert_same_output,
    check_model_output,
    make_features,
    save_and_load,
    train_step,
)
from geofm_core.testing._water import WaterBodies, water_bodies

__all__ = [
    "RGB_SCENE",
    "SEN1FLOODS11_CHIP",
    "BackboneContract",
    "ComponentContract",
    "DecoderContract",
    "HeadContract",
    "LossContract",
    "ModelFactoryContract",
    "NeckContract",
    "TinyViT",
    "WaterBodies",
    "assert_round_trip",
    "assert_same_output",
    "change_pairs",
    "check_model_output",
    "convert_terratorch_config",
    "csv_trainer",
    "fit_fast_dev_run",
    "logged_metric_keys",
    "make_features",
    "save_and_load",
    "segmentation_fit_config",
    "sen1floods11_chips",
    "shared_data",
    "terratorch_segmentation_config",
    "train_step",
    "water_bodies",
    "write_change_pair",
]
