"""Every code block of README.md and notebooks/dashboards/README.md runs as written.

Python blocks are executed as they stand, outside the repository. Shell blocks are checked command by
command: cheap ``aimc-lab`` commands run for real (in a scratch HOME), the others are parsed by the
real argument parser and their files checked; install lines must name the torch pin, the CPU index
and extras that setup uses. A command this file does not know fails the test, so a new README line
needs a check here. The Voila-in-JupyterLab URL is requested from a JupyterLab started as lab.sh
starts it.
"""

import importlib.util
import os
import re
import shlex
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import nbformat
import pytest
from nbformat import v4

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    tomllib = pytest.importorskip("tomli")

from aimc_lab.cli import build_parser

ROOT = Path(__file__).resolve().parents[1]
READMES = [ROOT / "README.md", ROOT / "notebooks" / "dashboards" / "README.md"]
FENCE = re.compile(r"^```([\w-]*)\n(.*?)^```", re.M | re.S)


def _load_torch_wheel():
    spec = importlib.util.spec_from_file_location("torch_wheel", ROOT / "scripts" / "torch_wheel.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def blocks(kind=None):
    found = []
    for readme in READMES:
        text = readme.read_text()
        for match in FENCE.finditer(text):
            line = text[:match.start()].count("\n") + 1
            found.append((f"{readme.relative_to(ROOT)}:{line}", match.group(1), match.group(2)))
    return [b for b in found if kind is None or b[1] == kind]


def test_every_block_is_python_or_bash():
    assert blocks(), "no code blocks found"
    for where, lang, _ in blocks():
        assert lang in ("python", "bash"), f"{where}: code block language {lang!r}; use python or bash"


PYTHON_BLOCKS = blocks("python")


@pytest.mark.parametrize("block", PYTHON_BLOCKS, ids=[b[0] for b in PYTHON_BLOCKS])
def test_python_block_runs_as_written(block, tmp_path):
    where, _, code = block
    env = dict(os.environ, OMP_NUM_THREADS=os.environ.get("OMP_NUM_THREADS", "1"))
    env.pop("AIMC_LAB_FAST", None)  # as written: the README's sizes and epochs
    done = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, env=env, capture_output=True, text=True,
                          timeout=1500)
    assert done.returncode == 0, f"{where} failed:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
    _check_printed_accuracies(where, code, done.stdout)


def _check_printed_accuracies(where, code, out):
    """A block that says ``# ~NN %`` next to a print must print an accuracy within 3 points of NN."""
    for expected in re.findall(r"#.*?~(\d+(?:\.\d+)?) %", code):
        printed = [float(v) for v in re.findall(r"(\d+(?:\.\d+)?) %", out)]
        assert any(abs(v - float(expected)) <= 3.0 for v in printed), \
            f"{where}: README says ~{expected} %, the block printed {printed}"


# ---- shell blocks ----------------------------------------------------------------------------------

def _commands():
    for where, _, code in blocks("bash"):
        for line in code.splitlines():
            line = re.sub(r"\s+#.*$", "", line).strip()
            if line and not line.startswith("#"):
                yield where, line


COMMANDS = list(_commands())


def _split(line):
    words = shlex.split(line)
    env = {}
    while words and re.fullmatch(r"[A-Z_]+=\S*", words[0]):
        key, value = words.pop(0).split("=", 1)
        env[key] = value
    return env, words


def _check_pip(where, args, project):
    tw = _load_torch_wheel()
    assert args[:2] == ["pip", "install"], f"{where}: {args}"
    rest = args[2:]
    while rest:
        arg = rest.pop(0)
        if arg == "--extra-index-url":
            assert rest.pop(0) == tw.CPU_INDEX, f"{where}: only PyTorch's CPU index"
        elif arg == "-e":
            continue
        elif arg.startswith("torch"):
            assert arg == f"torch=={tw.TORCH_VERSION}", f"{where}: torch pin {arg} differs from setup's"
        else:
            match = re.fullmatch(r"\.\[([\w,]+)\]", arg)
            assert match, f"{where}: unknown pip argument {arg!r}"
            extras = set(match.group(1).split(","))
            assert extras <= set(project["optional-dependencies"]), f"{where}: unknown extra in {arg}"


