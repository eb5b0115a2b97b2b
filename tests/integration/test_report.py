"""The monitoring report from the end-to-end run, opened in headless Chromium (Debian's
package, which `make setup` installs): it renders its charts, logs no error to the console,
and says what the monitoring tables hold."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
from matplotlib.image import imread
from mlflow.tracking import MlflowClient

NAME = "predictive_maintenance"
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
CONSOLE = re.compile(r':CONSOLE[:(]\d+\)?\] "(.*)", source: ')


def chromium(page: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [
            CHROMIUM,
            *("--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars"),
            *("--enable-logging=stderr", "--v=0", "--virtual-time-budget=5000"),
            *args,
            page.as_uri(),
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )


@pytest.fixture(scope="module")
def report(pipeline_run):
    if CHROMIUM is None:
        pytest.skip("chromium is not installed (make setup installs it with apt-get as root)")
    return pipeline_run.outcome(NAME).report


def test_the_report_renders_its_charts_in_chromium_without_console_errors(report):
    opened = chromium(report.path, "--dump-dom")

    assert report.charts >= 3  # drift, dataset drift, champion (performance once labelled)
    assert f'data-charts-rendered="{report.charts}"' in opened.stdout
    messages = CONSOLE.findall(opened.stderr)
    assert messages == [f"charts rendered: {report.charts} of {report.charts}"], messages


def test_the_screenshot_is_a_drawn_page(report, tmp_path):
    shot = tmp_path / "report.png"

    chromium(report.path, f"--screenshot={shot}", "--window-size=1200,2400")

    pixels = imread(shot)
    assert pixels.shape[:2] == (2400, 1200)
    assert np.std(pixels[..., :3]) > 0.05  # not a blank page


def test_the_report_states_the_newest_drift_verdict_and_is_in_mlflow(report, pipeline_run):
    drift = pipeline_run.outcome(NAME).drift
    page = report.path.read_text()
    features = [c for c in drift.columns if c.kind == "feature"]  # the prediction is too
    drifted = sum(bool(c.drifted) for c in features)

    assert f"{drifted} of {len(features)} feature columns drifted" in page
    assert f"dataset drift: {'yes' if drift.drifted else 'no'}" in page
    client = MlflowClient(pipeline_run.settings.mlflow.tracking_uri)
    artifacts = [a.path for a in client.list_artifacts(report.run_id)]
    assert artifacts == [report.path.name]
