#!/usr/bin/env bash
# Pseudo-tube id PNGs for one LV-VIS split, one worker process per GPU (or one CPU worker).
#
#   bash scripts/run_videocutler_4gpu_png_only.sh [train|val]
#
# Environment (all optional):
#   WSOVVIS_ROOT  repository root (default: the folder above this script)
#   ENGINE        videocutler (default: the real VideoCutLER; needs a CutLER checkout, detectron2 and WEIGHTS)
#                 | maskcut (the built-in training-free generator; weight-free unless WEIGHTS/ARCH are set)
#   CONF          videocutler confidence threshold (default 0.6)
#   NUM_GPUS      workers; default: the visible GPUs (CUDA_VISIBLE_DEVICES or nvidia-smi), else 1 CPU worker
#   IMG_ROOT      default $WSOVVIS_ROOT/data/LV-VIS/<split>/JPEGImages
#   OUT_ROOT      default $WSOVVIS_ROOT/outputs/videocutler_lvvis_png/<split>   (PNGs in $OUT_ROOT/masks)
#   LOG_DIR       default $OUT_ROOT/logs   (one log per worker)
#   WEIGHTS       checkpoint for --weights (videocutler_m2f_rn50.pth, or a DINO .pth for maskcut)
#   ARCH          maskcut features (default auto: weight-free without WEIGHTS)
#   CUTLER_ROOT   CutLER checkout for ENGINE=videocutler (default $WSOVVIS_ROOT/third_party/CutLER)
#   PYTHON        interpreter (default $WSOVVIS_ROOT/.venv/bin/python, else python3)
#   EXTRA_ARGS    more flags for `wsovvis pseudo`
# Re-running resumes: finished videos are skipped, half-written ones are redone.
set -euo pipefail

SPLIT="${1:-train}"
case "$SPLIT" in train|val) ;; *) echo "usage: $0 [train|val]" >&2; exit 2 ;; esac

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
WSOVVIS_ROOT="${WSOVVIS_ROOT:-$(dirname "$HERE")}"
ENGINE="${ENGINE:-videocutler}"
CONF="${CONF:-0.6}"
IMG_ROOT="${IMG_ROOT:-$WSOVVIS_ROOT/data/LV-VIS/$SPLIT/JPEGImages}"
OUT_ROOT="${OUT_ROOT:-$WSOVVIS_ROOT/outputs/videocutler_lvvis_png/$SPLIT}"
LOG_DIR="${LOG_DIR:-$OUT_ROOT/logs}"
CUTLER_ROOT="${CUTLER_ROOT:-$WSOVVIS_ROOT/third_party/CutLER}"
if [[ -z "${PYTHON:-}" ]]; then
  if [[ -x "$WSOVVIS_ROOT/.venv/bin/python" ]]; then PYTHON="$WSOVVIS_ROOT/.venv/bin/python"; else PYTHON=python3; fi
fi

# Visible GPUs: the CUDA_VISIBLE_DEVICES list if set, else what nvidia-smi sees.
GPU_IDS=()
if [[ -n "${CUDA_VISIBLE_DEVICES:-}" ]]; then
  IFS=',' read -r -a GPU_IDS <<< "$CUDA_VISIBLE_DEVICES"
elif command -v nvidia-smi >/dev/null 2>&1; then
  n="$(nvidia-smi -L 2>/dev/null | grep -c '^GPU' || true)"
  for ((i = 0; i < n; i++)); do GPU_IDS+=("$i"); done
fi
NUM_GPUS="${NUM_GPUS:-${#GPU_IDS[@]}}"
[[ "$NUM_GPUS" -ge 1 ]] 2>/dev/null || NUM_GPUS=1

if [[ ! -d "$IMG_ROOT" ]]; then
  echo "error: $IMG_ROOT not found (expected <video>/<frame>.jpg folders; set IMG_ROOT or WSOVVIS_ROOT)" >&2
  exit 2
fi
case "$ENGINE" in maskcut|videocutler) ;; *) echo "error: ENGINE=$ENGINE; choose videocutler or maskcut" >&2; exit 2 ;; esac
export PYTHONPATH="$WSOVVIS_ROOT${PYTHONPATH:+:$PYTHONPATH}"
if [[ "$ENGINE" == videocutler ]]; then
  # Check the setup once here, before any worker starts, rather than in N identical worker logs.
  if ! "$PYTHON" - "$CUTLER_ROOT" "${WEIGHTS:-}" <<'PY'
