"""Browser tests: Voila serves a dashboard, Debian's Chromium (driven by pytest-playwright) renders it.

Never downloads a browser: the launch arguments point Playwright at /usr/bin/chromium (installed by
``scripts/test.sh`` via apt). Tests skip cleanly when it is missing.
"""

import os
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from aimc_lab.cli import voila_options

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


def _serve(cmd, env, log_name: str, port: int, procs: list) -> str:
    """Start a server, wait until its port answers (180 s at most: importing Jupyter's server took
    more than 60 s on a 2-core machine at load 10); returns its URL."""
    log = open(ARTIFACTS / log_name, "w")
    proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
    procs.append((proc, log))
    url = f"http://127.0.0.1:{port}/"
    deadline = time.time() + 180
    while time.time() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{cmd[2]} exited with {proc.returncode}; see {log.name}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1):
                return url
        except OSError:
            time.sleep(0.3)
    raise RuntimeError(f"{cmd[2]} did not answer on {url} within 180 s; see {log.name}")


def _stop(procs) -> None:
    for proc, log in procs:
        proc.terminate()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.close()


def _cpu_seconds(pid: int) -> float:
    """CPU time (user + system, s) of a process and all its descendants, from /proc."""
    total, todo = 0.0, [pid]
    while todo:
        p = todo.pop()
        try:
            fields = Path(f"/proc/{p}/stat").read_text().rsplit(")", 1)[1].split()
            total += (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
            children = Path(f"/proc/{p}/task/{p}/children").read_text().split()
        except OSError:
            continue
        todo.extend(int(c) for c in children)
    return total


def _wait_until_idle(pid: int, deadline: float, quiet_s: float = 3.0) -> None:
    """Wait until a process tree uses less than 5 % of a core for ``quiet_s`` seconds."""
    last, quiet_since = _cpu_seconds(pid), time.time()
    while time.time() < deadline:
        time.sleep(0.5)
        now = _cpu_seconds(pid)
        if now - last > 0.025:
            quiet_since = time.time()
        elif time.time() - quiet_since >= quiet_s:
            return
        last = now
    raise RuntimeError("the server's preheated kernel did not go idle within 300 s")


def _env() -> dict:
    env = dict(os.environ)
    env.setdefault("AIMC_LAB_FAST", "1")
    env.setdefault("OMP_NUM_THREADS", "1")
    return env


@pytest.fixture
def jupyterlab(tmp_path):
    """``jupyterlab(name)`` copies notebooks/dashboards/<name> into a temporary root (autosave must not
    write outputs into the repository), serves it with JupyterLab (no token) and returns the URL of
    the notebook in /lab. The server process is terminated at teardown."""
    if not CHROMIUM.exists():
        pytest.skip(f"{CHROMIUM} is missing (apt-get install chromium); browser tests skipped")
    procs = []

    def serve(name: str) -> str:
        shutil.copy(ROOT / "notebooks" / "dashboards" / name, tmp_path / name)
        port = _free_port()
        cmd = [sys.executable, "-m", "jupyterlab", "--no-browser", "--allow-root", f"--port={port}",
               "--ServerApp.ip=127.0.0.1", "--IdentityProvider.token=", "--ServerApp.password=",
               f"--ServerApp.root_dir={tmp_path}", "--LabApp.news_url=", "--LabApp.check_for_updates_class="
               "jupyterlab.NeverCheckForUpdate"]
        env = _env()
        env["JUPYTER_CONFIG_DIR"] = str(tmp_path / ".jupyter")   # fresh workspace and settings
        url = _serve(cmd, env, f"jupyterlab_{Path(name).stem}.log", port, procs)
        return f"{url}lab/tree/{name}?reset"

    ARTIFACTS.mkdir(exist_ok=True)
    yield serve
    _stop(procs)


@pytest.fixture
def voila(request):
    """``voila(path, preheat=False)`` serves notebooks/dashboards/<path> on 127.0.0.1:<free port> with
    the options of ``aimc-lab serve`` (:func:`aimc_lab.cli.voila_options`); returns the URL.
    ``preheat=True`` serves it as a deployment should (``--preheat_kernel``: a kernel that has already
    run the notebook waits for the next visitor) and returns once that kernel is ready. The server
    process is terminated at teardown."""
    if not CHROMIUM.exists():
        pytest.skip(f"{CHROMIUM} is missing (apt-get install chromium); browser tests skipped")
    procs = []

    def serve(name: str, preheat: bool = False) -> str:
        port = _free_port()
        # the options of `aimc-lab serve` (preheat and the extension denylist), preheat only if asked
        options = [o for o in voila_options() if preheat or not o.startswith("--preheat_kernel")]
        cmd = [sys.executable, "-m", "voila", "--no-browser", f"--port={port}", "--Voila.ip=127.0.0.1",
               *options, str(ROOT / "notebooks" / "dashboards" / name)]
        log_name = f"voila_{Path(name).stem}.log"
        url = _serve(cmd, _env(), log_name, port, procs)
        deadline = time.time() + 300
        while preheat and "is filled with" not in (ARTIFACTS / log_name).read_text():
            if time.time() > deadline:
                raise RuntimeError(f"voila's preheated kernel was not ready within 300 s; see {log_name}")
            time.sleep(0.5)
        if preheat:   # the pooled kernel has started; wait until it has run the notebook (goes idle)
            _wait_until_idle(procs[-1][0].pid, deadline)
        return url

    ARTIFACTS.mkdir(exist_ok=True)
    yield serve
    _stop(procs)
