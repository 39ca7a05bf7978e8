"""geofm:detection: the four torchvision detectors on a timm CNN and on a ViT through necks."""

from typing import Any

import pytest
import torch

from geofm_core import ComponentArgumentError, ConfigurationError, Model, get_registry
from geofm_core.models.detection import DetectionModel, anchor_generator_of
from geofm_core.testing import TinyViT, assert_round_trip

CNN = {"backbone": "timm:resnet18", "backbone_kwargs": {"in_chans": 4},
       "necks": [{"name": "geofm:select_indices", "indices": [1, 2, 3, 4]}],
       "fpn_channels": 32}
VIT_NECKS = [
    {"name": "geofm:select_indices", "indices": [0, 1, 2, 3]},
    {"name": "geofm:reshape_tokens_to_image"},
    {"name": "geofm:learned_interpolate_to_pyramidal"},
]
SIZE = 64


@pytest.fixture(scope="module")
def factory():
    return get_registry().build("model_factory", "geofm:detection")


def task_of(framework: str) -> str:
    return "instance_segmentation" if framework == "mask_rcnn" else "object_detection"


def build(factory, framework="faster_rcnn", num_classes=3, **kwargs: Any) -> DetectionModel:
    args = {**CNN, **kwargs}
    return factory.build_model(task_of(framework), framework=framework,
                               num_classes=num_classes, **args)


def targets(masks: bool, size: int = SIZE) -> list[dict[str, torch.Tensor]]:
    """Two images: two objects of classes 1 and 2, and no object at all."""
    first = {"boxes": torch.tensor([[4.0, 6.0, 30.0, 40.0], [36.0, 30.0, 60.0, 52.0]]),
             "labels": torch.tensor([1, 2])}
    empty = {"boxes": torch.zeros(0, 4), "labels": torch.zeros(0, dtype=torch.int64)}
    if masks:
        m = torch.zeros(2, size, size, dtype=torch.uint8)
        m[0, 6:40, 4:30] = 1
        m[1, 30:52, 36:60] = 1
        first["masks"] = m
        empty["masks"] = torch.zeros(0, size, size, dtype=torch.uint8)
    return [first, empty]


def check_training(model: DetectionModel, x: torch.Tensor) -> dict[str, torch.Tensor]:
    model.train()
    losses = model(x, targets(model.framework == "mask_rcnn", x.shape[-1]))
    assert isinstance(losses, dict) and losses
    total = sum(losses.values())
    assert torch.isfinite(total), losses
    total.backward()
    grads = [p.grad for p in model.backbone.parameters() if p.requires_grad]
    assert any(g is not None and bool(g.abs().sum() > 0) for g in grads), "no gradient"
    return losses


def check_detections(model: DetectionModel, x: torch.Tensor) -> list[dict[str, torch.Tensor]]:
    model.eval()
    with torch.no_grad():
        out = model(x)
    assert isinstance(out, list) and len(out) == x.shape[0]
    for det in out:
        n = det["boxes"].shape[0]
        assert det["boxes"].shape == (n, 4) and det["boxes"].dtype == torch.float32
        assert det["labels"].shape == (n,) and det["labels"].dtype == torch.int64
        assert det["scores"].shape == (n,)
        if n:
            assert int(det["labels"].min()) >= 1 and int(det["labels"].max()) < model.num_classes
            assert float(det["boxes"][:, 2:].max()) <= x.shape[-1] + 1e-3
        if model.framework == "mask_rcnn":
            assert det["masks"].shape == (n, 1, *x.shape[-2:])
            if n:
                assert float(det["masks"].min()) >= 0 and float(det["masks"].max()) <= 1
    return out


LOSS_NAMES = {
    "faster_rcnn": {"loss_classifier", "loss_box_reg", "loss_objectness", "loss_rpn_box_reg"},
    "mask_rcnn": {"loss_classifier", "loss_box_reg", "loss_objectness", "loss_rpn_box_reg",
                  "loss_mask"},
    "retinanet": {"classification", "bbox_regression"},
    "fcos": {"classification", "bbox_regression", "bbox_ctrness"},
}


