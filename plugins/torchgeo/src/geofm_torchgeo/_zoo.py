"""Facts about TorchGeo's models and weight sets, as plain data (no torch).

A hand-written subset; the generated zoo (one entry per model and weight set of
``torchgeo.models``) replaces it with the same three names:

* ``MODELS``: torchgeo model name -> :class:`geofm_core.metadata.ComponentMetadata`
  fields, ``weights`` holding one mapping per weight set (``name`` is the weights
  enum member).
* ``DESCRIPTIONS``: torchgeo model name -> one line for listings.
* ``TERRATORCH_NAMES``: TerraTorch backbone name -> (torchgeo model, weight set or None).
"""

from __future__ import annotations

from typing import Any

_S2_ALL = (
    "B1", "B2", "B3", "B4", "B5", "B6", "B7", "B8", "B8A", "B9", "B10", "B11", "B12",
)
_S2_RGB = ("B4", "B3", "B2")
_SATLAS_S2_MS = ("B4", "B3", "B2", "B5", "B6", "B7", "B8", "B11", "B12")
_S1 = ("VV", "VH")
_SSL4EO = "https://github.com/zhu-xlab/SSL4EO-S12"


def _ws(name: str, bands: tuple[str, ...], dataset: str, method: str,
        modalities: tuple[str, ...] = ("multispectral",)) -> dict[str, Any]:
    return {"name": name, "bands": bands, "modalities": modalities, "dataset": dataset,
            "method": method}


MODELS: dict[str, dict[str, Any]] = {
    "resnet18": {
        "family": "ResNet",
        "weights": [
            _ws("SENTINEL2_ALL_MOCO", _S2_ALL, "SSL4EO-S12", "moco"),
            _ws("SENTINEL2_RGB_MOCO", _S2_RGB, "SSL4EO-S12", "moco", ("rgb",)),
        ],
    },
    "resnet50": {
        "family": "ResNet",
        "weights": [
            _ws("SENTINEL2_ALL_MOCO", _S2_ALL, "SSL4EO-S12", "moco"),
            _ws("SENTINEL2_SI_MS_SATLAS", _SATLAS_S2_MS, "SatlasPretrain", "supervised"),
            _ws("SENTINEL1_ALL_MOCO", ("VV", "VH"), "SSL4EO-S12", "moco", ("sar",)),
        ],
    },
    "vit_small_patch16_224": {
        "family": "ViT", "patch_size": 16, "image_size": 224,
        "weights": [
            _ws("SENTINEL2_ALL_MOCO", _S2_ALL, "SSL4EO-S12", "moco"),
            _ws("SENTINEL2_ALL_DINO", _S2_ALL, "SSL4EO-S12", "dino"),
        ],
    },
    "swin_v2_t": {
        "family": "Swin",
        "weights": [
            _ws("SENTINEL2_SI_MS_SATLAS", _SATLAS_S2_MS, "SatlasPretrain", "supervised"),
            _ws("SENTINEL2_SI_RGB_SATLAS", _S2_RGB, "SatlasPretrain", "supervised", ("rgb",)),
        ],
    },
    "swin_v2_b": {
        "family": "Swin",
        "weights": [
            _ws("SENTINEL2_MI_MS_SATLAS", _SATLAS_S2_MS, "SatlasPretrain", "supervised"),
        ],
    },
    "dofa_base_patch16_224": {
        "family": "DOFA", "patch_size": 16, "image_size": 224,
        "wavelength_conditioned": True, "any_bands": True,
        "weights": [
            {"name": "DOFA_MAE", "modalities": ("multispectral", "sar", "hyperspectral"),
             "dataset": "SatlasPretrain, Five-Billion-Pixels, HySpecNet-11k", "method": "mae"},
        ],
    },
    "dofa_small_patch16_224": {
        "family": "DOFA", "patch_size": 16, "image_size": 224,
        "wavelength_conditioned": True, "any_bands": True,
    },
    "resnet152": {
        "family": "ResNet",
        "weights": [
            {"name": "SENTINEL2_MI_MS_SATLAS", "bands": _SATLAS_S2_MS},
            {"name": "SENTINEL2_MI_RGB_SATLAS", "bands": _S2_RGB},
            {"name": "SENTINEL2_SI_MS_SATLAS", "bands": _SATLAS_S2_MS},
            {"name": "SENTINEL2_SI_RGB_SATLAS", "bands": _S2_RGB},
        ],
    },
    "vit_base_patch16_224": {
        "family": "ViT", "patch_size": 16, "image_size": 224,
        "weights": [
            {"name": "SENTINEL2_ALL_MAE", "bands": _S2_ALL},
            {"name": "SENTINEL2_ALL_FGMAE", "bands": _S2_ALL},
            {"name": "SENTINEL1_GRD_MAE", "bands": _S1},
            {"name": "SENTINEL1_GRD_FGMAE", "bands": _S1},
        ],
    },
    "vit_large_patch16_224": {
        "family": "ViT", "patch_size": 16, "image_size": 224,
        "weights": [
            {"name": "SENTINEL2_ALL_CLOSP", "bands": _S2_ALL},
            {"name": "SENTINEL2_ALL_MAE", "bands": _S2_ALL},
            {"name": "SENTINEL2_ALL_FGMAE", "bands": _S2_ALL},
            {"name": "SENTINEL1_GRD_CLOSP", "bands": _S1},
            {"name": "SENTINEL1_GRD_MAE", "bands": _S1},
            {"name": "SENTINEL1_GRD_FGMAE", "bands": _S1},
        ],
    },
    "vit_huge_patch14_224": {
        "family": "ViT", "patch_size": 14, "image_size": 224,
        "weights": [
            {"name": "SENTINEL2_ALL_MAE", "bands": _S2_ALL},
            {"name": "SENTINEL2_ALL_FGMAE", "bands": _S2_ALL},
            {"name": "SENTINEL1_GRD_MAE", "bands": _S1},
            {"name": "SENTINEL1_GRD_FGMAE", "bands": _S1},
        ],
    },
    "vit_small_patch14_dinov2": {
        "family": "ViT", "patch_size": 14, "image_size": 518,
        "weights": [
            {"name": "SENTINEL2_ALL_SOFTCON", "bands": _S2_ALL},
            {"name": "SENTINEL1_GRD_SOFTCON", "bands": _S1},
        ],
    },
    "vit_base_patch14_dinov2": {
        "family": "ViT", "patch_size": 14, "image_size": 518,
        "weights": [
            {"name": "SENTINEL2_ALL_SOFTCON", "bands": _S2_ALL},
            {"name": "SENTINEL1_GRD_SOFTCON", "bands": _S1},
        ],
    },
    "swin_t": {
        "family": "Swin",
        "weights": [
            {"name": "CITYSCAPES_SEMSEG"},
        ],
    },
    "swin_s": {
        "family": "Swin",
        "weights": [
            {"name": "CITYSCAPES_SEMSEG"},
        ],
    },
    "swin_b": {
        "family": "Swin",
        "weights": [
            {"name": "CITYSCAPES_SEMSEG"},
        ],
    },
    "dofa_large_patch16_224": {
        "family": "DOFA", "patch_size": 16, "image_size": 224,
        "wavelength_conditioned": True, "any_bands": True,
        "weights": [
            {"name": "DOFA_MAE"},
        ],
    },
    "dofa_huge_patch14_224": {
        "family": "DOFA", "patch_size": 14, "image_size": 224,
        "wavelength_conditioned": True, "any_bands": True,
    },
}

