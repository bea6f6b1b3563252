"""Pseudo tubes from raw videos: MaskCut-style cuts (ViT or weight-free features), a VideoCutLER
adapter, temporal linking, and the sharded resumable runner behind ``wsovvis pseudo``."""
