"""Memory of one worker over many trials: does it grow from trial to trial?

    python benchmarks/memory.py --objective hdpe-mi-dnn --trials 200 --set max_epochs=2
    python benchmarks/memory.py --objective tg-cnn --trials 100 --set max_epochs=1 --set batch_size=64

Runs the trials in this process (as a worker does: random sampler, no pruner) and prints the
resident set size after trial 1, 10, 25, 50, ... and the growth from trial 10 to the last
(trial 1-10 include TensorFlow's one-off start-up and tracing). Needs OPTMPP_DATA_DIR.
"""

from __future__ import annotations

import argparse
import json
import os
import time


def rss_mb() -> float:
    with open("/proc/self/statm") as fh:
        pages = int(fh.read().split()[1])
    return pages * os.sysconf("SC_PAGE_SIZE") / 2**20


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--objective", default="hdpe-mi-dnn")
    ap.add_argument("--trials", type=int, default=200)
    ap.add_argument("--set", action="append", default=[], help="objective option key=value (TOML value)")
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args()
    for var in ("OMP_NUM_THREADS", "TF_NUM_INTRAOP_THREADS", "TF_NUM_INTEROP_THREADS"):
        os.environ[var] = str(args.threads)
    import tomllib

    import optuna

    from optmpp.objectives import make_objective

    options = {}
    for item in args.set:
        key, _, value = item.partition("=")
        options[key] = tomllib.loads(f"v = {value}")["v"]
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    objective = make_objective(args.objective, options)
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
    marks = {1, 10, 25, 50, 100, 150, 200, 300, 400, 500, args.trials}
    seen = {}
    t0 = time.time()
    for i in range(1, args.trials + 1):
        study.optimize(objective, n_trials=1)
        if i in marks:
            seen[i] = rss_mb()
            print(f"after trial {i:4d}: RSS {seen[i]:8.1f} MB  ({time.time() - t0:6.1f} s)", flush=True)
    first = seen.get(10, seen[min(seen)])
    growth = seen[args.trials] - first
    print(json.dumps({"objective": args.objective, "options": options, "trials": args.trials,
                      "rss_after_10_mb": round(first, 1), "rss_last_mb": round(seen[args.trials], 1),
                      "growth_mb": round(growth, 1),
                      "growth_per_100_trials_mb": round(100 * growth / max(1, args.trials - 10), 2)}))


if __name__ == "__main__":
    main()
