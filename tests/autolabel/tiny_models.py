"""Tiny random OWLv2 / SAM2 / SAM2-video models saved with ``save_pretrained`` (the real loading path).

Sizes follow the configs checked to run with transformers 5.23.0 (reference notes §7). The OWLv2
tokenizer is a character-level CLIP BPE vocabulary (no merges) written next to the model.
"""

from __future__ import annotations

import json
from pathlib import Path


def save_owlv2(path: Path, image_size: int = 32, seed: int = 0) -> Path:
    import torch
    from transformers import CLIPTokenizer, Owlv2Config, Owlv2ForObjectDetection, Owlv2ImageProcessor, Owlv2Processor

    path.mkdir(parents=True, exist_ok=True)
    chars = "abcdefghijklmnopqrstuvwxyz"
    vocab = {c: i for i, c in enumerate(chars)}
    vocab.update({c + "</w>": len(chars) + i for i, c in enumerate(chars)})
    bos, eos = len(vocab), len(vocab) + 1
    vocab.update({"<|startoftext|>": bos, "<|endoftext|>": eos})
    (path / "vocab.json").write_text(json.dumps(vocab))
    (path / "merges.txt").write_text("#version: 0.2\n")
    tok = CLIPTokenizer(vocab=str(path / "vocab.json"), merges=str(path / "merges.txt"))
    cfg = Owlv2Config(
        text_config={"vocab_size": len(vocab), "hidden_size": 32, "num_hidden_layers": 2, "num_attention_heads": 4,
                     "intermediate_size": 37, "max_position_embeddings": 16, "bos_token_id": bos,
                     "eos_token_id": eos, "pad_token_id": eos},
        vision_config={"image_size": image_size, "patch_size": 4, "hidden_size": 32, "num_hidden_layers": 2,
                       "num_attention_heads": 4, "intermediate_size": 37},
        projection_dim=32)
    torch.manual_seed(seed)
    Owlv2ForObjectDetection(cfg).eval().save_pretrained(path)
    size = {"height": image_size, "width": image_size}
    Owlv2Processor(image_processor=Owlv2ImageProcessor(size=size), tokenizer=tok).save_pretrained(path)
    return path


def _sam2_parts(width: int):
    from transformers import Sam2HieraDetConfig, Sam2MaskDecoderConfig, Sam2PromptEncoderConfig, Sam2VisionConfig

    hiera = Sam2HieraDetConfig(hidden_size=12, image_size=128, patch_kernel_size=7, patch_stride=4, patch_padding=3,
                               blocks_per_stage=[1, 2, 7, 2], embed_dim_per_stage=[12, 24, 48, 96])
    vision = Sam2VisionConfig(backbone_config=hiera, backbone_channel_list=[96, 48, 24, 12],
                              backbone_feature_sizes=[[32, 32], [16, 16], [8, 8]], fpn_hidden_size=width)
    if width == 32:
        prompt = Sam2PromptEncoderConfig(hidden_size=32, image_size=128, patch_size=16, mask_input_channels=8)
        dec = Sam2MaskDecoderConfig(hidden_size=32, mlp_dim=64, num_hidden_layers=2, num_attention_heads=4,
                                    iou_head_hidden_dim=32)
    else:  # the video memory path needs the decoder width to equal the memory attention width
        prompt = Sam2PromptEncoderConfig(hidden_size=width, image_size=128, patch_size=16, mask_input_channels=16)
        dec = Sam2MaskDecoderConfig(hidden_size=width, mlp_dim=width, num_hidden_layers=2, num_attention_heads=8,
                                    iou_head_hidden_dim=64)
    return vision, prompt, dec


def save_sam2(path: Path, seed: int = 0) -> Path:
    import torch
    from transformers import Sam2Config, Sam2ImageProcessor, Sam2Model, Sam2Processor

    vision, prompt, dec = _sam2_parts(32)
    torch.manual_seed(seed)
    model = Sam2Model(Sam2Config(vision_config=vision, prompt_encoder_config=prompt, mask_decoder_config=dec)).eval()
    model.save_pretrained(path)
    Sam2Processor(image_processor=Sam2ImageProcessor(size={"height": 128, "width": 128})).save_pretrained(path)
    return path


def save_sam2_video(path: Path, seed: int = 0) -> Path:
    import torch
    from transformers import (
        Sam2ImageProcessor,
        Sam2VideoConfig,
        Sam2VideoModel,
        Sam2VideoProcessor,
        Sam2VideoVideoProcessor,
    )

    vision, prompt, dec = _sam2_parts(256)
    cfg = Sam2VideoConfig(vision_config=vision, prompt_encoder_config=prompt, mask_decoder_config=dec, image_size=128,
                          memory_attention_num_layers=1, memory_attention_feed_forward_hidden_size=256,
                          memory_attention_rope_feat_sizes=[8, 8], memory_fuser_intermediate_dim=256)
    torch.manual_seed(seed)
    Sam2VideoModel(cfg).eval().save_pretrained(path)
    size = {"height": 128, "width": 128}
    Sam2VideoProcessor(image_processor=Sam2ImageProcessor(size=size),
                       video_processor=Sam2VideoVideoProcessor(size=size)).save_pretrained(path)
    return path
