"""binder/ builds the same environment as pyproject.toml (checked offline, without repo2docker)."""

import re
import sys
from pathlib import Path

import pytest

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    tomllib = pytest.importorskip("tomli")
from packaging.requirements import Requirement
from packaging.specifiers import SpecifierSet
from packaging.version import Version

ROOT = Path(__file__).resolve().parents[1]
BINDER = ROOT / "binder"


@pytest.fixture(scope="module")
def project():
    return tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]


@pytest.fixture(scope="module")
def lines():
    text = (BINDER / "requirements.txt").read_text()
    return [ln.split("#")[0].strip() for ln in text.splitlines() if ln.split("#")[0].strip()]


def _requirements(lines):
    return [Requirement(ln) for ln in lines if not ln.startswith("-")]


def test_runtime_is_a_supported_python(project):
    runtime = (BINDER / "runtime.txt").read_text().strip()
    match = re.fullmatch(r"python-(\d+\.\d+)", runtime)
    assert match, f"binder/runtime.txt should read python-X.Y, got {runtime!r}"
    assert Version(match.group(1) + ".0") in SpecifierSet(project["requires-python"])


def test_no_environment_yml_shadowing_requirements():
    assert not (BINDER / "environment.yml").exists(), "repo2docker ignores requirements.txt when environment.yml exists"


def test_cpu_torch_pinned_inside_project_range(project, lines):
    assert "--extra-index-url https://download.pytorch.org/whl/cpu" in lines
    torch_reqs = [r for r in _requirements(lines) if r.name == "torch"]
    assert len(torch_reqs) == 1
    pins = [s for s in torch_reqs[0].specifier if s.operator == "=="]
    assert pins, "pin torch exactly (an open range resolves to a newer CUDA build)"
    pinned = Version(pins[0].version)
    project_torch = next(Requirement(d) for d in project["dependencies"] if Requirement(d).name == "torch")
    assert pinned in project_torch.specifier, f"torch {pinned} is outside the project's {project_torch.specifier}"


def test_project_itself_installed_with_lab_extra(project, lines):
    editable = [ln for ln in lines if ln.startswith("-e")]
    assert editable == ["-e .[lab]"], "repo2docker does not install the repository itself when binder/ exists"
    assert "lab" in project["optional-dependencies"]
    lab = {Requirement(r).name for r in project["optional-dependencies"]["lab"]}
    assert {"jupyterlab", "voila"} <= lab


def test_every_other_pin_agrees_with_the_project(project, lines):
    declared = {Requirement(d).name: Requirement(d) for d in project["dependencies"]}
    for req in _requirements(lines):
        if req.name in declared and declared[req.name].specifier:
            for spec in req.specifier:
                if spec.operator == "==":
                    assert Version(spec.version) in declared[req.name].specifier, str(req)


def test_start_script_is_executable():
    start = BINDER / "start"
    if start.exists():
        assert start.stat().st_mode & 0o111
        assert 'exec "$@"' in start.read_text()


def test_one_torch_thread_by_default_on_binder_and_in_lab_sh():
    """Binder's few shared cores: torch's idle OpenMP threads spin against every other process (tutorial
    03 took 16 min instead of about 1). One thread unless the user sets OMP_NUM_THREADS."""
    for script in (BINDER / "start", ROOT / "scripts" / "lab.sh"):
        assert "export OMP_NUM_THREADS=${OMP_NUM_THREADS:-1}" in script.read_text(), script


def test_binder_install_has_no_triton(project, lines):
    """Binder is CPU-only: triton (691 MB) sits in the gpu extra, outside the core and the lab extra."""
    installed = [Requirement(d) for d in project["dependencies"]]
    installed += [Requirement(d) for d in project["optional-dependencies"]["lab"]]
    installed += _requirements(lines)
    assert "triton" not in {r.name for r in installed}
    gpu = [Requirement(d) for d in project["optional-dependencies"]["gpu"]]
    assert [r.name for r in gpu] == ["triton"]
