"""benchmarks/seed_stats.py: the statistics that RESULTS.md's search-quality comparisons rest on."""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _run(*args: str) -> str:
    out = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "seed_stats.py"), *args],
                         capture_output=True, text=True, check=True)
    return out.stdout


def _rows(text: str, first: str) -> list[list[str]]:
    return [[c.strip() for c in line.strip("|").split("|")] for line in text.splitlines()
            if line.startswith(f"| {first}")]


def test_seed_stats_pools_records_and_pairs_only_kerastuners_runs(tmp_path: Path) -> None:
    keras = [0.0040, 0.0050, 0.0045, 0.0042, 0.0048, 0.0044]
    # optmpp's trainer in KerasTuner's loop: 10 % higher on every seed but the last
    other = [v * 1.1 for v in keras[:-1]] + [keras[-1] * 0.9]
    csv = tmp_path / "old.csv"
    csv.write_text("# earlier figures\ntool,seed,best_val\n"
                   + "".join(f"KerasTuner hyperband,{1000 * (i + 1)},{v}\n" for i, v in enumerate(keras[:3])))
    records = [{"tool": "KerasTuner hyperband", "seed": 1000 * (i + 1), "best_val": v}
               for i, v in enumerate(keras)]  # seeds 1000-3000 repeat the CSV's: kept once
    records += [{"tool": "KerasTuner hyperband (optmpp's trainer)", "seed": 1000 * (i + 1), "best_val": v}
                for i, v in enumerate(other)]
    records += [{"tool": "optmpp hyperband, 2 worker(s)", "seed": 1000 * (i + 1), "best_val": v}
                for i, v in enumerate(keras)]
    rec = tmp_path / "runs.json"
    rec.write_text(json.dumps(records))
    tools, pairs_text = _run(str(csv), str(rec)).split("# pairs")

    (kt,) = _rows(tools, "KerasTuner hyperband |")
    assert kt[1] == "6" and kt[2] == "0.00445"  # six seeds, median of the six
    assert float(kt[3]) == round(math.exp(sum(map(math.log, keras)) / 6), 5)
    assert kt[5] == "0.00400 - 0.00500"
    pairs = _rows(pairs_text, "KerasTuner hyperband | ")
    trainer = next(r for r in pairs if r[1] == "KerasTuner hyperband (optmpp's trainer)")
    assert trainer[4] == "6"  # shared seeds
    expected = math.exp((5 * math.log(1 / 1.1) + math.log(1 / 0.9)) / 6)
    assert trainer[5] == f"{expected:.3f}" and trainer[7] == "5 of 6"
    from scipy.stats import wilcoxon

    diffs = [math.log(a / b) for a, b in zip(keras, other)]
    assert trainer[6] == f"{wilcoxon(diffs).pvalue:.3f}"
    # two optmpp runs or optmpp against KerasTuner draw different configurations: not paired
    optmpp = next(r for r in pairs if r[1] == "optmpp hyperband, 2 worker(s)")
    assert optmpp[2].startswith("1.000") and optmpp[5] == "-"
