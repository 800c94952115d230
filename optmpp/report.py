"""Figures of stored studies, drawn by Optuna's visualisation module (read from the storage).

``optmpp plots STUDY.toml`` writes, for the study's current state:

* ``history.png``: optimisation history (every complete trial and the best so far);
* ``intermediate.png``: intermediate values (learning curves; pruned trials stop early);
* ``importances.png``: hyperparameter importances (fANOVA; needs a few complete trials);
* the same as interactive ``.html`` files when plotly is installed.

The parity plot of the best model is written by ``optmpp best`` (``parity.png``).
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

__all__ = ["write_study_figures"]

FIGURES = {
    "history": ("plot_optimization_history", "optimisation history"),
    "intermediate": ("plot_intermediate_values", "intermediate values (learning curves)"),
    "importances": ("plot_param_importances", "hyperparameter importances"),
}


def _readable(ax: Any, many_lines: bool) -> None:
    """Log scale for positive losses (one diverged trial otherwise flattens the rest); no
    per-trial legend when there are many trials."""
    ys = [y for line in ax.get_lines() for y in line.get_ydata()]
    ys += [y for coll in ax.collections for y in coll.get_offsets()[:, 1]]
    if ys and min(ys) > 0 and max(ys) / min(ys) > 50:
        ax.set_yscale("log")
    legend = ax.get_legend()
    if many_lines and legend is not None and len(ax.get_lines()) > 12:
        legend.remove()


def write_study_figures(study: Any, out_dir: str | Path, log: Callable[[str], None] = print) -> list[Path]:
    """Write the figures of ``study`` into ``out_dir``; returns the files written."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import optuna.visualization as vis
    import optuna.visualization.matplotlib as vis_mpl

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    written: list[Path] = []
    has_plotly = vis.is_available()
    for stem, (func, what) in FIGURES.items():
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # Optuna marks its matplotlib backend experimental
            try:
                ax = getattr(vis_mpl, func)(study)
                fig = ax.figure if hasattr(ax, "figure") else ax.flat[0].figure
                if stem in ("history", "intermediate"):
                    _readable(ax, many_lines=stem == "intermediate")
                fig.set_size_inches(8, 5)
                fig.tight_layout()
                path = out / f"{stem}.png"
                fig.savefig(path, dpi=110)
                plt.close(fig)
                written.append(path)
            except Exception as exc:  # noqa: BLE001 - e.g. too few complete trials for importances
                log(f"{stem}.png skipped: {what} not available yet ({type(exc).__name__}: {exc})")
                plt.close("all")
                continue
            if has_plotly:
                try:
                    html = out / f"{stem}.html"
                    getattr(vis, func)(study).write_html(str(html), include_plotlyjs="cdn")
                    written.append(html)
                except Exception as exc:  # noqa: BLE001
                    log(f"{stem}.html skipped: {type(exc).__name__}: {exc}")
    return written