import sys
from pathlib import Path
from wsovvis.pseudo.videocutler import missing_pieces
miss = missing_pieces(Path(sys.argv[1]), sys.argv[2] or None)
if miss:
    print("error: ENGINE=videocutler (the default) cannot start; missing:\n  - " + "\n  - ".join(miss)
          + "\nSet them up, or run the built-in training-free generator instead: ENGINE=maskcut bash "
          + "scripts/run_videocutler_4gpu.sh ...", file=sys.stderr)
    sys.exit(2)
PY
  then
    exit 2
  fi
fi
mkdir -p "$OUT_ROOT" "$LOG_DIR"

ARGS=(--img_root "$IMG_ROOT" --out "$OUT_ROOT" --engine "$ENGINE" --conf "$CONF" --cutler_root "$CUTLER_ROOT"
      --num_shards "$NUM_GPUS" --no_progress)
[[ -n "${WEIGHTS:-}" ]] && ARGS+=(--weights "$WEIGHTS")
[[ -n "${ARCH:-}" ]] && ARGS+=(--arch "$ARCH")
# shellcheck disable=SC2206
[[ -n "${EXTRA_ARGS:-}" ]] && ARGS+=($EXTRA_ARGS)

echo "[pseudo] split=$SPLIT engine=$ENGINE conf=$CONF workers=$NUM_GPUS gpus=${GPU_IDS[*]:-none (CPU)}"
echo "[pseudo] $IMG_ROOT -> $OUT_ROOT/masks (logs in $LOG_DIR)"
cd "$WSOVVIS_ROOT"
PIDS=()
for ((r = 0; r < NUM_GPUS; r++)); do
  log="$LOG_DIR/worker_${r}_of_${NUM_GPUS}.log"
  if [[ ${#GPU_IDS[@]} -gt 0 ]]; then
    dev="${GPU_IDS[$((r % ${#GPU_IDS[@]}))]}"
    CUDA_VISIBLE_DEVICES="$dev" "$PYTHON" -m wsovvis pseudo "${ARGS[@]}" --shard_index "$r" >"$log" 2>&1 &
    echo "[pseudo] worker $r on GPU $dev, pid $!, log $log"
  else
    CUDA_VISIBLE_DEVICES="" "$PYTHON" -m wsovvis pseudo "${ARGS[@]}" --shard_index "$r" >"$log" 2>&1 &
    echo "[pseudo] worker $r on CPU, pid $!, log $log"
  fi
  PIDS+=("$!")
done

STATUS=0
for r in "${!PIDS[@]}"; do
  rc=0
  wait "${PIDS[$r]}" || rc=$?
  tail -n 1 "$LOG_DIR/worker_${r}_of_${NUM_GPUS}.log" | sed "s/^/[worker $r] /"
  # 1 = some videos failed (listed in the manifest); anything else = the worker itself broke.
  if [[ $rc -ne 0 ]]; then
    [[ $rc -eq 1 ]] && STATUS=$((STATUS > 1 ? STATUS : 1)) || STATUS=3
    echo "[pseudo] worker $r exited with $rc (see $LOG_DIR/worker_${r}_of_${NUM_GPUS}.log)" >&2
  fi
done

"$PYTHON" - "$IMG_ROOT" "$OUT_ROOT" <<'PY'
import sys
from wsovvis.pseudo.frames import list_videos
from wsovvis.pseudo.runner import summarize
videos = list_videos(sys.argv[1])
s = summarize(sys.argv[2], videos)
missing = len(videos) - len(s.done) - len(s.failed)
# s.done counts every finished video, also those a worker skipped as finished by an earlier run
print(f"[pseudo] all workers: {len(s.done)} of {len(videos)} videos finished (in this run or an earlier one), "
      f"{len(s.failed)} failed, {missing} not processed")
if s.failed:
    print(f"[pseudo] failed (see {sys.argv[2]}/manifest): {', '.join(s.failed[:20])}" + (" ..." if len(s.failed) > 20 else ""))
PY
exit "$STATUS"
