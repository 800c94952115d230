"""Synchronous Hyperband (``[algorithm] synchronous = true``), as KerasTuner runs it.

Optuna's ``HyperbandPruner`` is asynchronous: a trial is promoted past a rung as soon as it is in
the top 1 / reduction_factor of the trials that reached the rung *so far*, so with a small budget
the first trials of every rung are promoted with little competition. Here, as in Li et al.
(2018) and KerasTuner (whose round sizes it uses), a bracket's round trains ``n``
configurations for ``r`` epochs, and only when the whole round is finished do its best
``n / reduction_factor`` continue, from their saved training state, to ``r * reduction_factor``
epochs.

Each (configuration, round) is one Optuna trial, created by :class:`SyncHyperband` under the
study lock when it can run:

* a round-0 trial is a new configuration from the algorithm's sampler (random, or TPE for BOHB);
* a later round's trial has the parameters of the ``slot``-th best trial of the previous round
  (best validation value at any of its epochs) and continues from that trial's checkpoint.

Every such trial carries the user attribute ``hyperband`` = ``{"key", "iteration", "bracket",
"round", "slot", "epochs", "last", "root", "continues", "start", "restart"}``: ``epochs`` is where
the round ends (the :func:`make_round_pruner`'s pruner stops the trial there, as PRUNED; the last
round runs to the objective's maximum and is COMPLETE), ``continues`` the trial number it resumes,
``root`` the number of the configuration's round-0 trial (whose checkpoint file the chain shares
and whose number seeds its training), ``start`` the epochs the trial it continues ended at (0 for
a new configuration) and ``restart`` whether it continues KerasTuner's way (``warm_restart =
true``): from the best epoch's weights with a new optimiser, rather than from the last epoch's
state (the default). An objective that keeps no checkpoint still works: a promoted trial then
trains from scratch to the round's epochs.

Order of work: one Hyperband iteration is its brackets' round 0 (most aggressive bracket first),
then their round 1, and so on, so a round's results are in long before the next round needs them
and workers rarely wait; with ``lookahead``, a worker with nothing runnable in the current
iteration starts the next one.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import optuna

__all__ = ["ATTR", "Item", "SyncHyperband", "brackets", "make_round_pruner"]

ATTR = "hyperband"


def brackets(min_resource: int, max_resource: int, reduction_factor: int) -> list[list[tuple[int, int]]]:
    """Hyperband's brackets, most aggressive first: per bracket, its rounds as (trials, epochs).

    Li et al.'s brackets with KerasTuner's round sizes: round ``i`` of bracket ``s`` holds
    ``ceil((s_max + 1) / (s + 1) * eta ** (s - i))`` trials (Li et al. round them down), so
    that for 27 epochs and factor 3 the plan is KerasTuner's: 70 trials, 375 epochs.

    >>> brackets(1, 27, 3)[1]
    [(12, 3), (4, 9), (2, 27)]
    """
    eta = reduction_factor
    s_max = int(math.floor(math.log(max_resource / min_resource) / math.log(eta) + 1e-9))
    out = []
    for s in range(s_max, -1, -1):
        rounds = []
        for i in range(s + 1):
            epochs = max_resource if i == s else max(min_resource, int(round(max_resource * eta ** (i - s))))
            rounds.append((int(math.ceil((s_max + 1) / (s + 1) * eta ** (s - i) - 1e-9)), epochs))
        out.append(rounds)
    return out


@dataclass(frozen=True)
class Item:
    iteration: int
    bracket: int  # index into brackets(): 0 is the most aggressive
    round: int
    slot: int
    epochs: int
    last: bool = False  # the bracket's last round: runs to the maximum and completes

    @property
    def key(self) -> str:
        return f"{self.iteration}/{self.bracket}/{self.round}/{self.slot}"

    def attr(self, root: int | None, continues: int | None, start: int = 0, restart: bool = False) -> dict[str, Any]:
        return {"key": self.key, "iteration": self.iteration, "bracket": self.bracket, "round": self.round,
                "slot": self.slot, "epochs": self.epochs, "last": self.last, "root": root, "continues": continues,
                "start": start, "restart": restart}


class SyncHyperband:
    """The queue of a synchronous Hyperband study (call :meth:`top_up` under the study lock)."""

    def __init__(self, min_resource: int, max_resource: int, reduction_factor: int, direction: str,
                 checkpoint_root: str | Path | None = None, lookahead: bool = True, warm_restart: bool = False) -> None:
        self.plan = brackets(min_resource, max_resource, reduction_factor)
        self.minimize = direction == "minimize"
        self.checkpoint_root = Path(checkpoint_root) if checkpoint_root else None
        self.lookahead = lookahead
        self.warm_restart = warm_restart
        self._study_name = "study"

    def items(self, iteration: int) -> Iterator[Item]:
        """One iteration's work in the order it is started: round by round, brackets in turn."""
        for i in range(len(self.plan)):
            for b, rounds in enumerate(self.plan):
                if i < len(rounds):
                    n, epochs = rounds[i]
                    for slot in range(n):
                        yield Item(iteration, b, i, slot, epochs, i == len(rounds) - 1)

    def epochs_per_iteration(self) -> int:
        """Epochs one iteration trains when promoted trials resume from their checkpoints."""
        total = 0
        for rounds in self.plan:
            before = 0
            for n, epochs in rounds:
                total += n * (epochs - before)
                before = epochs
        return total

    def _score(self, t: Any) -> float | None:
        values = [v for v in t.intermediate_values.values() if v == v]
        if not values:
            return None
        return min(values) if self.minimize else -max(values)

    def top_up(self, study: optuna.Study, n_trials: int, ahead: int | None, counts: dict[str, int]) -> int:
        """Enqueue up to ``ahead`` runnable trials (fewer when ``n_trials`` caps); returns how many."""
        from optuna.trial import TrialState

        self._study_name = study.study_name
        need = n_trials - (counts["finished"] + counts["running"] + counts["waiting"])
        need = min(need, (ahead or 1) - counts["waiting"])
        if need <= 0:
            return 0
        trials = study.get_trials(deepcopy=False)
        attempts: dict[str, list[Any]] = {}
        for t in trials:
            hb = t.user_attrs.get(ATTR)
            if isinstance(hb, dict) and "key" in hb:
                attempts.setdefault(hb["key"], []).append(t)
        live = (TrialState.WAITING, TrialState.RUNNING)

        def result(key: str) -> Any | None:
            """The finished attempt of an item (the last one), or None while one is live."""
            ts = attempts[key]
            if any(t.state in live for t in ts):
                return None
            return max(ts, key=lambda t: t.number)

        last = max((t.user_attrs[ATTR]["iteration"] for ts in attempts.values() for t in ts), default=0)
        added = 0
        for iteration in range(last + 2):
            started = any(k.startswith(f"{iteration}/") for k in attempts)
            if iteration > 0 and not started and not self._finished(iteration - 1, attempts, result):
                if not self.lookahead:
                    break
                if added:  # start a new iteration only when the current one offers nothing
                    break
            for item in self.items(iteration):
                if item.key in attempts:
                    continue
                source = self._source(item, attempts, result)
                if source is None:
                    continue  # its round is not decided yet, or it has no candidate
                if source == "new":
                    study.enqueue_trial({}, user_attrs={ATTR: item.attr(None, None)})
                else:
                    hb = source.user_attrs[ATTR]
                    root = hb.get("root") if hb.get("root") is not None else _origin(source)
                    attr = item.attr(root, source.number, int(hb["epochs"]), self.warm_restart)
                    study.enqueue_trial(dict(source.params), user_attrs={ATTR: attr})
                added += 1
                if added >= need:
                    return added
        return added

    def _ranked(self, item: Item, attempts: dict[str, list[Any]], result: Any) -> list[Any] | None:
        """The previous round's finished trials, best first; None while that round runs."""
        n_prev = self.plan[item.bracket][item.round - 1][0]
        done = []
        for slot in range(n_prev):
            key = Item(item.iteration, item.bracket, item.round - 1, slot, 0).key
            if key not in attempts:
                if self._void(Item(item.iteration, item.bracket, item.round - 1, slot, 0), attempts, result):
                    continue
                return None
            t = result(key)
            if t is None:
                return None
            done.append(t)
        scored = [(s, t.number, t) for t in done if (s := self._score(t)) is not None]
        ranked = [t for _, _, t in sorted(scored, key=lambda x: (x[0], x[1]))]
        if self.checkpoint_root is not None:  # the configurations that stop here need no checkpoint
            keep = self.plan[item.bracket][item.round][0]
            for t in ranked[keep:]:
                _discard(self.checkpoint_root, self._study_name, t)
        return ranked

    def _void(self, item: Item, attempts: dict[str, list[Any]], result: Any) -> bool:
        """True for a promotion slot left empty (fewer scored trials than slots in the round before)."""
        if item.round == 0:
            return False
        ranked = self._ranked(item, attempts, result)
        return ranked is not None and item.slot >= len(ranked)

    def _source(self, item: Item, attempts: dict[str, list[Any]], result: Any) -> Any:
        if item.round == 0:
            return "new"
        ranked = self._ranked(item, attempts, result)
        if ranked is None or item.slot >= len(ranked):
            return None
        return ranked[item.slot]

    def _finished(self, iteration: int, attempts: dict[str, list[Any]], result: Any) -> bool:
        for item in self.items(iteration):
            if item.key in attempts:
                if result(item.key) is None:
                    return False
            elif not self._void(item, attempts, result):
                return False
        return True


def _origin(t: Any) -> int:
    history = t.system_attrs.get("retry_history")
    return int(history[0]) if history else int(t.number)


def _discard(root: Path, study_name: str, t: Any) -> None:
    from optmpp.objectives.base import checkpoint_path

    hb = t.user_attrs.get(ATTR) or {}
    number = hb.get("root") if hb.get("root") is not None else _origin(t)
    try:
        checkpoint_path(root, study_name, number).unlink()
    except FileNotFoundError:
        pass


def make_round_pruner() -> optuna.pruners.BasePruner:
    """The pruner of synchronous Hyperband: stops a trial once it has reported its round's last
    epoch (never in a bracket's last round, which runs to the objective's maximum and completes)."""
    import optuna

    class RoundPruner(optuna.pruners.BasePruner):
        def prune(self, study: optuna.Study, trial: optuna.trial.FrozenTrial) -> bool:
            hb = trial.user_attrs.get(ATTR)
            step = trial.last_step
            if not isinstance(hb, dict) or step is None or hb.get("last"):
                return False
            return step >= int(hb["epochs"])

    return RoundPruner()
