"""``--launcher slurm``: run shards as a SLURM job array through submitit (``--launcher local``: here).

Flags follow the dinov2 / detectron2 submitit convention: ``--slurm_partition``,
``--slurm_gpus_per_task``, ``--slurm_cpus_per_task``, ``--slurm_mem_gb``, ``--slurm_time``
(minutes), ``--slurm_array_parallelism`` (the ``%N`` of the array), ``--slurm_folder`` (submitit's
logs and pickles; default ``<out>/slurm``). ``wsovvis pseudo`` submits one array task per shard
(``--num_shards``); each task runs `wsovvis.pseudo.runner.run_shard`, which resumes from the
manifests shared under ``--out``, so a requeued or re-submitted array redoes only unfinished videos.

Without ``--slurm_wait`` the command prints the job ids and returns at once; with it, it waits and
reports like a local run. ``--slurm_cluster local`` runs the same jobs as local processes
(submitit's local executor; tests, and trying a submission on a workstation).
"""

from __future__ import annotations

import argparse
import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from wsovvis.errors import WsovvisError
from wsovvis.utils.logging import get_logger

log = get_logger(__name__)

LAUNCHERS = ("local", "slurm")


def add_launcher_arguments(parser: argparse.ArgumentParser) -> None:
    g = parser.add_argument_group("cluster (--launcher slurm: a SLURM job array through submitit)")
    g.add_argument("--launcher", default="local", choices=LAUNCHERS, help="local (default): run here; slurm: submit")
    g.add_argument("--slurm_partition", help="SLURM partition")
    g.add_argument("--slurm_gpus_per_task", type=int, default=1, help="GPUs per array task (1)")
    g.add_argument("--slurm_cpus_per_task", type=int, default=8, help="CPUs per array task (8)")
    g.add_argument("--slurm_mem_gb", type=float, help="memory per task in GB (cluster default)")
    g.add_argument("--slurm_time", type=int, default=240, help="time limit per task in minutes (240)")
    g.add_argument("--slurm_array_parallelism", type=int, default=64, help="array tasks running at once (64)")
    g.add_argument("--slurm_account", help="SLURM account")
    g.add_argument("--slurm_constraint", help="SLURM constraint (e.g. a GPU type)")
    g.add_argument("--slurm_folder", help="submitit logs and pickles (default <out>/slurm)")
    g.add_argument("--slurm_wait", action="store_true", help="wait for the jobs and report their outcome")
    g.add_argument("--slurm_cluster", default="slurm", choices=("slurm", "local", "debug"),
                   help=argparse.SUPPRESS)  # submitit's local/debug executors: tests and dry runs


LAUNCHER_KEYS = ("launcher", "slurm_partition", "slurm_gpus_per_task", "slurm_cpus_per_task", "slurm_mem_gb",
                 "slurm_time", "slurm_array_parallelism", "slurm_account", "slurm_constraint", "slurm_folder",
                 "slurm_wait", "slurm_cluster")


def task_args(args: argparse.Namespace) -> dict[str, Any]:
    """The command's own arguments (plain values) as they travel to every task."""
    return {k: v for k, v in vars(args).items() if k not in LAUNCHER_KEYS}


def make_executor(args: argparse.Namespace, folder: Path, name: str):
    try:
        import submitit
    except ImportError as e:  # pinned in requirements.txt; a trimmed install may lack it
        raise WsovvisError("--launcher slurm needs the 'submitit' package (pip install submitit)") from e
    if args.slurm_time < 1 or args.slurm_array_parallelism < 1 or args.slurm_gpus_per_task < 0:
        raise WsovvisError("--slurm_time and --slurm_array_parallelism must be >= 1, --slurm_gpus_per_task >= 0")
    executor = submitit.AutoExecutor(folder=str(folder), cluster=args.slurm_cluster)
    params: dict[str, Any] = {"name": name, "timeout_min": args.slurm_time, "tasks_per_node": 1, "nodes": 1,
                              "cpus_per_task": args.slurm_cpus_per_task,
                              "slurm_array_parallelism": args.slurm_array_parallelism}
    if args.slurm_cluster == "slurm":
        params["slurm_gpus_per_task"] = args.slurm_gpus_per_task
        for key in ("partition", "account", "constraint"):
            if getattr(args, f"slurm_{key}"):
                params[f"slurm_{key}"] = getattr(args, f"slurm_{key}")
    else:
        params["gpus_per_node"] = args.slurm_gpus_per_task
    if args.slurm_mem_gb:
        params["mem_gb"] = args.slurm_mem_gb
    executor.update_parameters(**params)
    return executor


