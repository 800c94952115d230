"""Algorithm names -> an Optuna sampler and pruner.

| name        | sampler                         | pruner                  | in the paper / elsewhere          |
|-------------|---------------------------------|-------------------------|-----------------------------------|
| `random`    | RandomSampler                   | none                    | KerasTuner RandomSearch           |
| `bayes`     | Gaussian-process BO (sklearn)   | none                    | KerasTuner BayesianOptimization   |
| `tpe`       | TPESampler (independent)        | none                    | Hyperopt; Chemprop random-then-TPE|
| `hyperband` | RandomSampler                   | HyperbandPruner (or the synchronous brackets of :mod:`optmpp.hyperband_sync`) | KerasTuner Hyperband |
| `bohb`      | TPESampler (multivariate)       | HyperbandPruner         | Optuna BOHB                       |
| `sha`       | RandomSampler                   | SuccessiveHalvingPruner | successive halving / ASHA         |

Each algorithm takes overrides from the study file's ``[algorithm]`` table; the allowed keys and
their defaults are the fields of its options dataclass below. Every TPE setting is passed
explicitly, so a study file means the same on every Optuna release we accept (Optuna 5 changed
the defaults of ``multivariate`` and ``constant_liar``).

Optuna is imported only when a sampler or pruner is built, so the table can be listed (and
study files validated) cheaply.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from optmpp._tables import ConfigError, build_dataclass

if TYPE_CHECKING:
    import optuna

__all__ = ["ALGORITHMS", "AlgorithmSpec", "make_pruner", "make_sampler", "make_schedule"]


@dataclass(frozen=True)
class NoOptions:
    """No settings beyond the study's seed."""


@dataclass(frozen=True)
class TPEOptions:
    """TPE settings (all pinned; see the module docstring).

    Attributes:
        n_startup_trials: random trials before TPE takes over (Chemprop's random-then-TPE).
        n_ei_candidates: candidates drawn per parameter to maximise expected improvement.
        multivariate: model parameters jointly (True) or independently as Hyperopt (False).
        group: with ``multivariate``, split the space into groups that co-occur.
        constant_liar: treat running trials as bad, so parallel workers spread out.
    """

    n_startup_trials: int = 10
    n_ei_candidates: int = 24
    multivariate: bool = False
    group: bool = False
    constant_liar: bool = True

    def __post_init__(self) -> None:
        if self.n_startup_trials < 0:
            raise ValueError(f"n_startup_trials must be >= 0, got {self.n_startup_trials}")
        if self.n_ei_candidates < 1:
            raise ValueError(f"n_ei_candidates must be >= 1, got {self.n_ei_candidates}")
        if self.group and not self.multivariate:
            raise ValueError("group = true needs multivariate = true")


@dataclass(frozen=True)
class GPOptions:
    """Gaussian-process BO settings (see :mod:`optmpp.samplers.gp`).

    Attributes:
        n_startup_trials: random trials before the GP takes over.
        n_candidates: points scored by expected improvement per suggestion.
        xi: exploration margin of expected improvement (in standardised units).
        max_fit_trials: fit the GP to at most this many complete trials (the best half, then
            the most recent); fitting is cubic in the trials.
    """

    n_startup_trials: int = 10
    n_candidates: int = 2000
    xi: float = 0.01
    max_fit_trials: int = 300

    def __post_init__(self) -> None:
        if self.max_fit_trials < 2:
            raise ValueError(f"max_fit_trials must be >= 2, got {self.max_fit_trials}")
        if self.n_startup_trials < 1:
            raise ValueError(f"n_startup_trials must be >= 1, got {self.n_startup_trials}")
        if self.n_candidates < 10:
            raise ValueError(f"n_candidates must be >= 10, got {self.n_candidates}")
        if self.xi < 0:
            raise ValueError(f"xi must be >= 0, got {self.xi}")


def _check_rungs(min_resource: int, reduction_factor: int, bootstrap_count: int) -> None:
    if min_resource < 1:
        raise ValueError(f"min_resource must be >= 1, got {min_resource}")
    if reduction_factor < 2:
        raise ValueError(f"reduction_factor must be >= 2, got {reduction_factor}")
    if bootstrap_count < 0:
        raise ValueError(f"bootstrap_count must be >= 0, got {bootstrap_count}")


