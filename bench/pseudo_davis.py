"""Pseudo-tube quality on real video: the weight-free engine vs published masks on the DAVIS sample.

    .venv/bin/python bench/pseudo_davis.py [--data ../shared/data/real/davis2016val_sample]
                                           [--out bench/out/pseudo_davis] [--fresh] [--workers 2]
                                           [--quick] [--no_loo] [--skip_eig] [--no_sheets]

1. ``wsovvis pseudo`` (maskcut engine, weight-free features: the default without --weights) on
   ``JPEGImages`` -> id PNGs; ``wsovvis convert`` -> YouTube-VIS JSON; each tube's score from the
   pseudo manifest.
2. The human DAVIS-2016 masks (``Annotations``) converted the same way are the GT.
3. Reference points: the published RVOS (unsupervised) and OSVOS (semi-supervised) masks. They
   carry no scores, so two documented rules are scored and both printed:
   * ``order``: score = 1 - (id - 1) / 100, the method's own emission order (RVOS emits its
     proposals one after the other, most confident first; OSVOS ids follow the DAVIS objects);
   * ``persistence``: score = fraction of the frames where the tube is present.
   The RVOS target is the better of the two.
4. Class-agnostic AP / AP50 with ``wsovvis.evaluation.evaluate``; contact sheets of our tubes.
5. Seconds per 480p frame on CPU (engine + PNG writing, from the manifest) and the eigensolver
   time: our implicit-eps ARPACK solve vs the dense generalized ``scipy.linalg.eigh(D - A, D)`` of
   MaskCut, side by side on the same 3600-node affinity (MaskCut's 60x60 grid), with the
   correlation of the two eigenvectors.
6. DAVIS J (per sequence: mean per-frame IoU of the union of all tubes with the GT foreground;
   averaged over sequences) for ours, RVOS and OSVOS; identity switches (`wsovvis.pseudo.quality`)
   against the DAVIS-2016 fg/bg GT and against the OSVOS object ids; Spearman of our tube score
   vs the tube's spatio-temporal IoU with the GT.
7. Leave-one-sequence-out (`wsovvis.pseudo.tuning`): each grid configuration (``--quick``: a
   smaller grid) runs on every sequence; per fold the configuration with the best AP50 on the
   other 7 (ties broken by their mean J) is scored on the held-out one; mean ± std over the 8 folds
   (and pooled AP50) beside the in-sample numbers, and the Spearman over every setting's tubes.
   Quote the held-out figure. The grid's outputs are cached in ``<out>/loo_grid.json``.

Numbers go to stdout and ``<out>/results.json``.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")  # as the pseudo CLI does; see wsovvis/pseudo/cli.py
os.environ.setdefault("HF_HUB_OFFLINE", "1")

import numpy as np  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from wsovvis.cli import run_module  # noqa: E402
from wsovvis.data import convert as convert_mod  # noqa: E402
from wsovvis.evaluation import evaluate  # noqa: E402
from wsovvis.pseudo import cli as pseudo_cli  # noqa: E402
from wsovvis.pseudo.quality import identity_switches, region_similarity, spearman, tube_iou  # noqa: E402
from wsovvis.pseudo.runner import read_manifests  # noqa: E402
from wsovvis.pseudo.tuning import GRID, QUICK_GRID, config_name, default_config, grid_configs, loo_report, run_grid  # noqa: E402
from wsovvis.utils.io import atomic_write_json, read_json  # noqa: E402
from wsovvis.utils.logging import setup_logging  # noqa: E402

REFERENCES = {"RVOS": "Pseudo_RVOS_davis2017", "OSVOS": "Pseudo_OSVOS_davis2017"}


def to_json(mask_root: Path, img_root: Path, out_json: Path) -> dict:
    convert_mod.convert(mask_root, img_root, out_json, split_name="davis_sample", min_masks=1, min_coverage=0.0,
                        progress=False)
    return read_json(out_json)


def results_from(conv: dict, score_of) -> list[dict]:
    """Converted JSON -> results list; ``score_of(video_name, track_id, annotation, length)``."""
    names = {v["id"]: v["name"] for v in conv["videos"]}
    lengths = {v["id"]: v["length"] for v in conv["videos"]}
    out = []
    for a in conv["annotations"]:
        vid = a["video_id"]
        out.append({"video_id": vid, "category_id": 1, "segmentations": a["segmentations"],
                    "score": float(score_of(names[vid], a["track_id"], a, lengths[vid]))})
    return out


def remap_video_ids(results: list[dict], conv: dict, gt: dict) -> list[dict]:
    """Our converted video ids -> the GT's ids (matched by video name)."""
    gt_id = {v["name"]: v["id"] for v in gt["videos"]}
    name = {v["id"]: v["name"] for v in conv["videos"]}
    return [dict(r, video_id=gt_id[name[r["video_id"]]]) for r in results if name[r["video_id"]] in gt_id]


