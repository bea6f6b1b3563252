#!/usr/bin/env python
"""Train SeqFormer on pseudo tubes (Sacred + Hydra), evaluate, resume; see wsovvis.engine.launch.

    python train_seqformer_pseudo.py with configs/seqformer_pseudo_sacred.yaml -F runs/wsovvis_seqformer -c no
    python train_seqformer_pseudo.py model=seqformer_tiny debug=cpu_smoke with data.train_json=... -F runs/smoke
    python train_seqformer_pseudo.py with configs/seqformer_pseudo_sacred.yaml eval_only=True resume=True -F runs/...
    torchrun --nproc_per_node=8 train_seqformer_pseudo.py with ...   # or num_gpus=8 from this one command
"""

import sys

from wsovvis.engine.launch import main

if __name__ == "__main__":
    sys.exit(main(sys.argv[1:], prog="train_seqformer_pseudo.py"))
