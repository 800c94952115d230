"""Optuna's TPE sampler, reading the study once per trial instead of once per parameter.

With ``constant_liar`` (our default, so that parallel workers spread out) Optuna's TPE reloads
the study's trials from the storage for every parameter it samples, to see the other workers'
running trials; at 1,000 stored trials that read is ~10 ms on SQLite, ~130 ms for the
melt-index DNN's 13 parameters. Here the trials are read at a trial's first ``suggest`` and
reused for its other parameters: the running trials it lies about are those running when the
trial started sampling, a few milliseconds earlier. For the same reason the split of the
trials into good and bad ones (the same for every parameter of a trial), and each half's table
of parameter values, are computed once per trial, not once per parameter. The samples are otherwise Optuna's: the same estimators, the
same candidates, the same expected improvement.
"""

from __future__ import annotations

import copy
import inspect
from collections.abc import Container
from typing import Any

import numpy as np
import optuna
from optuna.distributions import BaseDistribution
from optuna.trial import FrozenTrial, TrialState

__all__ = ["TPESampler"]

try:  # Optuna's private helpers of TPESampler._sample; without them, Optuna's own _sample runs
    from optuna.samplers._tpe import sampler as _tpe_module

    _split_trials = _tpe_module._split_trials
    _GAMMAS = (_tpe_module.default_gamma, _tpe_module.default_gamma_multiobjective)
    _SPLIT_ONCE = list(inspect.signature(_split_trials).parameters) == ["study", "trials", "n_below"] and all(
        hasattr(optuna.samplers.TPESampler, m)
        for m in ("_build_parzen_estimator", "_compute_acquisition_func", "_compare", "_sample")
    )
except (ImportError, AttributeError):  # pragma: no cover - another Optuna
    _SPLIT_ONCE = False


class _Snapshot:
    """A study whose ``_get_trials`` answers from trials read once."""

    def __init__(self, study: Any, trials: list[FrozenTrial]) -> None:
        self._study, self._trials = study, trials

    def _get_trials(
        self, deepcopy: bool = True, states: Container[TrialState] | None = None, use_cache: bool = False
    ) -> list[FrozenTrial]:
        trials = self._trials if states is None else [t for t in self._trials if t.state in states]
        return copy.deepcopy(trials) if deepcopy else trials

    def get_trials(self, deepcopy: bool = True, states: Container[TrialState] | None = None) -> list[FrozenTrial]:
        return self._get_trials(deepcopy, states)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._study, name)


class TPESampler(optuna.samplers.TPESampler):
    """:class:`optuna.samplers.TPESampler` with one storage read per trial (see module doc)."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._snapshot: tuple[tuple[int, int], list[FrozenTrial]] | None = None
        self._split: tuple[tuple[int, int], Any] | None = None
        self._tables: list[tuple[list[FrozenTrial], dict[str, Any]]] = []  # of the split's halves

    def _once(self, study: Any, trial: FrozenTrial) -> _Snapshot:
        key = (study._study_id, trial.number)
        if self._snapshot is None or self._snapshot[0] != key:
            # Optuna's per-trial cache (emptied at ask/tell), shared with its own relative sampling
            self._snapshot = (key, study._get_trials(deepcopy=False, use_cache=True))
        return _Snapshot(study, self._snapshot[1])

    def sample_relative(self, study: Any, trial: FrozenTrial, search_space: dict[str, BaseDistribution]) -> dict[str, Any]:
        return super().sample_relative(self._once(study, trial), trial, search_space)

    def sample_independent(self, study: Any, trial: FrozenTrial, param_name: str, param_distribution: BaseDistribution) -> Any:
        return super().sample_independent(self._once(study, trial), trial, param_name, param_distribution)

    def _sample(self, study: Any, trial: FrozenTrial, search_space: dict[str, BaseDistribution]) -> dict[str, Any]:
        if not _SPLIT_ONCE or not isinstance(study, _Snapshot):
            return super()._sample(study, trial, search_space)
        key = (study._study_id, trial.number)
        if self._split is None or self._split[0] != key:  # as in Optuna's _sample, once per trial
            states = [TrialState.COMPLETE, TrialState.PRUNED]
            if self._constant_liar:
                states.append(TrialState.RUNNING)
            trials = study._get_trials(deepcopy=False, states=states)
            if self._constant_liar:
                trials = [t for t in trials if t.number != trial.number]
            if self._gamma is None:
                self._gamma = _GAMMAS[0] if len(study.directions) <= 1 else _GAMMAS[1]
            n = sum(t.state != TrialState.RUNNING for t in trials)
            self._split = (key, _split_trials(study, trials, self._gamma(n)))
            self._tables = []
        below, above = self._split[1]
        mpe_below = self._build_parzen_estimator(study, search_space, below, handle_below=True)
        mpe_above = self._build_parzen_estimator(study, search_space, above, handle_below=False)
        samples_below = mpe_below.sample(self._rng.rng, self._n_ei_candidates)
        acq_func_vals = self._compute_acquisition_func(samples_below, mpe_below, mpe_above)
        ret = self._compare(samples_below, acq_func_vals)
        for name, dist in search_space.items():
            ret[name] = dist.to_external_repr(ret[name])
        return ret

    def _get_internal_repr(
        self, trials: list[FrozenTrial], search_space: dict[str, BaseDistribution], study: Any
    ) -> dict[str, np.ndarray]:
        """Optuna's result (rows: the trials holding every parameter of ``search_space``, in
        order), from a table of each half of the split read once per trial."""
        if not _SPLIT_ONCE or self._split is None or not any(trials is half for half in self._split[1]):
            return super()._get_internal_repr(trials, search_space, study)
        table = next((tab for rows, tab in self._tables if rows is trials), None)
        if table is None:
            table = {}
            for i, t in enumerate(trials):
                for name, value in self._get_params(t, study).items():
                    table.setdefault(name, {})[i] = value
            self._tables.append((trials, table))
        rows: set[int] | None = None
        for name in search_space:
            held = table.get(name, {}).keys()
            rows = set(held) if rows is None else rows & held
        order = sorted(rows or ())
        return {
            name: np.asarray([dist.to_internal_repr(table[name][i]) for i in order])
            for name, dist in search_space.items()
        }

    def after_trial(self, study: Any, trial: FrozenTrial, state: TrialState, values: Any) -> None:
        self._snapshot = self._split = None
        self._tables = []
        super().after_trial(study, trial, state, values)
