"""TerraTorch's dataset-specific datamodules: rewritten as generic ones, or reported with advice.

A datamodule bound to one dataset's folder layout (Sen1Floods11, HLS burn scars, the
multi-temporal crop chips) is a generic datamodule with its folders, patterns, bands
and statistics filled in; it is rewritten as TerraTorch's generic datamodule and then
converted like one. ``TorchNonGeoDataModule`` / ``TorchGeoDataModule`` wrap a TorchGeo
datamodule, which geofm runs by class path. Every other TerraTorch datamodule reads a
format geofm's datamodules do not (HDF5, GEO-Bench, several modalities): it is kept as
is and reported with the geofm datamodule and options to use instead.

The layouts and statistics are facts of TerraTorch 1.2 (its datasets' folder names,
band orders and the means/stds its datamodules normalise with).
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from typing import Any

from geofm_core.convert.terratorch.report import Report, class_name, short

__all__ = ["ADVICE", "LAYOUTS", "Layout", "advice", "rewrite_specialised"]

_BASE = "data.init_args"

_S2_L1C = ("COASTAL_AEROSOL", "BLUE", "GREEN", "RED", "RED_EDGE_1", "RED_EDGE_2",
           "RED_EDGE_3", "NIR_BROAD", "NIR_NARROW", "WATER_VAPOR", "CIRRUS", "SWIR_1", "SWIR_2")
_HLS6 = ("BLUE", "GREEN", "RED", "NIR_NARROW", "SWIR_1", "SWIR_2")


@dataclass(frozen=True)
class Layout:
    """One dataset-specific datamodule: where its files are and how it reads them.

    Attributes:
        generic: The TerraTorch generic datamodule it is rewritten as.
        stages: Stage -> (image folder, split file or ``""``) under ``data_root``; labels
            lie beside the images unless ``labels`` names their folder.
        predict: The stage whose image folder TerraTorch predicts.
        img_grep: Image file glob.
        label_grep: Label file glob.
        bands: The bands stored in each file (per frame), in order.
        means: Per band, what TerraTorch normalises with.
        stds: Per band, likewise.
        defaults: Generic datamodule options with the dataset module's defaults.
        labels: The label folder under ``data_root`` (``""``: beside the images).
        num_classes: Classes of the dataset.
        frames: Frames stacked in each file.
        dropped: Options geofm's datamodules have no counterpart for -> their defaults.
    """

    generic: str
    stages: dict[str, tuple[str, str]]
    predict: str
    img_grep: str
    label_grep: str
    bands: tuple[str, ...]
    means: tuple[float, ...]
    stds: tuple[float, ...]
    defaults: dict[str, Any] = field(default_factory=dict)
    labels: str = ""
    num_classes: int = 2
    frames: int = 1
    dropped: dict[str, Any] = field(default_factory=dict)


_SEN1FLOODS11 = "v1.1/splits/flood_handlabeled/flood_{}_data.txt"

#: Dataset-specific TerraTorch datamodules geofm rewrites as generic ones.
LAYOUTS: dict[str, Layout] = {
    "Sen1Floods11NonGeoDataModule": Layout(
        "GenericNonGeoSegmentationDataModule",
        stages={s: ("v1.1/data/flood_events/HandLabeled/S2Hand", _SEN1FLOODS11.format(f))
                for s, f in (("train", "train"), ("val", "valid"), ("test", "test"))},
        labels="v1.1/data/flood_events/HandLabeled/LabelHand",
        predict="test", img_grep="*_S2Hand.tif", label_grep="*_LabelHand.tif", bands=_S2_L1C,
        means=(0.16450718, 0.1412956, 0.13795798, 0.12353792, 0.1481099, 0.23991728,
               0.28587557, 0.26345379, 0.30902815, 0.04911151, 0.00652506, 0.2044958,
               0.11912015),
        stds=(0.06977374, 0.07406382, 0.07370365, 0.08692279, 0.07778555, 0.09105416,
              0.10690993, 0.10096586, 0.11798815, 0.03380113, 0.01463465, 0.09772074,
              0.07659938),
        defaults={"constant_scale": 0.0001, "no_data_replace": 0, "no_label_replace": -1},
        dropped={"use_metadata": False}),
    "FireScarsNonGeoDataModule": Layout(
        "GenericNonGeoSegmentationDataModule",
        stages={"train": ("training", ""), "val": ("validation", ""),
                "test": ("validation", "")},
        predict="val", img_grep="*_merged.tif", label_grep="*.mask.tif", bands=_HLS6,
        means=(0.033349706741586264, 0.05701185520536176, 0.05889748132001316,
               0.2323245113436119, 0.1972854853760658, 0.11944914225186566),
        stds=(0.02269135568823774, 0.026807560223070237, 0.04004109844362779,
              0.07791732423672691, 0.08708738838140137, 0.07241979477437814),
        defaults={"no_data_replace": 0, "no_label_replace": -1},
        dropped={"use_metadata": False}),
    "MultiTemporalCropClassificationDataModule": Layout(
        "GenericNonGeoSegmentationDataModule",
        stages={"train": ("training_chips", "training_data.txt"),
                "val": ("validation_chips", "validation_data.txt"),
                "test": ("validation_chips", "validation_data.txt")},
        predict="test", img_grep="*_merged.tif", label_grep="*.mask.tif", bands=_HLS6,
        means=(494.905781, 815.239594, 924.335066, 2968.881459, 2634.621962, 1739.579917),
        stds=(284.925432, 357.84876, 575.566823, 896.601013, 951.900334, 921.407808),
        defaults={"no_data_replace": 0, "no_label_replace": -1,
                  "expand_temporal_dimension": True, "reduce_zero_label": True},
        num_classes=13, frames=3,
        dropped={"use_metadata": False, "metadata_file_name": "chips_df.csv"}),
}

def _geotiff(module: str, how: str = "") -> str:
    return (f"convert the files to GeoTIFF chips (images and labels paired by name) and use "
            f"{module}{how} (train_data_root, img_pattern, dataset_bands / output_bands, "
            "means, stds; `geofm stats` computes them)")


_SEG = _geotiff("GeoTiffSegmentationDataModule")
_DET = ("write the images as GeoTIFFs and the objects as polygons (GeoJSON, GeoPackage or "
        "Shapefile, any CRS, with a class column) and use GeoTiffObjectDetectionDataModule, "
        "or GeoTiffInstanceSegmentationDataModule for masks (train_data_root, "
        "train_label_data_root: one vector file per split or one per image, class_attribute, "
        "classes, chip_size, means, stds; docs/object-detection.md)")
_CLS = _geotiff("GeoTiffClassificationDataModule")
_REG = _geotiff("GeoTiffRegressionDataModule")
_TIME = " with expand_temporal_dimension and num_frames"

#: TerraTorch datamodules geofm has no counterpart for -> what to use instead.
ADVICE: dict[str, str] = {
    "Sen4MapLucasDataModule": "Sen4Map reads LUCAS land-cover time series from HDF5 files; "
                              + _geotiff("GeoTiffClassificationDataModule", _TIME),
    "GenericMultiModalDataModule": (
        "geofm reads one raster stack per chip: with one modality its options map to "
        "GeoTiff{Segmentation,Regression,Classification}DataModule (given one, they are); "
        "for several, stack the modalities' bands into one GeoTIFF per chip and list them "
        "in dataset_bands / output_bands, or keep to one modality"),
    "Landslide4SenseNonGeoDataModule": "Landslide4Sense is stored as HDF5; " + _SEG,
    "BioMasstersNonGeoDataModule": "BioMassters keeps monthly Sentinel-1/2 files per chip; "
                                   + _geotiff("GeoTiffRegressionDataModule", _TIME),
    "PASTISDataModule": "PASTIS is stored as numpy time series; "
                        + _geotiff("GeoTiffSegmentationDataModule", _TIME),
    "Sen4AgriNetDataModule": "Sen4AgriNet is stored as netCDF; " + _SEG,
    "OpenSentinelMapDataModule": "OpenSentinelMap is stored as numpy arrays; " + _SEG,
    "ForestNetNonGeoDataModule": "ForestNet is stored as PNG and pickle files; " + _CLS,
    "CarbonFluxNonGeoDataModule": "CarbonFlux pairs images with tabular data; " + _REG,
    "BurnIntensityNonGeoDataModule": "use GeoTiffSegmentationDataModule on its GeoTIFF "
                                     "chips (with expand_temporal_dimension for the "
                                     "pre/during/post stack)",
    "OpenEarthMapNonGeoDataModule": "use GeoTiffSegmentationDataModule on its GeoTIFF "
                                    "images and label folders",
    "TilingDataModuleWrapper": "geofm tiles at inference (`geofm infer`, the task's "
                               "tiled_inference) and samples scenes with "
                               "GeoTiffSceneDataModule",
    "GenericNonGeoObjectDetectionDataModule": (
        "it reads one JSON file of pixel boxes per image; " + _DET),
    "ElephantDataModule": "it reads COCO JSON boxes on large images; " + _DET,
    "SubstationDataModule": "it reads the Substation dataset's numpy arrays; " + _DET,
    "GeoBenchV2ObjectDetectionDataModule": "a GEO-Bench v2 dataset; " + _DET,
    "RandomDataModule": "geofm has no random-data module; point a GeoTIFF datamodule at a "
                        "few real chips",
}
_GEOBENCH_NAMES = ("GeobenchDataModule", "GeoBenchV2ClassificationDataModule",
                   "GeoBenchV2SegmentationDataModule")


def advice(name: str) -> str | None:
    """What to use instead of TerraTorch's datamodule ``name``, if it is one geofm knows."""
    if name in ADVICE:
        return ADVICE[name]
    if name in _GEOBENCH_NAMES or (name.startswith("M") and name.endswith("NonGeoDataModule")
                                   and name[1:2].isupper()):
        return ("a GEO-Bench dataset (HDF5 files read through the geobench package); "
                + _geotiff("GeoTiffSegmentationDataModule (m-* segmentation), "
                           "GeoTiffClassificationDataModule or GeoTiffMultiLabelDataModule "
                           "(m-bigearthnet)"))
    return None


