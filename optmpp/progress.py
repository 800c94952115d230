"""Live progress of a study in the terminal: a bar on a TTY, plain lines in logs and CI.

One line shows finished / n_trials, complete / pruned / failed counts, running trials, the best
value, epochs consumed, elapsed time and an estimate of the time left (from the pace so far).
"""

from __future__ import annotations

import sys
import time
from typing import Any, TextIO

__all__ = ["Progress", "format_duration"]


def format_duration(seconds: float) -> str:
    seconds = max(0, int(round(seconds)))
    h, rest = divmod(seconds, 3600)
    m, s = divmod(rest, 60)
    if h:
        return f"{h}h{m:02d}m"
    if m:
        return f"{m}m{s:02d}s"
    return f"{s}s"


class Progress:
    """Renders study progress; call :meth:`update` as often as you like, :meth:`close` at the end.

    Args:
        n_trials: the study's budget of finished trials.
        stream: where to write (default stderr).
        bar: draw a bar rewritten in place (default: when ``stream`` is a TTY); otherwise a new
            line is written whenever the counts change (and at least every ``heartbeat_s``).
        finished_at_start: trials already finished before this run (for the time estimate).
        epoch_budget: when the budget is epochs consumed rather than trials, the bar and the
            estimate follow epochs.
        label: shown at the start of the line (e.g. which study of a comparison).
        timeout: seconds this run may last; the estimate never exceeds what is left of it, and
            the bar follows the time when the timeout ends the run before the budget.
    """

    def __init__(
        self,
        n_trials: int,
        stream: TextIO | None = None,
        bar: bool | None = None,
        finished_at_start: int = 0,
        heartbeat_s: float = 60.0,
        width: int = 24,
        epoch_budget: int | None = None,
        label: str = "",
        timeout: float | None = None,
    ) -> None:
        self.timeout = timeout
        self.epoch_budget = epoch_budget
        self.label = label
        self._epochs_at_start: int | None = None
        self.n_trials = n_trials
        self.stream = stream or sys.stderr
        self.bar = self.stream.isatty() if bar is None else bar
        self.start = time.monotonic()
        self.finished_at_start = finished_at_start
        self.heartbeat_s = heartbeat_s
        self.width = width
        self._last_key: Any = None
        self._last_t = 0.0
        self._drawn = False

    def render(self, counts: dict[str, int], best: float | None, epochs: int, elapsed: float) -> str:
        done = counts.get("finished", 0)
        if self.epoch_budget:
            if self._epochs_at_start is None:
                self._epochs_at_start = epochs
            frac = min(1.0, epochs / self.epoch_budget)
            trials_s = f"{done} finished"
            epochs_s = f"{epochs}/{self.epoch_budget} epochs"
        else:
            frac = min(1.0, done / self.n_trials) if self.n_trials else 1.0
            trials_s = f"{done}/{self.n_trials} finished"
            epochs_s = f"{epochs} epochs"
        estimate = self._estimate(counts, epochs, elapsed)
        left = f", ~{format_duration(estimate)} left" if estimate else ""
        if self.timeout:
            time_left = max(0.0, self.timeout - elapsed)
            if estimate is None or estimate > time_left:  # the timeout ends the run first
                frac = max(frac, min(1.0, elapsed / self.timeout))
                left = f", ~{format_duration(time_left)} left (timeout {format_duration(self.timeout)})"
        filled = int(round(frac * self.width))
        bar = "#" * filled + "." * (self.width - filled)
        best_s = "-" if best is None else f"{best:.5g}"
        label = f"{self.label} " if self.label else ""
        return (
            f"{label}[{bar}] {trials_s} ({counts.get('complete', 0)} complete, "
            f"{counts.get('pruned', 0)} pruned, {counts.get('fail', 0)} failed), "
            f"{counts.get('running', 0)} running | best {best_s} | {epochs_s} | "
            f"{format_duration(elapsed)} elapsed{left}"
        )

    def _estimate(self, counts: dict[str, int], epochs: int, elapsed: float) -> float | None:
        """Seconds left to the trial or epoch budget at the pace so far (None: no pace yet)."""
        if self.epoch_budget:
            new = epochs - (self._epochs_at_start or 0)
            return elapsed / new * max(0, self.epoch_budget - epochs) if new > 0 else None
        new = counts.get("finished", 0) - self.finished_at_start
        return elapsed / new * max(0, self.n_trials - counts.get("finished", 0)) if new > 0 else None

    def update(self, counts: dict[str, int], best: float | None, epochs: int) -> None:
        elapsed = time.monotonic() - self.start
        line = self.render(counts, best, epochs, elapsed)
        if self.bar:
            self.stream.write("\r\033[K" + line)
            self.stream.flush()
            self._drawn = True
            return
        key = (counts.get("finished"), counts.get("running"), counts.get("fail"), best)
        now = time.monotonic()
        if key != self._last_key or now - self._last_t >= self.heartbeat_s:
            self.stream.write(line + "\n")
            self.stream.flush()
            self._last_key, self._last_t = key, now

    def close(self) -> None:
        if self.bar and self._drawn:
            self.stream.write("\n")
            self.stream.flush()
