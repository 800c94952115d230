"""optuna-dashboard, started by `optmpp dashboard` while a worker runs, in a real headless Chromium.

Chromium and ChromeDriver are Debian's (`make browser-deps` installs them); Selenium is pointed
at /usr/bin/chromium and /usr/bin/chromedriver, so nothing downloads a browser of its own.
"""

from __future__ import annotations

import shutil
import sqlite3
import subprocess
import time
import urllib.request
from contextlib import closing
from pathlib import Path

import pytest
from conftest import IN_CI, ROOT, cli_env, free_port, optmpp_cmd

pytestmark = pytest.mark.slow

CHROMIUM, CHROMEDRIVER = "/usr/bin/chromium", "/usr/bin/chromedriver"


@pytest.fixture(scope="module")
def browser():  # type: ignore[no-untyped-def]
    if not (Path(CHROMIUM).exists() and Path(CHROMEDRIVER).exists()):
        out = subprocess.run(["make", "-s", "browser-deps"], cwd=ROOT, capture_output=True, text=True, timeout=900)
        if not (Path(CHROMIUM).exists() and Path(CHROMEDRIVER).exists()):
            msg = f"could not install Debian's chromium/chromium-driver: {out.stderr[-1500:]}"
            if IN_CI:
                pytest.fail(msg)
            pytest.skip(msg)
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    opts = webdriver.ChromeOptions()
    opts.binary_location = CHROMIUM
    for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                "--disable-background-networking", "--disable-component-update", "--disable-sync",
                "--window-size=1400,1000"):
        opts.add_argument(arg)
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=opts)
    yield driver
    driver.quit()


def wait_for(predicate, timeout: float = 60.0, what: str = "condition"):  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.5)
    raise AssertionError(f"timed out waiting for {what}")


def test_dashboard_in_chromium_while_a_worker_runs(browser, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    from selenium.webdriver.common.by import By

    study_file = tmp_path / "live.toml"
    study_file.write_text(
        'name = "live-study"\nn_trials = 24\nalgorithm = "hyperband"\n'
        '[objective]\nname = "toy_objectives:make"\nmax_epochs = 6\nsleep = 0.25\n'
    )
    url = f"sqlite:///{tmp_path}/live.db"
    worker = subprocess.Popen([*optmpp_cmd(), "worker", str(study_file), "--storage", url, "-q"],
                              env=cli_env(), cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    port = free_port()
    dashboard = None
    try:
        def finished() -> int:
            # read-only, with sqlite3: optuna.load_study would create the schema itself and could
            # race the worker's own creation of it
            if worker.poll() is not None:
                raise AssertionError(f"the worker exited ({worker.returncode}): {worker.stderr.read().decode()}")
            try:
                with closing(sqlite3.connect(f"file:{tmp_path}/live.db?mode=ro", uri=True, timeout=5)) as db:
                    return db.execute("SELECT count(*) FROM trials WHERE state IN ('COMPLETE', 'PRUNED', 'FAIL')"
                                      ).fetchone()[0]
            except sqlite3.OperationalError:  # no file or no tables yet
                return 0

        wait_for(lambda: finished() >= 2, 180, "two finished trials")
        dashboard = subprocess.Popen([*optmpp_cmd(), "dashboard", "--storage", url, "--port", str(port)],
                                     env=cli_env(), cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)

        def up() -> bool:
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{port}/api/studies", timeout=2).read()
                return True
            except OSError:
                return False

        wait_for(up, 60, "the dashboard")
        assert worker.poll() is None, "the worker should still be running while the page is shown"
        browser.get(f"http://127.0.0.1:{port}/dashboard/studies/1")
        wait_for(lambda: "Intermediate values" in browser.find_element(By.TAG_NAME, "body").text, 60,
                 "the intermediate-values chart")
        wait_for(lambda: len(browser.find_elements(By.CSS_SELECTOR, ".js-plotly-plot")) >= 2, 60, "plotly charts")
        body = browser.find_element(By.TAG_NAME, "body").text
        assert "live-study" in body and "History" in body
        curves = [el for el in browser.find_elements(By.CSS_SELECTOR, ".js-plotly-plot")
                  if "Step" in el.text]
        assert curves, "no learning-curve chart (x axis 'Step') on the study page"
        shots = ROOT / "runs" / "test-artifacts"
        shots.mkdir(parents=True, exist_ok=True)
        browser.save_screenshot(str(shots / "dashboard-study.png"))
        shutil.copy(shots / "dashboard-study.png", tmp_path / "dashboard-study.png")
        assert (tmp_path / "dashboard-study.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"

        browser.get(f"http://127.0.0.1:{port}/dashboard/studies/1/trials")
        text = wait_for(lambda: (t := browser.find_element(By.TAG_NAME, "body").text) and "User Attributes" in t and t,
                        60, "the trials page")
        for attr in ("epochs", "wall_time_s", "worker"):
            assert attr in text, attr
        browser.save_screenshot(str(shots / "dashboard-trials.png"))
    finally:
        worker.terminate()
        worker.wait(timeout=60)
        if dashboard is not None:
            dashboard.terminate()
            dashboard.wait(timeout=30)