def rewrite_specialised(data: dict[str, Any], report: Report) -> dict[str, Any] | None:
    """A dataset-specific or TorchGeo-wrapping TerraTorch data section, rewritten.

    Returns a generic TerraTorch data section (to be converted as one), a final geofm
    section (a TorchGeo datamodule), or None when ``data`` is neither.
    """
    name = class_name(data.get("class_path"))
    if name in ("TorchNonGeoDataModule", "TorchGeoDataModule"):
        return _torchgeo(data, report)
    if name == "GenericMultiModalDataModule":
        return _one_modality(data, report)
    if name == "mVHR10DataModule":
        return _vhr10(data, report)
    layout = LAYOUTS.get(name)
    if layout is None:
        return None
    args = dict(data.get("init_args") or {})
    root = str(args.pop("data_root", "") or "").rstrip("/")
    if not root:
        report.drop(f"{_BASE}.data_root", None, f"{name} needs data_root; written as '.'")
        root = "."
    out: dict[str, Any] = {}
    for stage, (folder, split) in layout.stages.items():
        out[f"{stage}_data_root"] = f"{root}/{folder}"
        if layout.labels:
            out[f"{stage}_label_data_root"] = f"{root}/{layout.labels}"
        if split:
            out[f"{stage}_split"] = f"{root}/{split}"
    out["predict_data_root"] = f"{root}/{layout.stages[layout.predict][0]}"
    out["img_grep"], out["label_grep"] = layout.img_grep, layout.label_grep
    bands = list(args.pop("bands", layout.bands))
    unknown = [b for b in bands if b not in layout.bands]
    if unknown:
        report.drop(f"{_BASE}.bands", unknown, f"not bands of {name} ({', '.join(layout.bands)})")
        bands = [b for b in bands if b in layout.bands]
    out["dataset_bands"], out["output_bands"] = list(layout.bands), bands
    stats = dict(zip(layout.bands, zip(layout.means, layout.stds, strict=True), strict=True))
    out["means"] = [stats[b][0] for b in bands]
    out["stds"] = [stats[b][1] for b in bands]
    out["num_classes"] = layout.num_classes
    for key, default in layout.defaults.items():
        out[key] = args.pop(key, default)
    for key, default in layout.dropped.items():
        if key in args:
            value = args.pop(key)
            if value != default:
                report.drop(f"{_BASE}.{key}", value, "geofm's GeoTIFF datamodules read no "
                            "time or location metadata (TL models then run without it)")
    out.update(args)
    report.note("data.class_path", (
        f"{name} written as geofm's GeoTiffSegmentationDataModule over its layout under "
        f"{root} ({layout.img_grep} / {layout.label_grep}, {len(bands)} bands"
        + (f" x {layout.frames} frames" if layout.frames > 1 else "")
        + f", {layout.num_classes} classes, TerraTorch's means/stds); geofm matches split "
        "ids to file names exactly (TerraTorch as substrings) and predicts the whole "
        f"{layout.stages[layout.predict][0]} folder"))
    return {"class_path": layout.generic, "init_args": out}


