"""Does optmpp's fast trainer train the melt-index DNN as Keras ``fit`` does? A paired test.

    python benchmarks/trainer_parity.py                         # 120 configurations, 9 epochs
    python benchmarks/trainer_parity.py --configs 40 --epochs 3 --seed 7
    python benchmarks/trainer_parity.py --warm-start 3 --epochs 6    # continuing, as KerasTuner promotes

For each of ``--configs`` random configurations of the paper's space (Optuna's random sampler,
``--seed``), one Keras model is built with ``keras.utils.set_random_seed`` fixed, and from
*the same initial weights* it is trained twice on the objective's training split, batch 64:

* by Keras ``fit`` (what KerasTuner runs: shuffled mini-batches, Adam, the loss ``fit``
  reports on ``validation_data``);
* by optmpp's ``FastTrainer`` (one traced TensorFlow function per network depth).

With ``--warm-start K`` both continue a configuration as KerasTuner's Hyperband continues a
promoted one: the model is first trained by ``fit`` for K epochs, and both trainers start from
the weights of its best epoch with a new Adam (KerasTuner rebuilds the model, loads that
checkpoint and calls ``fit(initial_epoch=K)``), then train ``--epochs`` more epochs.

The two runs differ only in their random streams (batch order, dropout masks), so if the
trainers are the same procedure, the log ratio of their validation losses has mean 0 at every
epoch. Printed per epoch: the geometric mean of fast / Keras with a 95 % interval (t on the
log ratios), the median ratio, and how often the fast trainer is lower; the same for the best
epoch so far (what Hyperband ranks and what its "best validation loss" is), and the two
trainers' median losses; then the same for the best quarter of the configurations (ranked by
the two trainers' mean best loss), the ones a search keeps, and how much each trainer's loss
jumps from epoch to epoch. Hyperband's promotions are decided at 1, 3 and 9 epochs.
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
import sys
import time
from pathlib import Path
from typing import Any

from scipy import stats

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def summary(ratios: list[float]) -> str:
    logs = [math.log(r) for r in ratios if r > 0 and math.isfinite(r)]
    n = len(logs)
    mean = statistics.fmean(logs)
    low, high = stats.ttest_1samp(logs, 0.0).confidence_interval() if n > 1 else (-math.inf, math.inf)
    lower = sum(1 for x in logs if x < 0)
    return (f"{math.exp(mean):.3f} [{math.exp(low):.3f}, {math.exp(high):.3f}] | "
            f"{statistics.median(ratios):.3f} | {lower} of {n}")


def repeat_table(epochs: int, warm_start: int, keras_runs: list[list[list[float]]],
                 fast_runs: list[list[list[float]]]) -> None:
    """Per epoch and trainer: how much one configuration's best-so-far score varies between runs
    (median over configurations of the sd of its log over the repeats), and how well one run's score
    at that epoch ranks the configurations by their quality (Spearman correlation with the mean log
    final best of all the *other* runs of both trainers): what a Hyperband rung relies on."""
    import numpy as np

    def best_so_far(curve: list[float], e: int) -> float:
        return math.log(min(curve[: e + 1]))

    n_rep = len(keras_runs[0])
    print(f"\n{n_rep} runs per configuration and trainer (same initial weights, other random streams)\n")
    print("| epoch | sd of a configuration's log best so far: Keras | fast | Spearman, one run's score vs "
          "the configuration's quality: Keras | fast |")
    print("|---|---|---|---|---|")
    for e in range(epochs):
        sd = {name: statistics.median(statistics.stdev(best_so_far(c, e) for c in runs) for runs in all_runs)
              for name, all_runs in (("keras", keras_runs), ("fast", fast_runs))}
        rho = {}
        for name, all_runs in (("keras", keras_runs), ("fast", fast_runs)):
            scores, quality = [], []
            for ci, runs in enumerate(all_runs):
                for r, curve in enumerate(runs):
                    others = [best_so_far(c, epochs - 1) for rr, c in enumerate(keras_runs[ci]) if not (name == "keras" and rr == r)]
                    others += [best_so_far(c, epochs - 1) for rr, c in enumerate(fast_runs[ci]) if not (name == "fast" and rr == r)]
                    scores.append(best_so_far(curve, e))
                    quality.append(statistics.fmean(others))
            # one correlation per repeat index, then their mean: each is a ranking a search could make
            per = []
            for r in range(n_rep):
                idx = [ci * n_rep + r for ci in range(len(all_runs))]
                per.append(stats.spearmanr(np.take(scores, idx), np.take(quality, idx)).statistic)
            rho[name] = statistics.fmean(per)
        print(f"| {warm_start + e + 1} | {sd['keras']:.3f} | {sd['fast']:.3f} | {rho['keras']:.3f} | {rho['fast']:.3f} |")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--configs", type=int, default=120)
    ap.add_argument("--epochs", type=int, default=9)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--json", help="write every configuration's parameters and both trainers' loss curves "
                    "(a list of --repeats runs each) to this file")
    ap.add_argument("--warm-start", type=int, default=0, metavar="K",
                    help="first train K epochs with fit; both trainers continue from its best epoch's weights")
    ap.add_argument("--repeats", type=int, default=1, metavar="R",
                    help="train each configuration R times per trainer (other random streams, same initial "
                    "weights) and compare how much a configuration's score varies and how well an early "
                    "epoch's score ranks the configurations")
    args = ap.parse_args()
    if args.repeats < 1 or args.configs < 2 or args.epochs < 1:
        ap.error("--repeats and --epochs must be >= 1, --configs >= 2")

    import optuna

    from optmpp.objectives import make_objective
    from optmpp.objectives.fast_train import start_state
    from optmpp.objectives.keras_common import import_keras

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    keras = import_keras()

    class BestWeights(keras.callbacks.Callback):
        """The weights of the epoch with the lowest validation loss (KerasTuner's SaveBestEpoch)."""

        def __init__(self) -> None:
            super().__init__()
            self.best, self.weights = math.inf, None

        def on_epoch_end(self, epoch: int, logs: Any = None) -> None:
            if float(logs["val_loss"]) < self.best:
                self.best, self.weights = float(logs["val_loss"]), self.model.get_weights()

    objective = make_objective("hdpe-mi-dnn", {"max_epochs": args.epochs, "batch_size": 64})
    tr, va = objective.split["train"], objective.split["val"]
    x, y, xv, yv = objective.inputs[tr], objective.y[tr], objective.inputs[va], objective.y[va]
    trainer = objective._trainer("tune")
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=args.seed))
    print(f"# hdpe-mi-dnn, {args.configs} random configurations (seed {args.seed}), {args.epochs} epochs, "
          f"batch 64, {len(tr)} training / {len(va)} validation rows"
          + (f", both continuing from the best of {args.warm_start} epochs of fit" if args.warm_start else ""),
          flush=True)
    all_params: list[dict[str, Any]] = []
    keras_val: list[list[float]] = []
    fast_val: list[list[float]] = []
    # with --repeats: every run's curve, per configuration (repeat 0 is the run in keras_val / fast_val)
    keras_runs: list[list[list[float]]] = []
    fast_runs: list[list[list[float]]] = []
    seconds = {"keras": 0.0, "fast": 0.0}
    for k in range(args.configs):
        params = objective.suggest(study.ask())
        all_params.append(params)
        keras.backend.clear_session(free_memory=False)
        keras.utils.set_random_seed(args.seed * 100_003 + k)
        model = objective.build(params)
        if args.warm_start:
            best_weights = BestWeights()
            model.fit(x, y, validation_data=(xv, yv), epochs=args.warm_start, batch_size=64, verbose=0,
                      callbacks=[best_weights])
            model = objective.build(params)  # a new model and a new Adam, as KerasTuner rebuilds it
            model.set_weights(best_weights.weights)
        initial = model.get_weights()
        start = start_state(initial)
        t0 = time.perf_counter()
        hist = model.fit(x, y, validation_data=(xv, yv), epochs=args.epochs, batch_size=64, verbose=0)
        seconds["keras"] += time.perf_counter() - t0
        t0 = time.perf_counter()
        fast = trainer.train(objective.fast_net(params), args.epochs, args.seed * 100_003 + k, resume=start)
        seconds["fast"] += time.perf_counter() - t0
        keras_val.append([float(v) for v in hist.history["val_loss"]])
        fast_val.append([float(v) for v in fast["val_loss"]])
        keras_runs.append([keras_val[-1]])
        fast_runs.append([fast_val[-1]])
        for r in range(1, args.repeats):  # same initial weights, other batch orders and dropout masks
            stream = args.seed * 100_003 + k + 7_919 * r
            keras.backend.clear_session(free_memory=False)
            again = objective.build(params)
            again.set_weights(initial)
            keras.utils.set_random_seed(stream)
            t0 = time.perf_counter()
            h = again.fit(x, y, validation_data=(xv, yv), epochs=args.epochs, batch_size=64, verbose=0)
            seconds["keras"] += time.perf_counter() - t0
            t0 = time.perf_counter()
            f = trainer.train(objective.fast_net(params), args.epochs, stream, resume=start)
            seconds["fast"] += time.perf_counter() - t0
            keras_runs[-1].append([float(v) for v in h.history["val_loss"]])
            fast_runs[-1].append([float(v) for v in f["val_loss"]])
        if (k + 1) % 10 == 0:
            print(f"# {k + 1} configurations: {seconds['keras']:.0f} s in fit, {seconds['fast']:.0f} s in the fast "
                  "trainer", flush=True)

    print("\n| epoch | fast / Keras, geometric mean [95 %] | median ratio | fast lower | "
          "best so far: fast / Keras [95 %] | median | fast lower | median loss, Keras / fast (last epoch) "
          "| median best so far, Keras / fast |")
    print("|---|---|---|---|---|---|---|---|---|")
    for e in range(args.epochs):
        last = [f[e] / kv[e] for f, kv in zip(fast_val, keras_val)]
        best_f = [min(f[: e + 1]) for f in fast_val]
        best_k = [min(kv[: e + 1]) for kv in keras_val]
        print(f"| {args.warm_start + e + 1} | {summary(last)} | {summary([a / b for a, b in zip(best_f, best_k)])} | "
              f"{statistics.median(kv[e] for kv in keras_val):.5f} / {statistics.median(f[e] for f in fast_val):.5f} | "
              f"{statistics.median(best_k):.5f} / {statistics.median(best_f):.5f} |")
    # the configurations a search keeps: the best quarter by the two trainers' mean best loss (the
    # mean, so that the choice favours neither trainer)
    final_f = [min(f) for f in fast_val]
    final_k = [min(kv) for kv in keras_val]
    order = sorted(range(len(final_f)), key=lambda i: final_f[i] + final_k[i])
    top = order[: max(2, len(order) // 4)]
    print(f"\nbest quarter ({len(top)} configurations), best epoch of {args.epochs}: fast / Keras "
          f"{summary([final_f[i] / final_k[i] for i in top])} (geometric mean [95 %] | median | fast lower); "
          f"median loss Keras {statistics.median(final_k[i] for i in top):.5f}, "
          f"fast {statistics.median(final_f[i] for i in top):.5f}")
    # how much a loss curve jumps from epoch to epoch: the median over configurations of the
    # standard deviation of log(loss[e + 1] / loss[e]), later half of the epochs
    def jitter(curves: list[list[float]]) -> float:
        half = args.epochs // 2
        return statistics.median(
            statistics.stdev([math.log(c[e + 1] / c[e]) for e in range(half, args.epochs - 1)]) for c in curves
        ) if args.epochs - half > 2 else math.nan

    print(f"epoch-to-epoch jitter of the validation loss (median sd of log ratios, epochs {args.epochs // 2 + 1}-"
          f"{args.epochs}): Keras {jitter(keras_val):.3f}, fast {jitter(fast_val):.3f}")
    if args.repeats > 1:
        repeat_table(args.epochs, args.warm_start, keras_runs, fast_runs)
    if args.json:
        Path(args.json).write_text(json.dumps([{"params": p, "keras": kv, "fast": f} for p, kv, f in
                                               zip(all_params, keras_runs, fast_runs)], indent=1))
    print(f"\n# time: {seconds['keras']:.1f} s in Keras fit, {seconds['fast']:.1f} s in the fast trainer "
          f"({trainer.traces} traces)")


if __name__ == "__main__":
    main()
