"""Where one worker's time goes, trial by trial and epoch by epoch.

    python benchmarks/worker_time.py                                   # make run's study, 40 trials
    python benchmarks/worker_time.py studies/tg-cnn-hyperband.toml --trials 20
    python benchmarks/worker_time.py --storage postgresql+psycopg://postgres@127.0.0.1:5432/test
    python benchmarks/worker_time.py --name wt-ab --report-interval 0     # A/B: the same trials

Runs one worker in this process (1 thread, as ``optmpp run`` gives each of 2 workers on 2
cores) on a fresh study of the given study file, with timers around the objective's per-epoch
duty (``report_epoch``: the report to the storage, then the pruner's check) and the storage
calls under it, and prints the worker's wall time split into: start-up (imports, TensorFlow,
data), training steps (the fast trainer's epoch graphs, ``train_s`` minus ``trace_s``), tracing
new graphs (``trace_s``), report + prune per epoch, the rest of the trials (sampling, setting the
network up), and the time between trials (claiming, recording). Nothing is asserted.

The study gets a fresh name unless ``--name`` gives one (a study of that name in the storage is
deleted first). Hyperband assigns trials to brackets by hashing the study name, so two runs
with the same name, study file and trial count train the same trials: use it to compare
settings, such as ``--report-interval`` (``[reliability] report_interval_s``).
"""

from __future__ import annotations

import argparse
import collections
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("study", nargs="?", default="studies/hdpe-mi-hyperband.toml")
    ap.add_argument("--trials", type=int, default=40)
    ap.add_argument("--storage", help="storage URL (default: a new SQLite file)")
    ap.add_argument("--name", help="study name (default: a fresh one); an existing study of this name is deleted")
    ap.add_argument("--report-interval", type=float, help="[reliability] report_interval_s for this run")
    args = ap.parse_args(argv)

    t_start = time.perf_counter()
    import dataclasses

    import optuna

    import optmpp.objectives.keras_common as keras_common
    from optmpp.config import load_study_config
    from optmpp.objectives.base import report_epoch
    from optmpp.worker_storage import WorkerStorage
    from optmpp.workers import prepare_study, run_worker

    spent: collections.Counter[str] = collections.Counter()
    calls: collections.Counter[str] = collections.Counter()

    def timed(name: str, fn: Any) -> Any:
        def wrapper(*a: Any, **k: Any) -> Any:
            t0 = time.perf_counter()
            try:
                return fn(*a, **k)
            finally:
                spent[name] += time.perf_counter() - t0
                calls[name] += 1
        return wrapper

    keras_common.report_epoch = timed("report + prune", report_epoch)
    optuna.Trial.report = timed("  report", optuna.Trial.report)
    optuna.Trial.should_prune = timed("  prune check", optuna.Trial.should_prune)
    for name in ("set_trial_intermediate_value", "get_trial_system_attrs", "get_all_trials", "set_trial_system_attr"):
        setattr(WorkerStorage, name, timed(f"    storage.{name}", getattr(WorkerStorage, name)))

    config = load_study_config(args.study)
    config = dataclasses.replace(config, name=args.name or f"{config.name}-worker-time-{time.time_ns()}")
    if args.report_interval is not None:
        config = dataclasses.replace(config, reliability=dataclasses.replace(
            config.reliability, report_interval_s=args.report_interval))
    url = args.storage or f"sqlite:///{tempfile.mkdtemp(prefix='optmpp-wt-')}/wt.db"
    if args.name:
        try:
            optuna.delete_study(study_name=args.name, storage=url)
        except KeyError:
            pass
    prepare_study(config, url, args.trials, log=lambda m: None)
    t0 = time.perf_counter()
    run_worker(config, url, n_trials=args.trials, threads=1, log=lambda m: None, verbose=False)
    wall = time.perf_counter() - t0
    study = optuna.load_study(study_name=config.name, storage=url)
    trials = study.trials
    first = min(t.datetime_start for t in trials)
    last = max(t.datetime_complete for t in trials)
    span = (last - first).total_seconds()
    attr = {k: sum(float(t.user_attrs.get(k, 0.0)) for t in trials) for k in ("wall_time_s", "train_s", "trace_s")}
    epochs = sum(int(t.user_attrs.get("epochs", 0)) for t in trials)
    startup = wall - span
    rows = [
        ("start-up before the first trial (imports, TensorFlow, data)", startup),
        ("training steps and validation (epoch graphs)", attr["train_s"] - attr["trace_s"]),
        ("tracing new graphs (once per family)", attr["trace_s"]),
        ("report + prune after each epoch", spent["report + prune"]),
        ("rest of the trials (sampling, network set-up)",
         attr["wall_time_s"] - attr["train_s"] - spent["report + prune"]),
        ("between trials (claim, record)", span - attr["wall_time_s"]),
    ]
    print(f"# {args.study}: {len(trials)} trials, {epochs} epochs, 1 worker, {url.split(':')[0]}; "
          f"worker wall {wall:.1f} s (process before it: {t0 - t_start:.1f} s of imports); "
          f"report_interval_s {config.reliability.report_interval_s:g}; best {study.best_value:.6g}")
    print("| where | seconds | share of the worker's wall | per epoch (ms) |")
    print("|---|---|---|---|")
    for label, seconds in rows:
        print(f"| {label} | {seconds:.1f} | {100 * seconds / wall:.1f} % | {1e3 * seconds / max(epochs, 1):.2f} |")
    print(f"\nfrom the first trial's start to the last's end ({span:.1f} s): "
          f"{100 * (attr['train_s'] - attr['trace_s']) / span:.1f} % training steps")
    print("\nper epoch (ms): " + ", ".join(
        f"{name.strip()} {1e3 * spent[name] / calls[name]:.2f} ({calls[name]} calls)" for name in spent))


if __name__ == "__main__":
    main()
