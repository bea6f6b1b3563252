#!/usr/bin/env bash
# Pseudo tubes for one LV-VIS split: id PNGs (run_videocutler_4gpu_png_only.sh), then a YouTube-VIS
# JSON of the tubes with `wsovvis convert` (each tube's score kept from the PNGs' tracks.json).
#
#   bash scripts/run_videocutler_4gpu.sh [train|val]
#   ENGINE=maskcut IMG_ROOT=my/frames OUT_ROOT=my/out bash scripts/run_videocutler_4gpu.sh train
#
# Environment (all optional; the PNG script's header lists the rest: CONF, NUM_GPUS, LOG_DIR, WEIGHTS, ARCH,
# CUTLER_ROOT, PYTHON, EXTRA_ARGS):
#   ENGINE        videocutler (default; needs a CutLER checkout, detectron2 and WEIGHTS) | maskcut (built-in)
#   WSOVVIS_ROOT  repository root (default: the folder above this script)
#   IMG_ROOT      frames, <video>/<frame>.jpg (default $WSOVVIS_ROOT/data/LV-VIS/<split>/JPEGImages)
#   OUT_ROOT      outputs: masks/, manifest/, logs/ (default $WSOVVIS_ROOT/outputs/videocutler_lvvis_png/<split>)
#   OUT_JSON      the tube JSON (default $OUT_ROOT/<split>_pseudo_tubes.json)
# The convert step runs when every worker finished (failed videos are listed in the manifest and left out
# of the JSON). Re-running resumes.
set -euo pipefail

SPLIT="${1:-train}"
case "$SPLIT" in train|val) ;; *) echo "usage: $0 [train|val]" >&2; exit 2 ;; esac
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
export WSOVVIS_ROOT="${WSOVVIS_ROOT:-$(dirname "$HERE")}"
IMG_ROOT="${IMG_ROOT:-$WSOVVIS_ROOT/data/LV-VIS/$SPLIT/JPEGImages}"
OUT_ROOT="${OUT_ROOT:-$WSOVVIS_ROOT/outputs/videocutler_lvvis_png/$SPLIT}"
OUT_JSON="${OUT_JSON:-$OUT_ROOT/${SPLIT}_pseudo_tubes.json}"
export IMG_ROOT OUT_ROOT
if [[ -z "${PYTHON:-}" ]]; then
  if [[ -x "$WSOVVIS_ROOT/.venv/bin/python" ]]; then PYTHON="$WSOVVIS_ROOT/.venv/bin/python"; else PYTHON=python3; fi
fi
export PYTHON

rc=0
bash "$HERE/run_videocutler_4gpu_png_only.sh" "$SPLIT" || rc=$?
if [[ $rc -gt 1 ]]; then
  echo "[pseudo] a worker broke (exit $rc); not converting. Re-run to resume." >&2
  exit "$rc"
fi

echo "[pseudo] converting $OUT_ROOT/masks -> $OUT_JSON"
cd "$WSOVVIS_ROOT"
PYTHONPATH="$WSOVVIS_ROOT${PYTHONPATH:+:$PYTHONPATH}" "$PYTHON" -m wsovvis convert \
  --mask_root "$OUT_ROOT/masks" --img_root "$IMG_ROOT" --out_json "$OUT_JSON" --split_name "$SPLIT" --no_progress
echo "[pseudo] done: $OUT_JSON"
exit "$rc"
