from __future__ import annotations

import io

from optmpp.progress import Progress, format_duration


class FakeTTY(io.StringIO):
    def isatty(self) -> bool:
        return True


def counts(finished: int, pruned: int = 0, running: int = 0, fail: int = 0) -> dict[str, int]:
    return {"finished": finished, "complete": finished - pruned, "pruned": pruned, "running": running, "fail": fail}


def test_line_mode_prints_when_counts_change() -> None:
    out = io.StringIO()
    p = Progress(10, stream=out)
    p.update(counts(0), None, 0)
    p.update(counts(0), None, 0)  # unchanged: no new line
    p.update(counts(4, pruned=3, running=2), 0.25, 40)
    lines = out.getvalue().splitlines()
    assert len(lines) == 2
    assert lines[0].startswith("[........................] 0/10 finished") and "best -" in lines[0]
    assert "4/10 finished (1 complete, 3 pruned, 0 failed), 2 running | best 0.25 | 40 epochs" in lines[1]
    assert "left" in lines[1]


def test_bar_mode_rewrites_one_line() -> None:
    out = FakeTTY()
    p = Progress(4, stream=out)
    assert p.bar
    p.update(counts(1), 1.0, 3)
    p.update(counts(4), 0.5, 9)
    p.close()
    text = out.getvalue()
    assert text.count("\r\033[K") == 2 and text.endswith("\n")
    assert "[########################] 4/4 finished" in text and "left" not in text.split("\r\033[K")[-1]


def test_durations() -> None:
    assert (format_duration(5), format_duration(65), format_duration(3725)) == ("5s", "1m05s", "1h02m")


def test_a_timeout_bounds_the_estimate_and_drives_the_bar() -> None:
    out = io.StringIO()
    p = Progress(10000, stream=out, timeout=1200)
    p.start -= 600  # half the timeout has passed; 10 of 10,000 trials would take ~166 h more
    p.update(counts(10), 0.5, 500)
    line = out.getvalue().splitlines()[-1]
    assert "~10m00s left (timeout 20m00s)" in line and "h" not in line.split("left")[0].split("elapsed")[-1]
    assert line.startswith("[############............] 10/10000 finished")
    fast = Progress(20, stream=io.StringIO(), timeout=1200)
    fast.start -= 60
    assert "timeout" not in fast.render(counts(10), 0.5, 100, 60.0)  # the budget comes first
