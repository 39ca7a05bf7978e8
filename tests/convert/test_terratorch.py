"""``geofm convert terratorch``: TerraTorch configs in their documented format, converted and fit.

The configs follow TerraTorch's examples (examples/confs/burn_scars.yaml,
sen1floods11_vit.yaml, the manufactured PrithviModelFactory regression config,
eurosat.yaml), with tiny backbones (``backbone_embed_dim`` / ``backbone_depth`` are
TerraTorch Prithvi kwargs too) so the four fits stay fast on two cores.
"""

from __future__ import annotations

import copy
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import rasterio
import yaml
from affine import Affine

from geofm_core.cli import main as geofm
from geofm_core.convert.book import Claim, rule_problems
from geofm_core.convert.rules import ComponentRule
from geofm_core.convert.terratorch import (
    convert_config,
    convert_file,
    render,
    rule_book,
)
from geofm_core.convert.terratorch.tables import (
    CORE_RULES,
    FACTORY_FILLED,
    HEAD_ARGS,
    HEADS,
    TASKS,
)
from geofm_core.errors import ConfigurationError

TRANSFORM = Affine(30.0, 0.0, 500000.0, 0.0, -30.0, 4000000.0)


def write_tif(path: Path, array: np.ndarray) -> None:
    arr = array if array.ndim == 3 else array[None]
    path.parent.mkdir(parents=True, exist_ok=True)
    with rasterio.open(path, "w", driver="GTiff", height=arr.shape[1], width=arr.shape[2],
                       count=arr.shape[0], dtype=arr.dtype, crs="EPSG:32617",
                       transform=TRANSFORM) as dst:
        dst.write(arr)


@pytest.fixture(scope="module")
def data_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Six-band chips: segmentation and regression pairs, and class folders."""
    root = tmp_path_factory.mktemp("terratorch_data")
    rng = np.random.default_rng(0)
    for i in range(4):
        image = rng.normal(0.2, 0.05, size=(6, 64, 64)).astype(np.float32)
        write_tif(root / "seg" / f"chip{i}_merged.tif", image)
        write_tif(root / "seg" / f"chip{i}.mask.tif", (image[3] > 0.2).astype(np.int16))
        extra = rng.integers(0, 3000, size=(11, 64, 64)).astype(np.int16)
        write_tif(root / "reg" / f"regression_{i:02d}_input.tif", extra)
        write_tif(root / "reg" / f"regression_{i:02d}_label.tif",
                  (extra[4] / 3000.0).astype(np.float32))
    for name in ("forest", "urban", "water"):
        for i in range(2):
            image = rng.normal(0.2, 0.05, size=(6, 32, 32)).astype(np.float32)
            write_tif(root / "cls" / name / f"{name}{i}.tif", image)
    return root


TRAINER = """
trainer:
  accelerator: cpu
  devices: 1
  max_epochs: 1
  logger:
    class_path: TensorBoardLogger
    init_args:
      save_dir: {out}
      name: converted
  callbacks:
    - class_path: RichProgressBar
    - class_path: LearningRateMonitor
      init_args:
        logging_interval: epoch
    - class_path: EarlyStopping
      init_args:
        monitor: val/loss
        patience: 40
  enable_checkpointing: false
  default_root_dir: {out}
"""

MEANS = """
    means: [0.2, 0.2, 0.2, 0.2, 0.2, 0.2]
    stds: [0.05, 0.05, 0.05, 0.05, 0.05, 0.05]
"""

# examples/confs/burn_scars.yaml, with a tiny Prithvi and the data above.
SEG_PRITHVI_UPERNET = """
seed_everything: 0
{trainer}
data:
  class_path: terratorch.datamodules.GenericNonGeoSegmentationDataModule
  init_args:
    batch_size: 2
    num_workers: 0
    dataset_bands: [BLUE, GREEN, RED, NIR_NARROW, SWIR_1, SWIR_2]
    output_bands: [BLUE, GREEN, RED, NIR_NARROW, SWIR_1, SWIR_2]
    rgb_indices: [2, 1, 0]
    train_transform:
      - class_path: albumentations.RandomCrop
        init_args:
          height: 32
          width: 32
      - class_path: albumentations.D4
      - class_path: ToTensorV2
    no_data_replace: 0
    no_label_replace: -1
    train_data_root: {root}/seg
    train_label_data_root: {root}/seg
    val_data_root: {root}/seg
    val_label_data_root: {root}/seg
    test_data_root: {root}/seg
    test_label_data_root: {root}/seg
    img_grep: "*_merged.tif"
    label_grep: "*.mask.tif"
{means}
    num_classes: 2
