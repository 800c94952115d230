"""optmpp against KerasTuner (the paper's tool) on the same work, side by side.

    make bench                                    # installs keras-tuner + tensorboard, runs this
    python benchmarks/vs_kerastuner.py --case mi --seeds 3
    python benchmarks/vs_kerastuner.py --case mi --seeds 8 --first-seed 1000 --seed-step 1000 --workers 2  # independent draws
    python benchmarks/vs_kerastuner.py --case tg --seeds 1 --max-epochs 9
    python benchmarks/vs_kerastuner.py --case mi --random-trials 10 --random-epochs 9
    python benchmarks/vs_kerastuner.py --case mi --seeds 2 --workers 0 --kerastuner-trainer both --no-retrain
    python benchmarks/vs_kerastuner.py --without-kerastuner 375 --workers 2 --hyperband-options '{"bootstrap_count": 2}'
    python benchmarks/vs_kerastuner.py --without-kerastuner 375 --workers 2 --algorithm bohb --hyperband-options '{"synchronous": true}'

Same data, split (the objective's), search space (the objective's own ``suggest`` run on
KerasTuner hyperparameters), batch size, max_epochs and reduction factor. Per seed:

* KerasTuner ``Hyperband`` in this process (Keras ``fit``), counting every epoch it trains;
* optmpp ``hyperband`` (or ``--algorithm bohb|sha``) with 1 and with 2 worker processes (``optmpp run`` machinery, SQLite),
  stopped when its trials have consumed KerasTuner's epoch count;
* with ``--random-trials N``: KerasTuner ``RandomSearch`` and optmpp ``random`` with N trials
  of ``--random-epochs`` epochs each (equal trials x epochs).

Printed per run and as medians over seeds: wall time, epochs, trials, the share of time inside
training (KerasTuner: inside ``fit``; optmpp: inside the objective, over workers x wall, and of
that inside the epoch graphs' training steps and validation pass, and tracing new graphs; and
each worker's start-up before its first trial: process, imports, data, warm-up), best
validation loss (KerasTuner's definition: the best of any trial at any epoch, since its Hyperband
scores the 1-, 3- and 9-epoch trials of its brackets too; and, for optmpp, the best trial run to
its end, which is what ``optmpp best`` retrains), and the test R² of the best configuration retrained on train+validation (the
same ``evaluate`` for all). Needs keras-tuner and tensorboard (``pip install -e .[bench]``;
keras-tuner imports tensorboard on every trial and TensorFlow 2.21 no longer installs it).
"""

from __future__ import annotations

import argparse
import atexit
import datetime
import json
import math
import os
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any


ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

CASES = {
    "mi": {"objective": "hdpe-mi-dnn", "batch_size": 64, "r2": "r2_units"},
    "tg": {"objective": "tg-cnn", "batch_size": 16, "r2": "r2_units", "extra": {"encoding": "tokens"}},
}


EXTRA_OBJECTIVE_OPTIONS: dict[str, Any] = {}  # --objective-options


def objective_options(case: str, max_epochs: int) -> dict[str, Any]:
    c = CASES[case]
    return {"max_epochs": max_epochs, "batch_size": c["batch_size"], "restore_best": True, **c.get("extra", {}),
            **EXTRA_OBJECTIVE_OPTIONS}


class HPTrial:
    """The objective's own ``suggest(trial)`` run on KerasTuner hyperparameters: same names,
    ranges, steps and log scales, so both tools search exactly the same space.

    KerasTuner 1.4.8 counts a stepped ``Float``'s values as ``(max - min) // step + 1``, which
    floating point makes one short whenever ``(max - min) / step`` is not exact: declared as
    ``Float(0.05, 0.5, step=0.05)``, the paper's dropout and LeakyReLU slope never take 0.5
    (``0.45 // 0.05 == 8.0``; measured: 0 of 213 drawn configurations). With ``own_grid=False``
    (the default of this benchmark) the upper bound is declared half a step higher, so
    KerasTuner draws from the same 10 values as Optuna; ``own_grid=True`` keeps KerasTuner's
    own 9-value grid (what a KerasTuner user who declares the paper's space gets)."""

    own_grid = False

    def __init__(self, hp: Any) -> None:
        self.hp = hp

    def suggest_int(self, name: str, low: int, high: int, step: int = 1, log: bool = False) -> int:
        return self.hp.Int(name, low, high, step=None if log else step, sampling="log" if log else "linear")

    def suggest_float(self, name: str, low: float, high: float, step: float | None = None, log: bool = False) -> float:
        if step is None or self.own_grid:
            return self.hp.Float(name, low, high, step=step, sampling="log" if log else "linear")
        value = self.hp.Float(name, low, high + step / 2, step=step)
        return min(high, low + round((value - low) / step) * step)  # on Optuna's grid, exactly

    def suggest_categorical(self, name: str, choices: Any) -> Any:
        return self.hp.Choice(name, list(choices))


