"""SeqFormer decoder: one instance query per object, per-frame box queries, box refinement.

The box queries (one per frame) sample the frame's encoder memory with deformable attention;
their sampled features, projected by ``output_proj``, are pooled over time with learned weights
(``time_attention_weights``) into the instance query. Sampling offsets and weights come from the
box query only.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from wsovvis.modeling.box_ops import inverse_sigmoid
from wsovvis.modeling.ops import MSDeformAttn


class SeqFormerDecoderLayer(nn.Module):
    def __init__(
        self,
        d_model: int = 256,
        d_ffn: int = 1024,
        dropout: float = 0.1,
        n_levels: int = 4,
        n_heads: int = 8,
        n_points: int = 4,
        msda_impl: str = "auto",
    ):
        super().__init__()
        self.cross_attn = MSDeformAttn(d_model, n_levels, n_heads, n_points, box_output=True, impl=msda_impl)
        self.dropout1 = nn.Dropout(dropout)
        self.dropout1_box = nn.Dropout(dropout)
        self.norm1 = nn.LayerNorm(d_model)
        self.norm1_box = nn.LayerNorm(d_model)
        self.self_attn = nn.MultiheadAttention(d_model, n_heads, dropout=dropout, batch_first=True)
        self.self_attn_box = nn.MultiheadAttention(d_model, n_heads, dropout=dropout, batch_first=True)
        self.dropout2 = nn.Dropout(dropout)
        self.dropout2_box = nn.Dropout(dropout)
        self.norm2 = nn.LayerNorm(d_model)
        self.norm2_box = nn.LayerNorm(d_model)
        self.time_attention_weights = nn.Linear(d_model, 1)
        self.linear1 = nn.Linear(d_model, d_ffn)
        self.linear2 = nn.Linear(d_ffn, d_model)
        self.dropout3 = nn.Dropout(dropout)
        self.dropout4 = nn.Dropout(dropout)
        self.norm3 = nn.LayerNorm(d_model)
        self.linear1_box = nn.Linear(d_model, d_ffn)
        self.linear2_box = nn.Linear(d_ffn, d_model)
        self.dropout3_box = nn.Dropout(dropout)
        self.dropout4_box = nn.Dropout(dropout)
        self.norm3_box = nn.LayerNorm(d_model)

    def _ffn(self, x: torch.Tensor) -> torch.Tensor:
        x2 = self.linear2(self.dropout3(F.relu(self.linear1(x))))
        return self.norm3(x + self.dropout4(x2))

    def _ffn_box(self, x: torch.Tensor) -> torch.Tensor:
        x2 = self.linear2_box(self.dropout3_box(F.relu(self.linear1_box(x))))
        return self.norm3_box(x + self.dropout4_box(x2))

    def forward(self, inst, box, query_pos, reference_points, memory, spatial_shapes, level_start_index, memory_mask):
        """One decoder layer.

        Args:
            inst: ``[N, Q, C]`` instance queries; box: ``[N, Q, C]`` (layer 0) or ``[N, T, Q, C]``.
            query_pos: ``[N, Q, C]``; reference_points: ``[N, T, Q, L, 2|4]`` (valid-ratio scaled).
            memory: ``[N, T, S, C]``; memory_mask: ``[N, T, S]`` (True = pad).

        Returns:
            inst ``[N, Q, C]``, box ``[N, T, Q, C]``.
        """
        N, T, S, C = memory.shape
        Q = inst.shape[1]
        q = inst + query_pos
        inst = self.norm2(inst + self.dropout2(self.self_attn(q, q, inst, need_weights=False)[0]))
        if box.dim() == 3:
            qb = box + query_pos
            box = self.norm2_box(box + self.dropout2_box(self.self_attn_box(qb, qb, box, need_weights=False)[0]))
            box_frames = box[:, None].expand(N, T, Q, C)
        else:
            flat = box.flatten(0, 1)
            qb = flat + query_pos.repeat_interleave(T, dim=0)
            flat = self.norm2_box(flat + self.dropout2_box(self.self_attn_box(qb, qb, flat, need_weights=False)[0]))
            box = box_frames = flat.view(N, T, Q, C)
        query = (box_frames + query_pos[:, None]).flatten(0, 1)
        out, out_box = self.cross_attn(
            query,
            reference_points.flatten(0, 1),
            memory.flatten(0, 1),
            spatial_shapes,
            level_start_index,
            memory_mask.flatten(0, 1),
        )
        out = out.view(N, T, Q, C)
        box = self._ffn_box(self.norm1_box(box_frames + self.dropout1_box(out_box.view(N, T, Q, C))))
        weights = F.softmax(self.time_attention_weights(box), dim=1)  # [N, T, Q, 1]
        inst = self._ffn(self.norm1(inst + self.dropout1((weights * out).sum(1))))
        return inst, box


class SeqFormerDecoder(nn.Module):
    """Stack of layers with iterative per-frame box refinement.

    ``bbox_embed`` is assigned by the model (the same modules as its box heads, so checkpoints
    carry them under both names).
    """

    def __init__(self, layers: list[SeqFormerDecoderLayer]):
        super().__init__()
        self.layers = nn.ModuleList(layers)
        self.bbox_embed: nn.ModuleList | None = None

    def forward(self, tgt, reference_points, memory, spatial_shapes, level_start_index, valid_ratios, query_pos,
                memory_mask):
        """Run all layers.

        Args:
            tgt, query_pos: ``[N, Q, C]``; reference_points: ``[N, Q, 2]`` (sigmoid space).
            memory: ``[N, T, S, C]``; valid_ratios: ``[N, L, 2]``; memory_mask: ``[N, T, S]``.

        Returns:
            hs ``[D, N, Q, C]`` instance queries of every layer, boxes ``[D, N, T, Q, 4]`` cxcywh
            (with gradient), refs: list of D input references ``[N, T, Q, 2|4]`` (layer 0 is 2-d).
        """
        if self.bbox_embed is None:
            raise RuntimeError("SeqFormerDecoder.bbox_embed must be set by the model (box refinement)")
        T = memory.shape[1]
        ref = reference_points[:, None].expand(-1, T, -1, -1)
        inst = box = tgt
        hs, boxes, refs = [], [], []
        for lid, layer in enumerate(self.layers):
            vr = valid_ratios if ref.shape[-1] == 2 else torch.cat([valid_ratios, valid_ratios], -1)
            ref_in = ref[:, :, :, None] * vr[:, None, None]
            inst, box = layer(inst, box, query_pos, ref_in, memory, spatial_shapes, level_start_index, memory_mask)
            delta = self.bbox_embed[lid](box)
            if ref.shape[-1] == 4:
                new_ref = (delta + inverse_sigmoid(ref)).sigmoid()
            else:
                new_ref = torch.cat([delta[..., :2] + inverse_sigmoid(ref), delta[..., 2:]], -1).sigmoid()
            refs.append(ref)
            hs.append(inst)
            boxes.append(new_ref)
            ref = new_ref.detach()
        return torch.stack(hs), torch.stack(boxes), refs