model:
  class_path: terratorch.tasks.SemanticSegmentationTask
  init_args:
    model_factory: EncoderDecoderFactory
    model_args:
      backbone: prithvi_eo_v2_300
      backbone_pretrained: false
      backbone_drop_path: 0.1
      backbone_embed_dim: 32
      backbone_depth: 4
      backbone_num_heads: 4
      backbone_bands: [BLUE, GREEN, RED, NIR_NARROW, SWIR_1, SWIR_2]
      necks:
        - name: SelectIndices
          indices: [0, 1, 2, 3]
        - name: ReshapeTokensToImage
        - name: LearnedInterpolateToPyramidal
      decoder: UperNetDecoder
      decoder_channels: 16
      head_channel_list: [8]
      head_dropout: 0.1
      num_classes: 2
    loss: dice
    plot_on_val: 2
    ignore_index: -1
    class_weights: [0.3, 0.7]
    freeze_backbone: false
    freeze_decoder: false
    tiled_inference_parameters:
      h_crop: 32
      h_stride: 24
      w_crop: 32
      w_stride: 24
      average_patches: true
optimizer:
  class_path: torch.optim.AdamW
  init_args:
    lr: 1.5e-5
    weight_decay: 0.05
lr_scheduler:
  class_path: ReduceLROnPlateau
  init_args:
    monitor: val/loss
"""

# examples/confs/sen1floods11_vit_smp.yaml style: timm encoder + smp decoder.
SEG_TIMM_SMP = """
{trainer}
data:
  class_path: GenericNonGeoSegmentationDataModule
  init_args:
    batch_size: 2
    num_workers: 0
    constant_scale: 1.0
    train_data_root: {root}/seg
    val_data_root: {root}/seg
    test_data_root: {root}/seg
    img_grep: "*_merged.tif"
    label_grep: "*.mask.tif"
    train_transform:
      - class_path: albumentations.HorizontalFlip
        init_args:
          p: 0.5
      - class_path: albumentations.RandomRotate90
      - class_path: ToTensorV2
{means}
    num_classes: 2
model:
  class_path: terratorch.tasks.SemanticSegmentationTask
  init_args:
    model_factory: EncoderDecoderFactory
    model_args:
      backbone: timm_resnet18
      backbone_pretrained: false
      backbone_in_chans: 6
      decoder: smp_Unet
      decoder_decoder_channels: [64, 32, 16, 8]
      num_classes: 2
    loss: ce
    lr: 1.0e-3
    optimizer: AdamW
    optimizer_hparams:
      weight_decay: 0.05
    scheduler: CosineAnnealingLR
    scheduler_hparams:
      T_max: 10
      interval: epoch
"""

# The manufactured PrithviModelFactory regression config of TerraTorch's tests.
REG_PRITHVI_FACTORY = """
{trainer}
data:
  class_path: GenericNonGeoPixelwiseRegressionDataModule
  init_args:
    batch_size: 2
    num_workers: 0
    train_transform:
      - class_path: albumentations.HorizontalFlip
        init_args:
          p: 0.5
      - class_path: albumentations.Rotate
        init_args:
          limit: 30
          p: 0.5
      - class_path: ToTensorV2
    dataset_bands: [0, BLUE, GREEN, RED, NIR_NARROW, SWIR_1, SWIR_2, 1, 2, 3, 4]
    output_bands: [BLUE, GREEN, RED, NIR_NARROW, SWIR_1, SWIR_2]
    rgb_indices: [2, 1, 0]
    train_data_root: {root}/reg
    train_label_data_root: {root}/reg
    val_data_root: {root}/reg
    val_label_data_root: {root}/reg
    test_data_root: {root}/reg
    test_label_data_root: {root}/reg
    img_grep: "regression*input*.tif"
    label_grep: "regression*label*.tif"
    means: [547.4, 898.5, 1020.9, 2665.5, 2340.6, 1610.1]
    stds: [411.5, 558.5, 815.9, 812.4, 1113.7, 1067.6]
    no_label_replace: -1
    no_data_replace: 0
model:
  class_path: terratorch.tasks.PixelwiseRegressionTask
  init_args:
    model_args:
      decoder: UperNetDecoder
      pretrained: false
      backbone: prithvi_eo_v1_100
      backbone_drop_path_rate: 0.3
      backbone_embed_dim: 32
      backbone_depth: 6
      backbone_num_heads: 4
      num_frames: 1
      decoder_channels: 16
      in_channels: 6
      bands: [BLUE, GREEN, RED, NIR_NARROW, SWIR_1, SWIR_2]
      head_dropout: 0.2
      head_final_act: torch.nn.ReLU
      head_learned_upscale_layers: 2
    loss: rmse
    ignore_index: -1
    freeze_backbone: true
    freeze_decoder: false
    model_factory: PrithviModelFactory
"""

# examples/confs/eurosat.yaml style, with a timm backbone and the generic datamodule.
CLS_TIMM = """
{trainer}
data:
  class_path: terratorch.datamodules.GenericNonGeoClassificationDataModule
  init_args:
    batch_size: 2
    num_workers: 0
    train_data_root: {root}/cls
    val_data_root: {root}/cls
    test_data_root: {root}/cls
{means}
    num_classes: 3
    train_transform:
      - class_path: albumentations.VerticalFlip
      - class_path: ToTensorV2
model:
  class_path: terratorch.tasks.ClassificationTask
  init_args:
    model_factory: EncoderDecoderFactory
    model_args:
      backbone: timm_resnet18
      backbone_pretrained: false
      backbone_in_chans: 6
      decoder: IdentityDecoder
      head_dim_list: [16]
      head_dropout: 0.1
      num_classes: 3
    loss: ce
    freeze_backbone: false
    class_names: [forest, urban, water]
