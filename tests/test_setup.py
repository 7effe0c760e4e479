"""scripts/setup.sh installs the CPU torch build on a machine without an NVIDIA GPU.

The decision lives in scripts/torch_wheel.py (standard library only); these tests check its logic,
that pip really resolves a ``+cpu`` torch with the arguments it prints here, and that setup.sh
calls pip with them and with the right extras.
"""

import json
import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from script_module import load_script

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "scripts" / "torch_wheel.py"


def _load():
    return load_script(SCRIPT, "torch_wheel")


tw = _load()


def _never():
    raise AssertionError("resolution must not be probed here")


def test_gpu_detection_uses_nvidia_smi_or_the_driver():
    assert not tw.has_nvidia_gpu(which=lambda name: None, exists=lambda path: False)
    assert tw.has_nvidia_gpu(which=lambda name: "/usr/bin/nvidia-smi" if name == "nvidia-smi" else None,
                             exists=lambda path: False)
    assert tw.has_nvidia_gpu(which=lambda name: None, exists=lambda path: path == "/proc/driver/nvidia")


def test_decision_follows_the_gpu_unless_overridden():
    assert tw.decide({}, gpu=lambda: False) == "cpu"
    assert tw.decide({}, gpu=lambda: True) == "cuda"
    assert tw.decide({"AIMC_LAB_TORCH": ""}, gpu=lambda: True) == "cuda"
    assert tw.decide({"AIMC_LAB_TORCH": "cpu"}, gpu=lambda: True) == "cpu"
    assert tw.decide({"AIMC_LAB_TORCH": "CUDA"}, gpu=lambda: False) == "cuda"
    with pytest.raises(ValueError, match=r"AIMC_LAB_TORCH must be one of auto, cpu, cuda; got 'gpu'"):
        tw.decide({"AIMC_LAB_TORCH": "gpu"}, gpu=lambda: False)


def test_cpu_on_linux_adds_the_cpu_index_unless_pip_already_resolves_a_cpu_build():
    pin = f"torch=={tw.TORCH_VERSION}"
    assert tw.pip_args("cpu", "Linux", lambda: tw.TORCH_VERSION) == [pin, "--extra-index-url", tw.CPU_INDEX]
    assert tw.pip_args("cpu", "Linux", lambda: None) == [pin, "--extra-index-url", tw.CPU_INDEX]
    assert tw.pip_args("cpu", "Linux", lambda: tw.TORCH_VERSION + "+cpu") == [pin]
    assert tw.pip_args("cuda", "Linux", _never) == [pin]
    assert tw.pip_args("cpu", "Darwin", _never) == [pin]
    with pytest.raises(ValueError, match="kind must be 'cpu' or 'cuda'; got 'rocm'"):
        tw.pip_args("rocm", "Linux", _never)


def test_setup_agrees_with_binder():
    lines = (ROOT / "binder" / "requirements.txt").read_text().splitlines()
    assert f"--extra-index-url {tw.CPU_INDEX}" in lines
    assert f"torch=={tw.TORCH_VERSION}" in lines


def _env_without_gpu():
    env = dict(os.environ)
    env.pop("AIMC_LAB_TORCH", None)
    if tw.has_nvidia_gpu():
        env["AIMC_LAB_TORCH"] = "cpu"  # a GPU machine: ask for the CPU build explicitly
    return env


