"""A conformance check for objective factories: run it in a plug-in's own tests.

Example::

    from optmpp.testing import check_objective
    from mypkg.quadratic import make

    def test_my_objective_follows_the_contract():
        check_objective(make, {"max_epochs": 3})

It fails with an ``AssertionError`` that says which rule of the contract (see
:mod:`optmpp.objectives.base`) is broken.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

__all__ = ["check_objective"]

METRICS = ("loss", "mae", "mape", "rmse", "r2")


class _PruneAtFirstReport:
    """A pruner that prunes every trial at its first report."""

    def prune(self, study: Any, trial: Any) -> bool:
        return trial.last_step is not None


def check_objective(factory: Callable[[dict[str, Any]], Any], options: dict[str, Any] | None = None, n_trials: int = 2) -> dict[str, Any]:
    """Check that ``factory(options)`` builds an objective that follows optmpp's contract.

    Checks: unknown option keys are rejected with ``ConfigError``; the objective is callable,
    has ``evaluate``, a valid ``direction`` and an integer ``max_budget`` when given; each trial
    returns a finite number, reports its validation loss at steps 1, 2, ... (contiguous),
    records ``epochs`` equal to the steps reported, and stops with ``optuna.TrialPruned``
    when the pruner says so; ``evaluate(params)`` returns finite test metrics (loss, MAE, MAPE,
    RMSE, R²). Returns a small report (values, epochs, metrics).
    """
    import optuna

    from optmpp._tables import ConfigError

    options = dict(options or {})
    try:
        factory({**options, "__surely_not_an_option__": 1})
    except ConfigError:
        pass
    except Exception as exc:  # noqa: BLE001
        raise AssertionError(
            f"an unknown option key must raise optmpp.config.ConfigError, not {type(exc).__name__}: {exc}"
        ) from None
    else:
        raise AssertionError("an unknown option key was accepted silently; validate options with parse_options")

    objective = factory(options)
    assert callable(objective), "the factory must return a callable trial function"
    assert callable(getattr(objective, "evaluate", None)), "the objective needs evaluate(params, seed=0)"
    direction = getattr(objective, "direction", "minimize")
    assert direction in ("minimize", "maximize"), f"direction must be 'minimize' or 'maximize', got {direction!r}"
    budget = getattr(objective, "max_budget", None)
    assert budget is None or (isinstance(budget, int) and budget >= 1), f"max_budget must be an int >= 1, got {budget!r}"

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(direction=direction, sampler=optuna.samplers.RandomSampler(seed=0),
                                pruner=optuna.pruners.NopPruner())
    study.optimize(objective, n_trials=n_trials)
    report: dict[str, Any] = {"values": [], "epochs": []}
    for t in study.trials:
        assert t.state == optuna.trial.TrialState.COMPLETE, f"trial {t.number} ended {t.state.name}"
        assert t.value is not None and math.isfinite(t.value), f"trial {t.number} returned {t.value!r}"
        steps = sorted(t.intermediate_values)
        assert steps, f"trial {t.number} reported no intermediate value: call trial.report(val_loss, epoch)"
        assert steps == list(range(1, len(steps) + 1)), f"trial {t.number} reported steps {steps}; use 1, 2, 3, ..."
        if budget is not None:
            assert len(steps) <= budget, f"trial {t.number} trained {len(steps)} epochs, more than max_budget={budget}"
        epochs = t.user_attrs.get("epochs")
        assert epochs == len(steps), f"trial {t.number}: user attribute epochs={epochs!r}, but {len(steps)} steps reported"
        report["values"].append(t.value)
        report["epochs"].append(epochs)

    pruned = optuna.create_study(direction=direction, sampler=optuna.samplers.RandomSampler(seed=1),
                                 pruner=_PruneAtFirstReport())  # type: ignore[arg-type]
    pruned.optimize(objective, n_trials=1)
    (p,) = pruned.trials
    assert p.state == optuna.trial.TrialState.PRUNED, (
        f"the objective was told to prune after its first report but ended {p.state.name}: "
        "check trial.should_prune() after each trial.report() and raise optuna.TrialPruned"
    )
    assert sorted(p.intermediate_values) == [1], f"a trial pruned at step 1 reported steps {sorted(p.intermediate_values)}"

    evaluation = objective.evaluate(dict(study.best_trial.params), seed=0)
    metrics = getattr(evaluation, "metrics", None)
    assert isinstance(metrics, dict), "evaluate() must return an optmpp.objectives.base.Evaluation with .metrics"
    for key in METRICS:
        assert key in metrics, f"evaluate() metrics lack {key!r}; regression_metrics() computes all five"
        assert math.isfinite(float(metrics[key])), f"evaluate() metric {key} = {metrics[key]!r}"
    report["metrics"] = dict(metrics)
    return report