def persistence(_v, _t, ann, length) -> float:
    return sum(s is not None for s in ann["segmentations"]) / length


def emission_order(_v, track_id, _a, _l) -> float:
    return 1.0 - (track_id - 1) / 100.0


def read_tubes(mask_dir: Path, stems: list[str], prefix: str = "") -> dict[int, dict[int, np.ndarray]]:
    """Id PNGs of one sequence (``<prefix><stem>.png``) -> id -> ``{frame: bool mask}`` (0 = background)."""
    from wsovvis.data.masks import read_ids

    tubes: dict[int, dict[int, np.ndarray]] = {}
    for t, stem in enumerate(stems):
        ids = read_ids(mask_dir / f"{prefix}{stem}.png").astype(np.int64)
        for k in np.unique(ids):
            if k:
                tubes.setdefault(int(k), {})[t] = ids == k
    return dict(sorted(tubes.items()))


def gt_ids(data: Path, seq: str, stems: list[str], folder: str = "Annotations") -> np.ndarray:
    from wsovvis.data.masks import read_ids

    return np.stack([read_ids(data / folder / seq / f"{s}.png") for s in stems]).astype(np.int64)


def video_quality(by_id: dict[int, dict[int, np.ndarray]], gt: np.ndarray, osvos: np.ndarray) -> dict:
    """J, identity switches (vs the DAVIS-2016 fg/bg GT and vs the OSVOS multi-object masks), tube id -> tube IoU."""
    tubes = list(by_id.values())
    union = np.zeros(gt.shape, bool)
    for tb in tubes:
        for t, m in tb.items():
            union[t] |= m
    gtube = {t: gt[t] == 1 for t in range(len(gt))}
    return {"J": region_similarity(union, gt == 1), "id_switches": identity_switches(tubes, gt),
            "id_switches_osvos": identity_switches(tubes, osvos),
            "tube_iou": {k: tube_iou(tb, gtube) for k, tb in by_id.items()}}