@pytest.mark.parametrize("framework", ["faster_rcnn", "retinanet", "fcos", "mask_rcnn"])
def test_frameworks_on_resnet18_train_and_detect(factory, framework):
    torch.manual_seed(0)
    model = build(factory, framework)
    assert isinstance(model, Model) and model.framework == framework
    assert model.task == task_of(framework) and model.num_classes == 3
    x = torch.randn(2, 4, SIZE, SIZE)
    assert set(check_training(model, x)) == LOSS_NAMES[framework]
    check_detections(model, x)
    # 4 levels of the necks + max-pool (R-CNN) or P6, P7 (RetinaNet, FCOS)
    generator = anchor_generator_of(model.detector)
    assert generator is not None
    assert len(generator.sizes) == (5 if framework in ("faster_rcnn", "mask_rcnn") else 6)
    # anchors follow the measured strides (4, 8, 16, ...): FCOS's are the strides
    if framework == "fcos":
        assert [s[0] for s in generator.sizes] == [4, 8, 16, 32, 64, 128]
    if framework == "faster_rcnn":
        assert [s[0] for s in generator.sizes] == [32, 64, 128, 256, 512]


@pytest.mark.parametrize("framework", ["faster_rcnn", "mask_rcnn"])
def test_vit_tokens_through_necks(factory, framework):
    torch.manual_seed(0)
    model = factory.build_model(task_of(framework), TinyViT(in_chans=4, embed_dim=32, depth=4),
                                framework=framework, num_classes=3, necks=VIT_NECKS,
                                fpn_channels=32)
    x = torch.randn(2, 4, SIZE, SIZE)
    losses = check_training(model, x)
    assert set(losses) == LOSS_NAMES[framework]
    check_detections(model, x)


def test_single_level_pyramid_without_extra_levels(factory):
    model = build(factory, necks=[{"name": "geofm:select_indices", "indices": [3]}],
                  extra_block="none")
    assert len(model.level_names) == 1
    check_training(model, torch.randn(2, 4, SIZE, SIZE))
    check_detections(model, torch.randn(1, 4, SIZE, SIZE))


def test_no_resize_by_default_and_boxes_in_input_pixels(factory):
    model = build(factory)
    seen = []
    model.backbone.register_forward_pre_hook(lambda m, args: seen.append(args[0].shape[-2:]))
    check_detections(model, torch.randn(1, 4, 70, 90))
    assert tuple(seen[-1]) == (96, 96)  # padded to a multiple of 32, not resized
    out = check_detections(model, torch.randn(1, 4, 70, 90))[0]["boxes"]
    assert out.numel() == 0 or (float(out[:, 2].max()) <= 90 and float(out[:, 3].max()) <= 70)


def test_min_size_resizes_and_maps_boxes_back(factory):
    model = build(factory, min_size=128)
    seen = []
    model.backbone.register_forward_pre_hook(lambda m, args: seen.append(args[0].shape[-2:]))
    boxes = check_detections(model, torch.randn(1, 4, SIZE, SIZE))[0]["boxes"]
    assert tuple(seen[-1]) == (128, 128)
    assert boxes.numel() == 0 or float(boxes.max()) <= SIZE + 1e-3


def test_image_mean_and_std_normalise_inside(factory):
    model = build(factory, image_mean=[1.0, 2.0, 3.0, 4.0], image_std=[2.0] * 4).eval()
    seen = []
    model.backbone.register_forward_pre_hook(lambda m, args: seen.append(args[0]))
    x = torch.ones(1, 4, SIZE, SIZE) * 5
    with torch.no_grad():
        model(x)
    assert torch.allclose(seen[-1][0, :, 0, 0], torch.tensor([2.0, 1.5, 1.0, 0.5]))


def test_framework_kwargs_reach_torchvision(factory):
    torch.manual_seed(0)
    model = build(factory, framework_kwargs={"box_detections_per_img": 3,
                                             "box_score_thresh": 0.0,
                                             "anchor_sizes": [[16], [32], [64], [128], [256]],
                                             "aspect_ratios": [1.0]})
    assert model.detector.roi_heads.detections_per_img == 3
    out = check_detections(model, torch.randn(2, 4, SIZE, SIZE))
    assert all(d["boxes"].shape[0] <= 3 for d in out)
    # given anchors are kept, not fitted to the strides
    assert anchor_generator_of(model.detector).sizes == ((16,), (32,), (64,), (128,), (256,))
    retina = build(factory, "retinanet", framework_kwargs={"detections_per_img": 7})
    assert retina.detector.detections_per_img == 7


def test_freezing(factory):
    model = build(factory)
    model.freeze_encoder()
    assert not any(p.requires_grad for p in model.backbone.parameters())
    assert all(p.requires_grad for p in model.fpn.parameters())
    model.freeze_decoder()
    assert not any(p.requires_grad for p in model.fpn.parameters())
    assert all(p.requires_grad for p in model.detector.parameters())
    model.freeze_head()
    assert not any(p.requires_grad for p in model.parameters())


