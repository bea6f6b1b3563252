"""Fixed parameters of the YouTube-VIS / LV-VIS video mask AP (the official defaults, never configurable).

Values follow the official ``Params`` class: the thresholds come from the same ``np.linspace`` calls so
that ``iouThr == IOU_THRS`` lookups (AP50, AP75) and the recall grid are bit-identical.
"""

from __future__ import annotations

import numpy as np

# T = 10 IoU thresholds .50:.05:.95 and R = 101 recall thresholds 0:.01:1.
IOU_THRS = np.linspace(0.5, 0.95, int(np.round((0.95 - 0.5) / 0.05)) + 1, endpoint=True)
REC_THRS = np.linspace(0.0, 1.00, int(np.round((1.00 - 0.0) / 0.01)) + 1, endpoint=True)
# Per (video, category) detection limits; the last one is also the cut before IoU/matching.
MAX_DETS = (1, 10, 100)
# Track-area ranges on avg_area (128² / 256², not COCO's 32² / 96²); both ends inclusive.
AREA_RNG = ((0.0, 1e5**2), (0.0, 128.0**2), (128.0**2, 256.0**2), (256.0**2, 1e5**2))
AREA_LBL = ("all", "small", "medium", "large")
# The matching start threshold is min(t, 1 - 1e-10) in the official code.
MATCH_THRS = tuple(min(float(t), 1 - 1e-10) for t in IOU_THRS)

FLAVORS = ("ytvis", "lvvis")

# (name, is_ap, iou_thr, area label, max_dets) in the order of the official ``stats`` vector.
STAT_SPECS: tuple[tuple[str, bool, float | None, str, int], ...] = (
    ("AP", True, None, "all", 100),
    ("AP50", True, 0.5, "all", 100),
    ("AP75", True, 0.75, "all", 100),
    ("APs", True, None, "small", 100),
    ("APm", True, None, "medium", 100),
    ("APl", True, None, "large", 100),
    ("AR1", False, None, "all", 1),
    ("AR10", False, None, "all", 10),
    ("AR100", False, None, "all", 100),
    ("ARs", False, None, "small", 100),
    ("ARm", False, None, "medium", 100),
    ("ARl", False, None, "large", 100),
)
STAT_NAMES: tuple[str, ...] = tuple(s[0] for s in STAT_SPECS)

# LV-VIS category ``partition`` codes: 0/1 are base (COCO / other frequent+common LVIS), 2/3 novel.
BASE_PARTITIONS = (0, 1)
NOVEL_PARTITIONS = (2, 3)
