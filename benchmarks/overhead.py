"""What a trial costs besides training: storage + sampler per trial, and worker throughput.

    python benchmarks/overhead.py                       # SQLite, and PostgreSQL when reachable
    python benchmarks/overhead.py --storages sqlite --sizes 100 --throughput-trials 40

Part 1, per storage, per study size (100 and 1,000 finished trials already stored, with the
melt-index DNN's search space) and per algorithm (random, tpe, bayes): a worker's bookkeeping
for one trial, timed 20 times and printed as the median and the 90th percentile in ms:
count the study's trials and epochs, claim a queued trial (with its first heartbeat), sample
its parameters, report one epoch and check pruning, record the result (with the user
attributes a worker sets) -- through the worker's own storage
(:class:`optmpp.worker_storage.WorkerStorage`) and sampler, step by step as
``optmpp.workers`` does it. Training is not included.

Part 2: throughput (finished trials per second) of ``optmpp run`` with 1, 2 and 4 workers on a
cheap CPU-bound objective (``hdpe-mi-mlp``, 3 epochs of a small scikit-learn MLP per trial), and
the speed-up over 1 worker: over the whole run (worker start-up included, which dominates a
short run) and in the steady state (first trial's start to last trial's end). Workers are processes; on a 2-core machine 4 workers share 2 cores.
"""

from __future__ import annotations

import argparse
import os
import random
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def space() -> dict:
    from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution

    out = {"num_layers": IntDistribution(1, 4), "learning_rate": CategoricalDistribution([1e-2, 1e-3, 1e-4])}
    for i in range(1, 5):
        out[f"units_{i}"] = IntDistribution(32, 512, step=32)
        out[f"alpha_{i}"] = FloatDistribution(0.05, 0.5, step=0.05)
        out[f"dropout_{i}"] = FloatDistribution(0.05, 0.5, step=0.05)
    return out


def fill(study, n: int, rng: random.Random) -> None:  # noqa: ANN001
    from optuna.distributions import CategoricalDistribution
    from optuna.trial import TrialState, create_trial

    dists = space()
    trials = []
    for i in range(n):
        params = {}
        for k, d in dists.items():
            if isinstance(d, CategoricalDistribution):
                params[k] = rng.choice(d.choices)
            else:
                steps = int(round((d.high - d.low) / d.step))
                params[k] = type(d.low)(d.low + rng.randint(0, steps) * d.step)
        pruned = i % 3 == 0
        epochs = rng.choice([1, 3, 9]) if pruned else 27
        trials.append(create_trial(
            state=TrialState.PRUNED if pruned else TrialState.COMPLETE,
            value=None if pruned else rng.random(), params=params, distributions=dists,
            intermediate_values={s: rng.random() for s in range(1, epochs + 1)}, user_attrs={"epochs": epochs},
        ))
    study.add_trials(trials)


def per_trial(url: str, n: int, algorithm: str, repeats: int) -> dict[str, list[float]]:
    """A worker's bookkeeping for ``repeats`` trials, step by step as ``optmpp.workers`` does it."""
    import optuna

    from optmpp.algorithms import make_pruner, make_sampler
    from optmpp.storage import make_storage
    from optmpp.worker_storage import WorkerStorage
    from optmpp.objectives.base import report_epoch
    from optmpp.workers import _pop_waiting, counts_and_epochs

    rdb = make_storage(url, heartbeat_interval=10)
    name = f"overhead-{algorithm}-{n}-{time.time_ns()}"
    optuna.create_study(study_name=name, storage=rdb)
    fill(optuna.load_study(study_name=name, storage=rdb), n, random.Random(n))
    # the worker's own storage and sampler, as `run_worker` builds them
    storage = WorkerStorage(rdb)
    study = optuna.load_study(study_name=name, storage=storage,
                              sampler=make_sampler(algorithm, {}, seed=0), pruner=make_pruner(algorithm, {}, 27))
    dists = space()
    times: dict[str, list[float]] = {k: [] for k in ("count", "claim", "sample", "report", "tell", "total")}
    for _ in range(repeats):
        study.enqueue_trial({})
        t0 = time.perf_counter()
        counts_and_epochs(study)  # a worker with an epoch budget (one without: a COUNT query)
        t1 = time.perf_counter()
        trial_id = _pop_waiting(study)  # with the trial's first heartbeat
        storage.get_trial_number_from_id(trial_id)  # the worker's log line names the trial
        t2 = time.perf_counter()
        with storage.state_checked(trial_id, checked=True):
            trial = optuna.Trial(study, trial_id)
        trial.set_user_attr("worker", "bench")
        num_layers = trial.suggest_int("num_layers", 1, 4)
        trial.suggest_categorical("learning_rate", [1e-2, 1e-3, 1e-4])
        for i in range(1, num_layers + 1):
            d = dists[f"units_{i}"]
            trial.suggest_int(f"units_{i}", d.low, d.high, step=d.step)
            trial.suggest_float(f"alpha_{i}", 0.05, 0.5, step=0.05)
            trial.suggest_float(f"dropout_{i}", 0.05, 0.5, step=0.05)
        t3 = time.perf_counter()
        try:  # the objectives' per-epoch step: report, then ask the pruner
            report_epoch(trial, 1, 0.5)
        except optuna.TrialPruned:
            pass
        t4 = time.perf_counter()
        trial.set_user_attr("train_loss", [0.5])
        with storage.state_checked(trial_id):  # the worker's check of the trial, then tell's
            storage.get_trial(trial_id)
            trial.set_user_attr("epochs", 1)
            trial.set_user_attr("wall_time_s", 0.1)
            study.tell(trial, 0.5)
        t5 = time.perf_counter()
        for k, a, b in (("count", t0, t1), ("claim", t1, t2), ("sample", t2, t3), ("report", t3, t4),
                        ("tell", t4, t5), ("total", t0, t5)):
            times[k].append(1000 * (b - a))
    return times


