"""Dataset export and import: YouTube-VIS <-> COCO, and sharded TFRecords for OWL-ViT (Scenic / TFDS)."""