"""


def terratorch_config(template: str, data_root: Path, out: Path) -> dict[str, Any]:
    trainer = TRAINER.format(out=out).strip("\n")
    text = template.format(trainer=trainer, root=data_root, means=MEANS.strip("\n"))
    loaded: dict[str, Any] = yaml.safe_load(text)
    return loaded


def convert_and_fit(template: str, data_root: Path, tmp_path: Path) -> dict[str, Any]:
    source = tmp_path / "terratorch.yaml"
    source.write_text(yaml.safe_dump(terratorch_config(template, data_root, tmp_path)))
    target = tmp_path / "converted.yaml"
    assert geofm(["convert", "terratorch", str(source), "-o", str(target)]) == 0
    assert geofm(["fit", "-c", str(target), "--trainer.fast_dev_run", "1"]) == 0
    converted: dict[str, Any] = yaml.safe_load(target.read_text())
    return converted


# ------------------------------------------------------------------------- fits


def test_segmentation_prithvi_necks_upernet_converts_and_fits(
        data_root: Path, tmp_path: Path) -> None:
    config = convert_and_fit(SEG_PRITHVI_UPERNET, data_root, tmp_path)
    model = config["model"]
    assert model["class_path"] == "SemanticSegmentationTask"
    args = model["init_args"]["model_args"]
    assert args["backbone"] == "prithvi:prithvi_eo_v2_300"
    assert args["backbone_kwargs"] == {
        "pretrained": False, "drop_path_rate": 0.1, "embed_dim": 32, "depth": 4,
        "num_heads": 4, "bands": ["BLUE", "GREEN", "RED", "NIR_NARROW", "SWIR_1", "SWIR_2"],
        "position_grid": "interpolate", "drop_path_schedule": "uniform"}
    # TerraTorch pads a patch backbone's input to twice the patch, reflected, both sides.
    assert (args["input_multiple"], args["pad_mode"], args["pad_centred"]) == (32, "reflect", True)
    assert [n["name"] for n in args["necks"]] == [
        "geofm:select_indices", "geofm:reshape_tokens_to_image",
        "geofm:learned_interpolate_to_pyramidal"]
    assert args["decoder"] == "upernet:upernet"
    assert args["decoder_kwargs"] == {"channels": 16, "align_corners": True}
    assert args["head_kwargs"] == {"channel_list": [8], "dropout": 0.1,
                                   "conv_block": "conv_bias_relu"}
    init = model["init_args"]
    assert init["tiled_inference"] == {"crop": 32, "stride": 24, "blend": "ramp"}
    assert init["loss"] == "dice" and init["class_weights"] == [0.3, 0.7]
    # the top-level optimizer / lr_scheduler (copied) replace the task's optimizer settings
    assert "optimizer" not in init and "scheduler" not in init
    data = config["data"]
    assert data["class_path"] == "GeoTiffSegmentationDataModule"
    assert data["init_args"]["img_pattern"] == "*_merged.tif"
    assert data["init_args"]["label_pattern"] == "*.mask.tif"
    assert data["init_args"]["ignore_index"] == -1
    assert data["init_args"]["train_augmentations"] == [{"random_crop": 32}, "hflip", "rot90"]
    assert config["optimizer"]["class_path"] == "torch.optim.AdamW"  # copied unchanged
    assert config["lr_scheduler"]["init_args"] == {"monitor": "val/loss"}


def test_segmentation_timm_smp_decoder_converts_and_fits(data_root: Path,
                                                          tmp_path: Path) -> None:
    config = convert_and_fit(SEG_TIMM_SMP, data_root, tmp_path)
    init = config["model"]["init_args"]
    args = init["model_args"]
    assert args["backbone"] == "timm:resnet18"
    assert args["backbone_kwargs"] == {"pretrained": False, "in_chans": 6}
    assert args["decoder"] == "smp:unet"
    assert args["decoder_kwargs"] == {"decoder_channels": [64, 32, 16, 8]}
    assert args["necks"] == [{"name": "geofm:select_indices", "indices": [-4, -3, -2, -1]}]
    assert init["optimizer"] == "AdamW" and init["scheduler"] == "CosineAnnealingLR"
    assert init["scheduler_hparams"] == {"T_max": 10}
    assert config["data"]["init_args"]["train_augmentations"] == ["hflip", {"rot90": 0.5}]


def test_regression_prithvi_model_factory_converts_and_fits(data_root: Path,
                                                            tmp_path: Path) -> None:
    config = convert_and_fit(REG_PRITHVI_FACTORY, data_root, tmp_path)
    init = config["model"]["init_args"]
    args = init["model_args"]
    assert config["model"]["class_path"] == "PixelwiseRegressionTask"
    assert init["model_factory"] == "geofm:encoder_decoder"
    assert args["backbone"] == "prithvi:prithvi_eo_v1_100"
    assert args["backbone_kwargs"]["bands"] == [
        "BLUE", "GREEN", "RED", "NIR_NARROW", "SWIR_1", "SWIR_2"]
    assert args["backbone_kwargs"]["pretrained"] is False
    assert args["backbone_kwargs"]["num_frames"] == 1
    # the legacy factory's implicit neck, made explicit (and 4 of the 6 levels for UperNet)
    assert args["necks"] == [
        {"name": "geofm:select_indices", "indices": [0, 2, 3, 5]},
        {"name": "geofm:reshape_tokens_to_image"},
    ]
    assert args["head_kwargs"] == {"dropout": 0.2, "final_act": "relu",
                                   "learned_upscale_layers": 2}
    assert init["loss"] == "rmse" and init["freeze_backbone"] is True
    data = config["data"]["init_args"]
    assert config["data"]["class_path"] == "GeoTiffRegressionDataModule"
    assert data["output_bands"] == [1, 2, 3, 4, 5, 6] and "dataset_bands" not in data
    assert data["train_augmentations"] == ["hflip"]


def test_classification_timm_converts_and_fits(data_root: Path, tmp_path: Path) -> None:
    config = convert_and_fit(CLS_TIMM, data_root, tmp_path)
    init = config["model"]["init_args"]
    assert config["model"]["class_path"] == "ClassificationTask"
    assert init["model_args"]["decoder"] == "geofm:identity"
    assert init["model_args"]["head_kwargs"] == {"dim_list": [16], "dropout": 0.1}
    assert init["class_names"] == ["forest", "urban", "water"]
    data = config["data"]
    assert data["class_path"] == "GeoTiffClassificationDataModule"
    assert data["init_args"]["no_data_replace"] == 0  # TerraTorch's default, written out
    assert data["init_args"]["train_augmentations"] == ["vflip"]


SHARED = Path(__file__).resolve().parents[2] / ".." / "shared" / "data" / "sen1floods11"

# examples/confs/sen1floods11_vit.yaml on the real Sen1Floods11 chip (tiny backbone).
SEN1FLOODS11 = """
{trainer}
data:
  class_path: terratorch.datamodules.GenericNonGeoSegmentationDataModule
  init_args:
    batch_size: 16
    num_workers: 0
    constant_scale: 0.0001
    dataset_bands: [COASTAL_AEROSOL, BLUE, GREEN, RED, RED_EDGE_1, RED_EDGE_2, RED_EDGE_3,
                    NIR_BROAD, NIR_NARROW, WATER_VAPOR, CIRRUS, SWIR_1, SWIR_2]
    output_bands: [BLUE, GREEN, RED, NIR_NARROW, SWIR_1, SWIR_2]
    rgb_indices: [2, 1, 0]
    train_transform:
      - class_path: albumentations.RandomCrop
        init_args: {{height: 64, width: 64}}
      - class_path: ToTensorV2
    train_data_root: {root}
    train_label_data_root: {root}
    val_data_root: {root}
    val_label_data_root: {root}
    train_split: {split}
    val_split: {split}
    img_grep: "*_S2Hand.tif"
    label_grep: "*_LabelHand.tif"
    no_label_replace: -1
    no_data_replace: 0
    means: [0.1412956, 0.13795798, 0.12353792, 0.30902815, 0.2044958, 0.11912015]
    stds: [0.07406382, 0.07370365, 0.08692279, 0.11798815, 0.09772074, 0.07659938]
    num_classes: 2