def _torchgeo(data: dict[str, Any], report: Report) -> dict[str, Any]:
    """TerraTorch's proxy of a TorchGeo datamodule: that datamodule, by class path."""
    args = dict(data.get("init_args") or {})
    cls = args.pop("cls", None)
    where = f"{_BASE}.cls"
    transforms = args.pop("transforms", None)
    if transforms is not None:
        report.drop(f"{_BASE}.transforms", transforms, (
            "TorchGeo datamodules take transforms as callables, not albumentations lists; "
            "the datamodule's own augmentations are used"))
    extra = dict(data.get("dict_kwargs") or {})
    if not isinstance(cls, str) or not cls:
        report.drop(where, cls, "no TorchGeo datamodule class path; the section is kept as is")
        return copy.deepcopy(data)
    out: dict[str, Any] = {"class_path": cls, "init_args": args}
    if extra:
        out["dict_kwargs"] = extra
    report.note("data.class_path", (
        f"{data.get('class_path')} written as the TorchGeo datamodule it wraps, {cls} (geofm "
        "runs TorchGeo datamodules by class path)"))
    return out


#: mVHR10DataModule arguments the TorchGeo datamodule's VHR10 dataset takes as they are.
_VHR10_SAME = ("root", "split", "download", "checksum", "batch_size", "num_workers")
_VHR10_TAGS = ("boxes_output_tag", "labels_output_tag", "masks_output_tag", "scores_output_tag")


