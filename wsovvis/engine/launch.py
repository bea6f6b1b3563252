"""The training entry point: ``train_seqformer_pseudo.py [group=option ...] with FILE.yaml key=value -F DIR -c no``.

`main(argv)` returns the exit code; `run_training(argv)` is the Python entry (the demo calls it) and
returns ``(run_dir, final metrics)``. Steps:

1. Compose in one pass (`wsovvis.engine.compose.compose_run`): ``group=option`` tokens go to Hydra's
   compose API over ``configs/``, then ``d2_cfg_path``, ``with`` files, ``key=value`` and ``d2_opts``
   (unknown key -> the closest valid one); every key keeps its source. The rest of argv is Sacred's
   (``-F``, ``-c``, ``print_config``...).
2. ``resume`` / ``eval_only`` of a run directory: its saved ``config.yaml`` is the base; only keys
   given on this command line (``key=value``, ``group=option``) replace saved values; every
   difference is printed (`rebase_on_saved`).
3. The result is validated ONCE (`wsovvis.engine.config.build_train_config`) before anything is
   created, then handed to Sacred as its config (no Sacred updates: nothing is merged twice).
4. Only global rank 0 attaches the file observer, which creates the run directory once
   (``<-F dir>/<n>``); a later invocation of the same run writes its record to
   ``<run>/invocations/<k>/`` (`wsovvis.engine.run_dir`). It saves ``config.yaml`` and ``provenance.json``.
5. ``num_gpus=N`` spawns local ranks 1..N-1 (this process is local rank 0); under ``torchrun``
   each process is one rank. Every rank gets the run directory and the validated config from rank 0.

Exit codes: 0 done, 2 bad input or a file-system / memory failure (``error: <message>``; with
``WSOVVIS_VERBOSE=1`` also the traceback), 1 any other failure (traceback printed and written to
``<run>/traceback.txt``), 130 interrupted.
"""

from __future__ import annotations

import multiprocessing as mp
import os
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from wsovvis.engine import distributed as du
from wsovvis.engine.compose import ComposedConfig, compose_run, config_groups, split_argv
from wsovvis.engine.config import build_train_config, check_eval_only, train_config_dict
from wsovvis.engine.image_data import image_input_paths
from wsovvis.engine.num_classes import resolve_num_classes
from wsovvis.errors import WsovvisError, describe_failure
from wsovvis.utils.logging import get_logger, setup_logging

log = get_logger(__name__)

EXPERIMENT_NAME = "wsovvis_seqformer"
PROG = "train_seqformer_pseudo.py"


class RankFailure(RuntimeError):
    """Another rank failed first; its traceback is in the run directory."""


def _device_and_backend(cfg, local_rank: int):
    import torch

    want = cfg.device
    if want == "cuda" and not torch.cuda.is_available():
        raise WsovvisError("config: device=cuda but CUDA is not available (use device=cpu or device=auto)")
    if want == "cuda" or (want == "auto" and torch.cuda.is_available()):
        if local_rank >= torch.cuda.device_count():
            raise WsovvisError(f"config: local rank {local_rank} needs GPU {local_rank} but only "
                               f"{torch.cuda.device_count()} are visible (num_gpus={cfg.num_gpus})")
        torch.cuda.set_device(local_rank)
        return torch.device("cuda", local_rank), "nccl"
    return torch.device("cpu"), "gloo"


