"""optmpp's synchronous Hyperband on KerasTuner's own configurations: a paired comparison.

    python benchmarks/kt_draws.py --families 1-15          # which KerasTuner seeds draw the same configurations
    python benchmarks/kt_draws.py --seeds 1,2,3            # optmpp on the configurations KerasTuner draws for them
    python benchmarks/kt_draws.py --case tg --seeds 1,2 --kerastuner-own-grid

Hyperband's best validation loss after 375 epochs depends mostly on which 49 random
configurations it happens to draw, so "median of 3 seeds" compares the two tools' luck as much
as the tools. This script removes the luck: for a KerasTuner seed it reads the configurations
KerasTuner 1.4.8's Hyperband oracle draws (the objective's space as ``vs_kerastuner.py`` declares
it to KerasTuner, with its grid or, ``--kerastuner-own-grid``, KerasTuner's; without training: the oracle is fed random scores, which do not change
its draws), then runs optmpp ``hyperband`` with ``synchronous = true`` (KerasTuner's brackets
and round sizes) on exactly those configurations, in the same order, to KerasTuner's 375
epochs, in this process with 1 worker, and prints its best validation loss (any trial, any
epoch: KerasTuner's definition). Compare with ``vs_kerastuner.py --seeds ... --workers 0`` for
KerasTuner's own figure on the same seed.

``--families`` shows why the pairing matters: KerasTuner seeds its draws with ``seed``,
``seed + 1``, ... (one integer per hyperparameter value), so seeds a few apart re-draw most of
the same configurations (seeds 1, 3, 9 and 10 share 44-48 of their 49); its "3 seeds" can be
one sample drawn three times.
"""

from __future__ import annotations

import argparse
import itertools
import json
import random
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))


def kerastuner_draws(objective: Any, seed: int, max_epochs: int, factor: int) -> list[dict[str, Any]]:
    """The new configurations KerasTuner's Hyperband oracle creates for ``seed``, in order."""
    import keras_tuner as kt
    from vs_kerastuner import HPTrial

    oracle = kt.oracles.HyperbandOracle(objective=kt.Objective("val_loss", "min"), max_epochs=max_epochs,
                                        factor=factor, seed=seed)
    scores = random.Random(seed)
    out = []
    with tempfile.TemporaryDirectory(prefix="optmpp-ktdraws-") as work:
        oracle._set_project_dir(work, "p")
        space = oracle.get_space()
        objective.suggest(HPTrial(space))  # the tuner's initial space: one build with default values
        oracle.update_space(space)
        while (trial := oracle.create_trial("w")).status == "RUNNING":
            params = objective.suggest(HPTrial(trial.hyperparameters))  # registers newly met parameters
            oracle.update_space(trial.hyperparameters)
            if "tuner/trial_id" not in trial.hyperparameters.values:  # a new configuration, not a promotion
                out.append(params)
            oracle.update_trial(trial.trial_id, {"val_loss": scores.random()})
            oracle.end_trial(trial)
    return out


def _parse_seeds(text: str) -> list[int]:
    seeds: list[int] = []
    for part in text.split(","):
        lo, _, hi = part.partition("-")
        seeds += list(range(int(lo), int(hi) + 1)) if hi else [int(lo)]
    return seeds


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--case", choices=("mi", "tg"), default="mi")
    ap.add_argument("--kerastuner-own-grid", action="store_true",
                    help="KerasTuner's own grid for stepped floats, as in vs_kerastuner.py --kerastuner-own-grid")
    ap.add_argument("--seeds", default="1,2,3", help="KerasTuner seeds to pair with (e.g. 1,2,3 or 1-7)")
    ap.add_argument("--families", metavar="SEEDS", help="only print how many configurations these seeds share")
    ap.add_argument("--max-epochs", type=int, default=27)
    ap.add_argument("--factor", type=int, default=3)
    ap.add_argument("--epochs", type=int, default=375, help="optmpp's epoch budget (KerasTuner's for 27 / 3)")
    args = ap.parse_args()

    import optuna

    import optmpp.workers as workers
    from optmpp.config import parse_study_config
    from optmpp.hyperband_sync import ATTR
    from optmpp.objectives import make_objective
    from vs_kerastuner import CASES, HPTrial, objective_options

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    HPTrial.own_grid = args.kerastuner_own_grid
    name = CASES[args.case]["objective"]
    options = objective_options(args.case, args.max_epochs)
    objective = make_objective(name, options)
    if args.families:
        seeds = _parse_seeds(args.families)
        draws = {s: {json.dumps(p, sort_keys=True) for p in kerastuner_draws(objective, s, args.max_epochs, args.factor)}
                 for s in seeds}
        print(f"# KerasTuner seeds sharing configurations ({len(next(iter(draws.values())))} per seed)")
        for a, b in itertools.combinations(seeds, 2):
            if shared := len(draws[a] & draws[b]):
                print(f"seeds {a:3d} and {b:3d} share {shared} configurations")
        return

    class Replay(optuna.samplers.BaseSampler):
        """Each new trial takes the next of KerasTuner's configurations (1 worker: trials
        sample in order); promoted trials carry their parameters and never ask."""

        def __init__(self, configs: list[dict[str, Any]]) -> None:
            self.configs, self.order = configs, {}

        def infer_relative_search_space(self, study: Any, trial: Any) -> dict[str, Any]:
            return {}

        def sample_relative(self, study: Any, trial: Any, search_space: Any) -> dict[str, Any]:
            return {}

        def sample_independent(self, study: Any, trial: Any, name: str, distribution: Any) -> Any:
            index = self.order.setdefault(trial.number, len(self.order))
            return self.configs[index][name]

    print(f"# optmpp hyperband (synchronous, 1 worker) on KerasTuner's draws: {name}, max_epochs "
          f"{args.max_epochs}, factor {args.factor}, {args.epochs} epochs", flush=True)
    for seed in _parse_seeds(args.seeds):
        configs = kerastuner_draws(objective, seed, args.max_epochs, args.factor)
        workers.make_sampler = lambda *a, _c=configs, **k: Replay(_c)  # type: ignore[misc]
        with tempfile.TemporaryDirectory(prefix="optmpp-ktdraws-") as work:
            url = f"sqlite:///{work}/study.db"
            cfg = parse_study_config({
                "name": f"kt-draws-{seed}", "seed": seed, "n_trials": 100_000,
                "algorithm": {"name": "hyperband", "reduction_factor": args.factor, "synchronous": True},
                "objective": {"name": name, **options},
                # round-end checkpoints only (the default), kept with the study, not in ./runs
                "reliability": {"checkpoint_dir": f"{work}/checkpoints", "checkpoint_every": 1_000_000},
            }, "kt_draws.toml")
            workers.prepare_study(cfg, url, 100_000, log=lambda m: None, ahead=1, lookahead=False)
            t0 = time.perf_counter()
            workers.run_worker(cfg, url, epoch_budget=args.epochs, log=lambda m: None, verbose=False)
            wall = time.perf_counter() - t0
            trials = optuna.load_study(study_name=cfg.name, storage=url).get_trials(deepcopy=False)
        seen = [v for t in trials for v in t.intermediate_values.values() if v == v]
        new = sum(1 for t in trials if (t.user_attrs.get(ATTR) or {}).get("round") == 0)
        print(f"seed {seed:3d} | {len(configs)} KerasTuner configurations, {new} run | {len(trials)} trials | "
              f"{wall:6.1f} s | best val {min(seen):.5f}", flush=True)


if __name__ == "__main__":
    main()