def test_pip_resolves_a_cpu_torch_with_the_printed_arguments(tmp_path):
    """What setup.sh runs, as a dry run (no install): this needs the package index or a local wheel."""
    env = _env_without_gpu()
    args = subprocess.run([sys.executable, str(SCRIPT)], env=env, capture_output=True, text=True,
                          check=True, timeout=600).stdout.split()
    assert args[0] == f"torch=={tw.TORCH_VERSION}"
    done = subprocess.run([sys.executable, "-m", "pip", "install", "--dry-run", "--quiet", "--no-deps",
                           "--ignore-installed", "--report", "-", *args],
                          env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    versions = [item["metadata"]["version"] for item in json.loads(done.stdout)["install"]]
    assert versions == [f"{tw.TORCH_VERSION}+cpu"], versions


def _fake_checkout(tmp_path):
    """scripts/, pyproject.toml and a .venv whose python logs pip calls and runs only torch_wheel.py."""
    repo = tmp_path / "repo"
    (repo / "scripts").mkdir(parents=True)
    for name in ("setup.sh", "torch_wheel.py"):
        (repo / "scripts" / name).write_bytes((ROOT / "scripts" / name).read_bytes())
    (repo / "pyproject.toml").write_text("")
    stub = repo / ".venv" / "bin" / "python"
    stub.parent.mkdir(parents=True)
    stub.write_text("#!/bin/bash\n"
                    'if [ "$1" = scripts/torch_wheel.py ]; then exec "$REAL_PYTHON" "$@"; fi\n'
                    'echo "$*" >> "$CALL_LOG"\n')
    stub.chmod(stub.stat().st_mode | stat.S_IXUSR)
    return repo


def _setup(repo, log, extra, torch_kind):
    env = dict(os.environ, REAL_PYTHON=sys.executable, CALL_LOG=str(log), AIMC_LAB_TORCH=torch_kind)
    return subprocess.run(["bash", str(repo / "scripts" / "setup.sh"), *extra], env=env,
                          capture_output=True, text=True, timeout=600)


def test_setup_sh_installs_the_chosen_torch_then_the_extras(tmp_path):
    repo = _fake_checkout(tmp_path)
    log = tmp_path / "pip.log"
    done = _setup(repo, log, ["lab"], "cuda")
    assert done.returncode == 0, done.stderr
    calls = log.read_text().splitlines()
    assert calls == ["-m pip install --quiet --upgrade pip",
                     f"-m pip install --quiet torch=={tw.TORCH_VERSION}",
                     "-m pip install --quiet -e .[lab,gpu]"]
    log.unlink()
    assert _setup(repo, log, ["lab"], "cuda").returncode == 0
    assert not log.exists(), "a second run must install nothing"
    done = _setup(repo, log, [], "cpu")  # default extra: test (includes triton via its own extra)
    assert done.returncode == 0, done.stderr
    calls = log.read_text().splitlines()
    assert calls[1].startswith(f"-m pip install --quiet torch=={tw.TORCH_VERSION}")
    assert calls[2] == "-m pip install --quiet -e .[test]"
    assert "torch build: cpu (AIMC_LAB_TORCH=cpu)" in done.stderr


def test_setup_sh_rejects_an_unknown_extra_and_an_unknown_torch(tmp_path):
    repo = _fake_checkout(tmp_path)
    done = _setup(repo, tmp_path / "pip.log", ["gpu"], "cpu")
    assert done.returncode == 2 and "usage: bash scripts/setup.sh [lab|test]  (got 'gpu')" in done.stderr
    done = _setup(repo, tmp_path / "pip.log", ["lab"], "rocm")
    assert done.returncode != 0 and "AIMC_LAB_TORCH must be one of auto, cpu, cuda; got 'rocm'" in done.stderr


@pytest.mark.parametrize("as_root", [True, False], ids=["root", "user"])
def test_lab_sh_starts_jupyterlab_as_root_too_with_one_thread(tmp_path, as_root):
    """lab.sh runs setup (a no-op here: the stamp is fresh) and then JupyterLab; a fake `id` and a fake
    jupyter show what it would run."""
    repo = _fake_checkout(tmp_path)
    (repo / "scripts" / "lab.sh").write_bytes((ROOT / "scripts" / "lab.sh").read_bytes())
    (repo / ".venv" / ".aimc-lab-lab").write_text("")
    os.utime(repo / "pyproject.toml", (0, 0))
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for name, body in (("jupyter", 'echo "ARGS $*"; echo "OMP=$OMP_NUM_THREADS"'),
                       ("id", f'echo {0 if as_root else 1000}')):
        path = (repo / ".venv" / "bin" / name) if name == "jupyter" else (bin_dir / name)
        path.write_text(f"#!/bin/bash\n{body}\n")
        path.chmod(0o755)
    env = dict(os.environ, PATH=f"{bin_dir}:{os.environ['PATH']}")
    env.pop("OMP_NUM_THREADS", None)
    done = subprocess.run(["bash", str(repo / "scripts" / "lab.sh"), "--no-browser"], env=env,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    args = done.stdout.splitlines()[0].split()[1:]
    assert args[:2] == ["lab", "--notebook-dir=notebooks"] and args[-1] == "--no-browser"
    assert ("--allow-root" in args) == as_root
    assert "OMP=1" in done.stdout
    env["OMP_NUM_THREADS"] = "3"
    done = subprocess.run(["bash", str(repo / "scripts" / "lab.sh")], env=env, capture_output=True, text=True,
                          timeout=120)
    assert "OMP=3" in done.stdout