def run_rank(info: du.DistInfo, cfg, resolved: dict, run_dir: str | None, sacred_run: Any, builder: Callable | None,
             out_dir: str | None = None, record_dir: str | None = None):
    """Body of every rank: join the group, receive run directory + validated config from rank 0, train."""
    import torch

    from wsovvis.engine import trainer

    device, backend = _device_and_backend(cfg, info.local_rank)
    info.backend, info.timeout_s = backend, cfg.dist_timeout_s
    try:
        du.init_group(info)
        run_dir, out_dir, record_dir, cfg, resolved = du.broadcast_object((run_dir, out_dir, record_dir, cfg, resolved))
        if cfg.num_threads > 0:
            torch.set_num_threads(cfg.num_threads)
        elif device.type == "cpu" and info.local_world_size > 1:
            torch.set_num_threads(max(1, (os.cpu_count() or 1) // info.local_world_size))
        ctx = trainer.Context(device=device, run_dir=Path(run_dir), config=resolved,
                              sacred_run=sacred_run if info.rank == 0 else None,
                              builder=builder or trainer.default_builder,
                              out_dir=Path(out_dir) if out_dir else None)
        return trainer.run(cfg, ctx)
    except BaseException as e:
        if not isinstance(e, KeyboardInterrupt) or info.rank != 0:
            du.write_rank_traceback(record_dir or run_dir, info.rank, du.format_exception(e))
        raise
    finally:
        du.destroy_group()


def _spawned_rank(info: du.DistInfo, cfg, resolved: dict, run_dir: str, parent_pid: int, builder,
                  record_dir: str | None = None) -> None:
    setup_logging()
    du.ParentWatchdog(parent_pid).start()
    try:
        run_rank(info, cfg, resolved, run_dir, None, builder, record_dir=record_dir)
    except BaseException as e:
        print(f"[wsovvis] rank {info.rank} failed:\n{du.format_exception(e)}", file=sys.stderr, flush=True)
        sys.stdout.flush()
        # Skip interpreter teardown: a peer may be gone, and joining its sockets could block.
        os._exit(1)


def launch_workers(cfg, resolved: dict, run_dir: str | None, sacred_run: Any, builder: Callable | None,
                   out_dir: str | None = None, record_dir: str | None = None) -> dict:
    """``record_dir``: this invocation's record (tracebacks go there; the run directory by default)."""
    env = du.torchrun_env()
    if env is not None:
        return run_rank(env, cfg, resolved, run_dir, sacred_run, builder, out_dir, record_dir)
    if cfg.world_size == 1:
        return run_rank(du.DistInfo(), cfg, resolved, run_dir, sacred_run, builder, out_dir, record_dir)
    if cfg.dist_url == "auto":
        if cfg.num_machines > 1:
            raise WsovvisError("config: num_machines > 1 needs dist_url=tcp://<rank-0 host>:<port>")
        url = f"tcp://127.0.0.1:{du.free_port()}"
    else:
        url = cfg.dist_url
    base = cfg.machine_rank * cfg.num_gpus

    def info(local: int) -> du.DistInfo:
        return du.DistInfo(rank=base + local, world_size=cfg.world_size, local_rank=local,
                           local_world_size=cfg.num_gpus, init_method=url)

    ctx = mp.get_context("spawn")
    procs = {}
    for local in range(1, cfg.num_gpus):
        p = ctx.Process(target=_spawned_rank, args=(info(local), cfg, resolved, run_dir, os.getpid(), builder,
                                                    record_dir),
                        name=f"wsovvis-rank{base + local}")
        p.start()
        procs[base + local] = p

    def hard_exit(rank: int, code: int) -> None:
        if sacred_run is not None:
            for obs in sacred_run.observers:
                try:
                    obs.failed_event(fail_time=_utcnow(), fail_trace=[f"rank {rank} exited with code {code}\n"])
                except Exception:
                    pass

    trace_dir = record_dir or run_dir
    watchdog = du.ChildWatchdog(procs, Path(trace_dir) if trace_dir else None, on_hard_exit=hard_exit)
    watchdog.start()
    try:
        result = run_rank(info(0), cfg, resolved, run_dir, sacred_run, builder, out_dir, record_dir)
    except BaseException as e:
        failed = _first_child_failure(procs, watchdog)
        watchdog.stop()
        du.terminate(procs.values())
        if failed is not None:
            rank, code, when = failed
            silent = trace_dir is not None and not (Path(trace_dir) / f"traceback.rank{rank}.txt").exists()
            if silent:
                # A rank that died without a word (signal, os._exit, OOM killer) is the root cause;
                # rank 0's own error is only the broken connection to it.
                du.write_rank_traceback(trace_dir, rank, f"rank {rank} exited with code {code} without a traceback "
                                                      "(killed by a signal or a hard exit, e.g. out of memory)\n")
            du.write_root_traceback(trace_dir, root_rank=rank if silent else None)
            raise RankFailure(f"rank {rank} failed (exit code {code}); every rank was stopped"
                              + (f"; root traceback in {Path(trace_dir) / 'traceback.txt'}" if trace_dir else "")
                              ) from e
        raise
    watchdog.stop()
    deadline = time.time() + 60
    for p in procs.values():
        p.join(max(0.0, deadline - time.time()))
    bad = [(r, p.exitcode) for r, p in procs.items() if p.exitcode != 0]
    du.terminate(procs.values())
    if bad:
        raise RankFailure(f"ranks finished with errors: {bad}")
    return result


def _first_child_failure(procs: dict, watchdog: du.ChildWatchdog, wait_s: float = 5.0):
    """The failed child, if any; waits briefly because a child's death may surface first on rank 0."""
    deadline = time.time() + wait_s
    while True:
        if watchdog.failed is not None:
            return (*watchdog.failed, time.time())
        dead = [(r, p.exitcode) for r, p in procs.items() if p.exitcode not in (None, 0)]
        if dead:
            return (*dead[0], time.time())
        if time.time() > deadline:
            return None
        time.sleep(0.1)


def _utcnow():
    import datetime

    return datetime.datetime.now(datetime.timezone.utc).replace(tzinfo=None)


def _experiment():
    from sacred import SETTINGS, Experiment

    # "sys" capture keeps tqdm and spawned ranks working; -c no disables capturing.
    SETTINGS.CAPTURE_MODE = "sys"
    SETTINGS.DISCOVER_SOURCES = "none"
    SETTINGS.DISCOVER_DEPENDENCIES = "none"
    ex = Experiment(EXPERIMENT_NAME, save_git_info=False, interactive=True, base_dir=os.getcwd())
    from sacred.utils import apply_backspaces_and_linefeeds

    ex.captured_out_filter = apply_backspaces_and_linefeeds
    return ex


def _sacred_main(sacred_run: Any, state: dict) -> dict:
    from wsovvis.engine.run_dir import make_run_dir, next_invocation_dir, save_provenance

    cfg, resolved = state["cfg"], state["resolved"]
    observer = state["observer"]
    run_dir = out_dir = record = None
    if state["global_rank"] == 0:
        if state["resume_dir"] is not None:
            # a later invocation of an existing run: its own numbered record, nothing overwritten
            run_dir = Path(state["resume_dir"]).resolve()
            record = Path(observer.dir).resolve() if observer is not None else next_invocation_dir(run_dir)
        else:
            run_dir = (Path(observer.dir) if observer is not None else make_run_dir(state["base_dir"])).resolve()
            record = run_dir
        save_provenance(run_dir, resolved, state["argv"], state["hydra_overrides"], cfg.world_size,
                        extra={"prog": state["prog"], "resumed": bool(cfg.resume), "eval_only": cfg.eval_only},
                        sources=state["sources"], record_dir=record)
        if record != run_dir and cfg.eval_only:
            out_dir = str(record)  # eval-only results go to the invocation's record, not over the run's
        log.info("run directory: %s%s", run_dir, f" (this invocation's record: {record})" if record != run_dir else "")
        state["run_dir"], state["record_dir"] = run_dir, record
    try:
        return launch_workers(cfg, resolved, str(run_dir) if run_dir else None, sacred_run, state["builder"], out_dir,
                              str(record) if record else None)
    except BaseException as e:
        if record is not None:  # this invocation's record: an earlier invocation's traceback is kept
            if not isinstance(e, RankFailure):
                if not list(record.glob("traceback.rank*.txt")):
                    du.write_rank_traceback(record, 0, du.format_exception(e))
                du.write_root_traceback(record)
            if (record / "traceback.txt").is_file():
                log.error("traceback written to %s", record / "traceback.txt")
        raise


def check_input_paths(cfg) -> None:
    """Fail before a run directory exists when an input file or folder is missing."""
    d = cfg.data
    check_eval_only(cfg)
    need = []
    if not cfg.eval_only:
        need += [("data.train_json", d.train_json, "file"), ("data.train_img_root", d.train_img_root, "dir")]
        need = image_input_paths(d, need)  # data.images: its files too; images only: no videos needed
    if cfg.eval_only or cfg.eval.at_end or cfg.eval.period > 0:
        if d.val_json or cfg.eval_only:
            need += [("data.val_json", d.val_json, "file"), ("data.val_img_root", d.val_img_root, "dir")]
    if cfg.model.weights:
        need.append(("model.weights", cfg.model.weights, "file"))
    for key, value, kind in need:
        if not value:
            raise WsovvisError(f"config: {key} is not set")
        p = Path(value)
        if not (p.is_file() if kind == "file" else p.is_dir()):
            what = "file" if kind == "file" else "directory"
            raise WsovvisError(f"{value}: {key} names no {what}" + (" (it exists but is not a " + what + ")"
                                                                   if p.exists() else ""))


def prepare(argv: Sequence[str], prog: str = PROG, builder: Callable | None = None):
    """Parse and validate everything that can be checked before a run starts.

    Returns ``(experiment, command, updates, options, state)``; raises `WsovvisError` on bad input.
    """
    from docopt import DocoptExit, docopt

    from wsovvis.engine.run_dir import RunDirObserver, find_resume_dir

    argv = list(argv)
    split = split_argv(argv, config_groups())
    ex = _experiment()
    _, usage, internal_usage = ex.get_usage(program_name=prog)
    try:
        args = docopt(internal_usage, split.sacred_argv, default_help=False)
    except DocoptExit as e:
        raise WsovvisError(f"command line: cannot parse {' '.join(split.sacred_argv)!r}\n{e}") from e
    if args.get("help") or args.get("--help"):
        return ex, None, {}, args, {"help": True, "usage": usage}
    composed = compose_run(split.hydra_overrides, list(args["UPDATE"]))
    env = du.torchrun_env()
    global_rank = env.rank if env is not None else _int(composed.config.get("machine_rank")) * _int(
        composed.config.get("num_gpus"), 1)
    base_dir = args.get("--file_storage") or composed.config.get("output_root") or "runs/wsovvis"
    args["--file_storage"] = None  # our observer replaces Sacred's plain -F observer
    resume = composed.config.get("resume")
    resume_dir = None
    if resume:
        try:
            resume_dir = find_resume_dir(base_dir, resume)
        except WsovvisError:
            if global_rank == 0:
                raise  # other ranks (another machine's disk) get the config from rank 0
    if resume_dir is not None and (resume_dir / "config.yaml").is_file():
        composed = _rebase(resume_dir / "config.yaml", composed)
    for line in composed.notices:
        log.warning("%s", line)
    if not composed.config.get("eval_only"):  # eval-only rebuilds the model its run saved
        notice = resolve_num_classes(composed.config, composed.sources)
        if notice:
            log.info("%s", notice)
    cfg = build_train_config(composed.config, where="config")  # the one validation
    resolved = train_config_dict(cfg)
    if not (args.get("COMMAND") and args["COMMAND"] != "wsovvis_train") and (global_rank == 0 or not resume):
        check_input_paths(cfg)
    observer = None
    if global_rank == 0 and not args.get("--unobserved"):
        try:  # here, not in Sacred's observer: its failure path logs a traceback of its own
            Path(base_dir).mkdir(parents=True, exist_ok=True)
        except OSError as e:
            raise WsovvisError(f"{base_dir}: cannot create the runs folder (-F / output_root): "
                               f"{e.strerror or e}") from e
        observer = RunDirObserver(base_dir, resume_dir=resume_dir)
        ex.observers.append(observer)
    ex.add_config(resolved)
    state = {"observer": observer, "global_rank": global_rank, "base_dir": base_dir, "resume_dir": resume_dir,
             "argv": argv, "hydra_overrides": composed.hydra_overrides, "builder": builder, "prog": prog,
             "usage": usage, "help": False, "cfg": cfg, "resolved": resolved, "sources": composed.sources}

    @ex.main
    def wsovvis_train(_run):
        return _sacred_main(_run, state)

    return ex, args.get("COMMAND") or "wsovvis_train", {}, args, state


def _int(value: Any, default: int = 0) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) else default


def _rebase(saved: Path, composed: ComposedConfig) -> ComposedConfig:
    """Resume / eval-only: the run's saved config, with this command line's explicit keys on top."""
    from wsovvis.engine.resume_config import rebase_on_saved

    out, applied, ignored = rebase_on_saved(saved, composed)
    log.warning("%s: continuing this run's saved config%s", saved,
                "; overridden on the command line:\n  " + "\n  ".join(applied) if applied else " unchanged")
    if ignored:
        log.warning("not applied to the saved run (only key=value and group=option on the command line "
                    "override it):\n  %s", "\n  ".join(ignored))
    return out


def run_training(argv: Sequence[str], prog: str = PROG, builder: Callable | None = None) -> tuple[Path | None, dict]:
    """Python entry (the demo): run the command line ``argv``; returns (run directory, final metrics).

    Raises `WsovvisError` on bad input and whatever a rank raised on failure.
    """
    setup_logging()
    ex, command, updates, options, state = prepare(list(argv), prog, builder)
    if state["help"]:
        print(state["usage"])
        return None, {}
    run = ex.run(command, config_updates=updates, options=options)
    return state.get("run_dir"), dict(run.result or {}) if isinstance(run.result, dict) else {}


def main(argv: Sequence[str] | None = None, prog: str = PROG, builder: Callable | None = None) -> int:
    """Run the training command line; returns the exit code."""
    argv = list(sys.argv[1:] if argv is None else argv)
    try:
        run_training(argv, prog, builder)
        return 0
    except WsovvisError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except Exception as e:
        from sacred.utils import SacredError

        # unwritable run directory, full disk, unreadable input ...: a message, not a traceback
        message = str(e) if isinstance(e, SacredError) else describe_failure(e)
        if message is not None:
            if os.environ.get("WSOVVIS_VERBOSE"):
                print(du.format_exception(e), file=sys.stderr)
            print(f"error: {message}", file=sys.stderr)
            return 2
        print(du.format_exception(e), file=sys.stderr)
        return 1
