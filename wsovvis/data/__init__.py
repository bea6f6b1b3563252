"""YouTube-VIS data layer: JSON tubes, RLE masks, id PNGs, synthetic sample videos."""
