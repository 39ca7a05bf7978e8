"""The core's own necks and decoders pass the contracts plugins use."""

from typing import ClassVar

from geofm_core.testing import DecoderContract, NeckContract


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
