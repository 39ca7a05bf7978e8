"""Published facts about the Clay encoders: architectures, official weight files, sizes.

A light module (no torch): the plugin's listing, the converter and the CLI read it.
Architectures are those of Clay's ``clay_mae_tiny/small/base/large`` (v1.5) and of the
v1 base encoder; parameter counts are the encoders' (the MAE decoder, the teacher and
its projection are not part of a fine-tuned model).
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["IMAGE_SIZE", "LICENSE", "PATCH_SIZE", "VARIANTS", "ClayVariant", "WeightsFile"]

#: Every Clay encoder cuts 8 x 8 pixel patches.
PATCH_SIZE = 8

#: Clay was pre-trained on 256 x 256 chips (any multiple of the patch works).
IMAGE_SIZE = 256

#: The licence Clay's code and weights are published under.
LICENSE = "Apache-2.0"


@dataclass(frozen=True)
class WeightsFile:
    """An official Lightning checkpoint on the Hugging Face Hub (``model.encoder.*`` keys)."""

    repo_id: str
    filename: str

    @property
    def url(self) -> str:
        """The file's download address."""
        return f"https://huggingface.co/{self.repo_id}/resolve/main/{self.filename}"


@dataclass(frozen=True)
class ClayVariant:
    """Architecture of one Clay encoder and its official weights, if any.

    Attributes:
        version: ``"v1"`` or ``"v1.5"``.
        dim: Token width.
        depth: Transformer blocks.
        heads: Attention heads.
        dim_head: Width of each head (``heads * dim_head`` may differ from ``dim``).
        mlp_ratio: Hidden width of the feed-forward layer over ``dim``.
        parameters: Parameters of the encoder (TerraTorch's count, see the tests).
        weights: The official checkpoint, or ``None`` (random init only).
        description: One line for listings.
    """

    version: str
    dim: int
    depth: int
    heads: int
    dim_head: int
    mlp_ratio: float
    parameters: int
    weights: WeightsFile | None
    description: str


_V1 = WeightsFile("made-with-clay/Clay-legacy", "v1/clay-v1-base.ckpt")
_V15 = WeightsFile("made-with-clay/Clay", "v1.5/clay-v1.5.ckpt")

#: Registered name -> variant.
VARIANTS: dict[str, ClayVariant] = {
    "clay_v1_base": ClayVariant(
        "v1", 768, 12, 12, 64, 4.0, 92_102_144, _V1,
        "Clay v1 base encoder (ViT-B, patch 8, wavelength-conditioned), 92M"),
    "clay_v1_5_tiny": ClayVariant(
        "v1.5", 192, 6, 4, 48, 2.0, 4_030_592, None,
        "Clay v1.5 tiny encoder (random init: no published weights), 4M"),
    "clay_v1_5_small": ClayVariant(
        "v1.5", 384, 6, 6, 64, 2.0, 10_957_568, None,
        "Clay v1.5 small encoder (random init: no published weights), 11M"),
    "clay_v1_5_base": ClayVariant(
        "v1.5", 768, 12, 12, 64, 4.0, 92_102_144, None,
        "Clay v1.5 base encoder (random init: no published weights), 92M"),
    "clay_v1_5_large": ClayVariant(
        "v1.5", 1024, 24, 16, 64, 4.0, 311_442_944, _V15,
        "Clay v1.5 large encoder (ViT-L, patch 8, wavelength-conditioned), 311M"),
}
