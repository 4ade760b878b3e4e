"""Real-browser fixtures: the app served on loopback, Debian's chromium driven by Playwright.

The browser is never downloaded (`playwright install` fails offline): Playwright launches
the system chromium (``ETL_CHROMIUM``, default /usr/bin/chromium). A missing browser is
a failure, not a skip, so CI cannot pass without running these tests.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
ARTIFACTS = ROOT / "test-artifacts"
CHROMIUM = os.environ.get("ETL_CHROMIUM", "/usr/bin/chromium")
LAUNCH_ARGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync", "--disable-dev-shm-usage",
]


@pytest.fixture(scope="session")
def browser_type_launch_args():
    if not Path(CHROMIUM).exists() and not shutil.which(CHROMIUM):
        pytest.fail(f"chromium not found at {CHROMIUM}: run `make test` (it installs Debian's chromium)")
    return {"executable_path": CHROMIUM, "args": LAUNCH_ARGS}


@pytest.fixture(scope="session")
def artifacts() -> Path:
    ARTIFACTS.mkdir(exist_ok=True)
    return ARTIFACTS


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_app(ws: Path, port: int | None = None) -> tuple[str, subprocess.Popen]:
    """`streamlit run app.py` on loopback with workspace ``ws``; returns (url, process) once healthy."""
    port = port or _free_port()
    env = {**os.environ, "ETL_WORKSPACE": str(ws), "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"}
    log = open(ws / "server.log", "a")
    proc = subprocess.Popen(
        [sys.executable, "-m", "streamlit", "run", "app.py", "--server.headless", "true",
         "--server.address", "127.0.0.1", "--server.port", str(port), "--browser.gatherUsageStats", "false",
         "--server.fileWatcherType", "none"],
        cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
    )
    log.close()
    url = f"http://127.0.0.1:{port}"
    for _ in range(240):
        try:
            if urllib.request.urlopen(f"{url}/_stcore/health", timeout=1).read() == b"ok":
                return url, proc
        except OSError:
            time.sleep(0.5)
        if proc.poll() is not None:
            pytest.fail(f"streamlit exited: {(ws / 'server.log').read_text()[-2000:]}")
    stop_app(proc)
    pytest.fail("streamlit did not answer /_stcore/health within 120 s")


def stop_app(proc: subprocess.Popen, sig: int = signal.SIGTERM) -> None:
    """Stop the server's whole process group (``SIGKILL`` = the laptop lid closing mid-run)."""
    try:
        os.killpg(proc.pid, sig)
    except ProcessLookupError:
        return
    try:
        proc.wait(10)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(10)


@pytest.fixture(scope="module")
def app_url(tmp_path_factory):
    """The app on a free loopback port with a workspace of its own for each test module.

    Modules never share a workspace: one test's datasets would otherwise become the next
    test's newest dataset (the pickers default to it) and the tests would depend on order.
    """
    ws = tmp_path_factory.mktemp("e2e-workspace")
    url, proc = start_app(ws)
    try:
        yield url
    finally:
        stop_app(proc)
