"""Browser tests: Voila serves a dashboard, Debian's Chromium (driven by pytest-playwright) renders it.

Never downloads a browser: the launch arguments point Playwright at /usr/bin/chromium (installed by
``scripts/test.sh`` via apt). Tests skip cleanly when it is missing.
"""

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

CHROMIUM = Path("/usr/bin/chromium")
ROOT = Path(__file__).resolve().parents[2]
ARTIFACTS = ROOT / "test-artifacts"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]


@pytest.fixture(scope="session")
def browser_type_launch_args(browser_type_launch_args):
    if not CHROMIUM.exists():
        pytest.skip(f"{CHROMIUM} is missing (apt-get install chromium); browser tests skipped")
    return {**browser_type_launch_args, "executable_path": str(CHROMIUM), "headless": True,
            "args": CHROMIUM_ARGS}


@pytest.fixture(scope="session")
def artifacts():
    ARTIFACTS.mkdir(exist_ok=True)
    return ARTIFACTS


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def voila(request):
    """``voila(path)`` serves notebooks/dashboards/<path> on 127.0.0.1:<free port>; returns the URL.
    The server process is terminated at teardown."""
    if not CHROMIUM.exists():
        pytest.skip(f"{CHROMIUM} is missing (apt-get install chromium); browser tests skipped")
    procs = []

    def serve(name: str) -> str:
        port = _free_port()
        env = dict(os.environ)
        env.setdefault("AIMC_LAB_FAST", "1")
        env.setdefault("OMP_NUM_THREADS", "1")
        log = open(ARTIFACTS / f"voila_{Path(name).stem}.log", "w")
        proc = subprocess.Popen([sys.executable, "-m", "voila", "--no-browser", f"--port={port}",
                                 "--Voila.ip=127.0.0.1", str(ROOT / "notebooks" / "dashboards" / name)],
                                cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
        procs.append((proc, log))
        url = f"http://127.0.0.1:{port}/"
        deadline = time.time() + 60
        while time.time() < deadline:
            if proc.poll() is not None:
                raise RuntimeError(f"voila exited with {proc.returncode}; see {log.name}")
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=1):
                    return url
            except OSError:
                time.sleep(0.3)
        raise RuntimeError(f"voila did not answer on {url} within 60 s; see {log.name}")

    ARTIFACTS.mkdir(exist_ok=True)
    yield serve
    for proc, log in procs:
        proc.terminate()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.close()