@pytest.mark.parametrize("command", COMMANDS, ids=[f"{w} {c}" for w, c in COMMANDS])
def test_shell_command(command, tmp_path):
    where, line = command
    env, words = _split(line)
    home = tmp_path / "home"
    home.mkdir()
    words = [w.replace("~", str(home)) if w.startswith("~") else w for w in words]
    for key, value in env.items():
        assert key in ("OMP_NUM_THREADS", "AIMC_LAB_FAST", "AIMC_LAB_TORCH"), f"{where}: unknown variable {key}"
        assert value, f"{where}: empty {key}"
    program = words[0]
    if program == "bash":
        script = ROOT / words[1]
        assert script.parent == ROOT / "scripts" and script.exists(), f"{where}: no {words[1]}"
        assert subprocess.run(["bash", "-n", str(script)]).returncode == 0
        if script.name == "setup.sh":
            assert words[2:] in ([], ["lab"], ["test"])
        elif script.name == "test.sh":  # arguments go to pytest: the paths must exist
            for arg in words[2:]:
                assert arg.startswith("-") or (ROOT / arg).exists(), f"{where}: {arg}"
        else:
            assert script.name == "lab.sh" and len(words) == 2, f"{where}: {line}"
    elif program in ("aimc-lab", ".venv/bin/aimc-lab"):
        args = build_parser().parse_args(words[1:])  # a usage error raises SystemExit: the test fails
        if args.command in ("tutorials", "info", "mvm-error"):
            run_env = dict(os.environ, HOME=str(home), **env)
            done = subprocess.run([sys.executable, "-m", "aimc_lab", *words[1:]], cwd=home, env=run_env,
                                  capture_output=True, text=True, timeout=600)
            assert done.returncode == 0, f"{where}: {line}\n{done.stderr[-2000:]}"
        elif args.command == "serve":
            from aimc_lab.cli import _dashboard
            assert Path(args.notebook).exists() or _dashboard(args.notebook), f"{where}: {args.notebook}"
        else:
            assert args.command == "lab", f"{where}: {line}"
    elif program == "torchrun":  # the distributed example: the script exists and takes these arguments
        script = next(w for w in words if w.endswith(".py"))
        assert (ROOT / script).parent == ROOT / "benchmarks", f"{where}: {script}"
        spec = importlib.util.spec_from_file_location("readme_torchrun", ROOT / script)
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        module.build_parser().parse_args(words[words.index(script) + 1:])  # a bad argument fails here
        assert "--nproc_per_node=2" in words, f"{where}: {line}"
    elif program == ".venv/bin/voila":
        assert "--Voila.ip=127.0.0.1" in words, f"{where}: serve on localhost only"
        assert (ROOT / words[-1]).exists(), f"{where}: {words[-1]} does not exist"
    elif program == "python" and words[1:3] == ["-m", "pip"]:
        project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
        _check_pip(where, words[2:], project)
    elif program in ("python", ".venv/bin/python") and words[1].startswith("scripts/"):
        done = subprocess.run([sys.executable, *words[1:]], cwd=ROOT, capture_output=True, text=True, timeout=600)
        assert done.returncode == 0, f"{where}: {line}\n{done.stderr[-2000:]}"
    else:
        pytest.fail(f"{where}: README command not checked by tests/test_readme.py: {line}")


def test_setup_and_pip_lines_agree_on_the_cpu_index():
    text = (ROOT / "README.md").read_text()
    assert _load_torch_wheel().CPU_INDEX in text


# ---- the Voila-in-JupyterLab URL of notebooks/dashboards/README.md ------------------------------------

def _free_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_voila_url_inside_jupyterlab_as_lab_sh_serves_it(tmp_path):
    """lab.sh serves notebooks/; the README's /voila/render/... path must answer there (a tiny notebook
    stands in for the dashboard so that only the URL is under test)."""
    pytest.importorskip("voila")
    text = (ROOT / "notebooks" / "dashboards" / "README.md").read_text()
    url = re.search(r"http://127\.0\.0\.1:8888(/voila/render/\S+\.ipynb)", text)
    assert url, "notebooks/dashboards/README.md names no Voila-in-Lab URL"
    lab_sh = (ROOT / "scripts" / "lab.sh").read_text()
    assert "--notebook-dir=notebooks" in lab_sh
    served = tmp_path / "notebooks"
    rel = url.group(1)[len("/voila/render/"):]
    assert (ROOT / "notebooks" / rel).exists(), f"{rel} is not under notebooks/"
    nb = v4.new_notebook()
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nb.cells = [v4.new_code_cell("print('dashboard ready')")]
    (served / rel).parent.mkdir(parents=True)
    nbformat.write(nb, served / rel)
    port = _free_port()
    jupyter = Path(sys.executable).with_name("jupyter")
    cmd = [str(jupyter), "lab", f"--notebook-dir={served}", "--no-browser", f"--port={port}",
           "--ServerApp.port_retries=0", "--IdentityProvider.token=", "--ServerApp.open_browser=False"]
    if os.getuid() == 0:
        cmd.append("--allow-root")
    proc = subprocess.Popen(cmd, cwd=tmp_path, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                            env=dict(os.environ, HOME=str(tmp_path), JUPYTER_CONFIG_DIR=str(tmp_path / "cfg")))
    try:
        deadline = time.monotonic() + 180
        body = None
        while time.monotonic() < deadline and proc.poll() is None:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}{url.group(1)}", timeout=120) as page:
                    assert page.status == 200
                    body = page.read().decode()
                break
            except urllib.error.HTTPError as err:
                pytest.fail(f"{url.group(1)} under JupyterLab: HTTP {err.code}")
            except (ConnectionError, urllib.error.URLError):
                time.sleep(1)
        assert body is not None, f"JupyterLab did not answer {url.group(1)}"
        assert "dashboard ready" in body
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