model:
  class_path: terratorch.tasks.SemanticSegmentationTask
  init_args:
    model_factory: EncoderDecoderFactory
    model_args:
      backbone: prithvi_eo_v2_300
      backbone_pretrained: false
      backbone_embed_dim: 32
      backbone_depth: 4
      backbone_num_heads: 4
      backbone_bands: [BLUE, GREEN, RED, NIR_NARROW, SWIR_1, SWIR_2]
      necks:
        - name: SelectIndices
          indices: [0, 1, 2, 3]
        - name: ReshapeTokensToImage
        - name: LearnedInterpolateToPyramidal
      decoder: UNetDecoder
      decoder_channels: [32, 16, 16, 8]
      head_dropout: 0.1
      num_classes: 2
    loss: dice
    aux_heads:
      - name: aux_head
        decoder: FCNDecoder
        decoder_args:
          decoder_channels: 16
          decoder_in_index: -1
          decoder_num_convs: 2
          head_dropout: 0.1
    aux_loss:
      aux_head: 1.0
    ignore_index: -1
optimizer:
  class_path: torch.optim.AdamW
  init_args:
    lr: 1.e-4
    weight_decay: 0.1
"""


def test_sen1floods11_example_on_the_real_chip_converts_and_fits(tmp_path: Path) -> None:
    if not (SHARED / "Spain_7370579_S2Hand.tif").is_file():
        pytest.skip(f"shared test data not found at {SHARED}")
    split = tmp_path / "flood_train_data.txt"
    split.write_text("Spain_7370579\n")
    trainer = TRAINER.format(out=tmp_path).strip("\n")
    text = SEN1FLOODS11.format(trainer=trainer, root=SHARED.resolve(), split=split)
    source = tmp_path / "sen1floods11_vit.yaml"
    source.write_text(text)
    target = tmp_path / "converted.yaml"
    assert geofm(["convert", "terratorch", str(source), "-o", str(target)]) == 0
    converted = yaml.safe_load(target.read_text())
    args = converted["model"]["init_args"]["model_args"]
    assert args["decoder"] == "smp:unet"
    assert args["aux_decoders"] == [{"name": "aux_head", "decoder": "geofm:upscale_fcn",
                                     "decoder_kwargs": {"channels": 16, "in_index": -1,
                                                        "num_convs": 2},
                                     "head_kwargs": {"dropout": 0.1}}]
    assert converted["model"]["init_args"]["aux_loss"] == {"aux_head": 1.0}
    assert converted["data"]["init_args"]["train_split"] == str(split)
    assert geofm(["fit", "-c", str(target), "--trainer.fast_dev_run", "1"]) == 0


# ------------------------------------------------------------------------- listing


def test_unmappable_keys_are_listed_in_the_output_and_on_stderr(
        data_root: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    config = terratorch_config(REG_PRITHVI_FACTORY, data_root, tmp_path)
    init = config["model"]["init_args"]
    init["model_args"]["backbone_coords_encoding"] = ["time"]
    init["output_on_inference"] = ["prediction", "probabilities"]
    config["data"]["init_args"]["check_stackability"] = False
    config["trainer"]["callbacks"].append({"class_path": "terratorch.callbacks.CustomWriter"})
    config["out_dtype"] = "float32"
    source = tmp_path / "tt.yaml"
    source.write_text(yaml.safe_dump(config))
    out = tmp_path / "out.yaml"
    assert geofm(["convert", "terratorch", str(source), "-o", str(out)]) == 0
    err = capsys.readouterr().err
    text = out.read_text()
    header = text.split("\n\n", 1)[0]
    expected = [
        "model.init_args.model_args.backbone_coords_encoding",
        "model.init_args.output_on_inference",
        "data.init_args.check_stackability",
        "terratorch.callbacks.CustomWriter",
        "out_dtype",
        "albumentations.Rotate",
    ]
    for item in expected:
        assert item in header, item
        assert item in err, item
    assert all(line.startswith("#") for line in header.splitlines())
    converted = yaml.safe_load(text)
    assert "out_dtype" not in converted
    assert "coords_encoding" not in converted["model"]["init_args"]["model_args"][
        "backbone_kwargs"]
    callbacks = converted["trainer"]["callbacks"]
    assert all("terratorch" not in c["class_path"] for c in callbacks)


def test_every_dropped_key_is_reported() -> None:
    config = {
        "model": {"class_path": "terratorch.tasks.SemanticSegmentationTask", "init_args": {
            "model_factory": "EncoderDecoderFactory",
            "model_args": {"backbone": "timm_resnet18", "decoder": "ASPPSegmentationHead",
                           "num_classes": 2, "mystery_option": 1,
                           "necks": [{"name": "FeaturePyramidNetworkNeck"}]},
            "loss": "tversky",
        }},
        "data": {"class_path": "terratorch.datamodules.Landslide4SenseNonGeoDataModule",
                 "init_args": {"batch_size": 2}},
    }
    conversion = convert_config(config, "x.yaml")
    joined = "\n".join(conversion.unmapped)
    for item in ("ASPPSegmentationHead", "mystery_option", "FeaturePyramidNetworkNeck",
                 "tversky", "Landslide4SenseNonGeoDataModule"):
        assert item in joined, item
    # unknown parts are kept, not silently removed, so the user can fix them in place
    assert conversion.config["model"]["init_args"]["model_args"]["decoder"] == \
        "ASPPSegmentationHead"
    assert conversion.config["data"]["class_path"] == \
        "terratorch.datamodules.Landslide4SenseNonGeoDataModule"
    assert "NOT CONVERTED" in render(conversion)


def test_band_ranges_and_custom_names_become_positions() -> None:
    data = {"class_path": "terratorch.datamodules.GenericNonGeoSegmentationDataModule",
            "init_args": {"dataset_bands": [[0, 11]], "output_bands": [1, 2, 3, 8, 11],
                          "num_classes": 2, "img_grep": "*.tif", "label_grep": "*.tif"}}
    init = convert_config({"data": data}).config["data"]["init_args"]
    assert init["output_bands"] == [1, 2, 3, 8, 11] and "dataset_bands" not in init
    data["init_args"].update(dataset_bands=["MY_1", "MY_2", "BLUE"], output_bands=["MY_2", "BLUE"])
    init = convert_config({"data": data}).config["data"]["init_args"]
    assert init["output_bands"] == [1, 2]
    data["init_args"].update(dataset_bands=["BLUE", "GREEN"], output_bands=["GREEN"])
    init = convert_config({"data": data}).config["data"]["init_args"]
    assert init["dataset_bands"] == ["BLUE", "GREEN"] and init["output_bands"] == ["GREEN"]


def test_fcn_decoder_keeps_full_size_output_and_flip_maps() -> None:
    # examples/confs/multi_temporal_crop.yaml (legacy factory, 3 frames, rescale: false)
    config = {"model": {"class_path": "terratorch.tasks.SemanticSegmentationTask",
                        "init_args": {
        "model_factory": "PrithviModelFactory",
        "model_args": {"decoder": "FCNDecoder", "pretrained": False,
                       "backbone": "prithvi_vit_100", "in_channels": 6,
                       "bands": ["BLUE", "GREEN", "RED", "NIR_NARROW", "SWIR_1", "SWIR_2"],
                       "num_frames": 3, "rescale": False, "num_classes": 13,
                       "decoder_channels": 64, "head_channel_list": [32]}}},
              "data": {"class_path": "GenericNonGeoSegmentationDataModule", "init_args": {
        "num_classes": 13, "reduce_zero_label": True, "expand_temporal_dimension": True,
        "train_transform": [{"class_path": "albumentations.Flip"},
                            {"class_path": "ToTensorV2"}]}}}
    converted = convert_config(config).config
    args = converted["model"]["init_args"]["model_args"]
    assert args["backbone"] == "prithvi:prithvi_eo_v1_100"
    assert args["necks"] == [{"name": "geofm:reshape_tokens_to_image",
                              "effective_time_dim": 3}]
    # The same upsampling FCN as TerraTorch's, which needs no rescaling either.
    assert args["decoder"] == "geofm:upscale_fcn" and args["rescale"] is False
    data = converted["data"]["init_args"]
    assert data["train_augmentations"] == ["hflip", "vflip"]
    assert data["reduce_zero_label"] is True and data["ignore_index"] == -1
    assert data["expand_temporal_dimension"] is True


def test_aggregate_tokens_becomes_pooling_for_classification() -> None:
    config = {"model": {"class_path": "terratorch.tasks.ClassificationTask", "init_args": {
        "model_factory": "EncoderDecoderFactory",
        "model_args": {"backbone": "prithvi_eo_v2_tiny_tl", "decoder": "IdentityDecoder",
                       "num_classes": 4, "necks": [{"name": "AggregateTokens",
                                                    "pooling": "CLS"}]}}}}
    args = convert_config(config).config["model"]["init_args"]["model_args"]
    assert args["backbone"] == "prithvi:prithvi_eo_v2_tiny_tl"
    assert args["necks"] == [{"name": "geofm:select_indices", "indices": [-1]}]
    assert args["pooling"] == "cls"


def test_smp_decoder_args_and_legacy_names_map() -> None:
    config = {"model": {"class_path": "SemanticSegmentationTask", "init_args": {
        "model_factory": "EncoderDecoderFactory",
        "model_args": {"backbone": "prithvi_eo_tiny", "decoder": "smp_DeepLabV3Plus",
                       "decoder_decoder_atrous_rates": [6, 12, 18], "decoder_aux_params": {},
                       "num_classes": 3,
                       "necks": [{"name": "ReshapeTokensToImage"},
                                 {"name": "InterpolateToPyramidal", "scale_factor": 2}]}}}}
    conversion = convert_config(config)
    args = conversion.config["model"]["init_args"]["model_args"]
    assert args["backbone"] == "prithvi:prithvi_eo_v1_100"
    assert args["backbone_kwargs"] == {"embed_dim": 256, "depth": 4, "num_heads": 4,
                                       "position_grid": "interpolate",
                                       "drop_path_schedule": "uniform"}
    assert args["decoder"] == "smp:deeplabv3plus"
    assert args["decoder_kwargs"] == {"atrous_rates": [6, 12, 18]}
    assert args["necks"][1] == {"name": "geofm:interpolate_to_pyramidal", "scale_factor": 2}
    assert any("aux_params" in u for u in conversion.unmapped)


def build_task(config: dict[str, Any]) -> Any:
    """Instantiate the converted task from its init_args (builds the model)."""
    import geofm_core.tasks as tasks

    model = config["model"]
    return getattr(tasks, model["class_path"])(**model["init_args"])


def test_smp_model_factory_becomes_smp_backbone_and_decoder() -> None:
    # examples/confs/burnscars_smp.yaml (model part)
    config = {"model": {"class_path": "terratorch.tasks.SemanticSegmentationTask",
                        "init_args": {
        "model_factory": "SMPModelFactory",
        "model_args": {"model": "Unet", "backbone": "resnet18", "pretrained": False,
                       "in_channels": 6, "bands": ["BLUE", "GREEN", "RED", "NIR_NARROW",
                                                   "SWIR_1", "SWIR_2"],
                       "smp_decoder_channels": [32, 16, 16, 8, 8], "num_classes": 2},
        "loss": "dice", "optimizer": "AdamW", "scheduler": "ReduceLROnPlateau"}}}
    converted = convert_config(config).config
    args = converted["model"]["init_args"]["model_args"]
    assert args == {"backbone": "smp:resnet18", "backbone_kwargs": {"in_channels": 6},
                    "decoder": "smp:unet",
                    "decoder_kwargs": {"decoder_channels": [32, 16, 16, 8, 8]},
                    "num_classes": 2, "head_kwargs": {"kernel_size": 3}}
    import torch

    task = build_task(converted)
    output = task.model(torch.zeros(1, 6, 64, 64)).output
    assert tuple(output.shape) == (1, 2, 64, 64)


def test_timm_model_factory_becomes_timm_backbone_and_head() -> None:
    # examples/confs/forestnet_timm.yaml (model part)
    config = {"model": {"class_path": "terratorch.tasks.ClassificationTask", "init_args": {
        "model_factory": "TimmModelFactory",
        "model_args": {"backbone": "resnet18", "pretrained": False, "in_channels": 6,
                       "num_classes": 12}, "loss": "ce"}}}
    conversion = convert_config(config)
    args = conversion.config["model"]["init_args"]["model_args"]
    assert args == {"backbone": "timm:resnet18",
                    "backbone_kwargs": {"pretrained": False, "in_chans": 6},
                    "num_classes": 12}
    assert any("classifier" in n for n in conversion.notes)
    import torch

    task = build_task(conversion.config)
    assert tuple(task.model(torch.zeros(2, 6, 32, 32)).output.shape) == (2, 12)


# ------------------------------------------------------------------------- errors


def test_a_non_terratorch_config_is_an_error_naming_the_file(tmp_path: Path) -> None:
    geofm_config = tmp_path / "mine.yaml"
    geofm_config.write_text(textwrap.dedent("""
        model:
          class_path: SemanticSegmentationTask
          init_args:
            model_factory: geofm:encoder_decoder
            model_args: {backbone: timm:resnet18, decoder: geofm:fcn, num_classes: 2}
    """))
    with pytest.raises(ConfigurationError, match=r"mine\.yaml is not a TerraTorch config"):
        convert_file(geofm_config)
    assert geofm(["convert", "terratorch", str(geofm_config)]) == 1
    with pytest.raises(ConfigurationError, match="cannot read"):
        convert_file(tmp_path / "missing.yaml")
    broken = tmp_path / "broken.yaml"
    broken.write_text("model: [unclosed\n")
    with pytest.raises(ConfigurationError, match=r"broken\.yaml is not valid YAML"):
        convert_file(broken)


def test_convert_command_does_not_import_torch(data_root: Path, tmp_path: Path) -> None:
    source = tmp_path / "tt.yaml"
    source.write_text(yaml.safe_dump(terratorch_config(CLS_TIMM, data_root, tmp_path)))
    code = (
        "import sys\n"
        "from geofm_core.cli import main\n"
        f"rc = main(['convert', 'terratorch', {str(source)!r}])\n"
        "assert 'torch' not in sys.modules, 'torch imported'\n"
        "sys.exit(rc)\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          check=False)
    assert done.returncode == 0, done.stderr
    assert yaml.safe_load(done.stdout)["model"]["class_path"] == "ClassificationTask"
    assert "note(s)" in done.stderr


# ------------------------------------------------------------------------- signatures


def _sample(rule: ComponentRule, foreign: str) -> Any:
    """A value the rule converts for the foreign keyword (an activation, a mapped value)."""
    new = rule.args.get(foreign, foreign)
    if new in rule.activations:
        return "torch.nn.ReLU"
    pairs = rule.values.get(new)
    return pairs[0][0] if pairs else 1


def _model(model_args: dict[str, Any], factory: str = "EncoderDecoderFactory",
           task: str = "SemanticSegmentationTask") -> dict[str, Any]:
    return {"model": {"class_path": f"terratorch.tasks.{task}",
                      "init_args": {"model_factory": factory, "model_args": model_args}}}


def _rule_config(rule: ComponentRule, name: str) -> dict[str, Any]:
    """A config using the foreign ``name`` with every keyword the rule renames or flags."""
    args: dict[str, Any] = {"backbone": "timm_resnet18", "decoder": "IdentityDecoder",
                            "num_classes": 2}
    if rule.kind == "backbone":
        args["backbone"] = name
        args.update({f"backbone_{k}": _sample(rule, k) for k in rule.args})
    elif rule.kind == "decoder":
        args["decoder"] = name
        args.update({f"decoder_{k}": _sample(rule, k) for k in rule.args})
        args.update({f"decoder_{k}": True for k in rule.neck_flags})
    else:
        args["necks"] = [{"name": name, **{k: _sample(rule, k) for k in rule.args}}]
    return _model(args)


RULES: list[Claim[ComponentRule]] = sorted(
    rule_book().component_claims(), key=lambda c: (c.source, c.rule.kind, c.rule.names))


def _factory_configs() -> list[dict[str, Any]]:
    """Each declared encoder-decoder style factory with every argument it moves."""
    book = rule_book()
    configs = []
    for claim in book.factory_claims():
        if claim.rule.convert:
            continue
        backbone = next(c.rule.names[0] for c in RULES
                        if c.source == claim.source and c.rule.kind == "backbone")
        args = {"backbone": backbone, "decoder": "UperNetDecoder", "num_classes": 2,
                **{k: claim.rule.backbone_defaults.get(k, 1) for k in claim.rule.backbone_args}}
        configs.append(_model(args, factory=claim.rule.names[0]))
    return configs


#: Configs converted for the signature check: the fixtures above, every rule's names with
#: every keyword it renames, every factory, and the core's timm paths.
WRITING_CONFIGS: list[dict[str, Any]] = [
    *(terratorch_config(t, Path("/data"), Path("/out"))
      for t in (SEG_PRITHVI_UPERNET, SEG_TIMM_SMP, REG_PRITHVI_FACTORY, CLS_TIMM)),
    *(_rule_config(c.rule, name) for c in RULES for name in c.rule.names),
    *_factory_configs(),
    _model({"model": "UnetPlusPlus", "backbone": "resnet18", "pretrained": True, "bands": [1, 2],
            "smp_encoder_depth": 4, "smp_encoder_output_stride": 16, "backbone_output_stride": 8,
            "smp_decoder_use_batchnorm": True, "smp_decoder_attention_type": "scse",
            "num_classes": 2}, factory="SMPModelFactory"),
    _model({"model": "FPN", "backbone": "resnet18", "regression_relu": True,
            "smp_decoder_dropout": 0.2}, factory="SMPModelFactory",
           task="PixelwiseRegressionTask"),
    _model({"backbone": "resnet18", "pretrained": False, "in_channels": 4,
            "backbone_drop_rate": 0.1, "num_classes": 3}, factory="TimmModelFactory",
           task="ClassificationTask"),
    _model({"backbone": "resnet50", "backbone_features_only": True,
            "backbone_model_kwargs": {"drop_rate": 0.1}, "backbone_bands": [1, 2, 3],
            "backbone_out_indices": [1, 2], "backbone_checkpoint_path": "/c.pth",
            "decoder": "FCNDecoder", "decoder_channels": 8, "decoder_num_convs": 1,
            "head_channel_list": [4], "head_dropout": 0.1, "num_classes": 2,
            "necks": [{"name": "SelectIndices", "indices": [-1]}],
            "aux_decoders": [{"name": "aux", "decoder": "MLPDecoder",
                              "decoder_args": {"decoder_activation": "torch.nn.GELU",
                                               "head_dropout": 0.1}}]}),
]


def _written(config: dict[str, Any]) -> list[tuple[str, str, dict[str, Any]]]:
    """Every (kind, registry name, kwargs) a converted geofm config builds."""
    model = config["model"]
    head = HEADS[TASKS[model["class_path"]][1]]
    args = model["init_args"]["model_args"]
    found = [("backbone", args["backbone"], args.get("backbone_kwargs", {}))]
    found += [("neck", n["name"], {k: v for k, v in n.items() if k != "name"})
              for n in args.get("necks", [])]
    if args.get("decoder"):
        found.append(("decoder", args["decoder"], args.get("decoder_kwargs", {})))
    found.append(("head", head, args.get("head_kwargs", {})))
    for aux in args.get("aux_decoders", []):
        found.append(("decoder", aux["decoder"], aux.get("decoder_kwargs", {})))
        found.append(("head", head, aux.get("head_kwargs", {})))
    return found


@pytest.mark.parametrize("config", WRITING_CONFIGS)
def test_written_kwargs_exist_in_the_real_component_signatures(config: dict[str, Any]) -> None:
    """Every kwarg the converter writes is accepted by the registered component."""
    from geofm_core.registry import get_registry
    from geofm_core.signatures import accepted_arguments

    registry = get_registry()
    conversion = convert_config(copy.deepcopy(config))
    for kind, name, kwargs in _written(conversion.config):
        accepted = accepted_arguments(registry.get(kind, name).load())
        assert accepted is not None and not accepted.any_keyword, (kind, name)
        bad = [k for k in kwargs if k in FACTORY_FILLED[kind] or not accepted.accepts(k)]
        assert not bad, f"{kind} {name} has no parameters {bad}"


@pytest.mark.parametrize("claim", RULES, ids=lambda c: f"{c.source}-{c.rule.names[0]}")
def test_every_rule_converts_its_names_to_its_registered_target(
        claim: Claim[ComponentRule]) -> None:
    for name in claim.rule.names:
        conversion = convert_config(_rule_config(claim.rule, name))
        args = conversion.config["model"]["init_args"]["model_args"]
        written = {"backbone": args["backbone"], "decoder": args["decoder"],
                   "neck": args.get("necks", [{}])[0].get("name")}[claim.rule.kind]
        assert written == claim.rule.target, (name, conversion.unmapped)
        assert not [u for u in conversion.unmapped if name in u], conversion.unmapped


def test_rules_and_tables_only_write_checked_kwargs_and_registered_names() -> None:
    from geofm_core.registry import get_registry
    from geofm_core.signatures import accepted_arguments

    # every rule's target is registered and every keyword it declares is accepted
    assert rule_problems("terratorch", core=CORE_RULES) == []
    registry = get_registry()
    for task, renames in HEAD_ARGS.items():
        accepted = accepted_arguments(registry.get("head", HEADS[task]).load())
        assert accepted is not None
        assert set(renames.values()) <= set(accepted.names), task