def throughput(url: str, workers: int, n_trials: int) -> tuple[float, float]:
    """Finished trials per second of ``run``: over its whole wall time (worker start-up
    included), and in the steady state (from the first trial's start to the last one's end)."""
    import optuna

    from optmpp.config import parse_study_config
    from optmpp.workers import run_study

    cfg = parse_study_config({
        "name": f"tput-{workers}-{time.time_ns()}", "n_trials": n_trials, "algorithm": "random",
        "objective": {"name": "hdpe-mi-mlp", "max_epochs": 3, "units": [16, 64]},
    }, "throughput.toml")
    t0 = time.perf_counter()
    summary = run_study(cfg, url, workers=workers, log=lambda m: None, poll_s=0.5)
    wall = time.perf_counter() - t0
    assert summary.counts["finished"] == n_trials, summary.counts
    trials = optuna.load_study(study_name=cfg.name, storage=url).get_trials(deepcopy=False)
    start = min(t.datetime_start for t in trials if t.datetime_start)
    end = max(t.datetime_complete for t in trials if t.datetime_complete)
    return n_trials / wall, n_trials / (end - start).total_seconds()


def pg_url() -> str | None:
    try:
        import psycopg

        name = f"optmpp_bench_{os.getpid()}"
        with psycopg.connect("postgresql://postgres@127.0.0.1:5432/postgres", autocommit=True, connect_timeout=3) as c:
            c.execute(f'DROP DATABASE IF EXISTS "{name}"')
            c.execute(f'CREATE DATABASE "{name}"')
        return f"postgresql+psycopg://postgres@127.0.0.1:5432/{name}"
    except Exception as exc:  # noqa: BLE001
        print(f"PostgreSQL not reachable ({exc}); skipping it", file=sys.stderr)
        return None


def drop_pg(url: str) -> None:
    """Drop the benchmark's database (its workers' connections included)."""
    import psycopg

    name = url.rsplit("/", 1)[1]
    with psycopg.connect("postgresql://postgres@127.0.0.1:5432/postgres", autocommit=True, connect_timeout=3) as c:
        c.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--storages", default="sqlite,postgresql")
    ap.add_argument("--sizes", default="100,1000")
    ap.add_argument("--algorithms", default="random,tpe,bayes,hyperband,bohb")
    ap.add_argument("--repeats", type=int, default=20)
    ap.add_argument("--throughput-trials", type=int, default=300)
    ap.add_argument("--workers", default="1,2,4")
    ap.add_argument("--throughput-only", action="store_true", help="skip part 1")
    args = ap.parse_args()

    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    tmp = Path(tempfile.mkdtemp(prefix="optmpp-overhead-"))
    urls = {}
    for s in args.storages.split(","):
        if s == "sqlite":
            urls[s] = f"sqlite:///{tmp}/overhead.db"
        elif s == "postgresql" and (u := pg_url()):
            urls[s] = u
    try:
        measure(args, urls)
    finally:  # the benchmark's studies are not kept
        shutil.rmtree(tmp, ignore_errors=True)
        if "postgresql" in urls:
            drop_pg(urls["postgresql"])


def measure(args: argparse.Namespace, urls: dict[str, str]) -> None:
    print(f"# per-trial bookkeeping (ms): median / p90 over {args.repeats} trials; no training")
    print("| storage | stored trials | algorithm | count | claim | sample | report+prune | tell | total median | total p90 |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for sname, url in urls.items():
        for n in [] if args.throughput_only else [int(x) for x in args.sizes.split(",")]:
            for algo in args.algorithms.split(","):
                t = per_trial(url, n, algo, args.repeats)
                med = {k: statistics.median(v) for k, v in t.items()}
                p90 = statistics.quantiles(t["total"], n=10)[-1]
                print(f"| {sname} | {n} | {algo} | {med['count']:.1f} | {med['claim']:.1f} | {med['sample']:.1f} | "
                      f"{med['report']:.1f} | {med['tell']:.1f} | {med['total']:.1f} | {p90:.1f} |", flush=True)
    if args.throughput_trials:
        print(f"\n# throughput: `run` with N workers, {args.throughput_trials} trials of hdpe-mi-mlp "
              f"(3 epochs, random sampler), {os.cpu_count()} cores")
        print("| storage | workers | trials/s, whole run | speed-up | trials/s, steady state (first trial "
              "start to last trial end) | speed-up |")
        print("|---|---|---|---|---|---|")
        for sname, url in urls.items():
            base = None
            for w in [int(x) for x in args.workers.split(",")]:
                rate, steady = throughput(url, w, args.throughput_trials)
                base = base or (rate, steady)
                print(f"| {sname} | {w} | {rate:.2f} | {rate / base[0]:.2f} | {steady:.2f} | {steady / base[1]:.2f} |",
                      flush=True)


if __name__ == "__main__":
    main()
