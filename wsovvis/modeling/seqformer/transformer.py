"""Deformable transformer of SeqFormer: flatten levels, per-frame encoder, query decoder."""

from __future__ import annotations

import torch
from torch import nn

from wsovvis.modeling.ops import MSDeformAttn
from wsovvis.modeling.seqformer.decoder import SeqFormerDecoder, SeqFormerDecoderLayer
from wsovvis.modeling.seqformer.encoder import DeformableEncoder, DeformableEncoderLayer


def valid_ratios(mask: torch.Tensor) -> torch.Tensor:
    """``mask [N, H, W]`` (True = pad) -> ``[N, 2]`` (valid width / W, valid height / H)."""
    _, H, W = mask.shape
    valid_h = (~mask[:, :, 0]).sum(1)
    valid_w = (~mask[:, 0, :]).sum(1)
    return torch.stack([valid_w.float() / W, valid_h.float() / H], -1)


class DeformableTransformer(nn.Module):
    def __init__(
        self,
        d_model: int = 256,
        nhead: int = 8,
        num_encoder_layers: int = 6,
        num_decoder_layers: int = 6,
        dim_feedforward: int = 1024,
        dropout: float = 0.1,
        num_feature_levels: int = 4,
        enc_n_points: int = 4,
        dec_n_points: int = 4,
        msda_impl: str = "auto",
    ):
        super().__init__()
        self.d_model = d_model
        self.encoder = DeformableEncoder(
            [
                DeformableEncoderLayer(d_model, dim_feedforward, dropout, num_feature_levels, nhead, enc_n_points,
                                       msda_impl)
                for _ in range(num_encoder_layers)
            ]
        )
        self.decoder = SeqFormerDecoder(
            [
                SeqFormerDecoderLayer(d_model, dim_feedforward, dropout, num_feature_levels, nhead, dec_n_points,
                                      msda_impl)
                for _ in range(num_decoder_layers)
            ]
        )
        self.level_embed = nn.Parameter(torch.empty(num_feature_levels, d_model))
        self.reference_points = nn.Linear(d_model, 2)
        self._reset_parameters()

    def _reset_parameters(self) -> None:
        for p in self.parameters():
            if p.dim() > 1:
                nn.init.xavier_uniform_(p)
        for m in self.modules():
            if isinstance(m, MSDeformAttn):
                m._reset_parameters()
        nn.init.xavier_uniform_(self.reference_points.weight, gain=1.0)
        nn.init.constant_(self.reference_points.bias, 0.0)
        nn.init.normal_(self.level_embed)

    def forward(self, srcs, masks, pos_embeds, query_embed, num_frames):
        """Encode the frames of N clips and decode the queries.

        Args:
            srcs: list of L maps ``[N*T, C, h_l, w_l]`` (clip-major frames); masks: list of ``[N*T, h_l, w_l]``.
            pos_embeds: list of ``[N*T, C, h_l, w_l]``; query_embed: ``[Q, 2C]`` (query_pos | content).
            num_frames: T.

        Returns:
            dict with ``memory [N*T, S, C]``, ``spatial_shapes [L, 2]``, ``level_start_index [L]``,
            ``hs [D, N, Q, C]``, ``boxes [D, N, T, Q, 4]``, ``refs`` (list of D ``[N, T, Q, 2|4]``).
        """
        T = num_frames
        src_flat, mask_flat, pos_flat, shapes = [], [], [], []
        for lvl, (src, mask, pos) in enumerate(zip(srcs, masks, pos_embeds)):
            shapes.append(src.shape[-2:])
            src_flat.append(src.flatten(2).transpose(1, 2))
            mask_flat.append(mask.flatten(1))
            pos_flat.append(pos.flatten(2).transpose(1, 2) + self.level_embed[lvl].view(1, 1, -1))
        src_flat = torch.cat(src_flat, 1)
        mask_flat = torch.cat(mask_flat, 1)
        pos_flat = torch.cat(pos_flat, 1)
        spatial_shapes = torch.as_tensor(shapes, dtype=torch.long, device=src_flat.device)
        level_start_index = torch.cat((spatial_shapes.new_zeros((1,)), spatial_shapes.prod(1).cumsum(0)[:-1]))
        NT, S, C = src_flat.shape
        N = NT // T
        # all frames of a clip share its padding, so frame 0's masks stand for the clip
        vr = torch.stack([valid_ratios(m.view(N, T, *m.shape[-2:])[:, 0]) for m in masks], 1)  # [N, L, 2]
        memory = self.encoder(
            src_flat, spatial_shapes, level_start_index, vr.repeat_interleave(T, dim=0), pos_flat, mask_flat
        )
        query_pos, tgt = torch.split(query_embed, C, dim=1)
        query_pos = query_pos[None].expand(N, -1, -1)
        tgt = tgt[None].expand(N, -1, -1)
        reference_points = self.reference_points(query_pos).sigmoid()
        hs, boxes, refs = self.decoder(
            tgt,
            reference_points,
            memory.view(N, T, S, C),
            spatial_shapes,
            level_start_index,
            vr,
            query_pos,
            mask_flat.view(N, T, S),
        )
        return {
            "memory": memory,
            "spatial_shapes": spatial_shapes,
            "level_start_index": level_start_index,
            "hs": hs,
            "boxes": boxes,
            "refs": refs,
        }
