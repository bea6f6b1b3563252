"""Pictures for people: contact sheets and GIFs of tubes (``plots`` holds training curves)."""

from wsovvis.viz.colors import track_color
from wsovvis.viz.contact_sheet import render_contact_sheet, sample_indices, visualize_dataset
from wsovvis.viz.overlay import Tube, overlay_frame, write_gif, write_png

__all__ = [
    "Tube",
    "overlay_frame",
    "render_contact_sheet",
    "sample_indices",
    "track_color",
    "visualize_dataset",
    "write_gif",
    "write_png",
]