@dataclass(frozen=True)
class HyperbandOptions:
    """Hyperband settings; the resource is the objective's budget unit (epochs).

    Attributes:
        min_resource: epochs of the smallest rung.
        max_resource: epochs of a full trial; default: the objective's maximum budget.
        reduction_factor: keep 1 / reduction_factor of the trials at each rung.
        bootstrap_count: trials a rung waits for before it prunes (asynchronous only).
        synchronous: run Hyperband's brackets synchronously, as KerasTuner does: a round's best
            continue from their checkpoints once the whole round is done
            (:mod:`optmpp.hyperband_sync`); false: Optuna's asynchronous HyperbandPruner.
        warm_restart: (synchronous only) true: a promoted configuration continues from its best
            epoch's weights with a new optimiser, as KerasTuner continues it; false (default):
            from its last epoch with the optimiser's state, as if it had never stopped.
    """

    min_resource: int = 1
    max_resource: int | None = None
    reduction_factor: int = 3
    bootstrap_count: int = 0
    synchronous: bool = False
    warm_restart: bool = False

    def __post_init__(self) -> None:
        _check_rungs(self.min_resource, self.reduction_factor, self.bootstrap_count)
        if self.synchronous and self.bootstrap_count:
            raise ValueError("bootstrap_count applies to the asynchronous pruner only (synchronous = false)")
        if self.warm_restart and not self.synchronous:
            raise ValueError("warm_restart applies to synchronous Hyperband only (synchronous = true)")
        if self.max_resource is not None and self.max_resource < self.min_resource:
            raise ValueError(
                f"max_resource ({self.max_resource}) must be >= min_resource ({self.min_resource})"
            )


@dataclass(frozen=True)
class BOHBOptions(HyperbandOptions):
    """Hyperband's settings plus multivariate TPE's (BOHB)."""

    n_startup_trials: int = 10
    n_ei_candidates: int = 24
    multivariate: bool = True
    group: bool = False
    constant_liar: bool = True

    def __post_init__(self) -> None:
        super().__post_init__()
        TPEOptions(self.n_startup_trials, self.n_ei_candidates, self.multivariate, self.group)


@dataclass(frozen=True)
class SHAOptions:
    """Successive-halving settings.

    Attributes:
        min_resource: epochs of the first rung.
        reduction_factor: keep 1 / reduction_factor of the trials at each rung.
        min_early_stopping_rate: skip this many rungs before the first pruning decision.
        bootstrap_count: trials a rung waits for before it prunes.
    """

    min_resource: int = 1
    reduction_factor: int = 3
    min_early_stopping_rate: int = 0
    bootstrap_count: int = 0

    def __post_init__(self) -> None:
        _check_rungs(self.min_resource, self.reduction_factor, self.bootstrap_count)
        if self.min_early_stopping_rate < 0:
            raise ValueError(
                f"min_early_stopping_rate must be >= 0, got {self.min_early_stopping_rate}"
            )


@dataclass(frozen=True)
class AlgorithmSpec:
    name: str
    sampler: str
    pruner: str
    paper_name: str
    options: type

    def validate_options(self, table: dict[str, Any], where: str) -> dict[str, Any]:
        """Check an ``[algorithm]`` table; return it with every default filled in."""
        return dataclasses.asdict(build_dataclass(self.options, table, where))

    def describe_options(self) -> str:
        parts = []
        for f in dataclasses.fields(self.options):
            parts.append(f"{f.name}={f.default!r}")
        return ", ".join(parts) or "-"


ALGORITHMS: dict[str, AlgorithmSpec] = {
    spec.name: spec
    for spec in (
        AlgorithmSpec("random", "RandomSampler", "none", "random search (KerasTuner RandomSearch)", NoOptions),
        AlgorithmSpec(
            "bayes",
            "Gaussian-process BO (scikit-learn)",
            "none",
            "Bayesian optimisation (KerasTuner BayesianOptimization)",
            GPOptions,
        ),
        AlgorithmSpec(
            "tpe", "TPESampler (independent)", "none", "TPE (Hyperopt; Chemprop's random-then-TPE)", TPEOptions
        ),
        AlgorithmSpec(
            "hyperband", "RandomSampler", "HyperbandPruner", "Hyperband (KerasTuner Hyperband)", HyperbandOptions
        ),
        AlgorithmSpec(
            "bohb", "TPESampler (multivariate)", "HyperbandPruner", "BOHB (Optuna TPE + Hyperband)", BOHBOptions
        ),
        AlgorithmSpec(
            "sha", "RandomSampler", "SuccessiveHalvingPruner", "successive halving / ASHA", SHAOptions
        ),
    )
}


