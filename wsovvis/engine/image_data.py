"""The training set when still images join the videos (``data.images``) or copy-paste is on (``data.copy_paste``)."""

from __future__ import annotations

from collections.abc import Callable

from wsovvis.errors import WsovvisError
from wsovvis.utils.logging import get_logger

log = get_logger(__name__)


def build_mixed_train_dataset(cfg, build_videos: Callable[[], object]):
    """Videos (``build_videos()``, when ``data.train_json`` is set) + images of ``data.images.json`` drawn
    with ``data.images.ratio``; wrapped in copy-paste when ``data.copy_paste.enabled``."""
    from wsovvis.data.copy_paste import CopyPasteDataset
    from wsovvis.data.image_clips import ImageClipDataset
    from wsovvis.data.mixed import MixedDataset
    from wsovvis.data.transforms import ClipAugmentation

    d, i = cfg.data, cfg.input
    im = d.images
    if im.json and not im.img_root:
        raise WsovvisError("config: data.images.img_root must be set when data.images.json is")
    needs_videos = not im.json or im.ratio < 1.0
    if needs_videos and not (d.train_json and d.train_img_root):
        raise WsovvisError("config: data.train_json and data.train_img_root must be set for training "
                           "(or train on images only: data.images.json with data.images.ratio=1.0)")
    videos = build_videos() if d.train_json and d.train_img_root and (not im.json or im.ratio < 1.0) else None
    images = None
    if im.json:
        aug = ClipAugmentation(min_sizes=list(i.min_size_train), max_size=i.max_size_train, flip_prob=i.flip_prob)
        images = ImageClipDataset(im.json, im.img_root, num_frames=i.sampling_frame_num, augmentation=aug,
                                  min_crop=im.min_crop, class_agnostic=d.train_classes == "agnostic",
                                  max_images=im.max_images)
        log.info("training images: %d from %s (ratio %.2f)", len(images), im.json, im.ratio if videos else 1.0)
    ds = MixedDataset(videos, images, im.ratio) if images is not None else videos
    if d.copy_paste.enabled:
        cp = d.copy_paste
        ds = CopyPasteDataset(ds, prob=cp.prob, scale_range=tuple(cp.scale), max_cover=cp.max_cover)
    return ds


def image_input_paths(d, need: list[tuple[str, str, str]]) -> list[tuple[str, str, str]]:
    """The launcher's start-up path checks with ``data.images``: its JSON and image root are needed; with
    ``ratio`` 1 (images only) the video paths are not."""
    if not d.images.json:
        return need
    if d.images.ratio >= 1.0:
        need = [n for n in need if n[0] not in ("data.train_json", "data.train_img_root")]
    return [*need, ("data.images.json", d.images.json, "file"), ("data.images.img_root", d.images.img_root, "dir")]
