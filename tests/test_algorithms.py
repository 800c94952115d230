from __future__ import annotations

import math
import statistics
from pathlib import Path

import optuna
import pytest

from optmpp.algorithms import ALGORITHMS, make_pruner, make_sampler
from optmpp.config import ConfigError
from optmpp.samplers import GPSampler
from optmpp.samplers.gp import _Encoder

optuna.logging.set_verbosity(optuna.logging.WARNING)

EXPECTED = {
    "random": (optuna.samplers.RandomSampler, optuna.pruners.NopPruner),
    "bayes": (GPSampler, optuna.pruners.NopPruner),
    "tpe": (optuna.samplers.TPESampler, optuna.pruners.NopPruner),
    "hyperband": (optuna.samplers.RandomSampler, optuna.pruners.HyperbandPruner),
    "bohb": (optuna.samplers.TPESampler, optuna.pruners.HyperbandPruner),
    "sha": (optuna.samplers.RandomSampler, optuna.pruners.SuccessiveHalvingPruner),
}


def test_table_has_the_six_algorithms() -> None:
    assert list(ALGORITHMS) == list(EXPECTED)


@pytest.mark.parametrize("name", list(EXPECTED))
def test_sampler_and_pruner(name: str) -> None:
    sampler_cls, pruner_cls = EXPECTED[name]
    assert isinstance(make_sampler(name, {}, seed=1), sampler_cls)
    assert isinstance(make_pruner(name, {}, max_budget=27), pruner_cls)


def test_tpe_settings_are_pinned() -> None:
    tpe = make_sampler("tpe", {}, seed=0)
    bohb = make_sampler("bohb", {}, seed=0)
    assert (tpe._multivariate, tpe._constant_liar, tpe._n_startup_trials) == (False, True, 10)
    assert (bohb._multivariate, bohb._constant_liar) == (True, True)
    custom = make_sampler("tpe", {"n_startup_trials": 4, "multivariate": True, "constant_liar": False})
    assert (custom._multivariate, custom._constant_liar, custom._n_startup_trials) == (True, False, 4)


def test_overrides_reach_the_pruner() -> None:
    hb = make_pruner("hyperband", {"reduction_factor": 2, "min_resource": 3}, max_budget=27)
    assert (hb._reduction_factor, hb._min_resource, hb._max_resource) == (2, 3, 27)
    assert make_pruner("hyperband", {"max_resource": 9}, max_budget=27)._max_resource == 9
    sha = make_pruner("sha", {"reduction_factor": 4, "min_early_stopping_rate": 1})
    assert (sha._reduction_factor, sha._min_early_stopping_rate) == (4, 1)
    with pytest.raises(ConfigError, match="min_resource .* exceeds the objective's budget"):
        make_pruner("hyperband", {"min_resource": 30}, max_budget=27)
    with pytest.raises(ConfigError, match="unknown key 'foo'"):
        make_sampler("bayes", {"foo": 1})


def test_gp_encoder_round_trip() -> None:
    from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution

    space = {
        "f": FloatDistribution(-1, 1),
        "lf": FloatDistribution(1e-4, 1e-1, log=True),
        "s": FloatDistribution(0.05, 0.5, step=0.05),
        "i": IntDistribution(32, 512, step=32),
        "li": IntDistribution(1, 1000, log=True),
        "c": CategoricalDistribution(["relu", "tanh", 3]),
    }
    enc = _Encoder(space)
    assert enc.width == 8
    params = {"f": 0.25, "lf": 1e-3, "s": 0.35, "i": 224, "li": 17, "c": "tanh"}
    back = enc.decode(enc.encode(params))
    assert back["i"] == 224 and back["li"] == 17 and back["c"] == "tanh"
    assert back["f"] == pytest.approx(0.25) and back["lf"] == pytest.approx(1e-3) and back["s"] == pytest.approx(0.35)
    import numpy as np

    rng = np.random.RandomState(0)
    for row in enc.random_rows(rng, 200):
        p = enc.decode(row)
        for name, dist in space.items():
            assert dist._contains(dist.to_internal_repr(p[name])), (name, p[name])


def smooth(trial: optuna.Trial) -> float:
    # 4 mixed parameters: float, log-float, int, categorical
    x = trial.suggest_float("x", -5.0, 5.0)
    lr = trial.suggest_float("lr", 1e-5, 1e-1, log=True)
    n = trial.suggest_int("n", 1, 10)
    act = trial.suggest_categorical("act", ["relu", "tanh", "sigmoid"])
    import math

    return (x - 1.3) ** 2 + (math.log10(lr) + 2.7) ** 2 + 0.2 * (n - 7) ** 2 + {"relu": 0.0, "tanh": 0.6, "sigmoid": 1.2}[act]


def best_after(algorithm: str, seed: int, n_trials: int = 30) -> float:
    study = optuna.create_study(sampler=make_sampler(algorithm, {}, seed=seed))
    study.optimize(smooth, n_trials=n_trials)
    return study.best_value


@pytest.mark.slow
def test_bayes_beats_random_on_a_smooth_function() -> None:
    seeds = range(5)
    bayes = statistics.median(best_after("bayes", s) for s in seeds)
    random = statistics.median(best_after("random", s) for s in seeds)
    print(f"median best after 30 trials over 5 seeds: bayes {bayes:.4f}, random {random:.4f}")
    assert bayes < random