def _spec(name: str) -> AlgorithmSpec:
    try:
        return ALGORITHMS[name]
    except KeyError:
        raise ConfigError(f"unknown algorithm {name!r}; allowed: {', '.join(ALGORITHMS)}") from None


def _options(name: str, options: dict[str, Any] | None) -> Any:
    spec = _spec(name)
    return build_dataclass(spec.options, dict(options or {}), f"algorithm {name!r}")


def _tpe(o: Any, seed: int | None) -> optuna.samplers.BaseSampler:
    from optmpp.samplers import TPESampler  # Optuna's, reading the study once per trial

    return TPESampler(
        n_startup_trials=o.n_startup_trials,
        n_ei_candidates=o.n_ei_candidates,
        multivariate=o.multivariate,
        group=o.group,
        constant_liar=o.constant_liar,
        seed=seed,
    )


def make_sampler(name: str, options: dict[str, Any] | None = None, seed: int | None = None) -> optuna.samplers.BaseSampler:
    """The sampler of algorithm ``name`` with the ``[algorithm]`` overrides ``options``.

    Each worker should pass a different ``seed`` (study seed + worker index) so that parallel
    workers do not propose the same points.
    """
    import optuna

    o = _options(name, options)
    if name in ("random", "hyperband", "sha"):
        return optuna.samplers.RandomSampler(seed=seed)
    if name in ("tpe", "bohb"):
        return _tpe(o, seed)
    if name == "bayes":
        from optmpp.samplers import GPSampler

        return GPSampler(
            n_startup_trials=o.n_startup_trials, n_candidates=o.n_candidates, xi=o.xi,
            max_fit_trials=o.max_fit_trials, seed=seed,
        )
    raise AssertionError(name)  # pragma: no cover - the table and this function agree


def _sync_resources(name: str, o: Any, max_budget: int | None) -> int:
    if not max_budget:
        raise ConfigError(f"algorithm {name!r}: synchronous = true needs an objective with a maximum budget (epochs)")
    if o.max_resource is not None and o.max_resource != max_budget:
        raise ConfigError(
            f"algorithm {name!r}: with synchronous = true, max_resource ({o.max_resource}) must be the "
            f"objective's maximum budget ({max_budget}); leave it out"
        )
    return int(max_budget)


def make_schedule(
    name: str, options: dict[str, Any] | None, max_budget: int | None, direction: str,
    checkpoint_root: str | None, lookahead: bool = True,
) -> Any:
    """The trial queue of synchronous Hyperband (:class:`optmpp.hyperband_sync.SyncHyperband`),
    or None for every other algorithm (whose workers queue blank trials)."""
    if name not in ("hyperband", "bohb"):
        return None
    o = _options(name, options)
    if not o.synchronous:
        return None
    from optmpp.hyperband_sync import SyncHyperband

    top = _sync_resources(name, o, max_budget)
    return SyncHyperband(o.min_resource, top, o.reduction_factor, direction, checkpoint_root, lookahead,
                         warm_restart=o.warm_restart)


def make_pruner(
    name: str, options: dict[str, Any] | None = None, max_budget: int | None = None
) -> optuna.pruners.BasePruner:
    """The pruner of algorithm ``name``; ``max_budget`` is the objective's full budget (epochs)."""
    import optuna

    o = _options(name, options)
    if name in ("hyperband", "bohb"):
        max_resource = o.max_resource or max_budget or "auto"
        if isinstance(max_resource, int) and max_resource < o.min_resource:
            raise ConfigError(
                f"algorithm {name!r}: min_resource ({o.min_resource}) exceeds the objective's "
                f"budget ({max_resource})"
            )
        if o.synchronous:
            _sync_resources(name, o, max_budget)
            from optmpp.hyperband_sync import make_round_pruner

            return make_round_pruner()
        return optuna.pruners.HyperbandPruner(
            min_resource=o.min_resource,
            max_resource=max_resource,
            reduction_factor=o.reduction_factor,
            bootstrap_count=o.bootstrap_count,
        )
    if name == "sha":
        return optuna.pruners.SuccessiveHalvingPruner(
            min_resource=o.min_resource,
            reduction_factor=o.reduction_factor,
            min_early_stopping_rate=o.min_early_stopping_rate,
            bootstrap_count=o.bootstrap_count,
        )
    return optuna.pruners.NopPruner()