def test_state_dict_names_each_module_once_and_round_trips(factory, tmp_path):
    torch.manual_seed(0)
    few = {"framework_kwargs": {"box_detections_per_img": 10}}
    model = build(factory, "mask_rcnn", **few)
    keys = list(model.state_dict())
    assert any(k.startswith("backbone.") for k in keys)
    assert not any(k.startswith("detector.backbone") for k in keys)
    x = torch.randn(2, 4, SIZE, SIZE)

    def run(m):
        return m(x, targets(True)) if m.training else m(x)

    assert_round_trip(model, lambda: build(factory, "mask_rcnn", **few), run, tmp_path / "m.pt",
                      "mask_rcnn")


def test_backbone_weights_from_a_checkpoint(factory, tmp_path):
    source = build(factory)
    path = tmp_path / "run.ckpt"
    torch.save({"state_dict": {f"model.backbone.{k}": v for k, v in
                               source.backbone.state_dict().items()}}, path)
    model = build(factory, backbone_weights=str(path))
    for (name, a), b in zip(source.backbone.state_dict().items(),
                            model.backbone.state_dict().values(), strict=True):
        assert torch.equal(a, b), name


# -- errors ----------------------------------------------------------------------------


def test_unknown_framework_names_close_match(factory):
    with pytest.raises(ConfigurationError, match=r"unknown framework 'faster-rcnn'.*faster_rcnn"):
        factory.build_model("object_detection", **CNN, framework="faster-rcnn", num_classes=2)


def test_mask_rcnn_for_object_detection_points_to_instance_task(factory):
    with pytest.raises(ConfigurationError, match="InstanceSegmentationTask"):
        factory.build_model("object_detection", **CNN, framework="mask_rcnn", num_classes=2)
    with pytest.raises(ConfigurationError, match="mask_rcnn"):
        factory.build_model("instance_segmentation", **CNN, framework="fcos", num_classes=2)


def test_unknown_task(factory):
    with pytest.raises(ConfigurationError, match="geofm:detection builds"):
        factory.build_model("segmentation", **CNN, num_classes=2)


def test_misspelt_framework_kwarg(factory):
    with pytest.raises(ComponentArgumentError,
                       match=r"geofm:detection framework_kwargs of torchvision FasterRCNN.*"
                             r"'box_score_thres'.*'box_score_thresh'"):
        build(factory, framework_kwargs={"box_score_thres": 0.1})
    # RetinaNet's own keywords are not FasterRCNN's
    with pytest.raises(ComponentArgumentError, match=r"RetinaNet.*'box_nms_thresh'"):
        build(factory, "retinanet", framework_kwargs={"box_nms_thresh": 0.3})


def test_framework_kwargs_must_not_set_model_args(factory):
    with pytest.raises(ConfigurationError, match=r"must not set \['min_size'\]"):
        build(factory, framework_kwargs={"min_size": 800})


def test_num_classes_counts_the_background(factory):
    with pytest.raises(ConfigurationError, match=r"K \+ 1"):
        build(factory, num_classes=1)


def test_anchor_sizes_per_level(factory):
    with pytest.raises(ConfigurationError, match=r"anchor_sizes has 2 entries but the pyramid "
                                                 "has 5 levels"):
        build(factory, framework_kwargs={"anchor_sizes": [[8], [16]]})


def test_token_sequences_without_reshape_neck(factory):
    model = factory.build_model("object_detection", TinyViT(in_chans=4, embed_dim=16, depth=2),
                                num_classes=2, fpn_channels=16).eval()
    with pytest.raises(ConfigurationError, match=r"token sequences need necks.*"
                                                 r"reshape_tokens_to_image"):
        model(torch.randn(1, 4, SIZE, SIZE))


def test_no_level_left(factory):
    with pytest.raises(ComponentArgumentError, match=r"select_indices.*at least one"):
        build(factory, necks=[{"name": "geofm:select_indices", "indices": []}])


def test_bad_backbone_kwarg_named_before_building(factory):
    with pytest.raises(ComponentArgumentError, match="in_chan"):
        build(factory, backbone_kwargs={"in_chan": 4})


def test_training_needs_targets(factory):
    model = build(factory).train()
    with pytest.raises(ConfigurationError, match="needs targets"):
        model(torch.randn(1, 4, SIZE, SIZE))