def leave_one_out_section(data: Path, img_root: Path, out: Path, gt: dict, seqs: list[str], grid: dict,
                          workers: int = 1) -> dict:
    """Choose the grid configuration on 7 sequences, score it on the 8th; print beside the in-sample numbers."""
    default = config_name(default_config())
    configs = [config_name(c) for c in grid_configs(grid)]
    if default not in configs:
        raise SystemExit(f"error: the grid {grid} must contain the default configuration ({default})")
    cache = out / "loo_grid.json"  # the grid's outputs (RLE results, J, switches): rerun only when the grid changes
    key = {"grid": {k: list(v) for k, v in grid.items()}, "sequences": seqs}
    cached = read_json(cache) if cache.is_file() else None
    if cached is not None and cached.get("key") == key:
        per_config = cached["per_config"]
    else:
        per_config = run_grid(img_root, data / "Annotations", seqs, grid, extra_gt_root=data / REFERENCES["OSVOS"],
                              workers=workers)
        atomic_write_json(cache, {"key": key, "per_config": per_config})
    rep = loo_report(gt, per_config, default)
    print(f"\nleave-one-sequence-out (grid {grid}; AP50 chooses the configuration on the other {len(seqs) - 1})")
    print(f"{'held out':20s} {'chosen':38s} {'train AP50':>10s} {'AP50':>6s} {'J':>6s} {'idsw':>5s}")
    for f in rep["folds"]:
        print(f"{f['held_out']:20s} {f['chosen']:38s} {100 * f['train_score']:10.1f} {100 * f['held_out_ap50']:6.1f} "
              f"{100 * f['held_out_J']:6.1f} {f['held_out_id_switches']:5d}")
    print(f"held-out AP50 {100 * rep['held_out_ap50_mean']:.1f} ± {100 * rep['held_out_ap50_std']:.1f} (per fold; "
          f"pooled over the 8 held-out sequences {100 * rep['held_out_ap50_pooled']:.1f}), "
          f"held-out J {100 * rep['held_out_J_mean']:.1f} ± {100 * rep['held_out_J_std']:.1f}")
    for name, v in rep["in_sample"].items():
        tag = " (default)" if name == default else ""
        tag += " <- best in-sample" if name == rep["in_sample_best"] else ""
        print(f"in-sample {name:38s} AP50 {100 * v['AP50']:5.1f}  J {100 * v['J']:5.1f}  idsw {v['id_switches']}{tag}")
    # One setting leaves few tubes (mostly one per sequence), so its Spearman ranks across sequences only;
    # over every setting's tubes the junk tubes that some settings keep are ranked too.
    sc = [x for per in per_config.values() for o in per.values() for x in o["scores"]]
    ious = [x for per in per_config.values() for o in per.values() for x in o["tube_iou"]]
    rep["spearman_all_settings"] = rho = spearman(sc, ious)
    print(f"Spearman(tube score, tube IoU with GT) over the {len(ious)} tubes of all {len(per_config)} settings: "
          f"{rho:.3f}")
    return rep