def test_gp_sampler_maximize_and_parallel_liars() -> None:
    study = optuna.create_study(direction="maximize", sampler=GPSampler(n_startup_trials=5, n_candidates=200, seed=0))
    study.optimize(lambda t: -((t.suggest_float("x", -2, 2) - 1) ** 2), n_trials=15)
    assert study.best_value > -0.05
    # a running trial's point enters as a liar: the next suggestion differs from it
    trial = study.ask()
    x1 = trial.suggest_float("x", -2, 2)
    x2 = study.ask().suggest_float("x", -2, 2)
    assert x1 != x2


@pytest.mark.slow
@pytest.mark.parametrize("algorithm", ["hyperband", "bohb", "sha"])
def test_pruning_algorithms_prune_the_sklearn_objective(algorithm: str, real_data: Path) -> None:
    from optmpp.objectives import make_objective

    objective = make_objective("hdpe-mi-mlp", {"max_epochs": 9, "units": [8, 64]})
    study = optuna.create_study(
        sampler=make_sampler(algorithm, {}, seed=0),
        pruner=make_pruner(algorithm, {}, max_budget=objective.max_budget),
    )
    study.optimize(objective, n_trials=40)
    states = [t.state for t in study.trials]
    pruned = [t.user_attrs["epochs"] for t in study.trials if t.state == optuna.trial.TrialState.PRUNED]
    complete = [t.user_attrs["epochs"] for t in study.trials if t.state == optuna.trial.TrialState.COMPLETE]
    assert len(states) == 40 and pruned and complete
    assert min(complete) == 9 and min(pruned) < 9
    assert statistics.mean(pruned) < statistics.mean(complete)


def _conditional_space(trial: optuna.Trial) -> float:
    n = trial.suggest_int("num_layers", 1, 3)
    lr = trial.suggest_categorical("learning_rate", [1e-2, 1e-3, 1e-4])
    loss = abs(math.log10(lr) + 3)
    for i in range(1, n + 1):
        loss += (trial.suggest_int(f"units_{i}", 32, 512, step=32) - 256) ** 2 / 1e5
        loss += trial.suggest_float(f"dropout_{i}", 0.05, 0.5, step=0.05)
    return loss


def _seeded_study(sampler: optuna.samplers.BaseSampler, pruner: optuna.pruners.BasePruner | None = None) -> optuna.Study:
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=3), pruner=pruner)
    study.optimize(_conditional_space, n_trials=40)
    study.sampler = sampler
    return study


@pytest.mark.parametrize("multivariate", [False, True])
def test_our_tpe_samples_exactly_as_optunas_with_one_read_per_trial(multivariate: bool) -> None:
    """optmpp's TPE reads the study once per trial (not once per parameter) and splits it once,
    and still proposes exactly Optuna's points: same study, same seed, same sequence."""
    from optmpp.samplers import TPESampler

    kwargs = dict(n_startup_trials=10, multivariate=multivariate, constant_liar=True, seed=11)
    ours = _seeded_study(TPESampler(**kwargs))
    theirs = _seeded_study(optuna.samplers.TPESampler(**kwargs))
    reads = {"ours": 0, "theirs": 0}

    def count(study: optuna.Study, who: str) -> None:
        get_all = study._storage.get_all_trials

        def counting(*a: object, **k: object) -> object:
            reads[who] += 1
            return get_all(*a, **k)

        study._storage.get_all_trials = counting  # type: ignore[method-assign]

    count(ours, "ours")
    count(theirs, "theirs")
    # a trial left running (another worker's, to the constant liar) while the others sample
    held = ours.ask(), theirs.ask()
    assert held[0].params == held[1].params  # nothing sampled yet
    held_values = _conditional_space(held[0]), _conditional_space(held[1])
    assert held[0].params == held[1].params
    for _ in range(30):  # past 64 stored trials, where our parameter columns grow
        a, b = ours.ask(), theirs.ask()
        va, vb = _conditional_space(a), _conditional_space(b)
        assert a.params == b.params
        ours.tell(a, va)
        theirs.tell(b, vb)
    ours.tell(held[0], held_values[0])
    theirs.tell(held[1], held_values[1])
    a, b = ours.ask(), theirs.ask()
    assert _conditional_space(a) == _conditional_space(b) and a.params == b.params
    assert len({tuple(sorted(t.params.items())) for t in ours.trials[40:]}) > 1  # not one point
    assert len(ours.trials) == 72
    if multivariate:  # Optuna reads once per trial for the joint parameters too
        assert reads["ours"] <= reads["theirs"], reads
    else:  # Optuna reads once per parameter
        assert reads["ours"] * 2 < reads["theirs"], reads


def test_gp_is_fitted_to_at_most_max_fit_trials_the_best_and_the_most_recent() -> None:
    sampler = GPSampler(n_startup_trials=5, n_candidates=50, max_fit_trials=10, seed=0)
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
    study.optimize(lambda t: (t.suggest_float("x", -2, 2) - 1) ** 2, n_trials=30)
    study.sampler = sampler
    fitted = []
    fit = sampler._fit
    sampler._fit = lambda X, y: fitted.append(X.copy()) or fit(X, y)  # type: ignore[method-assign]
    study.optimize(lambda t: (t.suggest_float("x", -2, 2) - 1) ** 2, n_trials=1)
    assert fitted[0].shape == (10, 1)
    old = study.trials[:30]
    best5 = sorted(old, key=lambda t: t.value)[:5]
    rest = [t for t in old if t not in best5][-5:]
    expect = sorted((t.params["x"] + 2) / 4 for t in best5 + rest)
    assert sorted(fitted[0][:, 0]) == pytest.approx(expect)