def run_kerastuner(objective: Any, seed: int, args: argparse.Namespace, kind: str,
                   trainer: str = "keras") -> dict[str, Any]:
    import keras_tuner as kt

    from optmpp.objectives.fast_train import start_state
    from optmpp.objectives.keras_common import import_keras

    keras = import_keras()
    counts = {"epochs": 0, "fit_s": 0.0, "trials": 0}

    class Counter(keras.callbacks.Callback):
        def on_train_begin(self, logs: Any = None) -> None:
            self._t = time.perf_counter()
            counts["trials"] += 1

        def on_epoch_end(self, epoch: int, logs: Any = None) -> None:
            counts["epochs"] += 1

        def on_train_end(self, logs: Any = None) -> None:
            counts["fit_s"] += time.perf_counter() - self._t

    class HyperModel(kt.HyperModel):
        def build(self, hp: Any) -> Any:
            return objective.build(objective.suggest(HPTrial(hp)))

    class OptmppFit(HyperModel):
        """KerasTuner's loop (draws, brackets, promotions, its checkpoints), each ``fit`` done by
        optmpp's trainer: from the Keras model's weights (fresh, or the promoted trial's best
        epoch, as KerasTuner loads them) with a new Adam, as KerasTuner continues; the Keras
        model then holds the best epoch's weights for KerasTuner's checkpoint."""

        def fit(self, hp: Any, model: Any, x: Any, y: Any, validation_data: Any = None, epochs: int = 1,
                initial_epoch: int = 0, callbacks: Any = (), **kwargs: Any) -> Any:
            t0 = time.perf_counter()
            params = {k: v for k, v in hp.values.items() if not k.startswith("tuner/")}
            net = objective.fast_net(params)
            history = objective._trainer("tune").train(net, epochs, seed * 100_003 + counts["trials"], None, True,
                                                       resume=start_state(model.get_weights(), epochs=initial_epoch))
            model.set_weights(net.weights)  # the best epoch's
            values = history["val_loss"]
            for cb in callbacks:
                cb.set_model(model)
                for e, v in enumerate(values):
                    cb.on_epoch_end(initial_epoch + e, {"val_loss": v})
            counts["trials"] += 1  # epochs: counted by Counter, one of the callbacks
            counts["fit_s"] += time.perf_counter() - t0
            out = keras.callbacks.History()
            out.history = {"val_loss": values}
            return out

    model_cls = OptmppFit if trainer == "optmpp" else HyperModel
    work = Path(tempfile.mkdtemp(prefix="optmpp-kt-"))
    keras.utils.set_random_seed(seed)
    if seed == 0:  # KerasTuner's oracle takes `seed or random.randint(1, 10000)`
        print("# note: KerasTuner treats seed 0 as no seed: its draws for seed 0 are random, not repeatable",
              flush=True)
    if kind == "hyperband":
        tuner = kt.Hyperband(model_cls(), objective="val_loss", max_epochs=args.max_epochs, factor=args.factor,
                             seed=seed, directory=str(work), project_name="p", overwrite=True)
        epochs = args.max_epochs
    else:
        tuner = kt.RandomSearch(model_cls(), objective="val_loss", max_trials=args.random_trials, seed=seed,
                                directory=str(work), project_name="p", overwrite=True)
        epochs = args.random_epochs
    tr, va = objective.split["train"], objective.split["val"]
    t0 = time.perf_counter()
    tuner.search(objective.inputs[tr], objective.y[tr], validation_data=(objective.inputs[va], objective.y[va]),
                 epochs=epochs, batch_size=objective.options.batch_size, verbose=0, callbacks=[Counter()])
    wall = time.perf_counter() - t0
    best = tuner.oracle.get_best_trials(1)[0]
    values = {k: v for k, v in best.hyperparameters.values.items() if not k.startswith("tuner/")}
    best_epochs = int(best.hyperparameters.values.get("tuner/epochs", epochs))
    shutil.rmtree(work, ignore_errors=True)
    # every trial, for the --json record: where each configuration went in the brackets
    trials = [{"id": t.trial_id, "score": t.score, "params": {k: v for k, v in t.hyperparameters.values.items()
                                                           if not k.startswith("tuner/")},
               **{k[6:]: v for k, v in t.hyperparameters.values.items() if k.startswith("tuner/")}}
              for t in tuner.oracle.trials.values()]
    tool = f"KerasTuner {kind}" + (" (optmpp's trainer)" if trainer == "optmpp" else "")
    return {"tool": tool, "wall_s": wall, "epochs": counts["epochs"], "trials": counts["trials"],
            "train_share": counts["fit_s"] / wall, "best_val": float(best.score),
            "best_complete": min((float(t.score) for t in tuner.oracle.trials.values() if t.score is not None
                                  and int(t.hyperparameters.values.get("tuner/epochs", epochs)) == epochs),
                                 default=float("nan")),
            "params": values,
            "retrain_epochs": best_epochs, "trials_detail": trials}


