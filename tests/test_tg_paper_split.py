"""benchmarks/tg_paper_split.py: the check of the paper's Tg figures against split seed 0."""

from __future__ import annotations

import math
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))

from tg_paper_split import implied_std  # noqa: E402


def test_implied_std_inverts_r2_and_widens_with_rounding() -> None:
    # a test set of std 70 K with RMSE 14 K has R² 1 - 0.04 = 0.96 exactly
    lo, hi = implied_std(14.0, 0.96)
    assert lo < 70.0 < hi
    assert hi - lo < 1.0
    lo4, hi4 = implied_std(14.0, 0.96, r2_digits=4)
    assert lo < lo4 < 70.0 < hi4 < hi  # more digits, a narrower range
    lo, hi = implied_std(15.68, 0.948)
    assert math.isclose(lo, 15.675 / math.sqrt(0.0525)) and math.isclose(hi, 15.685 / math.sqrt(0.0515))
    with pytest.raises(ValueError):
        implied_std(10.0, 0.9999)


def test_split_seed_0_does_not_fit_the_papers_pair(real_data: Path) -> None:
    out = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "tg_paper_split.py"), "--split-seeds", "60", "--show", "2"],
        capture_output=True, text=True, check=True, env={**os.environ, "OPTMPP_DATA_DIR": str(real_data)},
    ).stdout
    assert "standard deviation is 68.41 - 69.12 K" in out
    assert "| 0 | 53 | 74.33 | no | 0.9555 | 16.95 |" in out
    assert "split seed 0 (the workshop script's random_state=0): test Tg std 74.33 K, does NOT fit" in out
    # of seeds 0-59 at 15 %, 39, 45, 52 and 53 fit (the full 1,000-seed list is in RESULTS.md 7c)
    assert "fitting split seeds: 39, 45, 52, 53\n" in out
    assert "4 of 60 (6.7 %) fit the paper's pair" in out
