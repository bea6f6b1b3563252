"""Open vocabulary: tube / segment embeddings (CLIP, SigLIP), vocabulary text embeddings, attribution.

``wsovvis embed`` caches one embedding per instance, ``wsovvis label`` names pseudo tubes from any
vocabulary, ``wsovvis classify`` names a class-agnostic model's predictions for LV-VIS AP / APb / APn.
"""
