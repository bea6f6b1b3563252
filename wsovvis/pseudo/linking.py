"""Re-export: the linker moved to `wsovvis.data.linking` so that models (Mask R-CNN's per-frame
detections -> tubes) can use it without importing the pseudo-label layer."""

from wsovvis.data.linking import Detection, LinkParams, Track, Tracker, mask_iou_matrix

__all__ = ["Detection", "LinkParams", "Track", "Tracker", "mask_iou_matrix"]
