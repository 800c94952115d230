"""Statistics over many ``vs_kerastuner.py --json`` records: is one run's best validation loss
lower than another's, beyond the seed-to-seed spread?

    python benchmarks/seed_stats.py /tmp/kt/*.json
    python benchmarks/seed_stats.py --metric best_complete /tmp/kt/*.json
    python benchmarks/seed_stats.py docs/results/mi-375-best-val.csv /tmp/kt/*.json   # with earlier figures
    python benchmarks/seed_stats.py --rounds /tmp/kt/kt-*.json   # KerasTuner's two trainers, round by round

A search's best validation loss varies by 10-15 % (log standard deviation) from seed to seed,
so a median of 3 seeds cannot separate two tools; this pools the records of any number of runs
(one process per seed is how KerasTuner should be run: it slows down when one process runs
several) and prints, per tool: seeds, median, geometric mean, quartiles, worst, and the log
standard deviation; then for every pair of tools the ratio of geometric means with a 95 %
interval and a Mann-Whitney test, and, for two KerasTuner runs, a paired Wilcoxon test over the
seeds both ran. Only those pair: KerasTuner's loop draws a seed's configurations whichever
trainer (``--kerastuner-trainer``) runs it, while two optmpp runs with 2 workers of one seed do
not train the same configurations (which worker draws which depends on timing), nor does optmpp
draw KerasTuner's.
"""

from __future__ import annotations

import argparse
import csv
import itertools
import json
import math
import statistics
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))


def records(path: str) -> list[dict[str, object]]:
    """A ``--json`` record's runs, or the rows of a CSV with columns tool, seed, and the metric
    (figures of runs whose records were not kept, as RESULTS.md tables them)."""
    text = Path(path).read_text()
    if path.endswith(".csv"):
        return [r for r in csv.DictReader(line for line in text.splitlines() if not line.startswith("#"))]
    return json.loads(text)


def load(paths: list[str], metric: str) -> dict[str, dict[int, float]]:
    """tool -> seed -> metric; a (tool, seed) met twice keeps the first and says so."""
    out: dict[str, dict[int, float]] = {}
    for p in paths:
        for r in records(p):
            if metric not in r:
                continue
            per = out.setdefault(str(r["tool"]), {})
            seed = int(str(r["seed"]))
            if seed in per:
                print(f"# {p}: {r['tool']} seed {seed} seen before; kept the first")
                continue
            value = float(str(r[metric]))
            if math.isfinite(value):
                per[seed] = value
    return out


def main() -> None:
    from scipy import stats

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("files", nargs="+", help="vs_kerastuner.py --json records")
    ap.add_argument("--metric", default="best_val", choices=("best_val", "best_complete", "wall_s", "test_r2"),
                    help="best_val: any trial, any epoch (KerasTuner's definition); best_complete: trials run "
                    "to max_epochs")
    ap.add_argument("--rounds", action="store_true", help="also compare KerasTuner's two trainers round by round "
                    "(vs_kerastuner.py's table for --kerastuner-trainer both) over all the records' seeds")
    args = ap.parse_args()
    data = load(args.files, args.metric)
    if not data:
        raise SystemExit("no runs in the records")
    print(f"# {args.metric}, per tool")
    print("| tool | seeds | median | geometric mean | quartiles | min - max | log sd |")
    print("|---|---|---|---|---|---|---|")
    for tool, per in data.items():
        v = sorted(per.values())
        logs = [math.log(x) for x in v]
        q = statistics.quantiles(v, n=4) if len(v) > 1 else [v[0]] * 3
        sd = statistics.stdev(logs) if len(v) > 1 else float("nan")
        print(f"| {tool} | {len(v)} | {statistics.median(v):.5f} | {math.exp(statistics.fmean(logs)):.5f} | "
              f"{q[0]:.5f} - {q[2]:.5f} | {v[0]:.5f} - {v[-1]:.5f} | {sd:.3f} |")
    print("\n# pairs: ratio of geometric means (first / second) with a 95 % interval (Welch, on logs); "
          "Mann-Whitney p; paired over shared seeds: Wilcoxon p and how often the first is lower")
    print("| first | second | ratio [95 %] | Mann-Whitney p | shared seeds | paired ratio | Wilcoxon p | first lower |")
    print("|---|---|---|---|---|---|---|---|")
    for a, b in itertools.combinations(data, 2):
        xa, xb = [math.log(x) for x in data[a].values()], [math.log(x) for x in data[b].values()]
        if len(xa) < 2 or len(xb) < 2:
            continue
        diff = statistics.fmean(xa) - statistics.fmean(xb)
        low, high = stats.ttest_ind(xa, xb, equal_var=False).confidence_interval()
        mw = stats.mannwhitneyu(list(data[a].values()), list(data[b].values())).pvalue
        shared = sorted(data[a].keys() & data[b].keys())
        paired = "| - | - | -"
        # KerasTuner's loop draws a seed's configurations whichever trainer runs it: those runs pair
        if len(shared) >= 5 and a.startswith("KerasTuner") and b.startswith("KerasTuner"):
            d = [math.log(data[a][s] / data[b][s]) for s in shared]
            w = stats.wilcoxon(d).pvalue
            paired = f"| {math.exp(statistics.fmean(d)):.3f} | {w:.3f} | {sum(x < 0 for x in d)} of {len(d)}"
        print(f"| {a} | {b} | {math.exp(diff):.3f} [{math.exp(low):.3f}, {math.exp(high):.3f}] | "
              f"{mw:.3f} | {len(shared)} {paired} |")
    if args.rounds:
        from vs_kerastuner import paired_rounds

        paired_rounds([r for p in args.files if not p.endswith(".csv") for r in records(p)])


if __name__ == "__main__":
    main()
