"""Averaging configurations or seeds: which ensemble of retrained models tests better?

    python benchmarks/ensemble_top.py studies/hdpe-mi-20min.toml sqlite:///runs/optmpp.db 5 3
    python benchmarks/ensemble_top.py studies/tg-cnn-20min.toml sqlite:///runs/optmpp.db 4 2

Reads the study's ``K`` best complete trials, retrains each (train + validation, its best epoch
count as ``optmpp best`` does) with seeds 0 .. ``SEEDS - 1``, and prints each model's test
figures, then those of the averaged models (``objective.ensemble``, what ``optmpp best
--ensemble`` saves): the best trial's seeds, and the best 2 .. K trials with seed 0 and with all
seeds. Figures only; nothing is saved. RESULTS.md 6a has a run of each case.
"""

from __future__ import annotations

import argparse
import time

import optuna
from optuna.trial import TrialState

from optmpp.config import load_study_config
from optmpp.objectives import make_objective


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("study", help="study file (TOML) of a study that has run")
    ap.add_argument("storage", help="its storage URL")
    ap.add_argument("top", type=int, help="how many of the best complete trials (K >= 1)")
    ap.add_argument("seeds", type=int, help="seeds per trial (>= 1)")
    args = ap.parse_args()
    if args.top < 1 or args.seeds < 1 or args.top * args.seeds < 2:
        ap.error("an ensemble needs K x SEEDS >= 2 models")
    cfg = load_study_config(args.study)
    obj = make_objective(cfg.objective.name, cfg.objective.options, cfg.path)
    study = optuna.load_study(study_name=cfg.name, storage=args.storage)
    top = sorted(study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)), key=lambda t: t.value)[: args.top]
    if not top:
        ap.error(f"study {cfg.name!r} has no complete trial")
    evs = {}
    for t in top:
        epochs = t.user_attrs.get("best_epoch") or t.user_attrs.get("epochs")
        for s in range(args.seeds):
            t0 = time.monotonic()
            evs[(t.number, s)] = ev = obj.evaluate(dict(t.params), seed=s, epochs=epochs)
            print(f"trial {t.number} (val {t.value:.4g}, {epochs} epochs) seed {s}: test RMSE "
                  f"{ev.metrics['rmse_units']:.4g}, R² {ev.metrics['r2']:.5f} ({time.monotonic() - t0:.0f} s)", flush=True)

    def show(name: str, keys: list[tuple[int, int]]) -> None:
        if len(keys) < 2:
            return
        m = obj.ensemble([evs[k] for k in keys]).metrics
        unseen = f", unseen molecules {m['rmse_unseen_units']:.4g}" if "rmse_unseen_units" in m else ""
        print(f"{name}: test RMSE {m['rmse_units']:.4g}, R² {m['r2']:.5f}{unseen}", flush=True)

    show(f"best trial, {args.seeds} seeds averaged", [(top[0].number, s) for s in range(args.seeds)])
    for k in range(2, len(top) + 1):
        show(f"best {k} trials, seed 0, averaged", [(t.number, 0) for t in top[:k]])
        if args.seeds > 1:
            show(f"best {k} trials x {args.seeds} seeds, averaged", [(t.number, s) for t in top[:k] for s in range(args.seeds)])


if __name__ == "__main__":
    main()
