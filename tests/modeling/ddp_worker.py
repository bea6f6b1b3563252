"""Process target for the DDP test (kept light: spawned processes import only this module)."""

from __future__ import annotations


def num_boxes_worker(rank: int, port: int, labels_per_rank: list[int], queue) -> None:
    import torch
    import torch.distributed as dist

    from wsovvis.modeling.seqformer.criterion import SetCriterion
    from wsovvis.modeling.seqformer.matcher import HungarianMatcher

    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=len(labels_per_rank))
    try:
        crit = SetCriterion(2, HungarianMatcher(), {})
        targets = [{"labels": torch.zeros(labels_per_rank[rank], dtype=torch.long)}]
        queue.put(float(crit.num_boxes(targets, torch.device("cpu"))))
    finally:
        dist.destroy_process_group()
