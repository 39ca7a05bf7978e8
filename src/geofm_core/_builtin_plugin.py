"""The ``geofm`` source: the core's own components, registered like any plugin's.

Each table lists ``(kind, name, "module:attr", description)``; nothing is imported
until a component is built.
"""

from __future__ import annotations

from geofm_core.hookspecs import RegisterCallback, hookimpl

ComponentTable = tuple[tuple[str, str, str, str], ...]

#: Necks, decoders, heads and model factories of ``geofm_core.models``.
MODEL_COMPONENTS: ComponentTable = (
    ("neck", "select_indices", "geofm_core.models.necks:SelectIndices",
     "Keep the features at the given indices"),
    ("neck", "reshape_tokens_to_image", "geofm_core.models.necks:ReshapeTokensToImage",
     "Token sequences (B, [1+]T*h*w, C) to feature maps (B, C*T, h, w), non-square grids"),
    ("neck", "interpolate_to_pyramidal", "geofm_core.models.necks:InterpolateToPyramidal",
     "Upsample same-resolution features into a pyramid (scale_factor per level)"),
    ("neck", "learned_interpolate_to_pyramidal",
     "geofm_core.models.necks:LearnedInterpolateToPyramidal",
     "4 same-resolution features to a pyramid at 4x, 2x, 1x, 0.5x with learned layers"),
    ("neck", "maxpool_to_pyramidal", "geofm_core.models.necks:MaxpoolToPyramidal",
     "Max-pool same-resolution features into a pyramid"),
    ("neck", "aggregate_tokens", "geofm_core.models.necks:AggregateTokens",
     "Merge several features into one (mean, max, sum or concat)"),
    ("neck", "permute_dims", "geofm_core.models.necks:PermuteDims",
     "Permute the dimensions of every feature"),
    ("neck", "add_bottleneck_layer", "geofm_core.models.necks:AddBottleneckLayer",
     "Append the last feature with its channels halved by a 1x1 conv"),
    ("decoder", "fcn", "geofm_core.models.decoders:FCNDecoder",
     "MMSeg's FCN head: conv-BN-ReLU blocks on one level"),
    ("decoder", "upscale_fcn", "geofm_core.models.decoders:UpscaleFCNDecoder",
     "2x transposed-conv blocks with LayerNorm and GELU on one level (TerraTorch's FCN)"),
    ("decoder", "identity", "geofm_core.models.decoders:IdentityDecoder",
     "Pass one feature through unchanged"),
    ("decoder", "linear", "geofm_core.models.decoders:LinearDecoder",
     "Per-pixel linear map (1x1 conv) of one level, optional pixel-shuffle upsampling"),
    ("decoder", "mlp", "geofm_core.models.decoders:MLPDecoder",
     "Per-pixel MLP (1x1 convs) on one level"),
    ("head", "segmentation", "geofm_core.models.heads:SegmentationHead",
     "Optional conv blocks, dropout and a 1x1 conv to class logits"),
    ("head", "regression", "geofm_core.models.heads:RegressionHead",
     "Optional learned upscaling and conv blocks, a 1x1 conv, a final activation"),
    ("head", "classification", "geofm_core.models.heads:ClassificationHead",
     "Optional hidden linear layers with dropout, then class logits"),
    ("model_factory", "encoder_decoder", "geofm_core.models.factory:EncoderDecoderFactory",
     "Backbone, necks, decoder and head composed by name, checked at build time"),
    ("model_factory", "change_detection", "geofm_core.models.change:ChangeDetectionFactory",
     "Siamese change detection: one backbone on both dates, fused features, any decoder"),
    ("model_factory", "mae", "geofm_core.models.mae:MAEFactory",
     "Masked autoencoder: a backbone by name and the MAE decoder its plugin offers"),
    ("model_factory", "detection", "geofm_core.models.detection:DetectionFactory",
     "Faster R-CNN, RetinaNet, FCOS or Mask R-CNN (torchvision) on any backbone + FPN"),
)

#: Losses of ``geofm_core.tasks.losses``.
LOSS_COMPONENTS: ComponentTable = (
    ("loss", "ce", "geofm_core.tasks.losses:CrossEntropyLoss", "Cross-entropy on class logits"),
    ("loss", "focal", "geofm_core.tasks.losses:FocalLoss", "Multi-class focal loss"),
    ("loss", "dice", "geofm_core.tasks.losses:DiceLoss", "Soft Dice loss over present classes"),
    ("loss", "jaccard", "geofm_core.tasks.losses:JaccardLoss", "Soft Jaccard (IoU) loss"),
    ("loss", "lovasz", "geofm_core.tasks.losses:LovaszLoss", "Lovasz-softmax loss"),
    ("loss", "bce", "geofm_core.tasks.losses:BCELoss", "Binary cross-entropy on logits"),
    ("loss", "mse", "geofm_core.tasks.losses:MSELoss", "Mean squared error, NaN targets left out"),
    ("loss", "mae", "geofm_core.tasks.losses:MAELoss", "Mean absolute error, NaN targets left out"),
    ("loss", "rmse", "geofm_core.tasks.losses:RMSELoss", "Root mean squared error"),
    ("loss", "huber", "geofm_core.tasks.losses:HuberLoss", "Huber loss, NaN targets left out"),
)


@hookimpl
def geofm_register_components(register: RegisterCallback) -> None:
    """Register the core's necks, decoders, heads, losses and model factories."""
    for kind, name, target, description in MODEL_COMPONENTS + LOSS_COMPONENTS:
        register(kind, name, target, description=description)