def _vhr10(data: dict[str, Any], report: Report) -> dict[str, Any]:
    """TerraTorch's mVHR10DataModule (TorchGeo's VHR10, resplit): TorchGeo's VHR10DataModule."""
    args = dict(data.get("init_args") or {})
    out: dict[str, Any] = {k: args.pop(k) for k in _VHR10_SAME if k in args}
    size = args.pop("image_size", 896)
    pad = args.pop("pad", True)
    out["patch_size"] = size
    proportions = args.pop("second_level_split_proportions", (0.7, 0.15, 0.15))
    if isinstance(proportions, list | tuple) and len(proportions) == 3:
        out["val_split_pct"], out["test_split_pct"] = proportions[1], proportions[2]
    else:
        report.drop(f"{_BASE}.second_level_split_proportions", proportions,
                    "expected three fractions (train, val, test)")
    args.pop("second_level_split", None)  # set per stage by the datamodule itself
    if args.pop("apply_norm_in_datamodule", True):
        report.note(f"{_BASE}.apply_norm_in_datamodule", (
            "true (TerraTorch's default): TerraTorch normalises with ImageNet's mean/std "
            "after dividing by 255, TorchGeo's VHR10DataModule only divides by 255"))
    for key in _VHR10_TAGS:
        if key in args:
            report.note(f"{_BASE}.{key}", f"{short(args.pop(key))} dropped: TorchGeo's "
                        "datamodule writes bbox_xyxy, label and mask, which geofm reads")
    if args.pop("collate_fn", None) is not None:
        report.drop(f"{_BASE}.collate_fn", data["init_args"]["collate_fn"],
                    "TorchGeo's VHR10DataModule collates detection batches itself")
    out.update(args)
    report.note("data.class_path", (
        f"mVHR10DataModule written as TorchGeo's VHR10DataModule, the dataset it resplits "
        f"(geofm runs TorchGeo datamodules by class path): patch_size {size} "
        + ("resizes where TerraTorch zero-pads and centre-crops to it" if pad else
           "resizes like TerraTorch's pad: false")
        + f"; val/test fractions {out.get('val_split_pct')}/{out.get('test_split_pct')} of a "
        "random split (seed 0; TerraTorch shuffles with seed 123), so the images of each "
        "split differ; no horizontal-flip-only augmentation (TorchGeo flips and jitters "
        "colours)"))
    return {"class_path": "torchgeo.datamodules.VHR10DataModule", "init_args": out}


def _one_modality(data: dict[str, Any], report: Report) -> dict[str, Any] | None:
    """GenericMultiModalDataModule with one modality: its generic single-modal counterpart."""
    args = dict(data.get("init_args") or {})
    modalities = args.pop("modalities", None)
    if not isinstance(modalities, list) or len(modalities) != 1:
        return None
    mod = modalities[0]
    task = args.pop("task", "segmentation")
    generic = {"segmentation": "GenericNonGeoSegmentationDataModule",
               "regression": "GenericNonGeoPixelwiseRegressionDataModule",
               "classification": "GenericNonGeoClassificationDataModule"}.get(task)
    if generic is None:
        return None
    if "image_grep" in args:
        args["img_grep"] = args.pop("image_grep")
    for key in list(args):
        value = args[key]
        if isinstance(value, dict) and set(value) == {mod}:
            args[key] = value[mod]
    args.pop("rgb_modality", None)
    if args.pop("concat_bands", None) is not None:
        report.note(f"{_BASE}.concat_bands", "dropped: one modality, nothing to concatenate")
    report.note("data.class_path", (
        f"GenericMultiModalDataModule with the one modality {short(mod)} written as the "
        f"single-modal datamodule ({generic})"))
    return {"class_path": generic, "init_args": args}