def eig_bench(img_root: Path, repeats: int = 3) -> dict:
    """ARPACK (ours) vs dense generalized eigh on one 60x60-cell affinity of a DAVIS frame."""
    import cv2

    from wsovvis.pseudo.classic_features import ClassicFeatures
    from wsovvis.pseudo.frames import list_frames, read_rgb
    from wsovvis.pseudo.ncut import cosine_affinity, dense_affinity, dense_generalized_eigenvector, second_eigenvector

    seq = sorted(p.name for p in img_root.iterdir() if p.is_dir())[0]
    paths = list_frames(img_root / seq)[:2]
    frames = np.stack([cv2.resize(read_rgb(p), (480, 480), interpolation=cv2.INTER_AREA) for p in paths])
    feats = ClassicFeatures(patch=8)(frames).patch[0]
    w = cosine_affinity(feats.reshape(-1, feats.shape[-1]), 0.5)
    ours = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        x, lam = second_eigenvector(w, 1e-5)
        ours.append(time.perf_counter() - t0)
    a = dense_affinity(w, 1e-5)
    t0 = time.perf_counter()
    y, lam_ref = dense_generalized_eigenvector(a)
    dense = time.perf_counter() - t0
    corr = abs(float(np.corrcoef(x, y)[0, 1]))
    return {"nodes": int(w.shape[0]), "density": float(np.asarray(w).mean()), "ours_s": float(np.median(ours)),
            "dense_eigh_s": dense, "speedup": dense / float(np.median(ours)), "abs_corr": corr,
            "eigenvalue_ours": lam, "eigenvalue_dense": lam_ref, "frame": f"{seq}/{paths[0].name}"}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", default=str(REPO.parent / "shared/data/real/davis2016val_sample"))
    ap.add_argument("--out", default=str(REPO / "bench/out/pseudo_davis"))
    ap.add_argument("--fresh", action="store_true", help="delete earlier pseudo masks first (else resume)")
    ap.add_argument("--workers", type=int, default=1)
    ap.add_argument("--skip_eig", action="store_true")
    ap.add_argument("--no_sheets", action="store_true")
    ap.add_argument("--quick", action="store_true",
                    help=f"leave-one-out over the small grid {QUICK_GRID} instead of {GRID}")
    ap.add_argument("--no_loo", action="store_true", help="skip the leave-one-sequence-out protocol")
    args = ap.parse_args()
    setup_logging()
    data, out = Path(args.data), Path(args.out)
    img_root = data / "JPEGImages"
    if not img_root.is_dir():
        print(f"error: {img_root} not found (pass --data)", file=sys.stderr)
        return 2
    if args.fresh and (out / "ours").exists():
        import shutil

        shutil.rmtree(out / "ours")
    report: dict = {"data": str(data)}

    t0 = time.perf_counter()
    rc = run_module(pseudo_cli, ["--img_root", str(img_root), "--out", str(out / "ours"), "--workers",
                                 str(args.workers)], "wsovvis pseudo")
    wall = time.perf_counter() - t0
    if rc not in (0, 1):
        return rc
    manifest = read_manifests(out / "ours")
    frames = sum(e["num_frames"] for e in manifest.values() if e.get("status") == "done")
    secs = sum(e["seconds"] for e in manifest.values() if e.get("status") == "done")
    sizes = {tuple(e["size"]) for e in manifest.values() if e.get("status") == "done"}
    report["speed"] = {"frames": frames, "engine_seconds": secs, "seconds_per_frame": secs / max(frames, 1),
                       "frame_sizes": sorted(sizes), "wall_seconds_this_run": wall}
    scores = {(v, t["id"]): t["score"] for v, e in manifest.items() for t in e.get("tubes", [])}

    gt = to_json(data / "Annotations", img_root, out / "gt.json")
    conv = to_json(out / "ours" / "masks", img_root, out / "ours.json")
    ours = remap_video_ids(results_from(conv, lambda v, t, a, n: scores[(v, t)]), conv, gt)
    rows = {"ours (weight-free maskcut)": evaluate(gt, ours, class_agnostic=True)}
    report["num_tubes"] = {"ours": len(ours)}
    for name, folder in REFERENCES.items():
        ref = to_json(data / folder, img_root, out / f"{name.lower()}.json")
        report["num_tubes"][name] = len(ref["annotations"])
        for rule, fn in (("order", emission_order), ("persistence", persistence)):
            res = remap_video_ids(results_from(ref, fn), ref, gt)
            rows[f"{name} ({rule} score)"] = evaluate(gt, res, class_agnostic=True)
    report["metrics"] = {k: {m: float(v[m]) for m in ("AP", "AP50", "AP75", "AR1", "AR10")} for k, v in rows.items()}

    print("\nclass-agnostic video mask AP vs the human DAVIS-2016 masks (8 sequences x 30 frames)")
    print(f"{'method':40s} {'AP':>6s} {'AP50':>6s} {'AP75':>6s} {'AR1':>6s} {'AR10':>6s}  tubes")
    for k, v in report["metrics"].items():
        n = report["num_tubes"]["ours" if k.startswith("ours") else k.split()[0]]
        print(f"{k:40s} {100 * v['AP']:6.1f} {100 * v['AP50']:6.1f} {100 * v['AP75']:6.1f} "
              f"{100 * v['AR1']:6.1f} {100 * v['AR10']:6.1f}  {n}")
    rvos_best = max(v["AP50"] for k, v in report["metrics"].items() if k.startswith("RVOS"))
    ours50 = report["metrics"]["ours (weight-free maskcut)"]["AP50"]
    report["beats_rvos_ap50"] = ours50 > rvos_best
    print(f"AP50 ours {100 * ours50:.1f} vs best RVOS {100 * rvos_best:.1f}: "
          f"{'beats' if ours50 > rvos_best else 'does NOT beat'} RVOS")
    sp = report["speed"]
    print(f"speed: {sp['seconds_per_frame']:.3f} s per frame at {sp['frame_sizes']} (H, W) on CPU, "
          f"{sp['frames']} frames (engine + PNG writing; includes optical flow)")

    # DAVIS J, identity switches and the score/IoU rank correlation, from the PNGs every method wrote.
    seqs = sorted(p.name for p in img_root.iterdir() if p.is_dir())
    quality: dict[str, dict] = {"ours": {}, "RVOS": {}, "OSVOS": {}}
    for seq in seqs:
        stems = sorted(p.stem for p in (data / "Annotations" / seq).glob("*.png"))
        gt, osvos = gt_ids(data, seq, stems), gt_ids(data, seq, stems, REFERENCES["OSVOS"])
        quality["ours"][seq] = video_quality(read_tubes(out / "ours" / "masks" / seq, stems, "mask_"), gt, osvos)
        for name, folder in REFERENCES.items():
            quality[name][seq] = video_quality(read_tubes(data / folder / seq, stems), gt, osvos)
    print("\nDAVIS J (mean per-frame IoU of the union of all tubes with the GT foreground), identity switches")
    print(f"{'method':10s} {'J':>6s} {'idsw':>5s} {'idsw(OSVOS ids)':>16s}   per-sequence J")
    report["quality"] = {}
    for name, per in quality.items():
        j = float(np.mean([q["J"] for q in per.values()]))
        sw = sum(q["id_switches"] for q in per.values())
        swo = sum(q["id_switches_osvos"] for q in per.values())
        report["quality"][name] = {"J": j, "id_switches": sw, "id_switches_osvos": swo,
                                   "per_sequence_J": {s: q["J"] for s, q in per.items()}}
        print(f"{name:10s} {100 * j:6.1f} {sw:5d} {swo:16d}   " + " ".join(f"{100 * q['J']:.0f}" for q in per.values()))
    sc = [scores[(s, k)] for s in seqs for k in quality["ours"][s]["tube_iou"]]
    ious = [i for s in seqs for i in quality["ours"][s]["tube_iou"].values()]
    report["quality"]["ours"]["spearman_score_vs_tube_iou"] = rho = spearman(sc, ious)
    print(f"ours: Spearman(tube score, tube IoU with GT) = {rho:.3f} over {len(ious)} tubes")

    if not args.no_loo:
        report["leave_one_out"] = loo = leave_one_out_section(data, img_root, out, read_json(out / "gt.json"), seqs,
                                                              QUICK_GRID if args.quick else GRID, args.workers)
        report["quality"]["ours"]["held_out"] = {k: loo[k] for k in ("held_out_ap50_mean", "held_out_J_mean")}

    if not args.no_sheets:
        from wsovvis.viz.contact_sheet import visualize_dataset

        sheets = visualize_dataset(ours, img_root, out / "sheets", videos_json=out / "gt.json", max_frames=8,
                                   top_k=5, progress=False)
        report["sheets"] = [str(p) for p in sheets]
        print(f"contact sheets: {out / 'sheets'} ({len(sheets)} videos)")

    if not args.skip_eig:
        report["eigensolver"] = e = eig_bench(img_root)
        print(f"eigensolver on {e['nodes']} nodes (density {e['density']:.2f}): ours {1000 * e['ours_s']:.1f} ms, "
              f"dense generalized eigh {1000 * e['dense_eigh_s']:.0f} ms -> {e['speedup']:.0f}x faster, "
              f"|corr| of the eigenvectors {e['abs_corr']:.4f}")
    atomic_write_json(out / "results.json", report, indent=1)
    print(f"wrote {out / 'results.json'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