def submit(fn: Callable, calls: Sequence[tuple], args: argparse.Namespace, folder: str | os.PathLike,
           name: str) -> list:
    """Submit ``fn(*call)`` for every call as one job array; -> submitit jobs (in call order)."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    executor = make_executor(args, folder, name)
    with executor.batch():
        jobs = [executor.submit(fn, *call) for call in calls]
    ids = [j.job_id for j in jobs]
    log.info("submitted %d task(s) as %s (%s): %s; logs in %s", len(jobs), name, args.slurm_cluster,
             ids[0].split("_")[0] if ids and args.slurm_cluster == "slurm" else ", ".join(ids), folder)
    return jobs


def wait(jobs: Sequence) -> tuple[list, list[str]]:
    """-> (results of the jobs that finished, error lines of those that failed)."""
    results, errors = [], []
    for job in jobs:
        try:
            results.append(job.result())
        except Exception as e:  # submitit raises FailedJobError / UncompletedJobError with the task's log
            errors.append(f"task {job.job_id}: {type(e).__name__}: {str(e).strip().splitlines()[-1] if str(e) else ''}")
    return results, errors


def pseudo_shard_task(argdict: dict[str, Any], index: int, num: int) -> dict[str, Any]:
    """One array task: build the engine on the node and run shard ``index`` of ``num`` (resumable)."""
    from wsovvis.pseudo.engines import build_engine
    from wsovvis.pseudo.runner import run_shard
    from wsovvis.utils.logging import setup_logging

    setup_logging()
    args = argparse.Namespace(**argdict)
    s = run_shard(build_engine(args), args.img_root, args.out, index, num, progress=False)
    return {"shard": index, "done": s.done, "skipped": s.skipped, "failed": s.failed, "line": s.line()}


def launch_pseudo(args: argparse.Namespace) -> int:
    """``wsovvis pseudo --launcher slurm``: one array task per shard of ``--num_shards``."""
    if args.workers != 1:
        raise WsovvisError("--workers applies to --launcher local; with --launcher slurm each shard is an array "
                           "task: raise --num_shards instead")
    if args.shard_index != 0:
        raise WsovvisError("--shard_index is chosen per array task with --launcher slurm; leave it out")
    n = args.num_shards
    if n < 1:
        raise WsovvisError(f"--num_shards must be >= 1, got {n}")
    folder = args.slurm_folder or Path(args.out) / "slurm"
    targs = task_args(args)
    targs.update(workers=1, no_progress=True)
    jobs = submit(pseudo_shard_task, [(targs, i, n) for i in range(n)], args, folder, "wsovvis-pseudo")
    print(f"pseudo: submitted {n} shard(s): job(s) {', '.join(j.job_id for j in jobs)}; logs in {folder}")
    if not args.slurm_wait:
        return 0
    results, errors = wait(jobs)
    done = sum(len(r["done"]) + len(r["skipped"]) for r in results)
    failed = [v for r in results for v in r["failed"]]
    print(f"pseudo: {len(results)}/{n} task(s) finished, {done} video(s) done, {len(failed)} failed")
    for e in errors:
        print(f"pseudo: {e}")
    return 3 if errors else (1 if failed else 0)
