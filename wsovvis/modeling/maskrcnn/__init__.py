"""Mask R-CNN R50-FPN (torchvision, ``weights=None``) inside the wsovvis engine: CutLER's per-frame baseline.

`build` registers ``maskrcnn`` (torchvision v1 heads) and ``maskrcnn_v2`` (the v2 heads: 2-conv RPN head,
4conv+1fc box head with BatchNorm, BatchNorm mask head); `droploss` holds CutLER's DropLoss;
`inference` runs it on videos (per-frame detections linked into tubes) and `coco_eval` on images.
"""