def run_optmpp(case: str, seed: int, args: argparse.Namespace, workers: int, algorithm: str,
               epoch_budget: int | None, url: str) -> dict[str, Any]:
    import optuna

    from optmpp.config import parse_study_config
    from optmpp.workers import run_study

    pruned = algorithm != "random"  # hyperband, bohb or sha: rungs up to --max-epochs, --hyperband-options
    max_epochs = args.max_epochs if pruned else args.random_epochs
    name = f"vs-kt-{case}-{algorithm}-w{workers}-s{seed}-{time.time_ns()}"
    cfg = parse_study_config({
        "name": name, "seed": seed, "n_trials": 100_000 if epoch_budget else args.random_trials,
        "algorithm": {"name": algorithm, **({"reduction_factor": args.factor, **args.hyperband_options}
                                            if pruned else {})},
        "objective": {"name": CASES[case]["objective"], **objective_options(case, max_epochs)},
    }, "vs_kerastuner.toml")
    started, t0 = datetime.datetime.now(), time.perf_counter()  # (Optuna stores naive local times)
    summary = run_study(cfg, url, workers=workers, epoch_budget=epoch_budget, log=lambda m: None, poll_s=0.5)
    wall = time.perf_counter() - t0
    study = optuna.load_study(study_name=name, storage=url)
    inside = sum(t.user_attrs.get("wall_time_s", 0.0) for t in study.trials)
    graphs = sum(t.user_attrs.get("train_s", 0.0) for t in study.trials)
    tracing = sum(t.user_attrs.get("trace_s", 0.0) for t in study.trials)
    # a worker's start-up: from the run's start (process start, imports, data, warm-up) to its first trial
    first: dict[Any, datetime.datetime] = {}
    for t in study.trials:
        w = t.user_attrs.get("worker")
        if t.datetime_start is not None and w is not None:
            first[w] = min(first.get(w, t.datetime_start), t.datetime_start)
    startup = sum((d - started).total_seconds() for d in first.values())
    try:
        best = study.best_trial
    except ValueError:  # no complete trial: every trial was pruned within the budget
        best = None
    # KerasTuner's best score is over every trial, however few epochs it trained (a Hyperband
    # bracket's 1- and 3-epoch trials count); the same definition here: any trial, any epoch
    seen = [v for t in study.trials for v in t.intermediate_values.values() if v == v]
    options = f" {json.dumps(args.hyperband_options)}" if pruned and args.hyperband_options else ""
    return {"tool": f"optmpp {algorithm}{options}, {workers} worker(s)", "wall_s": wall, "epochs": summary.epochs,
            "trials": summary.counts["finished"], "train_share": inside / (workers * wall),
            # where the workers' time went (shares of workers x wall): training steps and validation
            # in the epoch graphs, tracing new graphs, start-up before the first trial
            "step_share": (graphs - tracing) / (workers * wall), "trace_share": tracing / (workers * wall),
            "startup_share": startup / (workers * wall),
            "best_val": min(seen, default=math.nan), "best_complete": float(best.value) if best else math.nan,
            "params": dict(best.params) if best else None,
            "retrain_epochs": int(best.user_attrs.get("best_epoch") or best.user_attrs["epochs"]) if best else 0}


def test_r2(objective: Any, result: dict[str, Any], seed: int, key: str) -> float:
    ev = objective.evaluate(result["params"], seed=seed, epochs=result["retrain_epochs"])
    return float(ev.metrics[key])


