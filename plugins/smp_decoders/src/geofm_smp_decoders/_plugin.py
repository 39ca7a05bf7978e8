"""Plugin module of the ``smp`` source: registers components by name, imports nothing heavy.

The decoders and a few encoders are registered up front; any other smp encoder name
(``smp:<encoder>``) is resolved on first use through ``geofm_resolve_component``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from geofm_core import RegisterCallback, hookimpl

if TYPE_CHECKING:
    from geofm_core.convert.rules import ConversionRules

_D = "geofm_smp_decoders.decoders:"
_E = "geofm_smp_decoders.encoders:"

#: Encoders registered up front: cheap to test and commonly used; others resolve on use.
LISTED_ENCODERS: tuple[str, ...] = (
    "resnet18", "resnet34", "resnet50", "efficientnet-b0", "mobilenet_v2", "mit_b0",
)

#: smp's pretrained weight tags of the listed encoders (``weights=`` of ``SmpEncoder``),
#: as segmentation_models_pytorch 0.6 publishes them on the Hugging Face Hub.
LISTED_WEIGHTS: dict[str, tuple[str, ...]] = {
    "resnet18": ("imagenet", "ssl", "swsl"), "resnet34": ("imagenet",),
    "resnet50": ("imagenet", "ssl", "swsl"), "efficientnet-b0": ("imagenet", "advprop"),
    "mobilenet_v2": ("imagenet",), "mit_b0": ("imagenet",),
}

#: The pretraining data of smp's weight tags (all RGB photographs).
TAG_DATASETS: dict[str, str] = {
    "imagenet": "ImageNet", "advprop": "ImageNet (AdvProp)",
    "ssl": "YFCC100M, fine-tuned on ImageNet", "swsl": "IG-1B, fine-tuned on ImageNet",
    "instagram": "Instagram, fine-tuned on ImageNet", "noisy-student": "ImageNet + JFT",
    "noisy-student-475": "ImageNet + JFT", "imagenet+5k": "ImageNet-5k",
    "imagenet+background": "ImageNet + background class",
}


def encoder_metadata(name: str, tags: tuple[str, ...]) -> dict[str, Any]:
    """Metadata of the smp encoder ``name`` with the weight tags ``tags``.

    smp adapts the first convolution to any number of bands; its weights are RGB
    photographs. smp's documentation states no licence for them, hence ``unknown``.
    """
    return {
        "any_bands": True,
        "modalities": ("rgb",) if tags else (),
        "weights": tuple(
            {"name": tag, "bands": ("RED", "GREEN", "BLUE"), "modalities": ("rgb",),
             "url": f"smp-hub/{name}.{tag}", "license": "unknown",
             "dataset": TAG_DATASETS.get(tag, "")}
            for tag in tags
        ),
    }


#: (kind, name, target, description) of every component of this plugin.
COMPONENTS: tuple[tuple[str, str, str, str], ...] = (
    *(
        ("backbone", name, f"{_E}{name}",
         f"smp {name} encoder (any number of bands); other smp encoders resolve as smp:<name>")
        for name in LISTED_ENCODERS
    ),
    ("decoder", "unet", f"{_D}SmpUnet", "smp U-Net decoder (output at 2x the finest level)"),
    ("decoder", "unetplusplus", f"{_D}SmpUnetPlusPlus", "smp U-Net++ decoder"),
    ("decoder", "fpn", f"{_D}SmpFPN", "smp FPN decoder on the last 4 levels"),
    ("decoder", "pspnet", f"{_D}SmpPSPNet", "smp PSPNet decoder (pyramid pooling, last level)"),
    ("decoder", "deeplabv3", f"{_D}SmpDeepLabV3", "smp DeepLabV3 decoder (ASPP, last level)"),
    ("decoder", "deeplabv3plus", f"{_D}SmpDeepLabV3Plus",
     "smp DeepLabV3+ decoder (ASPP fused with a high-resolution level)"),
    ("decoder", "linknet", f"{_D}SmpLinknet", "smp LinkNet decoder"),
    ("decoder", "manet", f"{_D}SmpMAnet", "smp MA-Net decoder (attention blocks)"),
    ("decoder", "pan", f"{_D}SmpPAN", "smp PAN decoder (pyramid attention network)"),
    ("decoder", "upernet", f"{_D}SmpUPerNet", "smp UPerNet decoder"),
    ("decoder", "segformer", f"{_D}SmpSegformer", "smp SegFormer decoder (all-MLP)"),
    ("decoder", "dpt", f"{_D}SmpDPT", "smp DPT decoder for ViT features"),
)


@hookimpl
def geofm_register_components(register: RegisterCallback) -> None:
    """Register this plugin's components under the ``smp`` source."""
    for kind, name, target, description in COMPONENTS:
        metadata = (encoder_metadata(name, LISTED_WEIGHTS.get(name, ()))
                    if kind == "backbone" else None)
        register(kind, name, target, description=description, metadata=metadata)


@hookimpl
def geofm_resolve_component(kind: str, source: str, name: str) -> Callable[..., Any] | None:
    """Resolve ``smp:<encoder>`` for smp encoders not registered up front."""
    if kind != "backbone":
        return None
    from geofm_smp_decoders.encoders import encoder_factory

    return encoder_factory(name)


@hookimpl
def geofm_component_metadata(kind: str, source: str, name: str) -> dict[str, Any] | None:
    """Metadata of an smp encoder resolved on use: its weight tags, read from smp."""
    if kind != "backbone":
        return None
    import segmentation_models_pytorch as smp

    if name.startswith("tu-"):  # timm's own tags: see geofm describe backbone timm:<name>
        return {"any_bands": True}
    encoder = smp.encoders.encoders.get(name)
    if encoder is None:
        return None
    return encoder_metadata(name, tuple(encoder.get("pretrained_settings") or ()))


@hookimpl
def geofm_conversion_rules(framework: str) -> ConversionRules | None:
    """TerraTorch names of this plugin's components, for ``geofm convert``.

    Smp decoders, UNetDecoder, SMPModelFactory: plain data, imported only when a conversion asks.
    """
    if framework != "terratorch":
        return None
    from geofm_smp_decoders._conversion import TERRATORCH

    return TERRATORCH
