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