def paired_rounds(runs: list[dict[str, Any]]) -> None:
    """KerasTuner's loop with Keras ``fit`` and with optmpp's trainer draw the same configurations
    for a seed (round 0 of every bracket); later rounds hold the same configuration only where both
    runs promoted it. Per (round, epochs): how many configuration pairs, the geometric mean of the
    scores' ratio optmpp / Keras, and how often optmpp's trainer scored lower."""
    groups: dict[tuple[int, int], list[float]] = {}
    for seed in dict.fromkeys(r["seed"] for r in runs):
        pair = [r for r in runs if r["seed"] == seed and r["tool"].startswith("KerasTuner hyperband")]
        if len(pair) != 2:
            continue
        scores = [{(json.dumps(t["params"], sort_keys=True), t.get("round", 0), t.get("epochs", 0)): t["score"]
                   for t in r["trials_detail"] if t["score"]} for r in pair]
        keras_run, optmpp_run = scores if "optmpp" in pair[1]["tool"] else scores[::-1]
        for key in keras_run.keys() & optmpp_run.keys():
            groups.setdefault(key[1:], []).append(math.log(optmpp_run[key] / keras_run[key]))
    print("\n# KerasTuner's loop, the same configurations: score with optmpp's trainer / with Keras fit")
    print("| round | epochs | configurations | geometric mean of the ratio [95 %] | optmpp's trainer lower |")
    print("|---|---|---|---|---|")
    from scipy.stats import ttest_1samp

    for (rnd, epochs), logs in sorted(groups.items()):
        low, high = ttest_1samp(logs, 0.0).confidence_interval() if len(logs) > 1 else (math.nan, math.nan)
        print(f"| {rnd} | {epochs} | {len(logs)} | {math.exp(statistics.fmean(logs)):.3f} [{math.exp(low):.3f}, "
              f"{math.exp(high):.3f}] | {sum(1 for x in logs if x < 0)} |")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--case", choices=sorted(CASES), default="mi")
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--first-seed", type=int, default=0, help="seeds first-seed .. first-seed + seeds - 1")
    ap.add_argument("--seed-step", type=int, default=1,
                    help="seeds first-seed, first-seed + step, ...; KerasTuner seeds each value's draw with "
                    "seed, seed + 1, ..., so nearby seeds re-draw the same configurations: a step of 1000 "
                    "gives independent draws (kt_draws.py --families)")
    ap.add_argument("--max-epochs", type=int, default=27)
    ap.add_argument("--factor", type=int, default=3)
    ap.add_argument("--random-trials", type=int, default=0, help="also RandomSearch vs random with N trials")
    ap.add_argument("--random-epochs", type=int, default=9)
    ap.add_argument("--no-retrain", action="store_true", help="skip the test R² of the best models")
    ap.add_argument("--json", help="write every run's figures to this file (with KerasTuner's trials: "
                    "scores, brackets, rounds)")
    ap.add_argument("--workers", default="1,2", help="optmpp worker counts to run (default 1,2; 0: none)")
    ap.add_argument("--algorithm", choices=("hyperband", "bohb", "sha"), default="hyperband",
                    help="optmpp's algorithm against KerasTuner Hyperband (bohb: TPE draws the new "
                         "configurations; sha: successive halving; --hyperband-options apply to each)")
    ap.add_argument("--hyperband-options", default="{}", help="JSON merged into optmpp hyperband's "
                    "[algorithm] table, e.g. '{\"bootstrap_count\": 2}'")
    ap.add_argument("--without-kerastuner", type=int, metavar="EPOCHS",
                    help="skip KerasTuner; stop optmpp hyperband at EPOCHS (to try optmpp settings quickly)")
    ap.add_argument("--kerastuner-own-grid", action="store_true",
                    help="let KerasTuner draw stepped floats from its own grid, which misses the upper bound "
                    "(0.5 of the paper's dropout and slope); by default it draws from Optuna's grid")
    ap.add_argument("--kerastuner-trainer", choices=("keras", "optmpp", "both"), default="keras",
                    help="optmpp: KerasTuner's loop with each fit done by optmpp's trainer (--case mi), "
                    "to separate the search from the training; both: KerasTuner's loop once with each "
                    "trainer, and the two runs' scores of the same configuration compared round by round")
    ap.add_argument("--objective-options", default="{}", help="JSON merged into the objective's options "
                    "for every run, e.g. '{\"trainer\": \"keras\"}' (optmpp trains with Keras fit too)")
    args = ap.parse_args()
    if args.kerastuner_trainer != "keras" and args.case != "mi":
        # the dense network's weights are Keras's in Keras's order; the CNN's batch norm is not
        ap.error(f"--kerastuner-trainer {args.kerastuner_trainer} is for --case mi")
    args.hyperband_options = json.loads(args.hyperband_options)
    EXTRA_OBJECTIVE_OPTIONS.update(json.loads(args.objective_options))
    HPTrial.own_grid = args.kerastuner_own_grid

    import optuna

    from optmpp.objectives import make_objective
    from optmpp.objectives.keras_common import import_keras

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    import_keras()
    objective = make_objective(CASES[args.case]["objective"], objective_options(args.case, args.max_epochs))
    tmp = Path(tempfile.mkdtemp(prefix="optmpp-vs-kt-"))
    atexit.register(shutil.rmtree, tmp, True)  # the optmpp studies' database
    url = f"sqlite:///{tmp}/bench.db"
    print(f"# {CASES[args.case]['objective']}: max_epochs {args.max_epochs}, reduction factor {args.factor}, "
          f"batch {objective.options.batch_size}, {os.cpu_count()} cores, seeds {args.seeds}", flush=True)
    runs: list[dict[str, Any]] = []
    for seed in range(args.first_seed, args.first_seed + args.seeds * args.seed_step, args.seed_step):
        workers = [int(w) for w in args.workers.split(",") if w.strip() and int(w) > 0]  # 0: KerasTuner only
        trainers = ["keras", "optmpp"] if args.kerastuner_trainer == "both" else [args.kerastuner_trainer]
        # (tool, algorithm, KerasTuner's trainer or optmpp's worker count)
        plan: list[tuple[str, str, Any]] = [] if args.without_kerastuner else [("kt", "hyperband", t) for t in trainers]
        plan += [("optmpp", args.algorithm, w) for w in workers]
        if args.random_trials:
            plan += [("kt", "random", t) for t in trainers] + [("optmpp", "random", w) for w in workers]
        kt_epochs = {"hyperband": args.without_kerastuner}
        for tool, algo, how in plan:
            if tool == "kt":
                r = run_kerastuner(objective, seed, args, algo, how)
                kt_epochs[algo] = r["epochs"]
            else:
                r = run_optmpp(args.case, seed, args, how, algo,
                               kt_epochs["hyperband"] if algo != "random" else None, url)
            r.update(seed=seed, algo=algo, workers=1 if tool == "kt" else how)
            if not args.no_retrain:  # (no complete trial: nothing to retrain)
                r["test_r2"] = test_r2(objective, r, seed, CASES[args.case]["r2"]) if r["params"] else math.nan
            runs.append(r)
            print(f"seed {seed} | {r['tool']:<32} | {r['wall_s']:7.1f} s | {r['epochs']:5d} epochs | "
                  f"{r['trials']:4d} trials | {100 * r['train_share']:5.1f}% training"
                  + (f" ({100 * r['step_share']:.1f}% steps, {100 * r['trace_share']:.1f}% tracing; "
                     f"{100 * r['startup_share']:.1f}% start-up)" if "step_share" in r else "")
                  + f" | best val {r['best_val']:.5f}"
                  f" (complete trials {r['best_complete']:.5f})"
                  + (f" | test R² {r['test_r2']:.5f}" if "test_r2" in r else ""), flush=True)
    print("\n# medians over seeds")
    print("| run | wall (s) | epochs | trials | time training (KerasTuner: in fit; optmpp: in the objective) "
          "| optmpp: in training steps / tracing / start-up "
          "| best val loss, any trial | best val loss, trials run to max_epochs | test R² of the best, retrained "
          "| wall / KerasTuner wall |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    tools = list(dict.fromkeys(r["tool"] for r in runs))
    keys = ("wall_s", "epochs", "trials", "train_share", "step_share", "trace_share", "startup_share",
            "best_val", "best_complete", "test_r2")
    # (a search that completed no trial has no best_complete: the median is over the others)
    med = {t: {k: statistics.median([r[k] for r in runs if r["tool"] == t and r[k] == r[k]] or [math.nan])
               for k in keys if all(k in r for r in runs if r["tool"] == t)}
           for t in tools}
    for t in tools:
        m = med[t]
        kind = "random" if "random" in t else "hyperband"
        ref = next((r["wall_s"] for name, r in med.items() if name.startswith(f"KerasTuner {kind}")), float("nan"))
        split = (f"{100 * m['step_share']:.0f}% / {100 * m['trace_share']:.0f}% / {100 * m['startup_share']:.0f}%"
                 if "step_share" in m else "-")
        print(f"| {t} | {m['wall_s']:.1f} | {m['epochs']:.0f} | {m['trials']:.0f} | {100 * m['train_share']:.0f}% | {split} | "
              f"{m['best_val']:.5f} | {m['best_complete']:.5f} | {m.get('test_r2', float('nan')):.5f} | "
              f"{m['wall_s'] / ref:.2f} |")
    if args.kerastuner_trainer == "both":
        paired_rounds(runs)
    if args.json:
        Path(args.json).write_text(json.dumps(runs, indent=2, default=str))


if __name__ == "__main__":
    main()
