"""The core's own components (source ``geofm``) pass the contracts plugins use."""

from typing import ClassVar

from geofm_core.models.factory import TASKS
from geofm_core.testing import (
    DecoderContract,
    HeadContract,
    LossContract,
    ModelFactoryContract,
    NeckContract,
)


class TestCoreNecks(NeckContract):
    source = "geofm"
    kwargs: ClassVar[dict] = {
        "select_indices": {"indices": [0, 2]},
        "permute_dims": {"new_order": [0, 1, 3, 2]},
        "aggregate_tokens": {"pooling": "concat"},
    }
    layouts: ClassVar[dict] = {
        "reshape_tokens_to_image": "tokens",
        "select_indices": "pyramid",
        "permute_dims": "pyramid",
        "add_bottleneck_layer": "pyramid",
    }
    input_channels: ClassVar[dict] = {
        "add_bottleneck_layer": [8, 16, 24, 32],
        "maxpool_to_pyramidal": [16, 16, 16],
    }


class TestCoreDecoders(DecoderContract):
    source = "geofm"
    kwargs: ClassVar[dict] = {
        "fcn": {"channels": 16},
        "mlp": {"channels": 16},
        "linear": {"channels": 8, "upsampling": 2},
    }


class TestCoreHeads(HeadContract):
    source = "geofm"
    # conv blocks, dropout and learned upscaling on, so the round trip covers batch norm
    kwargs: ClassVar[dict] = {
        "segmentation": {"channel_list": [8], "dropout": 0.1},
        "regression": {"channel_list": [8], "learned_upscale_layers": 1, "final_act": "relu"},
        "classification": {"dim_list": [8], "dropout": 0.1},
    }
    layouts: ClassVar[dict] = {"classification": "vector"}
    output_scales: ClassVar[dict] = {"regression": 2}


class TestCoreLosses(LossContract):
    source = "geofm"
    tasks: ClassVar[dict] = {
        "ce": ["segmentation", "classification"],
        "focal": ["segmentation", "classification"],
        "dice": ["segmentation"],
        "jaccard": ["segmentation"],
        "lovasz": ["segmentation"],
        "bce": ["multilabel"],
        "mse": ["regression"],
        "mae": ["regression"],
        "rmse": ["regression"],
        "huber": ["regression"],
    }
    kwargs: ClassVar[dict] = {"ce": {"label_smoothing": 0.1}, "huber": {"delta": 0.5}}


class TestCoreModelFactories(ModelFactoryContract):
    source = "geofm"
    in_chans = 4
    tasks: ClassVar[dict] = {"encoder_decoder": TASKS}
    skip: ClassVar[dict] = {"mae": "reconstruction needs a backbone with forward_masked, which "
                                   "no core backbone has: plugins/prithvi/tests/test_mae*.py",
                           "detection": "detectors take targets and return loss dicts / "
                                        "detections: tests/models/test_detection_model.py"}
    model_kwargs: ClassVar[dict] = {
        "encoder_decoder": {
            "backbone": "timm:test_resnet",
            "backbone_kwargs": {"in_chans": 4},
            "decoder": "geofm:fcn",
            "decoder_kwargs": {"channels": 8, "num_convs": 1},
            # an auxiliary head, so the round trip compares auxiliary outputs too
            "aux_decoders": [{"name": "aux", "decoder": "geofm:fcn",
                              "decoder_kwargs": {"channels": 8, "num_convs": 1}}],
        },
        "change_detection": {
            "backbone": "timm:test_resnet",
            "backbone_kwargs": {"in_chans": 4},
            "decoder": "geofm:fcn",
            "decoder_kwargs": {"channels": 8, "num_convs": 1},
            "fusion": "concat",
        },
    }
