"""A study with thousands of finished trials: how long does a worker wait for its next trial?

    python benchmarks/scale.py --trials 5000 --storage sqlite:////tmp/scale.db

Adds N finished trials (the melt-index DNN's search space, random values, a few pruned) with
``add_trials``, then, as a worker does before each trial, claims a queued trial and samples its
parameters with the study's algorithm (tpe by default), 10 times; prints the median and maximum
seconds per trial for: counting the study's trials, claiming, sampling, reporting one step.
"""

from __future__ import annotations

import argparse
import random
import statistics
import time


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--trials", type=int, default=5000)
    ap.add_argument("--storage", default="sqlite:////tmp/optmpp-scale.db")
    ap.add_argument("--algorithm", default="tpe")
    ap.add_argument("--repeats", type=int, default=10)
    args = ap.parse_args()

    import optuna
    from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution
    from optuna.trial import TrialState, create_trial

    from optmpp.algorithms import make_pruner, make_sampler
    from optmpp.storage import make_storage
    from optmpp.workers import _counts, _pop_waiting, top_up_queue

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    storage = make_storage(args.storage, heartbeat_interval=10)
    name = f"scale-{args.trials}-{int(time.time())}"
    study = optuna.create_study(study_name=name, storage=storage,
                                sampler=make_sampler(args.algorithm, {}, seed=0), pruner=make_pruner(args.algorithm, {}, 27))
    space = {
        "units_1": IntDistribution(32, 512, step=32), "alpha_1": FloatDistribution(0.05, 0.5, step=0.05),
        "dropout_1": FloatDistribution(0.05, 0.5, step=0.05), "num_layers": IntDistribution(1, 4),
        "learning_rate": CategoricalDistribution([1e-2, 1e-3, 1e-4]),
    }
    rng = random.Random(0)
    t0 = time.perf_counter()
    batch = []
    for i in range(args.trials):
        params = {k: d.to_external_repr(d.to_internal_repr(rng.choice(
            d.choices if isinstance(d, CategoricalDistribution) else
            [d.low + j * (d.step or 1) for j in range(int((d.high - d.low) / (d.step or 1)) + 1)])))
            for k, d in space.items()}
        pruned = i % 4 == 0
        steps = 1 if pruned else 27
        batch.append(create_trial(
            state=TrialState.PRUNED if pruned else TrialState.COMPLETE,
            value=None if pruned else rng.random(), params=params, distributions=space,
            intermediate_values={s: rng.random() for s in range(1, steps + 1)},
            user_attrs={"epochs": steps},
        ))
        if len(batch) == 500:
            study.add_trials(batch)
            batch = []
    if batch:
        study.add_trials(batch)
    print(f"added {args.trials} trials in {time.perf_counter() - t0:.1f} s ({args.storage})")

    timings: dict[str, list[float]] = {"count": [], "claim": [], "sample": [], "report": []}
    for _ in range(args.repeats):
        top_up_queue(study, len(study.get_trials(deepcopy=False)) + 1)
        t = time.perf_counter()
        _counts(study)
        timings["count"].append(time.perf_counter() - t)
        t = time.perf_counter()
        trial_id = _pop_waiting(study)
        timings["claim"].append(time.perf_counter() - t)
        t = time.perf_counter()
        trial = optuna.Trial(study, trial_id)
        for k, d in space.items():
            trial._suggest(k, d)
        timings["sample"].append(time.perf_counter() - t)
        t = time.perf_counter()
        trial.report(0.5, 1)
        trial.should_prune()
        timings["report"].append(time.perf_counter() - t)
        study.tell(trial, 0.5)
    for key, values in timings.items():
        print(f"{key:7s} median {statistics.median(values) * 1000:8.1f} ms   max {max(values) * 1000:8.1f} ms")
    total = [sum(v[i] for v in timings.values()) for i in range(args.repeats)]
    print(f"per trial, all of the above: median {statistics.median(total):.3f} s, max {max(total):.3f} s "
          f"({args.algorithm}, {args.trials} finished trials)")


if __name__ == "__main__":
    main()