DESCRIPTIONS: dict[str, str] = {
    "resnet18": "ResNet-18 (timm) with TorchGeo's SSL4EO weights",
    "resnet50": "ResNet-50 (timm) with TorchGeo's SSL4EO, SatlasPretrain and other weights",
    "vit_small_patch16_224": "ViT-S/16 (timm) with TorchGeo's SSL4EO weights",
    "swin_v2_t": "Swin V2 tiny (torchvision) with SatlasPretrain weights",
    "swin_v2_b": "Swin V2 base (torchvision) with SatlasPretrain weights",
    "dofa_base_patch16_224": "DOFA ViT-B/16: wavelength-conditioned, any bands",
    "dofa_small_patch16_224": "DOFA ViT-S/16: wavelength-conditioned, no published weights",
    "resnet152": "ResNet-152 (timm) with SatlasPretrain weights",
    "vit_base_patch16_224": "ViT-B/16 (timm) with TorchGeo's SSL4EO MAE weights",
    "vit_large_patch16_224": "ViT-L/16 (timm) with TorchGeo's SSL4EO and CLOSP weights",
    "vit_huge_patch14_224": "ViT-H/14 (timm) with TorchGeo's SSL4EO MAE weights",
    "vit_small_patch14_dinov2": "ViT-S/14 DINOv2 (timm) with SoftCon weights",
    "vit_base_patch14_dinov2": "ViT-B/14 DINOv2 (timm) with SoftCon weights",
    "swin_t": "Swin tiny (torchvision) with Cityscapes weights",
    "swin_s": "Swin small (torchvision) with Cityscapes weights",
    "swin_b": "Swin base (torchvision) with Cityscapes weights",
    "dofa_large_patch16_224": "DOFA ViT-L/16: wavelength-conditioned, any bands",
    "dofa_huge_patch14_224": "DOFA ViT-H/14: wavelength-conditioned, no published weights",
}

TERRATORCH_NAMES: dict[str, tuple[str, str | None]] = {
    "ssl4eos12_resnet50_sentinel2_all_moco": ("resnet50", "SENTINEL2_ALL_MOCO"),
    "satlas_swin_t_sentinel2_si_ms": ("swin_v2_t", "SENTINEL2_SI_MS_SATLAS"),
    "satlas_swin_b_sentinel2_mi_ms": ("swin_v2_b", "SENTINEL2_MI_MS_SATLAS"),
    "dofa_base_patch16_224": ("dofa_base_patch16_224", None),
    "dofa_small_patch16_224": ("dofa_small_patch16_224", None),
    "dofa_large_patch16_224": ("dofa_large_patch16_224", None),
}
