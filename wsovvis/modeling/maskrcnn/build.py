"""Registry entries ``maskrcnn`` (torchvision v1 heads) and ``maskrcnn_v2`` (v2 heads, BatchNorm).

Both: torchvision ``MaskRCNN`` built with ``weights=None``; backbone ``resnet50`` (weights from
``model.backbone.weights``, FrozenBN when given) or ``tiny_cnn`` (tests); ``model.num_classes``
foreground classes (1 = class-agnostic) + background; `DropLossRoIHeads` (DropLoss active with
``model.maskrcnn.droploss``); test size ``model.inference.test_size`` / ``max_size``; score
threshold ``model.inference.cls_threshold``.
"""

from __future__ import annotations

from torch import nn
from torchvision.models.detection import MaskRCNN
from torchvision.models.detection.anchor_utils import AnchorGenerator
from torchvision.models.detection.faster_rcnn import FastRCNNConvFCHead, FastRCNNPredictor, TwoMLPHead
from torchvision.models.detection.mask_rcnn import MaskRCNNHeads, MaskRCNNPredictor
from torchvision.models.detection.rpn import RPNHead

from wsovvis.errors import WsovvisError
from wsovvis.modeling.backbone.weights import load_state_dict_file
from wsovvis.modeling.config import ModelConfig
from wsovvis.modeling.maskrcnn.backbone import build_fpn_backbone
from wsovvis.modeling.maskrcnn.droploss import DropLossRoIHeads
from wsovvis.modeling.maskrcnn.inference import MaskRCNNPostProcessor
from wsovvis.modeling.maskrcnn.model import ClipTransform, MaskRCNNCriterion, VideoMaskRCNN
from wsovvis.modeling.registry import register_model


def _check(mc: ModelConfig) -> None:
    r = mc.maskrcnn
    if mc.num_classes < 1:
        raise WsovvisError(f"model.num_classes: must be at least 1, got {mc.num_classes} (0, 'from the data', is "
                           "resolved by the training entry point)")
    if len(r.anchor_sizes) != 5 or min(r.anchor_sizes) < 1:
        raise WsovvisError(f"model.maskrcnn.anchor_sizes: need 5 positive sizes (one per FPN level), "
                           f"got {r.anchor_sizes}")
    if not 0.0 <= r.droploss_iou < 1.0:
        raise WsovvisError(f"model.maskrcnn.droploss_iou: must be in [0, 1), got {r.droploss_iou}")
    if len(mc.pixel_mean) != 3 or len(mc.pixel_std) != 3:
        raise WsovvisError("model.pixel_mean / model.pixel_std: need 3 values (RGB)")


def _build(mc: ModelConfig, v2: bool):
    _check(mc)
    r, b, ic = mc.maskrcnn, mc.backbone, mc.inference
    backbone = build_fpn_backbone(b.name, b.weights, b.freeze_at, b.width, r.fpn_channels, fpn_norm=v2,
                                  trust_pickle=mc.trust_pickle)
    c = backbone.out_channels
    anchors = AnchorGenerator(tuple((s,) for s in r.anchor_sizes), ((0.5, 1.0, 2.0),) * 5)
    k = mc.num_classes + 1  # + background
    norm = nn.BatchNorm2d if v2 else None
    heads = {
        "rpn_head": RPNHead(c, anchors.num_anchors_per_location()[0], conv_depth=2 if v2 else 1),
        "box_head": (FastRCNNConvFCHead((c, 7, 7), [c] * 4, [r.representation_size], norm_layer=norm) if v2
                     else TwoMLPHead(c * 7 * 7, r.representation_size)),
        "box_predictor": FastRCNNPredictor(r.representation_size, k),
        "mask_head": MaskRCNNHeads(c, [c] * 4, 1, norm_layer=norm),
        "mask_predictor": MaskRCNNPredictor(c, c, k),
    }
    det = MaskRCNN(
        backbone, num_classes=None, min_size=ic.test_size, max_size=ic.max_size,
        image_mean=list(mc.pixel_mean), image_std=list(mc.pixel_std), rpn_anchor_generator=anchors,
        rpn_pre_nms_top_n_train=r.rpn_pre_nms_top_n_train, rpn_post_nms_top_n_train=r.rpn_post_nms_top_n_train,
        rpn_pre_nms_top_n_test=r.rpn_pre_nms_top_n_test, rpn_post_nms_top_n_test=r.rpn_post_nms_top_n_test,
        rpn_nms_thresh=r.rpn_nms_thresh, box_score_thresh=ic.cls_threshold,
        box_detections_per_img=r.detections_per_img, box_batch_size_per_image=r.box_batch_size_per_image,
        box_positive_fraction=r.box_positive_fraction, **heads,
    )
    rh = det.roi_heads
    det.roi_heads = DropLossRoIHeads(
        rh.box_roi_pool, rh.box_head, rh.box_predictor,
        rh.proposal_matcher.high_threshold, rh.proposal_matcher.low_threshold,
        rh.fg_bg_sampler.batch_size_per_image, rh.fg_bg_sampler.positive_fraction, rh.box_coder.weights,
        rh.score_thresh, rh.nms_thresh, rh.detections_per_img,
        mask_roi_pool=rh.mask_roi_pool, mask_head=rh.mask_head, mask_predictor=rh.mask_predictor,
        drop_iou=r.droploss_iou, droploss=r.droploss,
    )
    det.transform = ClipTransform(ic.test_size, ic.max_size, list(mc.pixel_mean), list(mc.pixel_std))
    model = VideoMaskRCNN(det)
    if mc.weights:
        sd = load_state_dict_file(mc.weights, "Mask R-CNN checkpoint", trust_pickle=mc.trust_pickle)
        try:
            model.load_state_dict(sd)
        except RuntimeError as e:
            raise WsovvisError(f"{mc.weights}: does not fit model {mc.name}: {str(e).splitlines()[0]}") from e
    post = MaskRCNNPostProcessor(score_threshold=ic.cls_threshold, mask_threshold=ic.mask_threshold,
                                 link_iou=r.link_iou, link_max_age=r.link_max_age, max_tracks=ic.max_tracks)
    return model, MaskRCNNCriterion(), post


@register_model("maskrcnn")
def build_maskrcnn(mc: ModelConfig):
    """torchvision Mask R-CNN R50-FPN (v1 heads)."""
    return _build(mc, v2=False)


@register_model("maskrcnn_v2")
def build_maskrcnn_v2(mc: ModelConfig):
    """torchvision Mask R-CNN R50-FPN v2 heads (2-conv RPN head, 4conv+1fc BN box head, BN mask head)."""
    return _build(mc, v2=True)
